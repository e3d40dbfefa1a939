"""Tests for hf_lodc.data.augment (Differentiable Siamese Augmentation)."""

from __future__ import annotations

import math

import pytest
import torch

from hf_lodc.data.augment import FAMILIES, DSAParams, DSAugment, identity_augment
from hf_lodc.errors import UnknownNameError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, c, h, w), generator=gen(seed)) + 0.1  # (N, C, H, W), strictly positive


def one_group(aug: DSAugment, **values: torch.Tensor) -> DSAParams:
    """Parameters for a single group (family 0) with hand-set values."""
    return DSAParams(torch.zeros(1, dtype=torch.long), {k: v[None] for k, v in values.items()})


def zeros_groups(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.long)


# ----------------------------------------------------------------------------- siamese property
def test_same_groups_same_transform() -> None:
    aug = DSAugment()
    x = images(8)
    groups = torch.arange(8) % 3
    p = aug.draw(3, (8, 8), gen(1))
    assert torch.equal(aug.apply(x, groups, p), aug.apply(x.clone(), groups, p))


def test_apply_is_batch_composable() -> None:
    aug = DSAugment()
    a, b = images(6, seed=1), images(5, seed=2)
    ga, gb = torch.arange(6) % 4, torch.tensor([3, 2, 1, 0, 0])
    p = aug.draw(4, (8, 8), gen(2))
    whole = aug.apply(torch.cat([a, b]), torch.cat([ga, gb]), p)
    parts = torch.cat([aug.apply(a, ga, p), aug.apply(b, gb, p)])
    torch.testing.assert_close(whole, parts, rtol=0, atol=1e-6)


def test_real_and_synthetic_share_class_transform() -> None:
    aug = DSAugment()
    p = aug.draw(3, (8, 8), gen(3))
    img = images(1, seed=4)
    real = torch.cat([images(2, seed=5), img])  # image `img` in class 2
    syn = torch.cat([img, images(1, seed=6)])  # same image, also class 2
    out_real = aug.apply(real, torch.tensor([0, 1, 2]), p)
    out_syn = aug.apply(syn, torch.tensor([2, 0]), p)
    torch.testing.assert_close(out_real[2], out_syn[0], rtol=0, atol=1e-6)


def test_single_mode_routes_each_sample_to_its_family() -> None:
    aug = DSAugment()
    G = 12
    p = aug.draw(G, (8, 8), gen(7))
    x = images(G, seed=8)
    out = aug.apply(x, torch.arange(G), p)
    for i in range(G):  # reference: the one-family augmenter on sample i alone
        fam = aug.families[int(p.family[i])]
        ref_aug = DSAugment(fam)
        ref_p = DSAParams(torch.zeros(1, dtype=torch.long), p.select(torch.tensor([i])).values)
        ref = ref_aug.apply(x[i : i + 1], zeros_groups(1), ref_p)
        torch.testing.assert_close(out[i : i + 1], ref, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- single families
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_family_shape_dtype(family: str, dtype: torch.dtype) -> None:
    aug = DSAugment(family)
    x = images(5, h=8, w=12).to(dtype)
    out = aug(x, gen(9))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out).all()


def test_flip_forced() -> None:
    aug, x = DSAugment("flip"), images()
    out = aug.apply(x, zeros_groups(4), one_group(aug, flip=torch.tensor(True)))
    assert torch.equal(out, x.flip(-1))
    out = aug.apply(x, zeros_groups(4), one_group(aug, flip=torch.tensor(False)))
    assert torch.equal(out, x)


def test_crop_zero_shift_is_identity_and_shift_moves_pixels() -> None:
    aug, x = DSAugment("crop"), images(h=8, w=10)
    out = aug.apply(x, zeros_groups(4), one_group(aug, shift=torch.tensor([0, 0])))
    assert torch.equal(out, x)
    out = aug.apply(x, zeros_groups(4), one_group(aug, shift=torch.tensor([2, -1])))  # (dx, dy)
    assert torch.equal(out[:, :, :-1, 2:], x[:, :, 1:, :-2])
    assert (out[..., :2] == 0).all() and (out[:, :, -1] == 0).all()


