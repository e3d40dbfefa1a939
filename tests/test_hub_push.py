"""Publishing condensed sets to the fake Hub (tests/hubserver) with the real huggingface_hub / datasets
clients, reading them back, and every Hub failure a push can meet (issue 3, issue 6 cases 10-11)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

# huggingface_hub's own LFS PUT (data=<file object>) triggers this httpx2 deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

datasets = pytest.importorskip("datasets")

from hf_lodc import CondensedDataset  # noqa: E402
from hf_lodc.errors import DatasetNotFoundError, HubAuthError, HubPushError, IncompatibleArtifactError  # noqa: E402
from hf_lodc.export.artifact import load_artifact  # noqa: E402
from tests.test_export import tiny_condensed  # noqa: E402

from tests.hub_helpers import FAST, NAME, REPO  # noqa: E402
from tests.hub_helpers import card_front_matter as _card  # noqa: E402


def _tree_digest(path: Path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------
# push -> plain load_dataset in a fresh process


_PLAIN_LOAD = """
import json, sys
import numpy as np, datasets
repo, out = {repo!r}, {out!r}
d = datasets.load_dataset(repo, split="train")
px = datasets.load_dataset(repo, "pixel_values", split="train").with_format("numpy")[:]
fa = datasets.load_dataset(repo, "factors", split="train").with_format("numpy")[:]
named = datasets.load_dataset(repo, "{name}-factors", split="train").with_format("numpy")[:]
np.savez(out, image=np.stack([np.asarray(im) for im in d["image"]]), pixel_values=px["pixel_values"],
         A=fa["A"], B=fa["B"], named_A=named["A"], label=np.asarray(d["label"][:]))
