"""ConvNet: the standard backbone of dataset-condensation papers.

``ConvNet-D`` is ``depth`` blocks of [3x3 conv (padding 1, bias) -> norm -> activation -> 2x2 pool
(stride 2)], all ``width`` channels wide, followed by flatten and one linear classifier. With the
defaults (depth 3, width 128, instance norm, ReLU, average pooling) this is "ConvNet-3", the model
that Dataset Condensation, DSA, DM, MTT, HaBa, LoDC (Yang et al., NeurIPS 2023) etc. condense with
and report their main numbers on. ``ConvNetD4`` is the usual choice for 64 px (Tiny ImageNet) data.

The classifier sees the flattened final map, so the feature dimension depends on the input size::

    num_features = width * (H // 2**depth) * (W // 2**depth)
    28 px, depth 3 (MNIST):   128 * 3 * 3 = 1152
    32 px, depth 3 (CIFAR):   128 * 4 * 4 = 2048
    64 px, depth 4 (TinyIN):  128 * 4 * 4 = 2048

Norm layers, by name:
    ``instancenorm``: ``GroupNorm(width, width)`` (one group per channel, affine). This is what the
        literature calls instance norm; unlike ``nn.InstanceNorm2d`` it has a per-channel affine.
    ``batchnorm``: ``BatchNorm2d`` ("ConvNet-BN" in the cross-architecture tables).
    ``layernorm``: ``GroupNorm(1, width)``, normalising over (C, H, W) with a per-channel affine
        (the research code uses ``nn.LayerNorm([C, H, W])``, whose affine is per element).
    ``none``: no normalisation.

Weights use PyTorch's default initialisation, as in the literature. No pretrained weights exist:
these models are trained from scratch on (condensed) data.

Importing this module registers the ``lodc_convnet_*`` models with timm, so they can be built with
``timm.create_model('lodc_convnet_d3_w128', num_classes=10, in_chans=1, img_size=28)``; each model's
``pretrained_cfg`` carries its input size and normalisation (see ``timm_cfg.py``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Tuple, Union

import torch
import torch.nn as nn
from timm.layers import get_device_dtype, to_2tuple
from timm.models import generate_default_cfgs, register_model

from ..errors import ConfigError, UnknownNameError
from .timm_cfg import build_lodc_model, lodc_cfg

__all__ = ['ConvNet', 'ConvNetBlock']


# name -> constructor(num_channels, device=..., dtype=...)
_NORM_LAYERS: dict[str, Callable[..., nn.Module]] = {
    'instancenorm': lambda c, **dd: nn.GroupNorm(c, c, affine=True, **dd),
    'batchnorm': lambda c, **dd: nn.BatchNorm2d(c, **dd),
    'layernorm': lambda c, **dd: nn.GroupNorm(1, c, affine=True, **dd),
    'none': lambda c, **dd: nn.Identity(),
}

# name -> constructor()
_ACT_LAYERS: dict[str, Callable[[], nn.Module]] = {
    'relu': nn.ReLU,
    'leakyrelu': partial(nn.LeakyReLU, negative_slope=0.01),
    'sigmoid': nn.Sigmoid,
}

# name -> (constructor(), spatial reduction factor)
_POOL_LAYERS: dict[str, Tuple[Callable[[], nn.Module], int]] = {
    'avgpool': (partial(nn.AvgPool2d, kernel_size=2, stride=2), 2),
    'maxpool': (partial(nn.MaxPool2d, kernel_size=2, stride=2), 2),
    'none': (nn.Identity, 1),
}


def _lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown ConvNet {kind} {name!r}; valid {kind}s: {', '.join(sorted(table))}"
        ) from None


class ConvNetBlock(nn.Module):
    """3x3 conv (bias) -> norm -> act -> pool."""

    def __init__(
            self,
            in_chs: int,
            out_chs: int,
            norm: str = 'instancenorm',
            act: str = 'relu',
            pool: str = 'avgpool',
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=3, padding=1, bias=True, **dd)
        self.norm = _lookup(_NORM_LAYERS, 'norm', norm)(out_chs, **dd)
        self.act = _lookup(_ACT_LAYERS, 'act', act)()
        self.pool = _lookup(_POOL_LAYERS, 'pool', pool)[0]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (N, out_chs, H, W)
        x = self.norm(x)
        x = self.act(x)
        return self.pool(x)  # (N, out_chs, H // r, W // r), r = 2 for avg/max pool, 1 for none


class ConvNet(nn.Module):
    """The dataset-condensation ConvNet (``ConvNet-3`` with the defaults).

    Args:
        in_chans: Input image channels.
        num_classes: Classifier outputs; 0 gives no classifier (``forward`` returns features).
        img_size: Input size, int or (H, W). The classifier is sized for it, so inputs must match.
        width: Channels of every conv block.
        depth: Number of conv blocks.
        norm: ``instancenorm`` | ``batchnorm`` | ``layernorm`` | ``none``.
        act: ``relu`` | ``leakyrelu`` | ``sigmoid``.
        pool: ``avgpool`` | ``maxpool`` | ``none``.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 10,
            img_size: Union[int, Tuple[int, int]] = 32,
            width: int = 128,
            depth: int = 3,
            norm: str = 'instancenorm',
            act: str = 'relu',
            pool: str = 'avgpool',
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if depth < 1 or width < 1:
            raise ConfigError(f'ConvNet needs depth >= 1 and width >= 1, got depth={depth}, width={width}')
        img_size = tuple(to_2tuple(img_size))
        reduction = _lookup(_POOL_LAYERS, 'pool', pool)[1] ** depth
        feat_size = (img_size[0] // reduction, img_size[1] // reduction)
        if min(feat_size) < 1:
            raise ConfigError(
                f'ConvNet depth {depth} with {pool} reduces a {img_size[0]}x{img_size[1]} input to nothing '
                f'(final map {feat_size[0]}x{feat_size[1]}); use a smaller depth or larger images'
            )
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.img_size = img_size
        self.feat_size = feat_size
        self.width = width
        self.depth = depth

        self.blocks = nn.Sequential(*[
            ConvNetBlock(in_chans if i == 0 else width, width, norm=norm, act=act, pool=pool, **dd)
            for i in range(depth)
        ])
        self.num_features = self.head_hidden_size = width * feat_size[0] * feat_size[1]
        self.fc = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` (0: none)."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, in_chans, H, W)
        return self.blocks(x)  # (N, width, H // 2**depth, W // 2**depth)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.flatten(1)  # (N, num_features)
        return x if pre_logits else self.fc(x)  # (N, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features, the embedding distribution matching compares: (N, num_features)."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)  # (N, width, h, w)
        return self.forward_head(x)  # (N, num_classes)


def _create_convnet(variant: str, pretrained: bool = False, **kwargs: Any) -> ConvNet:
    return build_lodc_model(ConvNet, variant, pretrained=pretrained, **kwargs)


# weightless configs: input size / normalisation for timm.data (rewritten per model by build_lodc_model)
default_cfgs = generate_default_cfgs({
    name: lodc_cfg(first_conv='blocks.0.conv', classifier='fc')
    for name in (
        'lodc_convnet_d3_w128', 'lodc_convnet_d3_w128_bn', 'lodc_convnet_d3_w128_ln',
        'lodc_convnet_d3_w128_nonorm', 'lodc_convnet_d4_w128', 'lodc_convnet_d1_w128', 'lodc_convnet_d2_w128',
    )
})


@register_model
def lodc_convnet_d3_w128(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """ConvNet-3: depth 3, width 128, instance norm. The default condensation / evaluation model."""
    model_args = dict(depth=3, width=128, norm='instancenorm')
    return _create_convnet('lodc_convnet_d3_w128', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def lodc_convnet_d3_w128_bn(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """ConvNet-BN: ConvNet-3 with batch norm (cross-architecture evaluation)."""
    model_args = dict(depth=3, width=128, norm='batchnorm')
    return _create_convnet('lodc_convnet_d3_w128_bn', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def lodc_convnet_d3_w128_ln(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """ConvNet-LN: ConvNet-3 with layer norm (GroupNorm with one group)."""
    model_args = dict(depth=3, width=128, norm='layernorm')
    return _create_convnet('lodc_convnet_d3_w128_ln', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def lodc_convnet_d3_w128_nonorm(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """ConvNet-NN: ConvNet-3 without normalisation."""
    model_args = dict(depth=3, width=128, norm='none')
    return _create_convnet('lodc_convnet_d3_w128_nonorm', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def lodc_convnet_d4_w128(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """ConvNetD4: depth 4, instance norm; the usual model for 64 px data (Tiny ImageNet)."""
    model_args = dict(depth=4, width=128, norm='instancenorm')
    return _create_convnet('lodc_convnet_d4_w128', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def lodc_convnet_d1_w128(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """ConvNetD1: depth 1, instance norm (depth ablation)."""
    model_args = dict(depth=1, width=128, norm='instancenorm')
    return _create_convnet('lodc_convnet_d1_w128', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def lodc_convnet_d2_w128(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """ConvNetD2: depth 2, instance norm (depth ablation)."""
    model_args = dict(depth=2, width=128, norm='instancenorm')
    return _create_convnet('lodc_convnet_d2_w128', pretrained=pretrained, **dict(model_args, **kwargs))
