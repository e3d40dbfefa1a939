"""Distribution matching over a random subset of the classes per iteration (``classes_per_iteration``)."""

from __future__ import annotations

import pytest
import torch

import hf_lodc
from hf_lodc.data.sampler import ClassIndex
from hf_lodc.engine.identity import run_identity
from hf_lodc.errors import ConfigError

RUN = dict(method="lodm", ipc=1, rank=2, batch_real=4, progress=False)


@pytest.fixture(scope="module")
def small_mnist(shared_hub):
    return hf_lodc.load_image_classification("ylecun/mnist", max_per_class=8, eval_split=None)


def _per_class_images(res) -> torch.Tensor:
    return res.images().view(10, -1, *res.images().shape[1:])  # (K, n, C, H, W)


def test_sample_for_given_classes_only():
    labels = torch.tensor([0, 1, 2, 3] * 5)
    index = ClassIndex(labels, 4)
    out = index.sample(3, torch.Generator().manual_seed(0), classes=torch.tensor([1, 3]))  # (2*3,)
    assert labels[out].tolist() == [1, 1, 1, 3, 3, 3] and len(set(out.tolist())) == 6
    # without ``classes`` the draw is what it always was
    a = index.sample(3, torch.Generator().manual_seed(0))
    b = ClassIndex(labels, 4).sample(3, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and labels[a].tolist() == sum(([c] * 3 for c in range(4)), [])


def test_all_classes_is_the_default_bit_for_bit(small_mnist):
    base = hf_lodc.condense(small_mnist, iterations=1, **RUN)
    every = hf_lodc.condense(small_mnist, iterations=1, classes_per_iteration=10, **RUN)  # >= K: no draw
    assert all(torch.equal(v, every.synset.state_dict()[k]) for k, v in base.synset.state_dict().items())
    assert [h["loss"] for h in base.history] == [h["loss"] for h in every.history]
    cfg = hf_lodc.CondenseConfig(**{k: v for k, v in RUN.items() if k != "progress"})
    assert "classes_per_iteration" not in run_identity(cfg)  # identities recorded before the option still match
    assert run_identity(hf_lodc.CondenseConfig(classes_per_iteration=3))["classes_per_iteration"] == 3


def test_only_the_chosen_classes_move_and_the_draw_is_seeded(small_mnist):
    init = _per_class_images(hf_lodc.condense(small_mnist, iterations=0, **RUN))
    one = hf_lodc.condense(small_mnist, iterations=1, classes_per_iteration=3, log_every=1, **RUN)
    moved = [c for c in range(10) if not torch.equal(_per_class_images(one)[c], init[c])]
    assert len(moved) == 3  # the others got no gradient (and the momentum buffer starts at zero)
    assert one.condense_config["options"]["classes_per_iteration"] == 3  # recorded with the run's config
    assert one.history[0]["classes_matched"] == 3  # and in its history
    again = hf_lodc.condense(small_mnist, iterations=1, classes_per_iteration=3, log_every=1, **RUN)
    assert torch.equal(again.images(), one.images())
    other_seed = hf_lodc.condense(small_mnist, iterations=1, classes_per_iteration=3, seed=1, **RUN)
    init1 = _per_class_images(hf_lodc.condense(small_mnist, iterations=0, seed=1, **RUN))
    moved1 = [c for c in range(10) if not torch.equal(_per_class_images(other_seed)[c], init1[c])]
    assert len(moved1) == 3


def test_bad_count_is_refused():
    with pytest.raises(ConfigError, match="classes_per_iteration"):
        hf_lodc.CondenseConfig(classes_per_iteration=0)
