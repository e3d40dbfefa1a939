"""Trajectory matching (MTT / LoMTT): expert trajectories on real MNIST, the student unroll, resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import hf_lodc
from hf_lodc.engine.condenser import Condenser
from hf_lodc.engine.config import CondenseConfig, DataConfig
from hf_lodc.errors import ArtifactError, ConfigError
from hf_lodc.models.factory import create_eval_model
from hf_lodc.objectives.experts import ExpertConfig, flat_params, load_experts, train_experts, unflatten
from hf_lodc.pipeline import load_data
from hf_lodc.seeding import derive_seed
from tests.conftest import REPO_ROOT

EXPERTS = ExpertConfig(num_experts=2, epochs=3, batch=64, seed=0)
FAST = dict(ipc=1, rank=2, syn_steps=3, expert_epochs=2, max_start_epoch=1, seed=0, progress=False)


@pytest.fixture(scope="module")
def small(shared_hub):
    return load_data(DataConfig(dataset="ylecun/mnist", max_per_class=30))  # 300 real train images


@pytest.fixture(scope="module")
def experts(small, tmp_path_factory):
    root = tmp_path_factory.mktemp("experts") / "mnist"
    train_experts(small, EXPERTS, root, progress=False)
    return root


def test_expert_trajectories_start_at_the_init_and_round_trip(small, experts):
    buf = load_experts(experts)
    net = create_eval_model("lodc_convnet_d3_w128", num_classes=10, in_chans=1, img_size=(28, 28))
    P = flat_params(net).numel()
    assert buf.trajectories.shape == (2, 4, P)  # 2 experts x (3 epochs + the init)
    torch.manual_seed(derive_seed(0, "expert-net", 1))
    init = create_eval_model("lodc_convnet_d3_w128", num_classes=10, in_chans=1, img_size=(28, 28))
    torch.testing.assert_close(buf.trajectories[1, 0], flat_params(init))  # epoch 0 = the expert's init
    assert not torch.equal(buf.trajectories[1, 0], buf.trajectories[1, 3])  # it trained
    meta = json.loads((experts / "experts.json").read_text())
    assert meta["class_names"] == [str(i) for i in range(10)] and meta["config"]["epochs"] == 3
    assert all(0 <= a <= 100 for a in meta["test_accuracy"].values())
    # flat <-> named parameters
    named = unflatten(buf.trajectories[1, 0], buf.names, buf.shapes)
    for (name, p), (name2, q) in zip(init.named_parameters(), named.items()):
        assert name == name2 and torch.equal(p.detach(), q)


def test_experts_are_reused_and_other_settings_refused(small, experts):
    before = {p.name: p.stat().st_mtime_ns for p in experts.glob("expert_*")}
    train_experts(small, EXPERTS, experts, progress=False)  # nothing to train: all there
    assert {p.name: p.stat().st_mtime_ns for p in experts.glob("expert_*")} == before
    other = ExpertConfig(**{**EXPERTS.__dict__, "epochs": 4})
    with pytest.raises(ConfigError, match="other config"):
        train_experts(small, other, experts, progress=False)


def test_missing_or_broken_experts_are_clear_errors(tmp_path, small, experts):
    with pytest.raises(ConfigError, match="set expert_dir"):
        hf_lodc.condense(small, method="lomtt", iterations=1, **FAST)
    with pytest.raises(ArtifactError, match="holds no expert trajectories"):
        hf_lodc.condense(small, method="lomtt", iterations=1, expert_dir=str(tmp_path), **FAST)
    with pytest.raises(ConfigError, match="needs 4"):  # start epochs [0, 3) + 2 > 3 epochs
        hf_lodc.condense(small, method="lomtt", iterations=1, expert_dir=str(experts),
                         **{**FAST, "max_start_epoch": 3})
    other = load_data(DataConfig(dataset="ylecun/mnist", max_per_class=20))  # other normalisation statistics
    with pytest.raises(ConfigError, match="normalisation"):
        hf_lodc.condense(other, method="lomtt", iterations=1, expert_dir=str(experts), **FAST)


def test_the_loss_is_the_normalised_distance_after_the_student_steps(small, experts):
    """One student step, no augmentation, the whole set: recompute the loss by hand."""
    kw = dict(method="mtt", expert_dir=str(experts), dsa_strategy="none", contrast="none", ipc=1, syn_steps=1,
              expert_epochs=2, max_start_epoch=1, seed=0, log_every=1)
    x = hf_lodc.condense(small, iterations=0, progress=False, **kw).images()  # the init: (10, 1, 28, 28)
    records = []
    res = Condenser(small, CondenseConfig(iterations=1, **kw), progress=False, on_log=records.append).run()
    buf = load_experts(experts)
    e = int(records[0]["expert"])
    assert records[0]["start_epoch"] == 0
    start, target = buf.trajectories[e, 0], buf.trajectories[e, 2]
    net = create_eval_model("lodc_convnet_d3_w128", num_classes=10, in_chans=1, img_size=(28, 28))
    theta = start.clone().requires_grad_(True)
    ce = F.cross_entropy(functional_call(net, unflatten(theta, buf.names, buf.shapes), (x,)), res.labels)
    (g,) = torch.autograd.grad(ce, theta)
    student = theta - 0.01 * g  # lr_teacher: the learned lr starts there
    expected = ((student - target) ** 2).sum() / ((start - target) ** 2).sum()
    assert records[0]["loss"] == pytest.approx(float(expected), rel=1e-4)


def test_lomtt_updates_factors_and_the_learned_lr_and_lowers_the_loss(small, experts):
    res = hf_lodc.condense(small, method="lomtt", iterations=12, expert_dir=str(experts), log_every=1,
                           lr=100.0, lr_lr=1e-4, contrast="none", **FAST)
    init = hf_lodc.condense(small, method="lomtt", iterations=0, expert_dir=str(experts), **FAST)
    assert not torch.allclose(res.synset.A, init.synset.A) and not torch.allclose(res.synset.B, init.synset.B)
    losses = [h["loss"] for h in res.history]
    lrs = [h["syn_lr"] for h in res.history]
    assert len(set(lrs)) > 1  # the student lr is learned
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4, losses


def test_resume_restores_the_learned_lr_bit_for_bit(tmp_path, small, experts):
    kw = dict(method="lomtt", iterations=4, expert_dir=str(experts), lr=100.0, lr_lr=1e-4, checkpoint_every=2,
              **{k: v for k, v in FAST.items() if k != "progress"})
    full = Condenser(small, CondenseConfig(**kw), checkpoint_dir=tmp_path / "ck", progress=False).run()
    assert (tmp_path / "ck" / "iter_0000002").is_dir()  # the mid-run checkpoint stays (none at the end)
    resumed = Condenser(small, CondenseConfig(**kw), checkpoint_dir=tmp_path / "ck", progress=False).run(resume=True)
    assert resumed.history[-1]["syn_lr"] == full.history[-1]["syn_lr"]
    assert torch.equal(resumed.synset.A, full.synset.A) and torch.equal(resumed.synset.B, full.synset.B)


def test_experts_recipe_writes_reusable_trajectories(tmp_path, shared_hub):
    out = tmp_path / "ex"
    cmd = [sys.executable, str(REPO_ROOT / "recipes" / "experts.py"), "--dataset", "ylecun/mnist", "--max-per-class",
           "10", "--num-experts", "1", "--epochs", "1", "--batch", "50", "--output-dir", str(out), "--cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 experts x 1 epochs" in done.stdout
    assert load_experts(out).trajectories.shape[:2] == (1, 2)
    bad = subprocess.run(cmd[:-3] + ["--epochs", "2", "--output-dir", str(out), "--cpu"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "other config" in bad.stderr
