"""Condensation across processes, mixed precision and trackers, through real Accelerate.

The multi-process runs are real ``accelerate launch`` runs of the recipe: 2 CPU processes talking
over gloo. (With accelerate 1.15, ``accelerate launch --cpu --num_processes 2`` starts ONE process
unless an MPI hostfile is given; ``--multi_gpu --num_processes 2`` plus the recipe's own ``--cpu``
starts two torchrun workers that Accelerate runs as MULTI_CPU with gloo, on any machine.)
The one-process references run in this process. Each process owns half of the classes, so the two
runs are the same algorithm with different random real batches: the tests compare loss curves
within noise, the class order of the gathered set, accuracy within the run-to-run spread, and the
artefact format.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_lodc.engine.condenser import Condenser
from hf_lodc.engine.config import RunConfig
from hf_lodc.engine.distributed import Collective, gather_class_rows, shard_classes
from hf_lodc.engine.evaluate import evaluate_synthetic
from hf_lodc.errors import ConfigError
from hf_lodc.pipeline import load_data, run_experiment

REPO = Path(__file__).resolve().parents[1]
DATA = {"dataset": "ylecun/mnist", "max_per_class": 40, "eval_split": None, "holdout_fraction": 0.25}
EVAL = {"eval_models": "convnet", "eval_runs": 2, "eval_epochs": 6}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(out: Path, options: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "recipes/condense.py", "--cpu", "--output-dir", str(out)]
    for k, v in options.items():
        cmd += ["--" + k.replace("_", "-"), "none" if v is None else str(v)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _launch_two_machines(out: Path, options: dict) -> list[str]:
    """The same run as ``_launch_two``, as two MACHINES of one process each (machine ranks 0 and 1 on this
    host, meeting at 127.0.0.1): what a multi-node launch runs on each node. Returns their outputs."""
    port = _free_port()
    procs = []
    for rank in (0, 1):
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
               "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
               "recipes/condense.py", "--cpu", "--output-dir", str(out)]
        for k, v in options.items():
            cmd += ["--" + k.replace("_", "-"), "none" if v is None else str(v)]
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=600)[0])
        finally:
            if p.poll() is None:
                p.kill()
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o[-4000:]
    return outs


def _config(options: dict) -> RunConfig:
    return RunConfig.from_flat({k: (v.split(",") if k == "eval_models" else v) for k, v in options.items()})


@pytest.fixture(scope="module")
def data(shared_hub):
    return load_data(_config(DATA).data)


def _losses(history) -> list[float]:
    return [float(h["loss"]) for h in history]


def _same_within_noise(a: list[float], b: list[float]) -> None:
    """Mean losses over the second half agree within 3 standard errors (or 10 %)."""
    a, b = a[len(a) // 2 :], b[len(b) // 2 :]

    def mean_var(x):
        m = sum(x) / len(x)
        return m, sum((v - m) ** 2 for v in x) / max(len(x) - 1, 1)

    (ma, va), (mb, vb) = mean_var(a), mean_var(b)
    tol = max(3 * math.sqrt(va / len(a) + vb / len(b)), 0.1 * ma)
    assert abs(ma - mb) <= tol, (a, b)


def _classes_in_order(two: torch.Tensor, one: torch.Tensor, per_class: int) -> None:
    """Class c of the gathered set is closest to class c of the one-process set (same init)."""
    K = one.shape[0] // per_class
    x1 = one.reshape(K, -1)  # (K, n*C*H*W): all images of a class
    x2 = two.reshape(K, -1)
    d = torch.cdist(x2, x1)  # (K, K)
    assert torch.equal(d.argmin(1), torch.arange(K)), d


def test_two_processes_match_one_process_lodm(tmp_path, data):
    options = {**DATA, **EVAL, "method": "lodm", "ipc": 1, "iterations": 12, "batch_real": 8, "log_every": 1}
    _launch_two(tmp_path / "two", options)
    two = tmp_path / "two"
    one_art = run_experiment(_config({**options, "output_dir": str(tmp_path / "one")}), data=data,
                             progress=False, log=lambda *_: None)
    one = tmp_path / "one"

    # the same artefact format: files, tensor names/shapes/dtypes, config record
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    t2, t1 = load_file(str(two / "synset.safetensors")), load_file(str(one / "synset.safetensors"))
    assert {k: (v.shape, v.dtype) for k, v in t2.items()} == {k: (v.shape, v.dtype) for k, v in t1.items()}
    assert torch.equal(t2["labels"], t1["labels"])
    c2, c1 = (json.loads((d / "config.json").read_text()) for d in (two, one))
    assert set(c2) == set(c1) and c2["budget"] == c1["budget"] and c2["parameterisation"] == c1["parameterisation"]
    r2, r1 = (json.loads((d / "results.json").read_text()) for d in (two, one))
    assert r2["condensation"]["processes"] == 2 and r1["condensation"]["processes"] == 1

    # the same loss curve within noise, from the same initialisation
    h2, h1 = (json.loads((d / "history.json").read_text()) for d in (two, one))
    assert [h["iteration"] for h in h2] == [h["iteration"] for h in h1] == list(range(12))
    _same_within_noise(_losses(h2), _losses(h1))
    n = one_art.budget.images_per_class
    i2, i1 = load_file(str(two / "images.safetensors"))["images"], load_file(str(one / "images.safetensors"))["images"]
    _classes_in_order(i2, i1, n)

    # the same accuracy within the run-to-run spread
    e2, e1 = r2["evaluations"]["convnet"], r1["evaluations"]["convnet"]
    assert e2["runs"] == e1["runs"] == 2
    spread = max(e2["accuracy_std"], e1["accuracy_std"])
    assert abs(e2["accuracy_mean"] - e1["accuracy_mean"]) <= 3 * spread + 5.0, (e2, e1)

    # the evaluation split over processes (run r on process r % 2) equals a one-process evaluation
    again = evaluate_synthetic(i2, t2["labels"], data.test, data.mean, data.std, data.num_classes,
                               _config(options).eval, seed=0)["convnet"]
    for a, b in zip(again.accuracies, e2["accuracies"]):
        assert abs(a - b) <= 100.0 / len(data.test) + 1e-3, (again.accuracies, e2["accuracies"])

    # two machines of one process each compute what one machine of two processes does, bit for bit
    _launch_two_machines(tmp_path / "machines", options)
    tm = load_file(str(tmp_path / "machines" / "synset.safetensors"))
    assert tm.keys() == t2.keys() and all(torch.equal(tm[k], t2[k]) for k in t2)
    hm = json.loads((tmp_path / "machines" / "history.json").read_text())
    assert _losses(hm) == _losses(h2)
    rm = json.loads((tmp_path / "machines" / "results.json").read_text())
    assert rm["evaluations"]["convnet"]["accuracies"] == e2["accuracies"]


def test_two_processes_gradient_matching_trains_one_network_on_all_classes(tmp_path, data):
    """LoDC with 2 outer loops: the inner epochs train on the all-gathered synthetic set.
    (A one-block ConvNet as the matching network keeps per-class gradients cheap on CPU.)"""
    options = {**DATA, "eval_split": None, "holdout_fraction": None, "method": "lodc", "ipc": 1,
               "iterations": 3, "batch_real": 8, "outer_loop": 2, "inner_loop": 1, "log_every": 1,
               "matching_model": "lodc_convnet_d1_w128"}
    _launch_two(tmp_path / "two", options)
    same_data = load_data(_config(options).data)  # no holdout here: the same real images as the 2-process run
    one = Condenser(same_data, _config(options).condense, progress=False).run()
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    assert len(h2) == len(one.history) == 3 and all(math.isfinite(h["loss"]) for h in h2)
    # 2 outer steps x 10 classes x (1 - cos) terms per output channel: the same scale as one process
    assert abs(sum(_losses(h2)) / sum(_losses(one.history)) - 1.0) < 0.1
    t2 = load_file(str(tmp_path / "two" / "synset.safetensors"))
    assert {k: v.shape for k, v in t2.items()} == {k: v.shape for k, v in one.synset.state_dict().items()}
    _classes_in_order(load_file(str(tmp_path / "two" / "images.safetensors"))["images"], one.images(),
                      one.budget.images_per_class)


def test_shards_and_gathers_by_class():
    classes = torch.arange(10)
    assert shard_classes(classes, 0, 3).tolist() == [0, 3, 6, 9]
    assert shard_classes(classes, 2, 3).tolist() == [2, 5, 8]
    with pytest.raises(ConfigError, match=r"12 processes but only 10 classes to condense: condensation is sharded "
                                          r"by class, so use at most 10 processes"):
        shard_classes(classes, 0, 12)
    x = torch.arange(20.0).view(20, 1)  # 10 classes x 2 rows, one process
    assert torch.equal(gather_class_rows(Collective(None), x, 2, 10), x)


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate's state is a process-wide singleton fixed by the first Accelerator (e.g. its
    mixed precision); reset it around tests that need another one (as accelerate's own tests do)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def test_bf16_runs_the_network_passes_in_bf16_and_keeps_factors_fp32(data, fresh_accelerate_state):
    from accelerate import Accelerator

    acc = Accelerator(cpu=True, mixed_precision="bf16")
    cfg = _config({**DATA, "method": "lodm", "ipc": 1, "iterations": 2, "batch_real": 4,
                   "mixed_precision": "bf16"}).condense
    condenser = Condenser(data, cfg, accelerator=acc, progress=False)
    seen = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(o.dtype) if isinstance(m, torch.nn.Conv2d) else None)
    try:
        result = condenser.run()
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # every conv of the matching network ran in bf16
    assert result.config.mixed_precision == "bf16"
    assert all(p.dtype == torch.float32 for p in result.synset.parameters())
    opt = condenser.optimizer()  # the optimiser is built over the fp32 factors
    assert all(p.dtype == torch.float32 for g in opt.param_groups for p in g["params"])
    assert all(math.isfinite(h["loss"]) for h in result.history)


def test_trackers_receive_the_loss(data, fresh_accelerate_state):
    from accelerate import Accelerator
    from accelerate.tracking import GeneralTracker

    class Recorder(GeneralTracker):  # a real Accelerate tracker that keeps what it is given
        name, requires_logging_directory = "recorder", False

        def __init__(self):
            super().__init__()
            self.config, self.logged, self.finished = None, [], False

        @property
        def tracker(self):
            return self

        def store_init_configuration(self, values):
            self.config = values

        def log(self, values, step=None, **kwargs):
            self.logged.append((step, values))

        def finish(self):
            self.finished = True

    rec = Recorder()
    acc = Accelerator(cpu=True, log_with=[rec])
    cfg = _config({**DATA, "method": "lodm", "ipc": 1, "iterations": 3, "batch_real": 4, "log_every": 1}).condense
    Condenser(data, cfg, accelerator=acc, progress=False).run()
    assert rec.config["method"] == "lodm" and rec.finished
    assert [s for s, _ in rec.logged] == [0, 1, 2] and all("condense/loss" in v for _, v in rec.logged)


def test_launcher_mixed_precision_applies_unless_the_config_sets_it(monkeypatch, fresh_accelerate_state):
    """`accelerate launch --mixed_precision bf16` exports ACCELERATE_MIXED_PRECISION; the config wins only if set."""
    from accelerate.state import AcceleratorState

    from hf_lodc.launch import make_accelerator

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert RunConfig().condense.mixed_precision is None  # not set: the launcher decides
    assert make_accelerator(None, cpu=True).mixed_precision == "bf16"
    AcceleratorState._reset_state(True)
    assert make_accelerator("no", cpu=True).mixed_precision == "no"


def test_log_with_refuses_unknown_trackers_and_a_missing_output_dir(tmp_path, fresh_accelerate_state):
    from hf_lodc.launch import make_accelerator

    with pytest.raises(ConfigError, match="'nonsense' is not a tracker Accelerate knows"):
        make_accelerator(None, cpu=True, log_with=["nonsense"], project_dir=tmp_path)
    with pytest.raises(ConfigError, match="set --output-dir"):
        make_accelerator(None, cpu=True, log_with=["tensorboard"])
    with pytest.raises(ConfigError, match="'wandb': the package is not installed"):
        make_accelerator(None, cpu=True, log_with=["wandb"], project_dir=tmp_path)


def test_recipe_logs_to_tensorboard_and_keeps_the_logs_beside_the_artefact(tmp_path, shared_hub):
    out = tmp_path / "run"
    cmd = [sys.executable, "recipes/condense.py", "--cpu", "--output-dir", str(out), "--log-with", "tensorboard",
           "--iterations", "3", "--log-every", "1", "--batch-real", "4", "--eval-runs", "1", "--eval-epochs", "1"]
    for k, v in DATA.items():
        cmd += ["--" + k.replace("_", "-"), "none" if v is None else str(v)]
    env = {**os.environ, "ACCELERATE_MIXED_PRECISION": "bf16"}  # what `accelerate launch --mixed_precision bf16` sets
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    events = list((out / "logs").rglob("events.out.tfevents*"))
    assert events, sorted(str(p) for p in out.rglob("*"))
    assert b"condense/loss" in b"".join(p.read_bytes() for p in events)
    config = json.loads((out / "config.json").read_text())
    assert config["condense"]["mixed_precision"] == "bf16"  # the launcher's choice is used and recorded
