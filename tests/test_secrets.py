"""The Hub token never leaves the process, and a pulled repo cannot make a read leave its folder.

A recognisable token is registered on the loopback Hub (tests/hubserver) and used the three ways a user
gives one (``HF_TOKEN``, the ``token=`` argument, ``--token``), through a real condensation with a
checkpoint, a push, a failing push and a rejected token. Every file written under the test's folder
(output dir, checkpoints, caches, HF_HOME), every file and commit message the server received, everything
printed and every error message are scanned for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
datasets = pytest.importorskip("datasets")

from hf_lodc import CondensedDataset  # noqa: E402
from hf_lodc.errors import HfLodcError, IncompatibleArtifactError  # noqa: E402
from tests.datasets_factory import make_dataset  # noqa: E402
from tests.test_export import write_repo_folder  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
CANARY = "hf_CANARYzz9Secret" + "Qx7" * 6  # a token no real output would contain by chance
PIECES = (CANARY, CANARY[3:], CANARY[-12:])  # also a token printed without its prefix, or cut short


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("secrets") / "data", per_class={"train": 6, "test": 2})


@pytest.fixture(scope="module")
def tiny_set(tiny_data) -> CondensedDataset:
    cd = CondensedDataset(str(tiny_data))
    cd.condense(method="lodm", ipc=1, rank=2, iterations=1, batch_real=4)
    return cd


def _leaks(text: str | bytes) -> list[str]:
    b = text.encode() if isinstance(text, str) else text
    return [p for p in PIECES if p.encode() in b]


def _files_with_token(root: Path) -> list[str]:
    found = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and _leaks(p.read_bytes()):
            found.append(str(p.relative_to(root)))
    return found


def _server_leaks(server, repos: list[str]) -> list[str]:
    found = []
    for repo in repos:
        for c in server.commits(repo):
            if _leaks(c.title + c.message):
                found.append(f"{repo}@{c.sha[:8]} message")
            found += [f"{repo}@{c.sha[:8]}:{path}" for path, e in c.files.items() if _leaks(e.data)]
    return found


def test_the_token_appears_in_no_file_message_or_output(hub_server, tmp_path, capsys, monkeypatch, tiny_data):
    server = hub_server.server
    server.tokens[CANARY] = "alice"
    data = tiny_data
    printed: list[str] = []

    # 1. the CLI in a process of its own, token from HF_TOKEN: condense with checkpoints, evaluate, save, push
    out = tmp_path / "run"
    env = hub_server.subprocess_env({"HF_TOKEN": CANARY, "HF_LODC_CACHE": str(tmp_path / "cache"),
                                     "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})
    argv = [sys.executable, "recipes/condense.py", "--dataset", str(data), "--cpu", "--iterations", "3",
            "--batch-real", "4", "--checkpoint-every", "1", "--eval-runs", "1", "--eval-epochs", "1",
            "--output-dir", str(out), "--push-to-hub", "alice/secret-scan"]
    p = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    printed += [p.stdout, p.stderr]
    assert p.returncode == 0, p.stderr[-2000:]
    ck = tmp_path / "ck"  # a checkpoint as an interrupted run leaves it (the run above removed its own)

    # 2. in this process, token as an argument: a checkpointed condensation, a push, a push the server fails,
    #    a rejected token; their error messages too
    monkeypatch.setenv("HF_TOKEN", CANARY)
    from hf_lodc.engine.condenser import Condenser
    from hf_lodc.engine.config import CondenseConfig
    from hf_lodc.pipeline import load_data
    from hf_lodc.engine.config import RunConfig

    d = load_data(RunConfig.from_flat({"dataset": str(data)}).data)
    Condenser(d, CondenseConfig(iterations=2, batch_real=4, checkpoint_every=1), checkpoint_dir=ck,
              progress=False).run()
    assert list(ck.glob("iter_*/*"))
    cd = CondensedDataset.from_disk(out)  # the run's own set
    cd.push_to_hub("alice/secret-api", token=CANARY)
    errors = []
    server.fail_next("commit", status=500, times=50)
    with pytest.raises(HfLodcError) as failed:
        cd.push_to_hub("alice/secret-api-fail", token=CANARY, retry_wait=0.01)
    errors.append(str(failed.value))
    server.faults.clear()
    with pytest.raises(HfLodcError) as rejected:
        cd.push_to_hub("alice/secret-api-2", token=CANARY + "x")
    errors.append(str(rejected.value))
    from recipes.evaluate import main as evaluate_main

    assert evaluate_main([str(out), "--runs", "0", "--push-to-hub", "alice/secret-eval", "--token", CANARY,
                          "--cpu"]) == 0
    cap = capsys.readouterr()
    printed += [cap.out, cap.err]

    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {"run/config.json", "run/results.json", "run/README.md"} <= written  # the scan sees what was written
    assert any(w.startswith("ck/iter_") and w.endswith(".pt") for w in written), written
    assert len(server.commits("alice/secret-scan")) >= 1
    leaks = {"printed": [i for i, t in enumerate(printed) if _leaks(t)], "errors": [e for e in errors if _leaks(e)],
             "files": _files_with_token(tmp_path),
             "hub": _server_leaks(server, ["alice/secret-scan", "alice/secret-api", "alice/secret-eval"])}
    assert not any(leaks.values()), leaks
    assert "secret-api-fail" in errors[0] and "token" in errors[1].lower()  # the errors say what failed


# ---------------------------------------------------------------------------------------------
# untrusted repos


def test_a_local_repo_with_a_link_out_of_its_folder_is_refused(tmp_path, tiny_set):
    folder = write_repo_folder(tiny_set, tmp_path / "repo")
    secret = tmp_path / "outside.txt"
    secret.write_text("private")
    (folder / "condensations" / "notes.txt").symlink_to(secret)
    with pytest.raises(IncompatibleArtifactError, match=r"'condensations/notes\.txt' is a link to .*outside the "
                                                        r"folder"):
        CondensedDataset.from_hub(str(folder))


@pytest.mark.parametrize("path", ["../outside/train-*.parquet", "/etc/passwd", "condensations/../../x.parquet"])
def test_a_card_whose_data_files_leave_the_repo_is_refused(tmp_path, path, tiny_set):
    folder = write_repo_folder(tiny_set, tmp_path / "repo")
    readme = (folder / "README.md").read_text()
    head, front, body = readme.split("---\n", 2)
    front = front.replace("configs:\n", f"configs:\n- config_name: evil\n  data_files:\n  - split: train\n"
                                        f"    path: {path}\n", 1)
    (folder / "README.md").write_text("---\n".join([head, front, body]))
    with pytest.raises(IncompatibleArtifactError, match=r"points outside the repository"):
        CondensedDataset.from_hub(str(folder))


def test_a_hub_repo_listing_a_file_outside_itself_is_refused(hub_server, tmp_path, tiny_set):
    folder = write_repo_folder(tiny_set, tmp_path / "repo")
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    hub_server.server.create_repo("alice/evil")
    hub_server.server.put_files("alice/evil", {**files, "../escape.txt": b"x"})
    with pytest.raises(IncompatibleArtifactError, match=r"'\.\./escape\.txt' points outside the repository"):
        CondensedDataset.from_hub("alice/evil")
    assert not (tmp_path / "escape.txt").exists()
    assert not os.path.exists(Path(hub_server.hf_home).parent / "escape.txt")


def test_huge_files_in_a_hub_repo_are_refused_before_they_are_downloaded(hub_server, tmp_path, tiny_set):
    from hf_lodc.export.pull import MAX_TEXT_BYTES

    folder = write_repo_folder(tiny_set, tmp_path / "repo")
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    server = hub_server.server
    name = next(f.split("/")[1] for f in files if f.endswith("hf_lodc.json"))
    server.create_repo("alice/huge-data")
    server.put_files("alice/huge-data", {**files, f"condensations/{name}/padding.bin": bytes(65 << 20)})
    with pytest.raises(IncompatibleArtifactError, match=r"take \d+ bytes, far more than a set of 6 images"):
        CondensedDataset.from_hub("alice/huge-data")
    server.create_repo("alice/huge-card")
    server.put_files("alice/huge-card", {**files, "README.md": files["README.md"] + b" " * MAX_TEXT_BYTES})
    with pytest.raises(IncompatibleArtifactError, match=r"README\.md is \d+ bytes, more than a card"):
        CondensedDataset.from_hub("alice/huge-card")
    fetched = [r.path for r in server.requests("resolve")]
    assert not [p for p in fetched if "padding" in p or ("huge-card" in p and "README" in p)], fetched
