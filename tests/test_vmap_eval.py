"""The vectorised evaluation backend is the sequential protocol computed together.

Same seeds => the same initial weights, data order and DSA draws per run, so the trained weights
and the accuracies of every run agree with the sequential backend to float tolerance (batched and
single convolutions round differently). Tiny real MNIST subsets keep this under a minute.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from hf_lodc.data.augment import DSAugment
from hf_lodc.data.types import LabeledImages, normalize
from hf_lodc.engine.config import EvalConfig
from hf_lodc.engine.evaluate import EVAL_BACKENDS, augment_of, evaluate_synthetic, train_one
from hf_lodc.engine.vmap_eval import StackedNets, train_stacked
from hf_lodc.models import create_eval_model
from hf_lodc.seeding import derive_seed, generator

SEED = 3


@pytest.fixture(scope="module")
def small(mnist):
    """20 real training images (2 per class) as a stand-in synthetic set, 200 test images."""
    g = torch.Generator().manual_seed(0)
    train_idx = torch.cat([torch.nonzero(mnist.train.labels == c).flatten()[:2] for c in range(10)])
    test_idx = torch.randperm(len(mnist.test), generator=g)[:200]
    images = normalize(mnist.train.images[train_idx], mnist.mean, mnist.std)  # (20, 1, 28, 28)
    test = LabeledImages(mnist.test.images[test_idx], mnist.test.labels[test_idx])
    return images, mnist.train.labels[train_idx], test, mnist.mean, mnist.std


def _cfg(model: str, runs: int, epochs: int, dsa: bool = True, protocol: str = "dc") -> EvalConfig:
    return EvalConfig(eval_models=[model], eval_runs=runs, eval_epochs=epochs, eval_batch=8, eval_dsa=dsa,
                      eval_protocol=protocol)


@pytest.mark.parametrize("model, protocol", [("convnet", "dc"), ("convnet_bn", "dc"), ("convnet", "idc")])
def test_trained_weights_match_sequential(small, model, protocol):
    """Weights after training (3 runs, DSA on, several batches per epoch; IDC's protocol: CutMix on
    half the batches, each run drawing its own) equal N sequential runs."""
    images, labels, _, _, _ = small
    runs = [0, 1, 2]
    cfg = _cfg(model, len(runs), epochs=2 if protocol == "dc" else 6, protocol=protocol)
    aug = augment_of(cfg)

    def fresh():  # narrow versions (width 32) of the protocol's nets keep this fast
        nets = []
        for r in runs:
            torch.manual_seed(derive_seed(SEED, "eval-net", model, r))
            nets.append(create_eval_model(model, num_classes=10, in_chans=1, img_size=28, width=32))
        return nets

    sequential = fresh()
    for r, net in zip(runs, sequential):
        train_one(net, images, labels, cfg, generator(SEED, "eval-data", model, r), aug)
    stack = train_stacked(StackedNets(fresh()), images, labels, cfg,
                          [generator(SEED, "eval-data", model, r) for r in runs], aug)
    for i, net in enumerate(sequential):
        mine = stack.unstack(i)
        for name, t in net.state_dict().items():
            if t.is_floating_point():  # rounding differences only (BatchNorm statistics amplify them a little)
                torch.testing.assert_close(mine[name], t, rtol=1e-2, atol=1e-3, msg=f"run {i} {name}")
            else:  # e.g. BatchNorm's num_batches_tracked
                assert torch.equal(mine[name], t), (i, name)
    # ... while different runs are different networks (the tolerance above is far below that)
    w0, w1 = (n.state_dict()["blocks.0.conv.weight"] for n in sequential[:2])
    assert (w0 - w1).abs().max() > 0.05


def test_same_accuracies_as_sequential(small):
    """The backend entry points give the same per-run accuracies (within one test image)."""
    images, labels, test, mean, std = small
    cfg = _cfg("convnet_d1", 3, epochs=2)
    test = LabeledImages(test.images[:100], test.labels[:100])
    args = ("convnet_d1", images, labels, test, mean, std, 10, cfg, SEED, torch.device("cpu"), [0, 1, 2])
    seq = EVAL_BACKENDS.get("sequential")(*args)
    vec = EVAL_BACKENDS.get("vmap")(*args)
    assert len(vec) == 3
    for a, b in zip(seq, vec):
        assert abs(a - b) <= 100.0 / len(test) + 1e-9, (seq, vec)


def test_run_subsets_are_independent(small):
    """Run r depends on (seed, model, r) only: runs [1, 2] equal the last two of runs [0, 1, 2]."""
    images, labels, test, mean, std = small
    cfg = _cfg("convnet_d1", 3, epochs=1, dsa=False)
    test = LabeledImages(test.images[:50], test.labels[:50])
    all_runs = evaluate_synthetic(images, labels, test, mean, std, 10,
                                  EvalConfig(**{**cfg.__dict__, "eval_backend": "vmap"}), seed=SEED)
    some = evaluate_synthetic(images, labels, test, mean, std, 10,
                              EvalConfig(**{**cfg.__dict__, "eval_backend": "vmap"}), seed=SEED, runs=[1, 2])
    assert some["convnet_d1"].accuracies == all_runs["convnet_d1"].accuracies[1:]


@pytest.mark.parametrize("model", ["resnet18", "test_vit"])
def test_plain_timm_backbone_through_vmap(small, model):
    """Plain timm names train vectorised on 28 px: resnet18 (BatchNorm, residuals, global pool) at
    the native size, timm's small test ViT through the factory's input resize (attention)."""
    images, labels, test, mean, std = small
    cfg = EvalConfig(eval_models=[model], eval_runs=2, eval_epochs=1, eval_batch=20, eval_backend="vmap")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = evaluate_synthetic(images, labels, LabeledImages(test.images[:20], test.labels[:20]), mean, std, 10,
                                 cfg, seed=SEED)[model]
    assert not [w for w in caught if "sequentially instead" in str(w.message)]  # no fallback
    assert len([w for w in caught if "no batching rule" in str(w.message)]) <= 1  # at most one summary
    assert rec.runs == 2 and all(0.0 <= a <= 100.0 for a in rec.accuracies)


class _DataDependent(torch.nn.Module):
    """Python control flow on a tensor's value: vmap cannot trace it."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.fc = torch.nn.Linear(in_chans * 28 * 28, num_classes)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y if bool(y.sum() > -1e9) else -y


