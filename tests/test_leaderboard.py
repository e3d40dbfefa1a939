"""A leaderboard of condensed sets on the loopback Hub: rows from a foreign report and from an hf_lodc set
appended in one commit each, read back with plain ``datasets.load_dataset``; a concurrent writer's rows
kept; bad repo ids, missing tokens and an unreachable Hub refused with nothing written."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

datasets = pytest.importorskip("datasets")

import hf_lodc  # noqa: E402
from hf_lodc.errors import ConfigError, HubAuthError, HubPushError  # noqa: E402
from hf_lodc.export import leaderboard_repo  # noqa: E402
from hf_lodc.export.leaderboard_repo import COLUMNS, LEADERBOARD_FILE  # noqa: E402
from hf_lodc.leaderboard import infer_method, leaderboard_rows, push_to_leaderboard  # noqa: E402
from tests.test_export import tiny_condensed  # noqa: E402

BOARD = "alice/condensed-leaderboard"
FAST = dict(retry_wait=0.01, log=None)

_PLAIN_LOAD = """
import json, sys, datasets
d = datasets.load_dataset({repo!r}, split="train")
print("RESULT=" + json.dumps({{"rows": d.to_list(), "columns": d.column_names, "date": str(d.features["date"]),
                              "hf_lodc_imported": any(m.startswith("hf_lodc") for m in sys.modules)}}, default=str))
"""


def _dc_results_file(root, tmp_path):
    """A DM results file (res_*.pt) of 2 real images per class, normalised with the dataset's statistics."""
    data = hf_lodc.load_image_classification(str(root))
    idx = torch.cat([torch.nonzero(data.train.labels == c).flatten()[:2] for c in range(3)])
    x = (data.train.images[idx].float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    path = tmp_path / "res_DM_RGB8_ConvNet_2ipc.pt"
    torch.save({"data": [[x, data.train.labels[idx]]], "accs_all_exps": {"ConvNet": [0.5]}}, path)
    return path


def test_two_evaluations_round_trip_through_plain_load_dataset(hub_server, rgb8_root, tmp_path):
    import recipes.evaluate as rec

    path = _dc_results_file(rgb8_root, tmp_path)
    code = rec.main([str(path), "--test-dataset", str(rgb8_root), "--models", "convnet", "--runs", "1", "--epochs", "1",
                     "--cpu", "--ars", "--lrs", "--real-accuracy", "60", "--leaderboard", BOARD])
    assert code == 0
    server = hub_server.server
    assert len(server.commits(BOARD)) == 2  # the repo's first commit + ONE commit with the rows and the card

    cd = tiny_condensed("lodm")  # an hf_lodc set, already evaluated: the same table
    res = push_to_leaderboard(BOARD, cd, method="LoDM (tiny)", source="alice/mnist-lodm", **FAST)
    assert res.rows_added == 1 and res.rows_total == 2 and len(server.commits(BOARD)) == 3

    proc = hub_server.run_python(_PLAIN_LOAD.format(repo=BOARD))
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.split("RESULT=", 1)[1])
    assert got["hf_lodc_imported"] is False and got["columns"] == list(COLUMNS)
    assert got["date"].startswith("Value('timestamp")  # ISO 8601 in the file, a UTC timestamp when loaded
    foreign, own = got["rows"]
    assert foreign["method"] == "DM" and foreign["method_from"].startswith("inferred from the layout (DC/DSA/DM")
    assert foreign["source"] == str(path) and foreign["labels"] == "hard" and foreign["model"] == "convnet"
    assert foreign["storage_bytes"] == 6 * 3 * 8 * 8 * 4 and foreign["runs"] == 1 and foreign["epochs"] == 1
    assert foreign["random_accuracy"] is not None and 0 <= foreign["ars"] <= 1 and 0 <= foreign["lrs"] <= 1
    scores = json.loads(foreign["scores"])
    assert set(scores) == {"ars", "lrs", "lrs_inputs"} and scores["lrs_inputs"]["real_hard"] == 60.0
    assert "sgd lr 0.01" in foreign["protocol"] and foreign["hf_lodc_version"] == hf_lodc.__version__
    assert own["method"] == "LoDM (tiny)" and own["method_from"] == "given" and own["source"] == "alice/mnist-lodm"
    assert own["storage_bytes"] == cd.results["storage"]["stored_bytes"] and own["lrs"] is None
    assert own["accuracy_mean"] == cd.results["evaluations"]["convnet"]["accuracy_mean"]
    card = server.read_file(BOARD, "README.md").decode()
    assert f"path: {LEADERBOARD_FILE}" in card and "| DM |" in card and "| LoDM (tiny) |" in card


