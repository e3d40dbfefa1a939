"""Contrast of finished synthetic sets: the matching net cannot see it, BatchNorm evaluation can."""

from __future__ import annotations

import pytest
import timm
import torch

import hf_lodc
from hf_lodc.data.types import normalize
from hf_lodc.engine.config import EvalConfig
from hf_lodc.errors import ConfigError
from hf_lodc.synset.contrast import apply_contrast, class_image_std, rescale_images_
from hf_lodc.synset.lowrank import LowRankSet, PixelSet


def test_rescale_multiplies_images_and_keeps_factors_balanced():
    torch.manual_seed(0)
    lo = LowRankSet(2, 3, (3, 8, 8), rank=2)
    lo.set_factors(torch.randn_like(lo.A), torch.randn_like(lo.B))
    before, a, b = lo().detach().clone(), lo.A.detach().clone(), lo.B.detach().clone()
    scale = torch.tensor([1.0, 4.0, 0.25, 9.0, 2.0, 0.5])
    rescale_images_(lo, scale)
    torch.testing.assert_close(lo().detach(), before * scale.view(-1, 1, 1, 1))
    torch.testing.assert_close(lo.A.detach(), a * scale.sqrt().view(-1, 1, 1, 1))  # split evenly between A and B
    torch.testing.assert_close(lo.B.detach(), b * scale.sqrt().view(-1, 1, 1, 1))
    px = PixelSet(2, 3, (3, 8, 8))
    px.set_images(before)
    rescale_images_(px, scale)
    torch.testing.assert_close(px().detach(), before * scale.view(-1, 1, 1, 1))


def test_matching_network_cannot_see_the_scale_of_an_image():
    """Instance norm after the first conv (bias cancels in the mean): phi(s x) == phi(x) per image."""
    torch.manual_seed(0)
    net = timm.create_model("lodc_convnet_d3_w128", num_classes=10, in_chans=3, img_size=32).eval()
    x = torch.randn(4, 3, 32, 32)  # (N, C, H, W)
    s = torch.tensor([0.3, 1.0, 3.9, 12.0]).view(-1, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(net.embed(s * x), net.embed(x), rtol=1e-3, atol=1e-3)
    bn = timm.create_model("lodc_convnet_d3_w128_bn", num_classes=10, in_chans=3, img_size=32).eval()
    with torch.no_grad():  # a BatchNorm network at test time does see it
        assert not torch.allclose(bn.embed(s * x), bn.embed(x), rtol=1e-2, atol=1e-2)


def _condense(data, contrast, method="lodm", iterations=10):
    return hf_lodc.condense(data, method=method, ipc=1, rank=2, iterations=iterations, batch_real=16, seed=0,
                            progress=False, contrast=contrast)


def test_class_std_sets_each_image_to_its_class_real_std(mnist):
    grown = _condense(mnist, "none")
    fixed = _condense(mnist, "class_std")
    assert fixed.condense_config["contrast"] == "class_std" and grown.condense_config["contrast"] == "none"
    # the reference target, from ALL train images of each class (the contrast uses 256 per class)
    ref = torch.stack([normalize(mnist.train.images[mnist.train.labels == c], mnist.mean, mnist.std)
                       .flatten(1).std(1).mean() for c in range(10)])  # (K,)
    std_fixed = fixed.images().flatten(1).std(1)  # (N,)
    torch.testing.assert_close(std_fixed, ref[fixed.labels], rtol=0.03, atol=0.0)
    std_grown = grown.images().flatten(1).std(1)
    assert (std_grown > 1.5 * ref[grown.labels]).all(), std_grown  # SGD on a scale-blind loss grows the images
    # the same images up to one positive scale each: the direction is what was learned
    cos = torch.nn.functional.cosine_similarity(fixed.images().flatten(1), grown.images().flatten(1), dim=1)
    assert (cos > 0.9999).all()


def test_coresets_keep_real_images_and_unknown_contrast_is_refused(mnist):
    r = hf_lodc.condense(mnist, method="random", ipc=1, seed=0, progress=False)
    idx = r.init_indices
    real = normalize(mnist.train.images[idx], mnist.mean, mnist.std)
    torch.testing.assert_close(r.images(), real)
    with pytest.raises(ConfigError, match="contrast"):
        hf_lodc.condense(mnist, method="lodm", ipc=1, iterations=1, contrast="bright", progress=False)


def test_class_image_std_uses_each_class():
    from hf_lodc.data.types import LabeledImages

    imgs = torch.zeros(20, 1, 4, 4, dtype=torch.uint8)
    imgs[10:, :, :, :2] = 255  # class 1: half white (high std); class 0: flat black (std 0)
    data = LabeledImages(imgs, torch.arange(2).repeat_interleave(10))
    t = class_image_std(data, torch.tensor([0, 1]), torch.tensor([0.0]), torch.tensor([1.0]),
                        torch.Generator().manual_seed(0))
    assert t[0] == 0 and t[1] == pytest.approx(torch.tensor([0.0] * 8 + [1.0] * 8).std().item(), rel=1e-5)
    lo = PixelSet(2, 1, (1, 4, 4))
    lo.set_images(torch.randn(2, 1, 4, 4))
    apply_contrast("class_std", lo, torch.tensor([1, 0]), data, torch.tensor([0.0]), torch.tensor([1.0]),
                   torch.Generator().manual_seed(0))  # local label 0 = global class 1
    assert lo().detach()[0].std() == pytest.approx(t[1].item(), rel=1e-5)
    assert lo().detach()[1].std() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_batchnorm_networks_learn_from_the_rescaled_set_and_not_from_the_grown_one(mnist):
    """The bug this fixes: ConvNet-BN trained on grown LoDM images tests at chance on real images."""
    grown = _condense(mnist, "none", iterations=20)
    fixed = hf_lodc.condense(mnist, method="lodm", ipc=1, rank=2, iterations=20, batch_real=16, seed=0,
                             progress=False, contrast="class_std")
    g = torch.Generator().manual_seed(0)
    test = mnist.test.subset(torch.randperm(len(mnist.test), generator=g)[:500])
    ev = EvalConfig(eval_models=["convnet_bn"], eval_runs=1, eval_epochs=20, eval_backend="sequential")
    acc = {}
    for name, r in (("grown", grown), ("fixed", fixed)):
        acc[name] = hf_lodc.evaluate_synthetic(r.images(), r.labels, test, mnist.mean, mnist.std, 10, ev,
                                               seed=0)["convnet_bn"].accuracy_mean
    print(acc)
    assert acc["fixed"] > 60 and acc["fixed"] > acc["grown"] + 25, acc