def test_scale_one_and_rotate_zero_are_identity() -> None:
    x = images(h=8, w=10)
    aug = DSAugment("scale")
    out = aug.apply(x, zeros_groups(4), one_group(aug, scale=torch.tensor([1.0, 1.0])))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)
    aug = DSAugment("rotate")
    out = aug.apply(x, zeros_groups(4), one_group(aug, angle=torch.tensor(0.0)))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


def test_rotate_quarter_turn_is_rot90() -> None:
    aug, x = DSAugment("rotate"), images()
    out = aug.apply(x, zeros_groups(4), one_group(aug, angle=torch.tensor(math.pi / 2)))
    ok = [torch.allclose(out, x.rot90(k, dims=(-2, -1)), atol=1e-5) for k in (1, -1)]
    assert any(ok)


@pytest.mark.parametrize(("center", "expected"), [((4, 4), 16), ((0, 0), 4), ((7, 3), 12)])
def test_cutout_zeroes_expected_pixels(center: tuple[int, int], expected: int) -> None:
    aug, x = DSAugment("cutout"), images(2, c=3)  # 8x8, side round(0.5 * 8) = 4
    out = aug.apply(x, zeros_groups(2), one_group(aug, cutout_center=torch.tensor(center)))
    assert int((out == 0).sum()) == expected * 2 * 3
    if center == (4, 4):
        assert (out[:, :, 2:6, 2:6] == 0).all()


def test_color_neutral_is_identity_and_brightness_adds() -> None:
    # u1 = u2 = u3 = 0.5 maps to brightness +0, saturation x1, contrast x1
    aug, x = DSAugment("color"), images()
    neutral = dict(brightness=torch.tensor(0.0), saturation=torch.tensor(1.0))
    out = aug.apply(x, zeros_groups(4), one_group(aug, contrast=torch.tensor(1.0), **neutral))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)
    shifted = dict(neutral, brightness=torch.tensor(0.25))
    out = aug.apply(x, zeros_groups(4), one_group(aug, contrast=torch.tensor(1.0), **shifted))
    torch.testing.assert_close(out, x + 0.25, rtol=0, atol=1e-6)
    out = aug.apply(x, zeros_groups(4), one_group(aug, contrast=torch.tensor(0.0), **neutral))
    torch.testing.assert_close(out, x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x))


# -------------------------------------------------------------------------------- draw ranges
def test_draw_ranges_non_square() -> None:
    aug = DSAugment()
    G, H, W = 400, 8, 32
    p = aug.draw(G, (H, W), gen(10))
    v = p.values
    assert p.family.shape == (G,) and p.family.dtype == torch.long
    assert v["shift"].shape == (G, 2) and v["shift"].dtype == torch.long
    assert v["shift"][:, 0].abs().max() == 4 and v["shift"][:, 1].abs().max() == 1
    c = v["cutout_center"]
    assert c[:, 0].min() >= 0 and c[:, 0].max() < W and c[:, 1].min() >= 0 and c[:, 1].max() < H
    assert v["flip"].dtype == torch.bool and 0 < int(v["flip"].sum()) < G
    assert v["scale"].min() >= 1 / 1.2 and v["scale"].max() <= 1.2 and v["scale"].shape == (G, 2)
    assert v["angle"].abs().max() <= math.radians(15.0) + 1e-6
    assert v["brightness"].abs().max() <= 0.5
    assert v["saturation"].min() >= 0 and v["saturation"].max() <= 2
    assert v["contrast"].min() >= 0.5 and v["contrast"].max() <= 1.5
    assert all(t.device.type == "cpu" and t.shape[0] == G for t in v.values())


