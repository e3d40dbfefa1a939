"""Synthetic-set parameterisations and initialisers."""

import pytest
import torch

from hf_lodc.data.types import LabeledImages
from hf_lodc.synset.init import INITS, initialise, relative_error
from hf_lodc.synset.lowrank import LowRankSet, PixelSet, truncated_svd_factors


def test_lowrank_shapes_and_reconstruction():
    s = LowRankSet(num_classes=3, per_class=4, image_shape=(3, 8, 10), rank=2)
    assert s.A.shape == (12, 3, 8, 2) and s.B.shape == (12, 3, 2, 10)
    torch.nn.init.normal_(s.A)
    torch.nn.init.normal_(s.B)
    x = s()
    assert x.shape == (12, 3, 8, 10)
    # per channel, image = A_c @ B_c
    n, c = 5, 1
    torch.testing.assert_close(x[n, c], s.A[n, c] @ s.B[n, c])
    assert s.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert s.numel_per_image == 3 * 2 * (8 + 10)


def test_gradients_reach_both_factors():
    s = LowRankSet(2, 2, (1, 6, 6), rank=2)
    torch.nn.init.normal_(s.A)
    torch.nn.init.normal_(s.B)
    (s() ** 2).sum().backward()
    assert s.A.grad is not None and s.A.grad.abs().sum() > 0
    assert s.B.grad is not None and s.B.grad.abs().sum() > 0


def test_svd_init_reaches_truncated_svd_optimum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 12, 12, generator=g)
    A, B = truncated_svd_factors(x, 3)
    err = torch.linalg.vector_norm(A @ B - x, dim=(-2, -1)) ** 2  # (N, C)
    S = torch.linalg.svdvals(x.double())  # (N, C, 12)
    optimum = (S[..., 3:] ** 2).sum(-1)  # Eckart-Young: sum of discarded sigma^2
    torch.testing.assert_close(err.double(), optimum, rtol=1e-4, atol=1e-4)


def _real_images(n_per_class=5, k=2, shape=(1, 10, 10), seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n_per_class * k, *shape), generator=g, dtype=torch.uint8)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    return LabeledImages(imgs, labels)


def test_real_projection_is_worse_than_svd_and_svd_matches_images():
    data = _real_images()
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    errs = {}
    for init in ("real", "svd"):
        s = LowRankSet(2, 3, (1, 10, 10), rank=2)
        idx = initialise(s, init, data, mean, std, torch.Generator().manual_seed(1))
        target = data.subset(idx).normalized(mean, std)
        errs[init] = relative_error(s().detach(), target)
        assert (data.labels[idx] == s.labels).all()  # each image comes from its own class
    assert errs["svd"] < errs["real"] < 1.0


def test_noise_init_has_unit_variance_not_rank():
    s = LowRankSet(10, 10, (3, 32, 32), rank=4)
    initialise(s, "noise", None, None, None, torch.Generator().manual_seed(0))
    assert s().var().item() == pytest.approx(1.0, abs=0.05)


def test_pixel_set_real_init_copies_images():
    data = _real_images()
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    s = PixelSet(2, 3, (1, 10, 10))
    idx = initialise(s, "svd", data, mean, std, torch.Generator().manual_seed(0))
    torch.testing.assert_close(s(), data.subset(idx).normalized(mean, std))


def test_state_dict_round_trip():
    s = LowRankSet(2, 3, (3, 8, 8), rank=2)
    initialise(s, "noise", None, None, None, torch.Generator().manual_seed(0))
    t = LowRankSet(2, 3, (3, 8, 8), rank=2)
    t.load_state_dict(s.state_dict())
    torch.testing.assert_close(t(), s())


def test_inits_registry_lists_names():
    assert INITS.names() == ["noise", "real", "svd"]


def test_contract_methods_of_the_two_original_sets():
    from hf_lodc.synset.base import PARAMETERISATIONS as BASE_REGISTRY
    from hf_lodc.synset.lowrank import PARAMETERISATIONS

    assert PARAMETERISATIONS is BASE_REGISTRY and {"pixel", "lowrank"} <= set(PARAMETERISATIONS.names())
    for s in (PixelSet(2, 3, (3, 8, 8)), LowRankSet(2, 3, (3, 8, 8), rank=2)):
        assert s.decoded_per_class == s.per_class == 3 and len(s) == 6 and s.real_per_class == 3
        assert s.stored_numel() == s.cost() == 6 * s.numel_per_image and s.numel_shared == 0
        assert s.shardable and s.shared_state_keys() == [] and "labels" not in s.class_state_keys()
        s.check_class_shardable()


def test_the_svd_in_chunks_gives_the_bits_of_one_batched_call(monkeypatch):
    import hf_lodc.synset.lowrank as lowrank

    x = torch.randn(11, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    whole = lowrank.truncated_svd_factors(x, 2)
    monkeypatch.setattr(lowrank, "SVD_CHUNK", 4)  # 4 + 4 + 3 images
    chunked = lowrank.truncated_svd_factors(x, 2)
    assert all(torch.equal(a, b) for a, b in zip(whole, chunked))
    assert chunked[0].shape == (11, 3, 9, 2) and chunked[1].shape == (11, 3, 2, 7)
