"""Resumable condensation: SIGKILL + --resume is bit-exact, SIGINT/SIGTERM save and say how to resume,
NaN stops with the iteration and keeps the last good checkpoint (issue 6, cases 8 and 12).

The interrupted runs are real ``python recipes/condense.py`` processes killed with real signals;
the uninterrupted reference runs in this process (same code, same thread count, CPU kernels are
deterministic), and the saved factors must be equal bit for bit.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_lodc.engine.condenser import STATE_FILE, Condenser, latest_checkpoint
from hf_lodc.engine.config import CondenseConfig, RunConfig
from hf_lodc.errors import ConfigError, NonFiniteError
from hf_lodc.pipeline import load_data

REPO = Path(__file__).resolve().parents[1]
ITERATIONS, EVERY = 6, 2
OPTIONS = {  # a tiny real run: 20 MNIST images per class, ConvNet-3, 8 real images per class per step
    "dataset": "ylecun/mnist", "max_per_class": 20, "eval_split": None, "method": "lodm", "ipc": 1,
    "iterations": ITERATIONS, "batch_real": 8, "checkpoint_every": EVERY, "log_every": 1, "seed": 5,
}


def _argv(out: Path, **extra) -> list[str]:
    argv = ["recipes/condense.py", "--cpu"]
    for k, v in {**OPTIONS, "output_dir": str(out), **extra}.items():
        argv += ["--" + k.replace("_", "-"), "none" if v is None else str(v)]
    return argv


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, ckpt: Path, timeout: float = 120.0) -> Path:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = latest_checkpoint(ckpt)
        if found is not None:
            return found
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before writing a checkpoint:\n{err[-3000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


def _iteration(p: Path) -> int:
    return int(p.name.split("_")[1])


@pytest.fixture(scope="module")
def data(shared_hub):
    return load_data(RunConfig.from_flat(OPTIONS).data)


@pytest.fixture(scope="module")
def reference(data):
    """The uninterrupted run's factors."""
    result = Condenser(data, RunConfig.from_flat(OPTIONS).condense, progress=False).run()
    return {k: v for k, v in result.synset.state_dict().items()}


def _assert_same_factors(out: Path, reference: dict[str, torch.Tensor]) -> None:
    saved = load_file(str(out / "synset.safetensors"))
    assert set(saved) == set(reference)
    for k, v in reference.items():
        assert torch.equal(saved[k], v), f"{k} differs from the uninterrupted run"


def test_sigkill_then_resume_is_bit_exact(tmp_path, reference):
    out = tmp_path / "run"
    proc = _start(_argv(out))
    _wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "synset.safetensors").exists(), "the run finished before it could be killed"
    kept = latest_checkpoint(out / "checkpoints")
    assert kept is not None and EVERY <= _iteration(kept) < ITERATIONS

    done = subprocess.run([sys.executable, *_argv(out), "--resume"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    # SIGKILL loses at most the iterations since the last checkpoint: the run restarts from it
    assert f"resumed from {str(kept)!r} at iteration {_iteration(kept)}/{ITERATIONS}" in done.stdout
    _assert_same_factors(out, reference)


def test_sigint_saves_prints_the_resume_command_and_that_command_finishes_bit_exact(tmp_path, reference):
    out = tmp_path / "run"
    proc = _start(_argv(out))
    _wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    m = re.search(r"interrupted: interrupted by SIGINT after iteration (\d+)/6; checkpoint saved to '(.+?)'\. "
                  r"Resume with: (.+)$", err, re.M)
    assert m, err[-3000:]
    at, path, command = int(m.group(1)), Path(m.group(2)), m.group(3)
    assert path == out / "checkpoints" / f"iter_{at:07d}" and (path / STATE_FILE).is_file()
    assert latest_checkpoint(out / "checkpoints") == path
    assert command == shlex.join(["python", *_argv(out), "--resume"])

    argv = shlex.split(command)
    done = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_factors(out, reference)


def test_sigterm_saves_a_checkpoint_and_exits_non_zero(tmp_path):
    out = tmp_path / "run"
    proc = _start(_argv(out))
    _wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    m = re.search(r"interrupted by SIGTERM after iteration (\d+)/6; checkpoint saved to '(.+?)'", err)
    assert m and latest_checkpoint(out / "checkpoints") == Path(m.group(2)), err[-3000:]


def test_nan_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path, data):
    cfg = CondenseConfig(**{**RunConfig.from_flat(OPTIONS).condense.__dict__, "lr": 1e30, "checkpoint_every": 1})
    with pytest.raises(NonFiniteError) as info:
        Condenser(data, cfg, checkpoint_dir=tmp_path, progress=False).run()
    text = str(info.value)
    m = re.fullmatch(
        r"lodm: loss or synthetic data became non-finite at iteration (\d+) \(loss=(nan|inf)\); the last good "
        r"checkpoint is '(.+)' \(iteration (\d+)\), kept for inspection or --resume\. Lower the learning rate "
        r"\(lr=1e\+30\) or use mixed_precision='no'\.", text)
    assert m, text
    failed, path, good = int(m.group(1)), Path(m.group(3)), int(m.group(4))
    assert good == failed  # checkpoint after every iteration: the last good one is the one just before
    assert path == tmp_path / f"iter_{good:07d}" and latest_checkpoint(tmp_path) == path
    state = torch.load(path / STATE_FILE, weights_only=True)
    assert state["iteration"] == good and all(torch.isfinite(t).all() for t in state["synset"].values())

    # without checkpoints the error says so
    cfg.checkpoint_every = 0
    with pytest.raises(NonFiniteError, match=rf"non-finite at iteration {failed} .*; no checkpoint was written "
                                             r"before it \(set checkpoint_every to keep one\)\."):
        Condenser(data, cfg, progress=False).run()

    # resuming that checkpoint with other settings is refused by name
    other = CondenseConfig(**{**cfg.__dict__, "lr": 1.0})
    with pytest.raises(ConfigError, match=r"was made with lr=1e\+30, this run has lr=1\.0; use another output dir"):
        Condenser(data, other, checkpoint_dir=tmp_path, progress=False).run(resume=True)