def test_a_concurrent_writer_is_not_overwritten(hub_server, monkeypatch):
    server = hub_server.server
    cd = tiny_condensed("lodm")
    push_to_leaderboard(BOARD, cd, method="first", **FAST)
    theirs = leaderboard_rows(cd, method="bob's")
    real_read, raced = leaderboard_repo.read_remote, []

    def read_then_race(api, repo, sha, path):
        out = real_read(api, repo, sha, path)
        if path == LEADERBOARD_FILE and not raced:  # another writer commits between our read and our commit
            raced.append(True)
            body = out + (json.dumps(theirs[0]) + "\n").encode()
            server.put_files(BOARD, {LEADERBOARD_FILE: body}, message="bob")
        return out

    monkeypatch.setattr(leaderboard_repo, "read_remote", read_then_race)
    res = push_to_leaderboard(BOARD, cd, method="mine", **FAST)
    methods = [json.loads(line)["method"] for line in server.read_file(BOARD, LEADERBOARD_FILE).decode().splitlines()]
    assert methods == ["first", "bob's", "mine"] and res.rows_total == 3


def test_bad_repo_id_no_token_and_an_unreachable_hub_leave_nothing_written(hub_server, monkeypatch, capsys):
    import recipes.evaluate as rec

    cd = tiny_condensed("lodm")
    with pytest.raises(ConfigError, match="not a valid Hub repo id"):
        push_to_leaderboard("alice/bad name!", cd, **FAST)
    server = hub_server.server
    push_to_leaderboard(BOARD, cd, **FAST)
    before = server.repo_state(BOARD)
    server.fail_next("commit", status=502, times=10)
    with pytest.raises(HubPushError, match="nothing was appended"):
        push_to_leaderboard(BOARD, cd, max_retries=2, **{**FAST})
    assert server.repo_state(BOARD) == before
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubAuthError, match="no Hugging Face token"):
        push_to_leaderboard(BOARD, cd, **FAST)
    assert rec.main(["runs/x", "--leaderboard", "not a repo"]) == 2  # refused before anything is read
    assert rec.main(["runs/x", "--method-name", "DM"]) == 2
    err = capsys.readouterr().err
    assert "--leaderboard 'not a repo' is not a valid Hub repo id" in err and "Traceback" not in err
    assert "pass --leaderboard REPO too" in err
    with pytest.raises(HubAuthError, match="--leaderboard needs a Hub token"):
        rec.check_args(rec.build_parser().parse_args([".", "--leaderboard", BOARD]))
    assert server.repo_state(BOARD) == before


def test_a_failed_first_append_removes_the_repo_it_created(hub_server):
    cd = tiny_condensed("lodm")
    server = hub_server.server
    server.fail_next("commit", status=503, times=10)
    with pytest.raises(HubPushError, match=r"nothing was appended .*; the empty repo created for it was deleted again"):
        push_to_leaderboard("alice/new-board", cd, max_retries=1, **FAST)
    assert server.store.get("dataset", "alice/new-board") is None
    # an existing repo is never deleted by a failed append, even one that holds nothing but its first commit
    hub_server.api.create_repo("alice/old-board", repo_type="dataset")
    server.fail_next("commit", status=503, times=10)
    with pytest.raises(HubPushError, match=r"nothing was appended \(each attempt is one commit, made or not\)\. Run"):
        push_to_leaderboard("alice/old-board", cd, max_retries=1, **FAST)
    assert server.store.get("dataset", "alice/old-board") is not None


def test_rows_are_checked_and_methods_inferred_from_layouts():
    row = {c: None for c in COLUMNS}
    with pytest.raises(ConfigError, match="missing"):
        leaderboard_repo.check_rows([{"source": "x"}])
    with pytest.raises(ConfigError, match="runs must be int"):
        leaderboard_repo.check_rows([{**row, "runs": "5"}])
    assert leaderboard_repo.check_rows([{**row, "accuracy_mean": 50}])[0]["accuracy_mean"] == 50.0
    assert infer_method("/x/res_DC_CIFAR10_ConvNet_10ipc.pt", "DC/DSA/DM results {...}", "hard") == "DC"
    assert infer_method("/x/images_best.pt", "tensor (images) + labels from labels_best.pt", "soft (logits)") \
        .startswith("MTT-family (soft")
    assert infer_method("/x/data.pt", "tuple (images, labels)", "hard") == "IDC"


def test_an_hf_lodc_artefact_directory_goes_into_the_same_table(hub_server, tmp_path):
    import recipes.evaluate as rec

    cd = tiny_condensed("lodm")
    cd.save_to_disk(tmp_path / "run")
    assert rec.main([str(tmp_path / "run"), "--runs", "0", "--leaderboard", BOARD, "--method-name", "LoDM"]) == 0
    (row,) = [json.loads(line) for line in hub_server.server.read_file(BOARD, LEADERBOARD_FILE).decode().splitlines()]
    assert row["method"] == "LoDM" and row["source"] == str(tmp_path / "run") and row["labels"] == "hard"
    assert row["layout"].startswith("hf_lodc artefact (lowrank") and row["runs"] == 1
