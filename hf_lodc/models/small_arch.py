"""Small-image AlexNet-BN, VGG11-BN and ResNet18-BN for cross-architecture evaluation.

Dataset-condensation papers check that a synthetic set condensed with ConvNet also trains other
architectures. For 28-64 px inputs they use these three networks, shrunk from their ImageNet
form so that small images are not reduced to nothing:

``AlexNetBN`` (``lodc_alexnet_bn``)
    conv5x5-128 -> BN -> ReLU -> maxpool2, conv5x5-192 -> BN -> ReLU -> maxpool2,
    conv3x3-256, conv3x3-192, conv3x3-192 (each BN -> ReLU) -> maxpool2, flatten, linear.
    The first conv pads 2 (4 for 28 px, as the research code does for MNIST) so that its output is
    a multiple of 8: 28 and 32 px give a 4x4 map (3072 features), 64 px an 8x8 map (12288).
``VGGBN`` (``lodc_vgg11_bn``)
    VGG11 [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M] of 3x3 conv -> BN -> ReLU. The first
    conv pads 1 (3 for 28 px, as the research code does for MNIST) so that its output is a multiple
    of 32 and the five max-pools leave at least 1x1; then global average pool and linear 512 -> classes.
``ResNetBN`` (``lodc_resnet18_bn``)
    CIFAR-style ResNet-18: 3x3 stride-1 stem without max-pool, BasicBlocks [2, 2, 2, 2] of widths
    64, 128, 256, 512 (stride 1, 2, 2, 2), BN, global average pool, linear 512 -> classes.

All weights use PyTorch's default initialisation; no pretrained weights exist. Every class has the
timm interface (``forward_features``, ``forward_head(x, pre_logits)``, ``reset_classifier``,
``num_classes``, ``num_features``) and ``embed(x) -> (N, num_features)``.

Importing this module registers the models with timm, each with a ``pretrained_cfg`` holding its
input size and normalisation (see ``timm_cfg.py``).
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.layers import get_device_dtype, to_2tuple
from timm.models import generate_default_cfgs, register_model

from ..errors import ConfigError
from .timm_cfg import build_lodc_model, lodc_cfg

__all__ = ['AlexNetBN', 'VGGBN', 'ResNetBN', 'BasicBlock']

_VGG11_CFG: Tuple[Union[int, str], ...] = (64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M')


def _first_padding(img_size: Tuple[int, int], kernel_size: int, reduction: int) -> Tuple[int, int]:
    """Per-axis padding of the first conv: 'same' padding, plus enough to round the output up to a
    multiple of ``reduction`` (28 px -> 32 px for both AlexNet and VGG)."""
    same = kernel_size // 2
    return tuple(same + ((-s) % reduction) // 2 for s in img_size)  # type: ignore[return-value]


def _linear_or_identity(in_features: int, num_classes: int, **dd: Any) -> nn.Module:
    return nn.Linear(in_features, num_classes, **dd) if num_classes > 0 else nn.Identity()


class AlexNetBN(nn.Module):
    """AlexNet with batch norm for 28-64 px images; the classifier sees the flattened final map."""

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 10,
            img_size: Union[int, Tuple[int, int]] = 32,
            norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        img_size = tuple(to_2tuple(img_size))
        pad = _first_padding(img_size, kernel_size=5, reduction=8)
        conv1_size = [s + 2 * p - 4 for s, p in zip(img_size, pad)]
        feat_size = (conv1_size[0] // 8, conv1_size[1] // 8)  # three 2x2 max-pools
        if min(feat_size) < 1:
            raise ConfigError(f'AlexNetBN needs images of at least 8x8 px, got {img_size[0]}x{img_size[1]}')
        self.num_classes = num_classes
        self.img_size = img_size
        self.feat_size = feat_size

        def conv_bn(in_chs: int, out_chs: int, k: int, p: Union[int, Tuple[int, int]]) -> List[nn.Module]:
            return [nn.Conv2d(in_chs, out_chs, k, padding=p, **dd), norm_layer(out_chs, **dd), nn.ReLU()]

        self.features = nn.Sequential(
            *conv_bn(in_chans, 128, 5, pad), nn.MaxPool2d(2, 2),
            *conv_bn(128, 192, 5, 2), nn.MaxPool2d(2, 2),
            *conv_bn(192, 256, 3, 1),
            *conv_bn(256, 192, 3, 1),
            *conv_bn(192, 192, 3, 1), nn.MaxPool2d(2, 2),
        )
        self.num_features = self.head_hidden_size = 192 * feat_size[0] * feat_size[1]
        self.fc = _linear_or_identity(self.num_features, num_classes, **dd)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = _linear_or_identity(self.num_features, num_classes, **get_device_dtype(self))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, in_chans, H, W)
        return self.features(x)  # (N, 192, H' // 8, W' // 8), H' = H rounded up to a multiple of 8

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.flatten(1)  # (N, num_features)
        return x if pre_logits else self.fc(x)  # (N, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), pre_logits=True)  # (N, num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (N, num_classes)


class VGGBN(nn.Module):
    """VGG with batch norm for small images: conv stack, global average pool, one linear layer.

    Args:
        cfg: Conv widths, ``'M'`` for a 2x2 max-pool (default VGG11).
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 10,
            img_size: Union[int, Tuple[int, int]] = 32,
            cfg: Sequence[Union[int, str]] = _VGG11_CFG,
            norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        img_size = tuple(to_2tuple(img_size))
        reduction = 2 ** sum(1 for v in cfg if v == 'M')
        pad = _first_padding(img_size, kernel_size=3, reduction=reduction)
        feat_size = tuple((s + 2 * p - 2) // reduction for s, p in zip(img_size, pad))
        if min(feat_size) < 1:
            raise ConfigError(
                f'VGGBN with {reduction}x down-sampling cannot take a {img_size[0]}x{img_size[1]} input'
            )
        self.num_classes = num_classes
        self.img_size = img_size
        self.feat_size = feat_size

        layers: List[nn.Module] = []
        in_chs, first = in_chans, True
        for v in cfg:
            if v == 'M':
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += [
                nn.Conv2d(in_chs, int(v), 3, padding=pad if first else 1, **dd),
                norm_layer(int(v), **dd),
                nn.ReLU(),
            ]
            in_chs, first = int(v), False
        self.features = nn.Sequential(*layers)
        self.num_features = self.head_hidden_size = in_chs
        self.fc = _linear_or_identity(self.num_features, num_classes, **dd)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = _linear_or_identity(self.num_features, num_classes, **get_device_dtype(self))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, in_chans, H, W)
        return self.features(x)  # (N, 512, H' // 32, W' // 32), H' = H rounded up to a multiple of 32

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # (N, num_features)
        return x if pre_logits else self.fc(x)  # (N, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), pre_logits=True)  # (N, num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (N, num_classes)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity or 1x1 conv-BN shortcut, ReLU after the sum."""

    def __init__(
            self,
            in_chs: int,
            out_chs: int,
            stride: int = 1,
            norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False, **dd)
        self.bn1 = norm_layer(out_chs, **dd)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=1, padding=1, bias=False, **dd)
        self.bn2 = norm_layer(out_chs, **dd)
        self.act2 = nn.ReLU()
        if stride != 1 or in_chs != out_chs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False, **dd),
                norm_layer(out_chs, **dd),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, in_chs, H, W)
        out = self.act1(self.bn1(self.conv1(x)))  # (N, out_chs, ceil(H / stride), ceil(W / stride))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))  # (N, out_chs, ceil(H / stride), ceil(W / stride))


