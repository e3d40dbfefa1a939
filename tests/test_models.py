"""Model zoo: ConvNet family, small-image cross-architecture nets, eval-model factory."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn

import hf_lodc.models as M
from hf_lodc.errors import ConfigError, UnknownNameError
from hf_lodc.models import convnet as convnet_mod

LODC_MODELS = [
    "lodc_alexnet_bn",
    "lodc_convnet_d1_w128",
    "lodc_convnet_d2_w128",
    "lodc_convnet_d3_w128",
    "lodc_convnet_d3_w128_bn",
    "lodc_convnet_d3_w128_ln",
    "lodc_convnet_d3_w128_nonorm",
    "lodc_convnet_d4_w128",
    "lodc_resnet18_bn",
    "lodc_vgg11_bn",
]
INPUTS = [(1, 28), (3, 32), (3, 64)]  # (channels, px)


def _forward(model: nn.Module, chans: int, size) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        return model(torch.randn(2, chans, h, w))


def test_all_registered_in_timm():
    assert sorted(timm.list_models("lodc_*")) == LODC_MODELS
    for alias, target in M.EVAL_MODEL_ALIASES.items():
        assert target in LODC_MODELS, alias
    assert set(M.list_eval_models()) == set(M.EVAL_MODEL_ALIASES) | set(LODC_MODELS) | set(M.list_hf_models())
    assert set(M.list_hf_models()) >= {"hf:vit", "hf:resnet"}


def test_convnet3_mnist_feature_dim_and_instance_norm():
    model = timm.create_model("lodc_convnet_d3_w128", num_classes=10, in_chans=1, img_size=28)
    assert isinstance(model, M.ConvNet)
    assert model.num_features == 128 * 3 * 3 == 1152
    assert model.num_classes == 10
    assert _forward(model, 1, 28).shape == (2, 10)
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    assert len(norms) == 3
    assert all(isinstance(n, nn.GroupNorm) and n.num_groups == n.num_channels == 128 and n.affine for n in norms)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.in_channels for c in convs] == [1, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 3


@pytest.mark.parametrize(
    "name,chans,size,num_features",
    [
        ("lodc_convnet_d3_w128", 3, 32, 2048),
        ("lodc_convnet_d4_w128", 3, 64, 2048),
        ("lodc_convnet_d3_w128", 3, (28, 32), 128 * 3 * 4),
        ("lodc_convnet_d1_w128", 1, 28, 128 * 14 * 14),
    ],
)
def test_convnet_feature_dims(name, chans, size, num_features):
    model = timm.create_model(name, num_classes=5, in_chans=chans, img_size=size)
    assert model.num_features == num_features
    assert _forward(model, chans, size).shape == (2, 5)


@pytest.mark.parametrize(
    "name,norm_type,groups",
    [
        ("lodc_convnet_d3_w128_bn", nn.BatchNorm2d, None),
        ("lodc_convnet_d3_w128_ln", nn.GroupNorm, 1),
        ("lodc_convnet_d3_w128_nonorm", None, None),
    ],
)
def test_convnet_norm_variants(name, norm_type, groups):
    model = timm.create_model(name, num_classes=10, in_chans=3, img_size=32)
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    if norm_type is None:
        assert norms == []
        return
    assert len(norms) == 3 and all(type(n) is norm_type for n in norms)
    if groups is not None:
        assert all(n.num_groups == groups for n in norms)


def test_convnet_defaults_and_bad_config():
    model = timm.create_model("lodc_convnet_d3_w128")
    assert (model.in_chans, model.num_classes, model.img_size) == (3, 10, (32, 32))
    with pytest.raises(ConfigError, match="depth"):
        M.ConvNet(in_chans=1, img_size=28, depth=5)  # 28 -> 14 -> 7 -> 3 -> 1 -> 0
    with pytest.raises(UnknownNameError, match="instancenorm"):
        M.ConvNet(norm="groupnorm")
    with pytest.raises(UnknownNameError, match="avgpool"):
        M.ConvNet(pool="stride")


def test_entrypoint_accepts_timm_keywords():
    model = convnet_mod.lodc_convnet_d3_w128(
        pretrained=False, pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None,
        num_classes=3, in_chans=1, img_size=28,
    )
    assert model.num_classes == 3
    model = timm.create_model(
        "lodc_vgg11_bn", pretrained=False, pretrained_cfg_overlay=dict(num_classes=3), num_classes=3
    )
    assert model.num_classes == 3


@pytest.mark.parametrize("name", LODC_MODELS)
def test_pretrained_true_is_refused(name):
    with pytest.raises(ConfigError, match="no pretrained weights"):
        timm.create_model(name, pretrained=True)


def test_classifier_interface_and_embed():
    model = timm.create_model("lodc_convnet_d3_w128", num_classes=10, in_chans=3, img_size=32)
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, 128, 4, 4)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.num_features)
    torch.testing.assert_close(pre, model.embed(x))
    torch.testing.assert_close(model.forward_head(feats), model(x))

    model.reset_classifier(7)
    assert model.num_classes == 7 and model(x).shape == (2, 7)
    assert model.get_classifier().out_features == 7
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)

    # the embedding is differentiable w.r.t. the input (distribution / gradient matching need this)
    xs = torch.randn(2, 3, 32, 32, requires_grad=True)
    model.embed(xs).sum().backward()
    assert xs.grad is not None and xs.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LODC_MODELS)
@pytest.mark.parametrize("chans,size", INPUTS)
def test_every_registered_model_builds_and_forwards(name, chans, size):
    model = timm.create_model(name, num_classes=10, in_chans=chans, img_size=size)
    assert _forward(model, chans, size).shape == (2, 10)
    x = torch.randn(2, chans, size, size)
    with torch.no_grad():
        assert model.embed(x).shape == (2, model.num_features)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(4)
    assert model.num_classes == 4 and _forward(model, chans, size).shape == (2, 4)


@pytest.mark.parametrize("alias", sorted(M.EVAL_MODEL_ALIASES))
@pytest.mark.parametrize("chans,size", INPUTS)
def test_every_alias_builds_and_forwards(alias, chans, size):
    model = M.create_eval_model(alias, num_classes=10, in_chans=chans, img_size=(size, size))
    target = M.EVAL_MODEL_ALIASES[alias]
    expected = {"lodc_alexnet_bn": M.AlexNetBN, "lodc_vgg11_bn": M.VGGBN, "lodc_resnet18_bn": M.ResNetBN}
    assert type(model) is expected.get(target, M.ConvNet)
    assert _forward(model, chans, size).shape == (2, 10)


def test_small_arch_literature_shapes():
    # AlexNet pads MNIST 28 -> 32 (research code), so 28 and 32 px give the same 4x4 map
    assert timm.create_model("lodc_alexnet_bn", in_chans=1, img_size=28).num_features == 192 * 4 * 4
    assert timm.create_model("lodc_alexnet_bn", in_chans=3, img_size=32).num_features == 192 * 4 * 4
    vgg = timm.create_model("lodc_vgg11_bn", in_chans=1, img_size=28)
    assert vgg.features[0].padding == (3, 3) and vgg.num_features == 512
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 8
    resnet = timm.create_model("lodc_resnet18_bn", in_chans=3, img_size=32)
    assert resnet.conv1.stride == (1, 1) and resnet.conv1.kernel_size == (3, 3)
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet.modules())
    assert [len(s) for s in resnet.stages] == [2, 2, 2, 2]
    with torch.no_grad():
        assert resnet.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 4, 4)


@pytest.mark.parametrize("chans,size", [(3, 32), (1, 28)])
def test_plain_timm_resnet18(chans, size):
    model = M.create_eval_model("resnet18", num_classes=10, in_chans=chans, img_size=(size, size))
    assert type(model).__name__ == "ResNet" and not isinstance(model, M.ResizeInput)  # timm's, native size
    assert _forward(model, chans, size).shape == (2, 10)
    # 'timm/' bypasses the aliases; 'resnet18_bn' is our CIFAR-style net
    assert type(M.create_eval_model("timm/resnet18", 10, chans, size)).__name__ == "ResNet"
    assert isinstance(M.create_eval_model("resnet18_bn", 10, chans, size), M.ResNetBN)


def test_plain_timm_vit_gets_img_size():
    assert "vit_tiny_patch16_224" in timm.list_models("vit_tiny*")
    model = M.create_eval_model("vit_tiny_patch16_224", num_classes=10, in_chans=3, img_size=(32, 32))
    assert tuple(model.patch_embed.img_size) == (32, 32)
    assert _forward(model, 3, 32).shape == (2, 10)

    with pytest.warns(UserWarning, match="patch size"):  # 28 % 16 != 0
        model = M.create_eval_model("vit_tiny_patch16_224", num_classes=10, in_chans=1, img_size=28)
    assert _forward(model, 1, 28).shape == (2, 10)
    model = M.create_eval_model("vit_tiny_patch16_224", num_classes=10, in_chans=1, img_size=28, patch_size=4)
    assert tuple(model.patch_embed.grid_size) == (7, 7)
    assert _forward(model, 1, 28).shape == (2, 10)


def test_resize_input_wrapper():
    inner = M.ConvNet(in_chans=1, num_classes=10, img_size=32)
    model = M.ResizeInput(inner, (32, 32))
    assert model.num_classes == 10 and model.num_features == 2048
    assert _forward(model, 1, 28).shape == (2, 10)
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, 128, 4, 4)
    model.reset_classifier(3)
    assert model.num_classes == 3 and _forward(model, 1, 28).shape == (2, 3)


def test_unknown_name_lists_aliases():
    with pytest.raises(UnknownNameError) as info:
        M.create_eval_model("resnet81", num_classes=10, in_chans=3, img_size=32)
    msg = str(info.value)
    for alias in M.EVAL_MODEL_ALIASES:
        assert alias in msg
    assert "timm.list_models()" in msg and "resnet18" in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(UnknownNameError):
        M.create_eval_model("timm/convnet", num_classes=10, in_chans=3, img_size=32)  # no alias after 'timm/'


def test_factory_refuses_pretrained():
    with pytest.raises(ConfigError, match="pretrained"):
        M.create_eval_model("resnet18", num_classes=10, in_chans=3, img_size=32, pretrained=True)


def test_plain_timm_too_small_for_native_size_is_resized():
    # inception_v3's unpadded stem cannot take 32 px: it gets wrapped to its default 299 px input
    model = M.create_eval_model("inception_v3", num_classes=10, in_chans=3, img_size=32)
    assert isinstance(model, M.ResizeInput) and model.size == (299, 299)
    assert model.training  # the size probe restores train mode
    assert _forward(model, 3, 32).shape == (2, 10)


# --- timm pretrained configs (issue 14, item 3) ---

@pytest.mark.parametrize("name", LODC_MODELS)
def test_every_lodc_model_has_a_weightless_default_cfg(name):
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg is not None and not cfg.has_weights  # hf_hub_id None, url empty
    assert cfg.input_size == (3, 32, 32) and cfg.crop_pct == 1.0
    assert len(cfg.mean) == len(cfg.std) == 3
    model = timm.create_model(name)
    assert model.pretrained_cfg["architecture"] == name and model.default_cfg is model.pretrained_cfg


@pytest.mark.parametrize("name", ["lodc_convnet_d3_w128", "lodc_alexnet_bn", "lodc_vgg11_bn", "lodc_resnet18_bn"])
def test_resolve_data_config_mnist_and_cifar(name):
    from timm.data import create_transform, resolve_data_config

    mnist = timm.create_model(name, num_classes=10, in_chans=1, img_size=28)
    dc = resolve_data_config({}, model=mnist)
    assert dc["input_size"] == (1, 28, 28)
    assert dc["mean"] == M.DEFAULT_STATS[1][0] and dc["std"] == M.DEFAULT_STATS[1][1]
    assert dc["crop_pct"] == 1.0 and mnist.pretrained_cfg["num_classes"] == 10
    # what timm resolves feeds the model: a PIL image through timm's eval transform, then forward
    from PIL import Image

    x = create_transform(**dc)(Image.new("L", (28, 28), 128)).unsqueeze(0)  # (1, 1, 28, 28)
    assert x.shape == (1, 1, 28, 28)
    mnist.eval()
    assert mnist(x).shape == (1, 10)

    cifar = timm.create_model(name, num_classes=100, in_chans=3, img_size=32)
    dc = resolve_data_config({}, model=cifar)
    assert dc["input_size"] == (3, 32, 32) and dc["mean"] == M.DEFAULT_STATS[3][0] and dc["std"] == M.DEFAULT_STATS[3][1]
    assert cifar.pretrained_cfg["num_classes"] == 100


def test_source_statistics_reach_the_pretrained_cfg():
    from timm.data import resolve_data_config

    m = M.create_eval_model("convnet", num_classes=10, in_chans=1, img_size=28, mean=[0.2], std=[0.35])
    assert resolve_data_config({}, model=m)["mean"] == (0.2,) and resolve_data_config({}, model=m)["std"] == (0.35,)
    m = timm.create_model("lodc_convnet_d4_w128", in_chans=3, img_size=64,
                          pretrained_cfg_overlay=dict(mean=(0.5,), std=(0.25,)))  # one value: every channel
    assert m.pretrained_cfg["mean"] == (0.5, 0.5, 0.5) and m.pretrained_cfg["input_size"] == (3, 64, 64)
    m = timm.create_model("lodc_convnet_d3_w128", in_chans=2, img_size=16)  # no dataset default: 0.5
    assert m.pretrained_cfg["mean"] == (0.5, 0.5)
    with pytest.raises(ConfigError, match="one value per channel"):
        timm.create_model("lodc_convnet_d3_w128", in_chans=1, pretrained_cfg_overlay=dict(mean=(0.1, 0.2, 0.3)))


def test_input_size_in_cfg_sizes_the_model():
    # timm passes a pretrained_cfg's input_size as in_chans / img_size defaults (how hf-hub: configs load)
    m = timm.create_model("lodc_convnet_d3_w128", pretrained_cfg_overlay=dict(input_size=(1, 28, 28)))
    assert m.num_features == 1152 and m.pretrained_cfg["input_size"] == (1, 28, 28)


def test_pretrained_loads_from_a_weight_source(tmp_path):
    from safetensors.torch import save_file

    src = timm.create_model("lodc_convnet_d3_w128", num_classes=10, in_chans=1, img_size=28)
    save_file(src.state_dict(), str(tmp_path / "model.safetensors"))
    m = timm.create_model("lodc_convnet_d3_w128", pretrained=True, num_classes=10, in_chans=1, img_size=28,
                          pretrained_cfg_overlay=dict(file=str(tmp_path / "model.safetensors")))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), m.state_dict().values()))


def test_unknown_lodc_name_says_import_hf_lodc():
    with pytest.raises(UnknownNameError, match="import hf_lodc"):
        M.create_eval_model("lodc_convnet_d5_w128", num_classes=10, in_chans=1, img_size=28)
