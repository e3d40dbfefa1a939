"""One process of a 2-process ``accelerate launch`` run SIGKILLed mid-condensation: the other stops within
seconds with one clear error (not a traceback per process, not a 30-minute collective timeout), the
output directory's lock is free, and ``--resume`` continues from the last checkpoint to the bits of an
uninterrupted 2-process run (hf_lodc/launch.py, hf_lodc/engine/condenser.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_lodc.engine.checkpoint import latest_checkpoint
from hf_lodc.preflight import lock_output_dir
from tests.datasets_factory import make_dataset

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 40  # long enough that the kill lands mid-run on a loaded machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), "recipes/condense.py", "--cpu", "--dataset", str(data),
            "--iterations", str(ITERATIONS), "--checkpoint-every", "1", "--eval-runs", "0", "--batch-real", "4",
            "--output-dir", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def _rank_pid(out: Path, rank: int) -> int | None:
    """The pid of process ``rank`` of the run writing ``out`` (not its launcher)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            env = dict(x.split(b"=", 1) for x in (d / "environ").read_bytes().split(b"\0") if b"=" in x)
        except OSError:
            continue
        if b"recipes/condense.py" in cmd and str(out).encode() in cmd and b"accelerate.commands.launch" not in cmd \
                and env.get(b"RANK") == str(rank).encode():
            return int(d.name)
    return None


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("killed") / "data", num_classes=4, per_class={"train": 4, "test": 1})


def test_a_killed_rank_stops_the_other_with_one_error_and_resume_gives_the_same_bits(data, tmp_path):
    ref = tmp_path / "ref"
    done = subprocess.run(_command(data, ref), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "run"
    p = subprocess.Popen(_command(data, out), cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300 and p.poll() is None:
            ck = latest_checkpoint(out / "checkpoints")
            if ck is not None and int(ck.name[5:]) >= 2:
                break
            time.sleep(0.02)
        victim = _rank_pid(out, 1)
        assert victim is not None and p.poll() is None, "".join(lines)[-3000:]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        p.wait(timeout=120)
        took = time.monotonic() - killed_at
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    reader.join(10)
    text = "".join(lines)
    assert took < 60, f"the surviving process took {took:.0f} s to stop"
    assert p.returncode != 0
    assert "another process of this run died" in text and "Resume with: accelerate launch --num_processes 2" in text, \
        text[-3000:]
    assert "[rank0]: Traceback" not in text, text[-3000:]  # one error line, not the survivor's traceback
    print(f"the surviving process stopped {took:.1f} s after the kill")
    print("\n".join(line for line in text.splitlines() if "another process of this run died" in line))
    with lock_output_dir(out):  # free: the survivor released it, the dead process's flock went with it
        pass
    stopped_at = int(latest_checkpoint(out / "checkpoints").name[5:])
    assert 2 <= stopped_at < ITERATIONS

    resumed = subprocess.run(_command(data, out, "--resume"), cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    for name in ("synset.safetensors", "images.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(out / name))
        assert sorted(a) == sorted(b)
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs from the uninterrupted run"
    assert not [e.name for e in tmp_path.iterdir() if e.name not in ("ref", "run")]  # no lock file or temporaries


def test_the_collective_timeout_comes_from_the_environment_and_is_checked(monkeypatch):
    from hf_lodc.errors import ConfigError
    from hf_lodc.launch import COLLECTIVE_TIMEOUT_S, collective_timeout_s, is_peer_lost

    monkeypatch.delenv("HF_LODC_COLLECTIVE_TIMEOUT", raising=False)
    assert collective_timeout_s() == COLLECTIVE_TIMEOUT_S == 600
    monkeypatch.setenv("HF_LODC_COLLECTIVE_TIMEOUT", "45")
    assert collective_timeout_s() == 45
    for bad in ("0", "-3", "soon", "inf"):
        monkeypatch.setenv("HF_LODC_COLLECTIVE_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="HF_LODC_COLLECTIVE_TIMEOUT"):
            collective_timeout_s()
    assert is_peer_lost(RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:10635"))
    assert is_peer_lost(RuntimeError("[gloo/unbound_buffer.cc:81] Timed out waiting 45000ms for recv operation"))
    assert not is_peer_lost(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def _launch_dc(data: Path, out: Path, *extra: str) -> list[str]:
    # one DC step is 30 rounds of matching + inner training, each opened by an all-gather of the
    # synthetic set: seconds per step, with collectives inside it
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), "recipes/condense.py", "--cpu", "--dataset", str(data),
            "--method", "dc", "--outer-loop", "30", "--inner-loop", "20", "--iterations", "1",
            "--checkpoint-every", "1", "--eval-runs", "0", "--batch-real", "4", "--output-dir", str(out), *extra]


def _stop_inside_a_step(cmd: list[str], out: Path, target: str, after: float) -> tuple[str, float]:
    """Start ``cmd``, SIGTERM ``target`` (the launcher, or process 1 only) ``after`` s into the loop; its
    output and how long the run took to end after the signal."""
    p = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        for line in p.stdout:
            lines.append(line)
            if "method dc" in line:  # the loop starts right after this line
                break
        time.sleep(after)  # past the set-up, well inside the first step
        pid = p.pid if target == "launcher" else _rank_pid(out, 1)
        assert pid is not None and p.poll() is None, "".join(lines)[-3000:]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        lines.extend(p.stdout)
        p.wait(timeout=120)
        return "".join(lines), time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_stop_signal_inside_a_step_of_several_processes_leaves_it_at_once_and_resumes_to_the_same_bits(
        data, tmp_path):
    ref = tmp_path / "ref"
    t0 = time.monotonic()
    done = subprocess.run(_launch_dc(data, ref), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    step = float(re.search(r"condensed in ([0-9.]+) s", done.stdout + done.stderr).group(1))
    print(f"uninterrupted: {time.monotonic() - t0:.1f} s, {step:.1f} s for its 1 iteration")
    # the step's length depends on the machine's load (2-8 s seen): the signals go a third of the way in
    after = max(0.5, step / 3)

    out = tmp_path / "run"
    # process 1 alone is signalled: process 0 learns it at its next collective, inside its own step
    text, took = _stop_inside_a_step(_launch_dc(data, out), out, target="1", after=after)
    assert "a stop signal to another process arrived inside iteration 0: that step was left at once" in text, text
    assert text.count("interrupted: interrupted by a stop signal to another process of this run after iteration "
                      "0/1; checkpoint saved") == 1, text[-3000:]
    assert latest_checkpoint(out / "checkpoints").name == "iter_0000000"
    # resumed, the step is redone; now the launcher is signalled (as by a scheduler or Ctrl-C): every
    # process gets it
    text2, took2 = _stop_inside_a_step(_launch_dc(data, out, "--resume"), out, target="launcher",
                                       after=after)
    assert "SIGTERM arrived inside iteration 0: that step was left at once" in text2, text2[-3000:]
    assert latest_checkpoint(out / "checkpoints").name == "iter_0000000"
    assert text2.count("interrupted: interrupted by SIGTERM after iteration 0/1; checkpoint saved") == 1, text2
    print(f"stopped {took:.1f} s and {took2:.1f} s after the signals")
    assert took < 30 and took2 < 30

    resumed = subprocess.run(_launch_dc(data, out, "--resume"), cwd=REPO, env=_env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ("synset.safetensors", "images.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(out / name))
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs from the uninterrupted run"
    with lock_output_dir(out):
        pass