def test_params_to_and_select() -> None:
    p = DSAugment().draw(5, (8, 8), gen(11))
    q = p.to("cpu").select(torch.tensor([4, 0, 0]))
    assert q.num_groups == 3 and torch.equal(q.values["scale"][1], p.values["scale"][0])


# ---------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("strategy", [*FAMILIES, "color_crop_cutout_flip_scale_rotate"])
@pytest.mark.parametrize("mode", ["single", "all"])
def test_gradients_flow(strategy: str, mode: str) -> None:
    aug = DSAugment(strategy, mode=mode)
    x = images(6).requires_grad_(True)
    out = aug(x, gen(12), groups=torch.arange(6) % 3)
    (out * torch.linspace(0.5, 1.5, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------- modes
def test_single_mode_frequencies_roughly_uniform() -> None:
    aug = DSAugment()
    p = aug.draw(6000, (8, 8), gen(13))
    counts = torch.bincount(p.family, minlength=6)
    assert counts.numel() == 6 and (counts > 800).all() and (counts < 1200).all()


def test_shared_family() -> None:
    aug = DSAugment()
    seen = set()
    for seed in range(40):
        p = aug.draw(10, (8, 8), gen(seed), shared_family=True)
        assert (p.family == p.family[0]).all()
        assert not torch.equal(p.values["scale"][0], p.values["scale"][1])  # values per group
        seen.add(int(p.family[0]))
    assert len(seen) >= 4


def test_all_mode_applies_every_family_in_order() -> None:
    aug = DSAugment("flip_crop", mode="all")
    assert aug.families == ("crop", "flip")
    x = images()
    p = one_group(aug, shift=torch.tensor([1, 0]), flip=torch.tensor(True))
    out = aug.apply(x, zeros_groups(4), p)
    crop = DSAugment("crop")
    expected = crop.apply(x, zeros_groups(4), one_group(crop, shift=torch.tensor([1, 0]))).flip(-1)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("strategy", ["", "none"])
def test_none_is_identity(strategy: str) -> None:
    aug, x = DSAugment(strategy), images()
    assert not aug.enabled and DSAugment().enabled
    p = aug.draw(4, (8, 8), gen())
    assert aug.apply(x, torch.arange(4), p) is x and aug(x, gen()) is x
    assert identity_augment(x) is x


# ------------------------------------------------------------------------------- determinism
def test_same_seed_same_params_and_output() -> None:
    aug, x = DSAugment(), images(8)
    p1, p2 = aug.draw(8, (8, 8), gen(42)), aug.draw(8, (8, 8), gen(42))
    assert torch.equal(p1.family, p2.family)
    assert all(torch.equal(p1.values[k], p2.values[k]) for k in p1.values)
    assert torch.equal(aug(x, gen(42)), aug(x, gen(42)))
    assert not torch.equal(aug(x, gen(42)), aug(x, gen(43)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_params_on_cuda() -> None:
    aug, x = DSAugment(), images(8)
    p = aug.draw(4, (8, 8), gen(5))
    groups = torch.arange(8) % 4
    out = aug.apply(x.cuda(), groups.cuda(), p)
    torch.testing.assert_close(out.cpu(), aug.apply(x, groups, p), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------ errors
def test_unknown_family_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        DSAugment("color_blur")
    msg = str(info.value)
    assert "blur" in msg and all(f in msg for f in FAMILIES)
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)


def test_unknown_mode_and_bad_shapes() -> None:
    with pytest.raises(UnknownNameError, match="single"):
        DSAugment(mode="double")
    aug = DSAugment()
    p = aug.draw(2, (8, 8), gen())
    with pytest.raises(ValueError):
        aug.apply(torch.zeros(3, 8, 8), torch.zeros(3, dtype=torch.long), p)
    with pytest.raises(ValueError):
        aug.apply(images(3), torch.zeros(2, dtype=torch.long), p)