def test_unvectorisable_model_falls_back_with_reason(small):
    """A model vmap cannot run is evaluated sequentially, with a warning that names the reason."""
    import timm
    from timm.models import register_model

    name = "hf_lodc_test_data_dependent"
    if not timm.is_model(name):
        def hf_lodc_test_data_dependent(pretrained=False, **kwargs):
            for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
                kwargs.pop(k, None)
            return _DataDependent(**kwargs)

        register_model(hf_lodc_test_data_dependent)
    images, labels, test, mean, std = small
    cfg = EvalConfig(eval_models=[name], eval_runs=2, eval_epochs=1, eval_dsa=False, eval_backend="vmap")
    with pytest.warns(UserWarning, match=rf"eval model '{name}' cannot be trained under vmap \(RuntimeError: .+\); "
                                         r"evaluating its 2 runs sequentially instead"):
        vec = evaluate_synthetic(images, labels, test, mean, std, 10, cfg, seed=SEED)[name]
    seq = evaluate_synthetic(images, labels, test, mean, std, 10,
                             EvalConfig(**{**cfg.__dict__, "eval_backend": "sequential"}), seed=SEED)[name]
    assert vec.accuracies == seq.accuracies


def test_one_seeded_constructor_and_one_schedule():
    from hf_lodc.training.loop import TrainSchedule, seeded_net

    state = torch.random.get_rng_state()
    a = seeded_net("lodc_convnet_d3_w128", 10, (1, 28, 28), 7, "eval-net", "m", 0)
    b = seeded_net("lodc_convnet_d3_w128", 10, (1, 28, 28), 7, "eval-net", "m", 0)
    c = seeded_net("lodc_convnet_d3_w128", 10, (1, 28, 28), 7, "eval-net", "m", 1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is never disturbed
    wa, wb, wc = (next(n.parameters()) for n in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    protocol = TrainSchedule(lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=10, lr_schedule="step_half")
    assert [protocol.lr_at(e) for e in (0, 4, 5, 9)] == [0.01, 0.01, 0.01 * 0.1, 0.01 * 0.1]
    assert TrainSchedule(lr=0.01, epochs=10).lr_at(9) == 0.01  # gradient matching / experts: no decay
    opt = protocol.optimizer(a.parameters()).param_groups[0]
    assert (opt["momentum"], opt["weight_decay"]) == (0.9, 5e-4)


def test_kept_networks_under_vmap_are_the_trained_runs(small):
    """``keep_state`` under vmap gets each run's trained weights in its own network: testing the kept
    network reproduces the recorded accuracy, and the runs are the same networks the sequential
    backend keeps (within the float tolerance of batched convolutions)."""
    from hf_lodc.training.loop import test_accuracy

    images, labels, test, mean, std = small
    test = LabeledImages(test.images[:100], test.labels[:100])
    kept = {}

    def keep(backend):
        return lambda model, r, acc, net: kept.setdefault(backend, {}).__setitem__(
            r, (acc, {k: v.detach().clone() for k, v in net.state_dict().items()}))

    for backend in ("vmap", "sequential"):
        cfg = EvalConfig(**{**_cfg("convnet_d1", 2, epochs=2).__dict__, "eval_backend": backend})
        rec = evaluate_synthetic(images, labels, test, mean, std, 10, cfg, seed=SEED, keep_state=keep(backend))
        assert sorted(kept[backend]) == [0, 1]
        assert [kept[backend][r][0] for r in (0, 1)] == rec["convnet_d1"].accuracies
    for r in (0, 1):
        net = create_eval_model("convnet_d1", num_classes=10, in_chans=1, img_size=28)
        net.load_state_dict(kept["vmap"][r][1])
        assert test_accuracy(net, test, mean, std, "cpu") == kept["vmap"][r][0]
        for name, t in kept["sequential"][r][1].items():
            if t.is_floating_point():
                torch.testing.assert_close(kept["vmap"][r][1][name], t, rtol=1e-2, atol=1e-3)


def test_compiled_evaluation_matches_eager_and_does_not_recompile(small):
    """``eval_compile``: the sequential backend through torch.compile gives the eager accuracies within
    one or two test images; the second run (a fresh network, same shapes) reuses the compiled code."""
    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile")
    from torch._dynamo.utils import counters

    images, labels, test, mean, std = small
    # ConvNet-1 keeps the compile short; batch 20 = the whole set: one training shape
    cfg = EvalConfig(eval_models=["convnet_d1"], eval_runs=2, eval_epochs=3, eval_batch=20, eval_backend="sequential")
    eager = evaluate_synthetic(images, labels, test, mean, std, 10, cfg, seed=SEED)["convnet_d1"]
    counters.clear()
    comp = evaluate_synthetic(images, labels, test, mean, std, 10, EvalConfig(**{**cfg.__dict__, "eval_compile": True}),
                              seed=SEED)["convnet_d1"]
    for a, b in zip(eager.accuracies, comp.accuracies):
        assert abs(a - b) <= 2 * 100.0 / len(test) + 1e-9, (eager.accuracies, comp.accuracies)
    # one graph for training (forward + AOTAutograd backward), one for the no-grad test pass, both compiled
    # by run 0; run 1's fresh network reuses them
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["stats"])
    assert not counters["recompiles"], dict(counters["recompiles"])
    assert comp.protocol["compile"] and "compile" not in eager.protocol


def test_eval_compile_is_recorded_only_when_on_and_refused_with_vmap(small):
    from hf_lodc.engine.evaluate import protocol_of
    from hf_lodc.errors import ConfigError

    assert "compile" not in protocol_of(EvalConfig())
    assert protocol_of(EvalConfig(eval_compile=True)) == {**protocol_of(EvalConfig()),
                                                          "compile": protocol_of(EvalConfig(eval_compile=True))["compile"]}
    images, labels, test, mean, std = small
    with pytest.raises(ConfigError, match="sequential"):
        evaluate_synthetic(images, labels, test, mean, std, 10,
                           EvalConfig(eval_models=["convnet_d1"], eval_runs=1, eval_epochs=1, eval_backend="vmap",
                                      eval_compile=True), seed=SEED)