print("RESULT=" + json.dumps({{
    "rows": len(d), "features": d.features.to_dict(), "names": d.features["label"].names,
    "mode": d[0]["image"].mode, "configs": datasets.get_dataset_config_names(repo),
    "hf_lodc_imported": any(m.startswith("hf_lodc") for m in sys.modules),
}}))
"""


def test_push_then_plain_load_dataset_in_a_fresh_process(hub_server, tmp_path):
    cd = tiny_condensed("lodm")
    res = cd.push_to_hub(REPO, **FAST)
    assert res.changed and res.config_name == NAME and res.default == NAME
    assert res.configs == (NAME, f"{NAME}-pixel_values", f"{NAME}-factors")
    assert len(hub_server.server.commits(REPO)) == 2  # "initial commit" + ONE commit with everything

    out = tmp_path / "arrays.npz"
    proc = hub_server.run_python(_PLAIN_LOAD.format(repo=REPO, out=str(out), name=NAME))
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.split("RESULT=", 1)[1])
    assert got["hf_lodc_imported"] is False
    assert got["rows"] == 70 and got["names"] == [str(i) for i in range(10)] and got["mode"] == "L"
    assert got["features"]["image"] == {"_type": "Image"}
    assert set(got["configs"]) == {"default", "pixel_values", "factors", NAME, f"{NAME}-pixel_values",
                                   f"{NAME}-factors"}
    arrays = np.load(out)
    assert arrays["label"].tolist() == cd.labels.tolist()
    x = cd.images().numpy()
    assert np.abs(arrays["pixel_values"] - x).max() <= 1e-6
    assert np.abs(arrays["A"] @ arrays["B"] - x).max() <= 1e-6  # the factors reconstruct the same images
    assert np.array_equal(arrays["named_A"], arrays["A"])
    u8 = np.clip(np.round((x[:, 0] * cd.std.item() + cd.mean.item()) * 255), 0, 255)
    assert np.abs(arrays["image"].astype(np.int16) - u8).max() <= 1  # the PNGs are the de-normalised images


def test_repush_is_idempotent_and_an_update_touches_only_record_and_card(hub_server):
    server = hub_server.server
    cd = tiny_condensed("lodm")
    cd.push_to_hub(REPO, **FAST)
    before = server.repo_state(REPO)
    again = cd.push_to_hub(REPO, **FAST)
    assert again.changed is False and server.repo_state(REPO) == before
    assert len(server.commits(REPO)) == 2

    cd.artifact.results["evaluations"]["convnet"]["accuracies"] = [12.5]  # a changed record...
    cd.artifact.results["evaluations"]["convnet"]["accuracy_mean"] = 12.5
    upd = cd.push_to_hub(REPO, **FAST)
    after = server.repo_state(REPO)
    assert upd.changed and len(server.commits(REPO)) == 3
    changed = sorted(p for p in after.files if after.files[p] != before.files.get(p))
    assert changed == ["README.md", f"condensations/{NAME}/hf_lodc.json"]  # ...re-uploads no parquet
    assert [r["accuracy_mean"] for r in _card(server)["results"] if r["data"] == "pixel_values"] == [12.5]


def test_from_hub_gives_factors_labels_normalisation_config_and_reproduces_the_card_accuracy(hub_server):
    cd = tiny_condensed("lodm")
    cd.push_to_hub(REPO, **FAST)
    (card_rec,) = [r for r in _card(hub_server.server)["results"] if r["data"] == "pixel_values"]

    back = CondensedDataset.from_hub(REPO)
    assert back.name == NAME and back.class_names == [str(i) for i in range(10)]
    A, B = back.factors
    assert torch.equal(A, cd.factors[0]) and torch.equal(B, cd.factors[1]) and torch.equal(back.labels, cd.labels)
    assert back.mean.tolist() == cd.mean.tolist() and back.std.tolist() == cd.std.tolist()
    assert back.config["condense"]["iterations"] == 2 and back.config["method"] == "lodm"
    x, y = back.to_torch_dataset()[3]
    assert torch.equal(x, cd.images()[3]) and int(y) == int(cd.labels[3])

    assert back.eval_max_per_class == 10  # the recorded test data is reused
    rec = back.evaluate(models=["convnet"], runs=card_rec["runs"], epochs=card_rec["epochs"], uint8=False)["convnet"]
    assert abs(rec.accuracy_mean - card_rec["accuracy_mean"]) <= card_rec["accuracy_std"] + 1e-6
    assert rec.accuracies == card_rec["accuracies"]  # same seed, same data: the same numbers


def test_a_second_condensation_is_added_without_clobbering_the_first(hub_server):
    server = hub_server.server
    lodm, pixel = tiny_condensed("lodm"), tiny_condensed("pixel")
    lodm.push_to_hub(REPO, **FAST)
    res = pixel.push_to_hub(REPO, config_name="random-ipc1", **FAST)
    assert res.default == NAME  # the first condensation stays the default
    card = _card(server)
    configs = {c["config_name"]: c["data_files"][0]["path"] for c in card["configs"]}
    assert configs["default"] == f"condensations/{NAME}/images/train-*"
    assert configs["random-ipc1"] == "condensations/random-ipc1/images/train-*"
    assert configs["random-ipc1-pixel_values"] == "condensations/random-ipc1/pixel_values/train-*"
    assert "random-ipc1-factors" not in configs  # a pixel set has no factors
    assert [(c["config_name"], c["default"]) for c in card["condensation"]] == [(NAME, True), ("random-ipc1", False)]
    assert {r["config_name"] for r in card["results"]} == {NAME}  # the first one's results are still there
    assert f"condensations/{NAME}/hf_lodc.json" in server.repo_state(REPO).files

    again = CondensedDataset.from_hub(REPO)
    assert again.name == NAME and torch.equal(again.images(), lodm.images())
    other = CondensedDataset.from_hub(REPO, "random-ipc1")
    assert other.factors is None and torch.equal(other.images(), pixel.images())

    moved = pixel.push_to_hub(REPO, config_name="random-ipc1", set_default=True, **FAST)
    assert moved.default == "random-ipc1" and moved.changed
    card = _card(server)
    assert {c["config_name"]: c["data_files"][0]["path"] for c in card["configs"]}["default"] == \
        "condensations/random-ipc1/images/train-*"
    assert CondensedDataset.from_hub(REPO).name == "random-ipc1"
    assert CondensedDataset.from_hub(REPO, NAME).name == NAME


# ------------------------------------------------------------------------------------------------
# faults (issue 6, case 10): the remote is unchanged after a failed commit, the local artefact survives


def test_failing_commits_are_retried_then_reported_with_remote_and_local_intact(hub_server, tmp_path):
    server = hub_server.server
    lodm, pixel = tiny_condensed("lodm"), tiny_condensed("pixel")
    lodm.push_to_hub(REPO, **FAST)
    local = tmp_path / "artefact"
    pixel.save_to_disk(local)
    saved = _tree_digest(local)
    before = server.repo_state(REPO)

    server.fail_next("commit", status=500, times=3)
    with pytest.raises(HubPushError) as e:
        pixel.push_to_hub(REPO, config_name="random-ipc1", max_retries=2, **FAST)
    assert re.search(r"failed after 3 attempt\(s\): 500: .*Nothing was committed: the remote repo is unchanged "
                     rf"\(still at {before.head[:12]}\); the local artefact is untouched", str(e.value))
    assert [r.status for r in server.requests("commit")][-3:] == [500, 500, 500]
    assert server.repo_state(REPO) == before
    assert _tree_digest(local) == saved and torch.equal(load_artifact(local).images(), pixel.images())

    ok = pixel.push_to_hub(REPO, config_name="random-ipc1", **FAST)  # once the Hub is back
    assert ok.changed and "condensations/random-ipc1/hf_lodc.json" in server.repo_state(REPO).files


def test_dropped_connections_and_rate_limits_are_retried_without_double_commits(hub_server):
    import time

    server = hub_server.server
    lodm, pixel = tiny_condensed("lodm"), tiny_condensed("pixel")

    server.fail_next("lfs_upload", mode="drop")  # connection dropped mid-upload of a parquet file
    lodm.push_to_hub(REPO, **FAST)
    uploads = [r.status for r in server.requests("lfs_upload")]  # parallel uploads: any order in the log
    assert uploads.count(None) == 1 and set(uploads) == {None, 200}, uploads
    assert len(server.commits(REPO)) == 2

    server.fail_next("commit", mode="drop", when="after")  # the commit lands, its response is lost
    res = pixel.push_to_hub(REPO, config_name="random-ipc1", **FAST)
    assert res.changed and res.commit_sha == server.repo_state(REPO).head  # the retry found its commit there...
    assert len(server.commits(REPO)) == 3  # ...and made no second one
    assert "condensations/random-ipc1/hf_lodc.json" in server.repo_state(REPO).files

    pixel.artifact.results["note"] = "v2"
    server.fail_next("commit", status=429, headers={"Retry-After": "1"})
    t0 = time.monotonic()
    res = pixel.push_to_hub(REPO, config_name="random-ipc1", **FAST)
    assert time.monotonic() - t0 >= 1.0 and res.changed  # waited as the server asked, then pushed
    assert [r.status for r in server.requests("commit")][-2:] == [429, 200]


def test_network_down_before_the_push_is_a_clear_error(hub_server, monkeypatch):
    import socket

    from huggingface_hub import constants

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    with pytest.raises(HubPushError) as e:
        tiny_condensed("pixel").push_to_hub(REPO, max_retries=1, **FAST)
    msg = str(e.value)
    assert msg.startswith("pushing 'random-ipc1' to 'alice/mnist-lodm' failed after 2 attempt(s): connection failed (")
    assert msg.endswith("Nothing was committed: the remote repo could not be checked; the local artefact is "
                        "untouched. Push again when the Hub is reachable.")

    monkeypatch.setattr(constants, "ENDPOINT", hub_server.endpoint)  # the Hub is back, but drops every commit
    server = hub_server.server
    server.create_repo(REPO)
    before = server.repo_state(REPO)
    server.fail_next("commit", mode="drop", times=2)
    with pytest.raises(HubPushError, match=r"failed after 2 attempt\(s\): connection failed \(.*\)\. Nothing was "
                                           rf"committed: the remote repo is unchanged \(still at {before.head[:12]}\)"):
        tiny_condensed("pixel").push_to_hub(REPO, max_retries=1, **FAST)
    assert server.repo_state(REPO) == before and [r.fault for r in server.requests("commit")] == ["drop", "drop"]


def test_a_failed_first_push_removes_the_repo_it_created(hub_server):
    server = hub_server.server
    server.fail_next("commit", status=503, times=2)
    with pytest.raises(HubPushError, match=r"Nothing was committed: the empty repo created for this push was "
                                           r"deleted again; the local artefact is untouched"):
        tiny_condensed("pixel").push_to_hub("alice/new", max_retries=1, **FAST)
    assert server.store.get("dataset", "alice/new") is None


def test_a_malformed_existing_card_stops_the_push_before_any_upload(hub_server):
    server = hub_server.server
    server.create_repo(REPO)
    server.put_files(REPO, {"README.md": b"---\nlicense: [mit\n---\nmy notes\n"})
    before = server.repo_state(REPO)
    with pytest.raises(HubPushError, match=r"^the README.md of 'alice/mnist-lodm' has a front matter that is not "
                                           r"valid \(safe\) YAML \(.*\); fix or delete it, then push again. "
                                           r"Nothing was pushed"):
        tiny_condensed("pixel").push_to_hub(REPO, **FAST)
    assert server.repo_state(REPO) == before and not server.requests("lfs_upload")


def test_missing_invalid_or_unauthorised_tokens_are_clear_errors(hub_server, monkeypatch):
    server = hub_server.server
    cd = tiny_condensed("pixel")
    monkeypatch.delenv("HF_TOKEN")
    n = len(server.request_log)
    with pytest.raises(HubAuthError) as e:
        cd.push_to_hub(REPO, **FAST)
    assert str(e.value) == ("no Hugging Face token found: set HF_TOKEN, run `hf auth login`, or pass token=...; "
                            "nothing was pushed and the local artefact is untouched")
    assert len(server.request_log) == n  # failed before any request

    with pytest.raises(HubAuthError) as e:
        cd.push_to_hub(REPO, token="hf_not_a_valid_token", **FAST)
    assert str(e.value).startswith(f"the Hub at {hub_server.endpoint} rejected the token (401: ")
    assert "set HF_TOKEN or run `hf auth login`; nothing was pushed" in str(e.value)
    assert server.store.get("dataset", REPO) is None

    server.create_repo("bob/data")  # exists, owned by bob
    before = server.repo_state("bob/data")
    for repo in ("bob/data", "bob/new"):
        with pytest.raises(HubAuthError) as e:
            cd.push_to_hub(repo, token=hub_server.token, **FAST)
        assert str(e.value).startswith(f"user 'alice' may not write to dataset repo {repo!r} (403: ")
        assert str(e.value).endswith("Push to a repo in your own namespace or ask its owner for write access; "
                                     "nothing was pushed and the local artefact is untouched")
    assert server.repo_state("bob/data") == before and server.store.get("dataset", "bob/new") is None


# ------------------------------------------------------------------------------------------------
# reading repos that are not (compatible) condensed sets (issue 6, case 11)


def test_reading_a_plain_dataset_or_a_broken_condensed_repo_names_what_is_missing(hub_server):
    server = hub_server.server
    with pytest.raises(DatasetNotFoundError, match=r"dataset repo 'alice/nope' not found on http://127\.0\.0\.1"):
        CondensedDataset.from_hub("alice/nope")

    datasets.Dataset.from_dict({"x": [1, 2], "label": [0, 1]}).push_to_hub("alice/plain", token=hub_server.token)
    with pytest.raises(IncompatibleArtifactError) as e:
        CondensedDataset.from_hub("alice/plain")
    assert str(e.value) == (
        "'alice/plain' is not an hf_lodc condensed set: it has no condensations/<name>/hf_lodc.json record "
        "(configs: ['default']; files: ['.gitattributes', 'README.md', 'data/train-00000-of-00001.parquet']). "
        "To evaluate a plain image+label dataset use recipes/evaluate.py with --test-dataset."
    )

    tiny_condensed("lodm").push_to_hub(REPO, **FAST)
    readme = server.read_file(REPO, "README.md").decode()
    front = yaml.safe_load(readme.split("---\n")[1])
    front["configs"] = [c for c in front["configs"] if not c["config_name"].endswith("factors")]
    front["dataset_info"] = [c for c in front["dataset_info"] if not c["config_name"].endswith("factors")]
    server.put_files(REPO, {"README.md": ("---\n" + yaml.safe_dump(front) + "---\n").encode()})
    with pytest.raises(IncompatibleArtifactError, match=r"'alice/mnist-lodm': the config 'lodm-ipc1-r2-factors' "
                                                        r"\(factors\) cannot be loaded \(.*\); the card's `configs:` "
                                                        r"must list it"):
        CondensedDataset.from_hub(REPO)

    meta = json.loads(server.read_file(REPO, f"condensations/{NAME}/hf_lodc.json"))
    meta["layout_version"] = 2
    server.put_files(REPO, {f"condensations/{NAME}/hf_lodc.json": json.dumps(meta).encode()})
    with pytest.raises(IncompatibleArtifactError, match=r"condensations/lodm-ipc1-r2/hf_lodc.json has layout_version "
                                                        r"2; this hf_lodc reads layout_version 1"):
        CondensedDataset.from_hub(REPO, NAME)
    with pytest.raises(DatasetNotFoundError, match="has no revision 'v9'"):
        CondensedDataset.from_hub(REPO, revision="v9")


# ------------------------------------------------------------------------------------------------
# recipes


def test_evaluate_recipe_updates_the_card_in_one_commit(hub_server, capsys):
    from recipes.evaluate import main

    server = hub_server.server
    tiny_condensed("lodm").push_to_hub(REPO, **FAST)
    before = server.repo_state(REPO)
    assert main([REPO, "--models", "convnet", "--runs", "1", "--epochs", "1", "--no-uint8", "--update-card",
                 "--cpu"]) == 0
    out = capsys.readouterr().out
    after = server.repo_state(REPO)
    changed = sorted(p for p in after.files if after.files[p] != before.files.get(p))
    assert changed == ["README.md", f"condensations/{NAME}/hf_lodc.json"]
    (rec,) = [r for r in _card(server)["results"] if r["data"] == "pixel_values"]
    assert rec["epochs"] == 1 and f"convnet (float32 tensors): {rec['accuracy_mean']:.2f}" in out


def test_evaluate_recipe_on_a_set_not_made_by_hf_lodc(hub_server, tmp_path):
    from hf_lodc import load_image_classification
    from hf_lodc.export.preview import to_pil
    from recipes.evaluate import main

    real = load_image_classification("ylecun/mnist", max_per_class=2)
    names = real.info.class_names
    feats = datasets.Features({"img": datasets.Image(), "digit": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({"img": [to_pil(x) for x in real.train.images],
                                     "digit": real.train.labels.tolist()}, features=feats)
    ds.push_to_hub("alice/someone-elses", token=hub_server.token)
    out = tmp_path / "r.json"
    argv = ["alice/someone-elses", "--test-dataset", "ylecun/mnist", "--max-per-class", "20", "--runs", "1",
            "--epochs", "1", "--eval-max-per-class", "5", "--output", str(out), "--cpu"]
    assert main(argv) == 0
    rec = json.loads(out.read_text())["evaluations_uint8"]["convnet"]
    assert rec["runs"] == 1 and 0.0 <= rec["accuracy_mean"] <= 100.0
    assert main(["alice/someone-elses", "--runs", "1"]) == 2  # without --test-dataset: the clear error


def test_condense_recipe_pushes_at_the_end(hub_server, tmp_path):
    from recipes.condense import main

    out = tmp_path / "run"
    argv = ["--dataset", "ylecun/mnist", "--max-per-class", "7", "--method", "lorandom", "--ipc", "1",
            "--rank", "2", "--eval-split", "none", "--output-dir", str(out), "--push-to-hub", "alice/recipe",
            "--hub-config-name", "lorandom-demo", "--cpu"]
    assert main(argv) == 0
    card = _card(hub_server.server, "alice/recipe")
    assert [c["config_name"] for c in card["condensation"]] == ["lorandom-demo"] and card["results"] == []
    back = CondensedDataset.from_hub("alice/recipe")
    assert torch.equal(back.images(), load_artifact(out).images())


def test_condense_recipe_evaluates_both_views_and_writes_the_artefact_once(hub_server, tmp_path, monkeypatch):
    import hf_lodc.pipeline as pipeline
    from recipes.condense import main

    writes = []
    real_save = pipeline.save_artifact_or_rescue
    monkeypatch.setattr(pipeline, "save_artifact_or_rescue",
                        lambda art, out, **kw: writes.append(out) or real_save(art, out, **kw))
    out = tmp_path / "run"
    argv = ["--dataset", "ylecun/mnist", "--max-per-class", "7", "--method", "lorandom", "--ipc", "1",
            "--rank", "2", "--eval-models", "convnet", "--eval-runs", "1", "--eval-epochs", "1",
            "--output-dir", str(out), "--push-to-hub", "alice/recipe-eval", "--cpu"]
    assert main(argv) == 0
    assert writes == [out]  # one write, after both evaluations
    local = json.loads((out / "results.json").read_text())
    fl, u8 = local["evaluations"]["convnet"], local["evaluations_uint8"]["convnet"]  # float32 and uint8 PNG
    assert fl["runs"] == u8["runs"] == 1 and fl["protocol"]["seed"] == u8["protocol"]["seed"] == 0
    assert fl["protocol"]["test_data"] == u8["protocol"]["test_data"] == "split 'test' (10000 rows)"
    back = CondensedDataset.from_hub("alice/recipe-eval")  # the card and the local copy say the same
    assert back.results["evaluations"] == local["evaluations"]
    assert back.results["evaluations_uint8"] == local["evaluations_uint8"]
    by_view = {r["data"]: r["accuracies"] for r in _card(hub_server.server, "alice/recipe-eval")["results"]}
    assert by_view == {"pixel_values": fl["accuracies"], "images": u8["accuracies"]}
