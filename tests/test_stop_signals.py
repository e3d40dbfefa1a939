"""A stop signal inside a long condensation step ends the run at once with a checkpoint of the step's start,
and resuming from it gives the bits of an uninterrupted run (hf_lodc/engine/abortable.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hf_lodc.engine.condenser import Condenser, Interrupted, latest_checkpoint
from hf_lodc.engine.config import CondenseConfig, RunConfig
from hf_lodc.pipeline import load_data
from tests.datasets_factory import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("stop") / "data", per_class={"train": 6, "test": 2})


def test_sigterm_inside_a_long_step_ends_the_run_within_seconds_with_a_checkpoint(tiny, tmp_path):
    out = tmp_path / "run"
    # one IDC step of 3000 matching rounds takes minutes here: waiting for its end would be obvious
    argv = [sys.executable, "recipes/condense.py", "--dataset", str(tiny), "--cpu", "--method", "idc",
            "--iterations", "3", "--match-steps", "3000", "--n-data", "4", "--batch-real", "4", "--eval-runs", "0",
            "--checkpoint-every", "1", "--output-dir", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:  # the condensation starts right after this line
            if "method idc" in line:
                break
        time.sleep(2.0)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rest, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err[-2000:]
    assert took < 30, f"the run took {took:.0f} s to stop"
    assert "interrupted by SIGTERM after iteration 0/3; checkpoint saved to" in err and "Resume with:" in err, err
    assert "SIGTERM arrived inside iteration 0: that step was left at once" in rest
    assert latest_checkpoint(out / "checkpoints").name == "iter_0000000"
    assert not list((out / "checkpoints").glob(".tmp-*"))


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # steps of about a second on a shared 2-core machine
    yield
    torch.set_num_threads(n)


def test_a_step_left_by_a_signal_resumes_bit_exact(tiny, tmp_path, one_thread, monkeypatch):
    from hf_lodc.objectives import OBJECTIVES

    data = load_data(RunConfig.from_flat({"dataset": str(tiny)}).data)
    cfg = dict(method="idc", iterations=3, match_steps=10, n_data=4, batch_real=4, seed=3)
    reference = Condenser(data, CondenseConfig(**cfg), progress=False).run().synset.state_dict()

    # the signal is sent from inside the first step (a run's first step is always abortable: its start
    # is copied), whatever the machine's load
    idc, sent = OBJECTIVES.get("idc"), []
    step = idc.step

    def signalled_step(self, iteration, *a, **k):
        if iteration == 0 and not sent:
            sent.append(iteration)
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, iteration, *a, **k)

    monkeypatch.setattr(idc, "step", signalled_step)
    ck = tmp_path / "ck"
    said: list[str] = []
    with pytest.raises(Interrupted, match=r"interrupted by SIGTERM after iteration 0/3; checkpoint saved"):
        Condenser(data, CondenseConfig(**cfg), checkpoint_dir=ck, progress=False, log=said.append).run()
    assert sent == [0] and any("SIGTERM arrived inside iteration 0: that step was left at once" in m for m in said), said
    monkeypatch.undo()
    assert latest_checkpoint(ck).name == "iter_0000000"
    resumed = Condenser(data, CondenseConfig(**cfg), checkpoint_dir=ck, progress=False).run(resume=True)
    for k, v in reference.items():
        assert torch.equal(resumed.synset.state_dict()[k], v), f"{k} differs from the uninterrupted run"


def test_a_run_killed_during_evaluation_resumes_straight_into_it(tiny, tmp_path, monkeypatch):
    """The finished loop is checkpointed before the evaluation: a run that dies there (here: SystemExit,
    which nothing in the run catches, as with SIGKILL) resumes without redoing one iteration."""
    import hf_lodc.pipeline as pipeline
    from safetensors.torch import load_file

    opts = {"dataset": str(tiny), "iterations": 3, "batch_real": 4, "eval_runs": 1, "eval_epochs": 1}
    out = tmp_path / "run"
    real_evaluate = pipeline.evaluate

    def dies(*args, **kwargs):
        raise SystemExit("killed while evaluating")

    monkeypatch.setattr(pipeline, "evaluate", dies)
    with pytest.raises(SystemExit):
        pipeline.run_experiment(RunConfig.from_flat({**opts, "output_dir": str(out)}), progress=False,
                                log=lambda m: None)
    assert latest_checkpoint(out / "checkpoints").name == "iter_0000003"
    monkeypatch.setattr(pipeline, "evaluate", real_evaluate)
    said: list[str] = []
    pipeline.run_experiment(RunConfig.from_flat({**opts, "output_dir": str(out), "resume": True}), progress=False,
                            log=said.append)
    assert any("at iteration 3/3" in m for m in said) and not any("condensed in" in m for m in said), said
    assert not (out / "checkpoints").exists()  # the artefact replaced the run's checkpoints
    fresh = tmp_path / "fresh"
    pipeline.run_experiment(RunConfig.from_flat({**opts, "output_dir": str(fresh)}), progress=False,
                            log=lambda m: None)
    a, b = load_file(str(out / "synset.safetensors")), load_file(str(fresh / "synset.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_while_loading_data_ends_with_one_line_and_writes_nothing(tiny, tmp_path, monkeypatch, capsys):
    """Before the loop's own handler exists (data loading, checks, start-up) a SIGTERM used to end the
    process through the default handler: exit -15 and no word. The recipe now says what happened."""
    from hf_lodc import pipeline
    from recipes.condense import main

    real_load = pipeline.load_data

    def load_data_signalled(*args, **kwargs):  # the signal lands while the source is being read
        os.kill(os.getpid(), signal.SIGTERM)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_data", load_data_signalled)
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    rc = main(["--dataset", str(tiny), "--cpu", "--iterations", "2", "--eval-runs", "0", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 130
    assert "interrupted: SIGTERM outside the condensation loop" in err and "Run the same command again" in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    assert signal.getsignal(signal.SIGTERM) is before  # the recipe's handler does not outlive it


def test_sigterm_while_the_recipe_imports_its_libraries_ends_with_one_line(tiny, tmp_path):
    """Earlier still, while Python imports torch and the library (seconds), only the recipe's first
    import (recipes/_startup.py, standard library only) can answer a SIGTERM."""
    out = tmp_path / "run"
    argv = [sys.executable, "recipes/condense.py", "--dataset", str(tiny), "--cpu", "--iterations", "2",
            "--eval-runs", "0", "--output-dir", str(out)]
    p = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # the interpreter is up; torch takes seconds to import
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert err.strip() == ("interrupted: SIGTERM while starting (importing the libraries): nothing was written. "
                           "Run the same command again"), err[-2000:]
    assert not out.exists()


def test_every_recipe_installs_the_startup_handler_before_its_libraries():
    """A recipe without it would print Python's traceback for a SIGTERM while torch imports."""
    recipes = sorted(p for p in (REPO / "recipes").glob("*.py") if not p.name.startswith("_"))
    assert len(recipes) >= 4
    for path in recipes:
        text = path.read_text()
        assert "import _startup" in text, path.name
        lines = text.splitlines()
        heavy = [i for i, line in enumerate(lines) if line.startswith(("from hf_lodc", "import torch", "from torch"))]
        startup = next(i for i, line in enumerate(lines) if "import _startup" in line)
        assert heavy and startup < heavy[0], path.name