class ResNetBN(nn.Module):
    """CIFAR-style ResNet (3x3 stride-1 stem, no max-pool) with BasicBlocks and batch norm.

    Args:
        layers: Blocks per stage (ResNet-18: 2, 2, 2, 2).
        widths: Channels per stage; stage i > 0 halves the resolution.
        img_size: Accepted for a uniform constructor; the network takes any input size.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 10,
            img_size: Union[int, Tuple[int, int]] = 32,
            layers: Sequence[int] = (2, 2, 2, 2),
            widths: Sequence[int] = (64, 128, 256, 512),
            norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.num_classes = num_classes
        self.img_size = tuple(to_2tuple(img_size))
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False, **dd)
        self.bn1 = norm_layer(widths[0], **dd)
        self.act1 = nn.ReLU()
        stages: List[nn.Module] = []
        in_chs = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = [
                BasicBlock(in_chs if j == 0 else w, w, stride=2 if (i > 0 and j == 0) else 1,
                           norm_layer=norm_layer, **dd)
                for j in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            in_chs = w
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = in_chs
        self.fc = _linear_or_identity(self.num_features, num_classes, **dd)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = _linear_or_identity(self.num_features, num_classes, **get_device_dtype(self))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, in_chans, H, W)
        x = self.act1(self.bn1(self.conv1(x)))  # (N, 64, H, W)
        return self.stages(x)  # (N, 512, ceil(H / 8), ceil(W / 8))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # (N, num_features)
        return x if pre_logits else self.fc(x)  # (N, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), pre_logits=True)  # (N, num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (N, num_classes)


def _create_small(cls: type, variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    return build_lodc_model(cls, variant, pretrained=pretrained, **kwargs)


# weightless configs: input size / normalisation for timm.data (rewritten per model by build_lodc_model)
default_cfgs = generate_default_cfgs({
    'lodc_alexnet_bn': lodc_cfg(first_conv='features.0', classifier='fc'),
    'lodc_vgg11_bn': lodc_cfg(first_conv='features.0', classifier='fc'),
    'lodc_resnet18_bn': lodc_cfg(first_conv='conv1', classifier='fc', fixed_input_size=False),
})


@register_model
def lodc_alexnet_bn(pretrained: bool = False, **kwargs: Any) -> AlexNetBN:
    """AlexNet-BN for 28-64 px images (cross-architecture evaluation)."""
    return _create_small(AlexNetBN, 'lodc_alexnet_bn', pretrained=pretrained, **kwargs)


@register_model
def lodc_vgg11_bn(pretrained: bool = False, **kwargs: Any) -> VGGBN:
    """VGG11-BN for 28-64 px images (cross-architecture evaluation)."""
    model_args = dict(cfg=_VGG11_CFG)
    return _create_small(VGGBN, 'lodc_vgg11_bn', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def lodc_resnet18_bn(pretrained: bool = False, **kwargs: Any) -> ResNetBN:
    """CIFAR-style ResNet18-BN (cross-architecture evaluation)."""
    model_args = dict(layers=(2, 2, 2, 2), widths=(64, 128, 256, 512))
    return _create_small(ResNetBN, 'lodc_resnet18_bn', pretrained=pretrained, **dict(model_args, **kwargs))
