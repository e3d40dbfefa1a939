"""Evaluation in bf16 autocast and in channels_last (``eval_mixed_precision``, ``eval_channels_last``).

Both are opt-in speed options (CPUs with AMX, GPUs): the network passes really run in bf16, the
weights, gradients and SGD stay float32, only the sequential backend runs them (torch applies no
autocast inside ``vmap``, so the stacked backend refuses bf16 rather than silently stay fp32), channels_last gives the
contiguous run's accuracies, a kept network is saved contiguous, and each is recorded in the protocol
only when on. The accuracy drift at the protocol's length is a benchmark (benchmarks/results/core_cpu_bf16.md),
not a test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from hf_lodc.data.types import LabeledImages, normalize
from hf_lodc.engine.config import EvalConfig, RunConfig
from hf_lodc.engine.evaluate import evaluate_synthetic, protocol_of
from hf_lodc.engine.validate import sequential_only as _sequential_only
from hf_lodc.errors import ConfigError

SEED = 5


@pytest.fixture(scope="module")
def small(mnist):
    """20 real training images (2 per class) as a stand-in synthetic set, 100 test images."""
    idx = torch.cat([torch.nonzero(mnist.train.labels == c).flatten()[:2] for c in range(10)])
    images = normalize(mnist.train.images[idx], mnist.mean, mnist.std)  # (20, 1, 28, 28)
    test = LabeledImages(mnist.test.images[:100], mnist.test.labels[:100])
    return images, mnist.train.labels[idx], test, mnist.mean, mnist.std


def _cfg(**kw) -> EvalConfig:
    return EvalConfig(**{"eval_models": ["convnet_d1"], "eval_runs": 2, "eval_epochs": 2, "eval_batch": 8,
                         "eval_backend": "sequential", **kw})


def _conv_dtypes(monkeypatch) -> list[tuple[bool, torch.dtype, torch.dtype]]:
    """Record (training?, output dtype, weight dtype) of every Conv2d forward from now on, but for
    preflight's shape probe (one fp32 forward of 2 zero images before anything is trained)."""
    seen = []
    original = nn.Conv2d.forward

    def spy(self, x):
        y = original(self, x)
        if x.shape[0] != 2:
            seen.append((self.training, y.dtype, self.weight.dtype))
        return y

    monkeypatch.setattr(nn.Conv2d, "forward", spy)
    return seen


def test_bf16_runs_the_network_passes_in_bf16_with_float32_weights(small, monkeypatch):
    images, labels, test, mean, std = small
    seen = _conv_dtypes(monkeypatch)
    kept = []
    rec = evaluate_synthetic(images, labels, test, mean, std, 10, _cfg(eval_mixed_precision="bf16"),
                             seed=SEED, keep_state=lambda m, r, a, net: kept.append(net))["convnet_d1"]
    assert {t for t, _, _ in seen} == {True, False}  # training and test passes both seen
    assert {d for _, d, _ in seen} == {torch.bfloat16}
    assert {w for _, _, w in seen} == {torch.float32}
    assert all(p.dtype == torch.float32 for net in kept for p in net.parameters())
    assert len(rec.accuracies) == 2 and all(0 <= a <= 100 for a in rec.accuracies)
    assert rec.protocol["precision"].startswith("bf16 autocast")


def test_fp32_stays_fp32_and_auto_never_picks_vmap_for_bf16(small, monkeypatch):
    images, labels, test, mean, std = small
    seen = _conv_dtypes(monkeypatch)
    evaluate_synthetic(images, labels, test, mean, std, 10, _cfg(eval_runs=1, eval_epochs=1), seed=SEED)
    assert seen and {d for _, d, _ in seen} == {torch.float32}
    # torch applies no autocast inside vmap: 'auto' (vmap off the CPU) must run bf16 sequentially
    assert _sequential_only(_cfg(eval_mixed_precision="bf16")) == ["eval_mixed_precision"]
    assert _sequential_only(_cfg()) == []


def test_channels_last_gives_the_contiguous_accuracies_and_keeps_contiguous_networks(small):
    images, labels, test, mean, std = small
    base = evaluate_synthetic(images, labels, test, mean, std, 10, _cfg(), seed=SEED)["convnet_d1"]
    kept = []
    cl = evaluate_synthetic(images, labels, test, mean, std, 10, _cfg(eval_channels_last=True), seed=SEED,
                            keep_state=lambda m, r, a, net: kept.append(net))["convnet_d1"]
    for a, b in zip(base.accuracies, cl.accuracies):  # other oneDNN kernels, same arithmetic: rounding only
        assert abs(a - b) <= 2.0, (base.accuracies, cl.accuracies)
    assert all(t.is_contiguous() for net in kept for t in net.state_dict().values())
    assert cl.protocol["memory_format"] == "channels_last" and "memory_format" not in base.protocol


def test_precision_options_are_recorded_only_when_on_checked_and_refused_with_vmap(small):
    assert protocol_of(EvalConfig()) == protocol_of(EvalConfig(eval_mixed_precision="no"))
    assert "precision" not in protocol_of(EvalConfig()) and "memory_format" not in protocol_of(EvalConfig())
    with pytest.raises(ConfigError, match="eval_mixed_precision"):
        RunConfig.from_flat({"dataset": "x", "eval_mixed_precision": "fp8"})
    images, labels, test, mean, std = small
    for opt in ({"eval_channels_last": True}, {"eval_mixed_precision": "bf16"}):
        with pytest.raises(ConfigError, match=f"{next(iter(opt))}.*sequential evaluation backend only"):
            evaluate_synthetic(images, labels, test, mean, std, 10, _cfg(eval_backend="vmap", **opt), seed=SEED)


def test_the_card_says_how_an_accuracy_was_computed():
    from hf_lodc.export.card_body import _protocol_words

    plain = _protocol_words(protocol_of(EvalConfig()), 2)
    fast = _protocol_words(protocol_of(EvalConfig(eval_mixed_precision="bf16", eval_channels_last=True)), 2)
    assert "run with" not in plain and fast.startswith(plain)
    assert "run with bf16 autocast" in fast and "channels_last" in fast
