"""The fused first ConvNet block (models/convnet_stem.py): the module's embedding within rounding, in
float32 and under bf16 autocast, eager and compiled; which networks it refuses and why; distribution
matching's real pass with it (objectives/dm.py, ``fused_stem``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import hf_lodc
from hf_lodc.models import create_eval_model
from hf_lodc.models.convnet import ConvNet
from hf_lodc.models.convnet_stem import embed_fused_stem, fused_embedding, stem_supported


def _net(in_chans=3, size=8, width=16, depth=2, seed=0, **kw):
    torch.manual_seed(seed)
    net = ConvNet(in_chans=in_chans, num_classes=0, img_size=size, width=width, depth=depth, **kw)
    with torch.no_grad():  # a trained-looking affine, not the identity one of a fresh norm
        for block in net.blocks:
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.uniform_(-0.3, 0.3)
    return net.requires_grad_(False)


def _images(n, in_chans, size, seed=1):
    g = torch.Generator().manual_seed(seed)
    # per-image offsets, as real images have: the norm's mean must come out right, not only its spread
    return torch.randn(n, in_chans, size, size, generator=g) + torch.randn(n, in_chans, 1, 1, generator=g)


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("in_chans,size,depth", [(3, 8, 2), (1, 12, 2), (3, 6, 1)])
def test_the_fused_block_gives_the_module_embedding_in_float32(in_chans, size, depth):
    net = _net(in_chans, size, depth=depth)
    x = _images(5, in_chans, size)
    with torch.no_grad():
        ref = net.embed(x)
        out = embed_fused_stem(net, x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert _rel(out, ref) < 1e-5


def test_under_bf16_autocast_it_is_as_close_to_float32_as_the_module_path():
    net = _net(3, 8, width=32)
    x = _images(16, 3, 8)
    with torch.no_grad():
        ref = net.embed(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            module = net.embed(x)
            fused = embed_fused_stem(net, x)
    assert _rel(module, ref) < 3e-2 and _rel(fused, ref) < 3e-2
    assert _rel(fused, ref) < 2 * _rel(module, ref) + 1e-3  # the rounding of the bf16 path, no more


def test_the_compiled_fused_block_matches_the_eager_one():
    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile")
    net = _net(3, 8, width=16, depth=1)
    x = _images(4, 3, 8)
    with torch.no_grad():
        eager = embed_fused_stem(net, x)
        compiled = embed_fused_stem(net, x, torch.compile(fused_embedding, dynamic=False))
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kw,image_shape,why", [
    (dict(pool="maxpool"), (3, 8, 8), "average pool"),
    (dict(norm="batchnorm"), (3, 8, 8), "instance norm"),
    (dict(norm="layernorm"), (3, 8, 8), "instance norm"),
    (dict(act="leakyrelu"), (3, 8, 8), "ReLU"),
    (dict(), (3, 7, 8), "7x8, not of even size"),
])
def test_a_network_it_cannot_fuse_is_named_with_the_reason(kw, image_shape, why):
    net = ConvNet(in_chans=3, num_classes=0, img_size=image_shape[1:], width=8, depth=1, **kw)
    assert why in stem_supported(net, image_shape)


def test_non_convnets_are_refused_and_the_default_convnet_is_accepted():
    assert "is not a ConvNet" in stem_supported(nn.Sequential(nn.Conv2d(3, 8, 3)), (3, 8, 8))
    assert stem_supported(create_eval_model("convnet", num_classes=3, in_chans=3, img_size=(8, 8)), (3, 8, 8)) is None


def _lodm(data, **kw):  # three LoDM steps on the 3-class 8x8 set: the factors and the logged losses
    art = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=3, batch_real=4, **kw)
    return art.synset.state_dict(), [h["loss"] for h in art.history]


def test_distribution_matching_with_the_fused_stem_follows_the_module_path(rgb8):
    whole, loss = _lodm(rgb8)
    fused, fused_loss = _lodm(rgb8, fused_stem=True)
    assert fused_loss == pytest.approx(loss, rel=1e-4)
    for k in whole:  # the same step to float32 rounding: the real means differ in their last bits only
        torch.testing.assert_close(fused[k], whole[k], rtol=1e-4, atol=1e-5)


def test_a_matching_network_it_cannot_fuse_keeps_the_module_path_and_says_so(rgb8, capsys):
    whole, loss = _lodm(rgb8, matching_model="lodc_convnet_d3_w128_bn")
    kept, kept_loss = _lodm(rgb8, matching_model="lodc_convnet_d3_w128_bn", fused_stem=True)
    out = capsys.readouterr().out
    assert out.count("fused_stem: the real pass keeps the module path (its first norm is not instance norm)") == 1
    assert kept_loss == loss and all(torch.equal(kept[k], whole[k]) for k in whole)
