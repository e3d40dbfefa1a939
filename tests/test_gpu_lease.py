"""The GPU lease script end to end on a CPU (``--smoke``): pack, run, collect; known to work before a lease."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HUB = os.environ.get("HF_LODC_LOCAL_HUB", str(REPO.parent / "shared" / "hub"))


def _py(*args, env=None, timeout=900):
    done = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_help_names_every_carry_path_and_command():
    text = _py("benchmarks/gpu/lease.py", "--help")
    for needle in (".lease/whl", ".lease/mnist", ".lease/cifar10-1", ".lease/cifar10-2", ".lease/state.tar.gz",
                   "--unpack-only", "--target /tmp/site", "timeout_s"):
        assert needle in text


@pytest.mark.slow
@pytest.mark.skipif(not (Path(HUB) / "datasets" / "ylecun" / "mnist").is_dir(), reason="needs the MNIST hub mirror")
def test_smoke_lease_runs_end_to_end_and_collects(tmp_path):
    lease, out, results = tmp_path / "lease", tmp_path / "out", tmp_path / "results"
    env = {**os.environ, "HF_LODC_LOCAL_HUB": HUB, "PYTHONPATH": str(REPO)}
    _py("benchmarks/gpu/pack.py", "--smoke", lease, "--hub", HUB, env=env)
    _py("benchmarks/gpu/lease.py", "--smoke", "--lease-dir", lease, "--out", out, "--budget-s", 1200,
        "--precisions", "fp32", "--cells", "mnist-lodm-ipc1,cifar10-lodm-ipc1", "--min-cell-s", 30,
        "--min-eval-s", 10, "--reserve-s", 10, env=env)
    (rec_path,) = out.glob("lease-*.json")
    rec = json.loads(rec_path.read_text())
    assert rec["smoke"] and rec["hardware"]["torch"] and rec["unpacked"] == ["mnist"]
    cond = [r for r in rec["speed"] if r.get("part") == "condense"]
    assert cond and cond[0]["seconds_per_iteration"] > 0 and cond[0]["flops_per_iteration"] > 0
    assert {r["backend"] for r in rec["speed"] if r.get("part") == "eval"} == {"sequential", "vmap"}
    cells = {c["cell"]: c for c in rec["cells"]}
    mnist = cells["mnist-lodm-ipc1"]
    assert mnist["status"] == "done", mnist
    acc = mnist["evaluations"]["convnet"]
    assert 0 <= acc["accuracy_mean"] <= 100 and acc["runs"] == 1
    assert "--config recipes/configs/mnist-lodm-ipc1.yaml" in mnist["condense_command"]
    assert cells["cifar10-lodm-ipc1"]["status"] == "skipped" and "not carried" in cells["cifar10-lodm-ipc1"]["reason"]
    assert len(list(out.iterdir())) <= 8  # the device tool returns at most 8 files
    # collect refuses smoke records unless told, then renders the table beside the paper
    bad = subprocess.run([sys.executable, "benchmarks/gpu/collect.py", out, "--results", results, "--no-readme"],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "--include-smoke" in bad.stderr
    _py("benchmarks/gpu/collect.py", out, "--include-smoke", "--results", results, "--no-readme",
        "--lease-dir", tmp_path / "next", env=env)
    md = (results / "gpu_table1.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| mnist-lodm-ipc1 "))
    assert f"{acc['accuracy_mean']:.2f}" in row and "91.2 ± 0.4" in row
    assert "| cifar10-lodm-ipc10 | not measured yet" in md
    assert "s / iteration" in (results / "gpu_speed.md").read_text()


def test_state_of_a_cut_cell_travels_back(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))
    import lease as L

    L.LEASE, L.RUNS = tmp_path, tmp_path / "runs"
    (L.RUNS / "cut" / "checkpoints" / "iter_0000500").mkdir(parents=True)
    (L.RUNS / "cut" / "checkpoints" / "iter_0000500" / "state.pt").write_bytes(b"x" * 10)
    (L.RUNS / "done").mkdir()
    (L.RUNS / "done" / "lease-done.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    L.save_state(out)
    with tarfile.open(out / "state.tar.gz") as tar:
        names = tar.getnames()
    assert "cut/checkpoints/iter_0000500/state.pt" in names and not any(n.startswith("done") for n in names)
    L.RUNS = tmp_path / "next"
    assert L.restore_state(out / "state.tar.gz") == ["cut"]
