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
from hf_lodc.errors import ArtifactError, ConfigError, NonFiniteError
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


# ---------------------------------------------------------------------------------------------
# resume validation (issue 12, class 1): one run identity, every differing key named, no IndexError

FAST = {**{k: v for k, v in OPTIONS.items() if k in CondenseConfig.__dataclass_fields__}, "iterations": 3,
        "checkpoint_every": 2}


def _checkpointed(data, where: Path, **kw):
    """A run of 3 iterations that leaves its checkpoint after iteration 2 in ``where``."""
    res = Condenser(data, CondenseConfig(**{**FAST, **kw}), checkpoint_dir=where, progress=False).run()
    assert latest_checkpoint(where).name == "iter_0000002"
    return res


def test_resume_refuses_other_settings_listing_every_difference(tmp_path, data):
    _checkpointed(data, tmp_path)
    other = CondenseConfig(**{**FAST, "momentum": 0.9, "batch_real": 4, "dsa_strategy": "none"})
    with pytest.raises(ConfigError) as info:
        Condenser(data, other, checkpoint_dir=tmp_path, progress=False).run(resume=True)
    text = str(info.value)
    assert "was made with batch_real=8, dsa_strategy='color_crop_cutout_flip_scale_rotate', momentum=0.5, " in text
    assert "this run has batch_real=4, dsa_strategy='none', momentum=0.9; use another output dir" in text


def test_resume_refuses_another_dataset_of_the_same_shape(tmp_path, data):
    _checkpointed(data, tmp_path)
    fewer = load_data(RunConfig.from_flat({**OPTIONS, "max_per_class": 15}).data)  # same shape, classes, path
    with pytest.raises(ConfigError, match=r"was made with dataset\.fingerprint='[0-9a-f]{16}', dataset\.mean=.*"
                                          r"dataset\.num_train=200, .*this run has dataset\.fingerprint='[0-9a-f]{16}', "
                                          r"dataset\.mean=.*dataset\.num_train=150, "):
        Condenser(fewer, CondenseConfig(**FAST), checkpoint_dir=tmp_path, progress=False).run(resume=True)


def test_resume_with_another_class_count_is_a_config_error_not_an_index_error(tmp_path, data):
    import dataclasses

    from hf_lodc.data.types import ImageClassificationData

    _checkpointed(data, tmp_path)
    keep = data.train.labels < 5
    info = dataclasses.replace(data.info, class_names=data.info.class_names[:5])
    five = ImageClassificationData(data.train.subset(torch.nonzero(keep).flatten()), data.test, info)
    assert five.num_classes == 5
    with pytest.raises(ConfigError, match=r"was made with classes=\[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\], dataset\.class_names="):
        Condenser(five, CondenseConfig(**FAST), checkpoint_dir=tmp_path, progress=False).run(resume=True)
    # a class subset of the same dataset is another run too
    with pytest.raises(ConfigError, match=r"this run has classes=\[0, 1, 2\]"):
        Condenser(data, CondenseConfig(**FAST), checkpoint_dir=tmp_path, classes=torch.arange(3),
                  progress=False).run(resume=True)


def test_resume_allows_more_iterations_bit_exact_and_refuses_fewer(tmp_path, data):
    _checkpointed(data, tmp_path)
    with pytest.raises(ConfigError, match=r"already ran 2 iterations, more than iterations=1 of this run; resume with "
                                          r"iterations >= 2"):
        Condenser(data, CondenseConfig(**{**FAST, "iterations": 1}), checkpoint_dir=tmp_path,
                  progress=False).run(resume=True)
    # a larger count (and other bookkeeping: log_every, checkpoint_every, contrast) continues the run exactly
    more = {**FAST, "iterations": 5, "log_every": 2, "checkpoint_every": 0}
    logs: list[str] = []
    resumed = Condenser(data, CondenseConfig(**more), checkpoint_dir=tmp_path, progress=False,
                        log=logs.append).run(resume=True)
    assert any("at iteration 2/5" in m for m in logs), logs
    fresh = Condenser(data, CondenseConfig(**more), progress=False).run()
    for k, v in fresh.synset.state_dict().items():
        assert torch.equal(resumed.synset.state_dict()[k], v), k


def test_a_resumed_run_records_every_sittings_time_not_only_its_last(tmp_path, data):
    first = _checkpointed(data, tmp_path)  # 3 iterations, its checkpoint after 2
    state = torch.load(latest_checkpoint(tmp_path) / STATE_FILE, weights_only=True)
    kept = state["timing"]
    assert kept["its"] == 2 and kept["sittings"] == 1 and kept["untimed_its"] == 0
    assert 0 < kept["seconds"] <= kept["wall_s"] <= first.wall_time_s
    time.sleep(0.3)  # time between the sittings is not condensation time
    more = {**FAST, "iterations": 5, "checkpoint_every": 0}
    resumed = Condenser(data, CondenseConfig(**more), checkpoint_dir=tmp_path, progress=False).run(resume=True)
    assert resumed.resumed_at == 2 and resumed.sittings == 2 and resumed.untimed_iterations == 0
    assert resumed.wall_time_s > kept["wall_s"]  # the first sitting's 2 iterations are in it
    # 2 + 3 timed iterations over both sittings' iteration seconds; the warm-up of each left out of steady
    assert resumed.iterations_per_s is not None and resumed.steady_seconds_per_iteration is not None
    from hf_lodc.export.artifact import results_record

    rec = results_record(resumed, {}, data.num_classes)["condensation"]
    assert rec["resumed_at_iteration"] == 2 and rec["sittings"] == 2 and "untimed_iterations" not in rec
    assert "resumed_at_iteration" not in results_record(first, {}, data.num_classes)["condensation"]


def test_a_checkpoint_that_kept_no_timing_says_its_iterations_are_untimed(tmp_path, data):
    _checkpointed(data, tmp_path)
    path = latest_checkpoint(tmp_path) / STATE_FILE
    state = torch.load(path, weights_only=True)
    del state["timing"]  # as written before checkpoints kept it
    torch.save(state, path)
    resumed = Condenser(data, CondenseConfig(**FAST), checkpoint_dir=tmp_path, progress=False).run(resume=True)
    assert resumed.untimed_iterations == 2 and resumed.sittings == 2
    from hf_lodc.export.artifact import results_record

    assert results_record(resumed, {}, data.num_classes)["condensation"]["untimed_iterations"] == 2


def test_disk_full_while_checkpointing_removes_the_partial_dir(tmp_path, data):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))  # the state file (~10 KB) cannot be written
    try:
        with pytest.raises(ArtifactError, match=r"cannot write checkpoint '.*iter_0000002': .*; free space or fix "
                                                r"permissions"):
            Condenser(data, CondenseConfig(**FAST), checkpoint_dir=tmp_path, progress=False).run()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert os.listdir(tmp_path) == []  # no .tmp-iter_* left behind
