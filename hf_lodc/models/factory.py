"""Build the network a condensed dataset is evaluated with, by name.

``create_eval_model(name, num_classes, in_chans, img_size)`` accepts four kinds of name:

1. An alias from ``EVAL_MODEL_ALIASES`` (``convnet``, ``convnet_bn``, ``convnet_d4``, ``alexnet_bn``,
   ``vgg11_bn``, ``resnet18_bn``, ...), mapping to the small-image models of this package.
   Note that ``vgg11_bn`` and ``resnet18_bn`` are *our* 28-64 px versions, not timm's ImageNet ones.
2. A registered ``lodc_*`` name (``lodc_convnet_d3_w128``, ...), built with ``timm.create_model``.
3. Any other ``timm.list_models()`` name (``resnet18``, ``vit_tiny_patch16_224``, ``resnet18.a1_in1k``):
   a plain timm backbone, randomly initialised (``pretrained=False``: evaluating condensed data means
   training from scratch). Prefix ``timm/`` to force timm's model where an alias has the same name
   (``timm/vgg11_bn`` is timm's ImageNet VGG11-BN, ``vgg11_bn`` ours).
4. ``hf:<architecture>`` (``hf:vit``, ``hf:resnet``, ``hf:convnext``) or ``hf:<owner>/<repo>``: a
   transformers image-classification model built from a config sized for the images, wrapped so that
   ``net(x)`` returns logits (``hf_transformers.py``).

``mean`` / ``std`` (the normalisation the images were given) are recorded in a ``lodc_*`` model's
``pretrained_cfg``, so ``timm.data.resolve_data_config({}, model=net)`` describes its real input.

How plain timm backbones meet small images:

* Models whose timm config says ``fixed_input_size`` (ViT, Swin, ...) are built with
  ``img_size=img_size``, which resizes their patch grid / position embeddings to the native
  resolution. A warning is raised when the image size is not a multiple of the patch size (the
  border would be dropped); pass e.g. ``patch_size=4`` through ``**kwargs`` for a finer grid.
* Other models (CNNs) are used as-is at the native resolution: they accept any size and end in a
  global pool, and e.g. ``resnet18`` (stride 32) still leaves a 1x1 map at 28-32 px. Up-sampling
  every batch to 224 px would cost ~50x the compute for no extra information.
* Only when a model cannot run at the native size (it rejects ``img_size``, or its down-sampling
  leaves nothing) is it wrapped in ``ResizeInput``, which bilinearly resizes inputs to the model's
  default ``pretrained_cfg['input_size']``. This is decided once, by one forward of a zero batch.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import to_2tuple
from timm.models import get_arch_name, get_pretrained_cfg, is_model

from ..errors import ConfigError, UnknownNameError
from . import convnet as _convnet  # noqa: F401  (registers the lodc_convnet_* models)
from . import small_arch as _small_arch  # noqa: F401  (registers lodc_alexnet_bn, ...)
from .hf_transformers import HF_PREFIX, create_hf_model, list_hf_models

__all__ = ['EVAL_MODEL_ALIASES', 'ResizeInput', 'create_eval_model', 'list_eval_models']

EVAL_MODEL_ALIASES: dict[str, str] = {
    'convnet': 'lodc_convnet_d3_w128',
    'convnet_bn': 'lodc_convnet_d3_w128_bn',
    'convnet_ln': 'lodc_convnet_d3_w128_ln',
    'convnet_nonorm': 'lodc_convnet_d3_w128_nonorm',
    'convnet_d1': 'lodc_convnet_d1_w128',
    'convnet_d2': 'lodc_convnet_d2_w128',
    'convnet_d4': 'lodc_convnet_d4_w128',
    'alexnet_bn': 'lodc_alexnet_bn',
    'vgg11_bn': 'lodc_vgg11_bn',
    'resnet18_bn': 'lodc_resnet18_bn',
}

_TIMM_PREFIX = 'timm/'
_DEFAULT_INPUT_SIZE = (224, 224)


class ResizeInput(nn.Module):
    """Resize inputs to a fixed ``size`` before a wrapped model; forwards the timm interface."""

    def __init__(self, model: nn.Module, size: Tuple[int, int], mode: str = 'bilinear'):
        super().__init__()
        self.model = model
        self.size = tuple(size)
        self.mode = mode

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def num_features(self) -> int:
        return self.model.num_features

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int, *args: Any, **kwargs: Any) -> None:
        self.model.reset_classifier(num_classes, *args, **kwargs)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W)
        if tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode=self.mode, align_corners=False)  # (N, C, *size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(self.resize(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.model.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.resize(x))  # (N, num_classes)


def list_eval_models() -> list[str]:
    """Our aliases, registered ``lodc_*`` models and ``hf:`` transformers architectures.

    Any ``timm.list_models()`` name and any ``hf:<owner>/<repo>`` config id is accepted too.
    """
    return sorted(EVAL_MODEL_ALIASES) + timm.list_models('lodc_*') + list_hf_models()


def _unknown(name: str, reason: str) -> UnknownNameError:
    candidates = list(EVAL_MODEL_ALIASES) + timm.list_models()
    close = difflib.get_close_matches(name.lower(), candidates, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ''
    if name.strip().lower().startswith('lodc_'):
        hint += (" lodc_* models exist in timm's registry only after `import hf_lodc` (timm has no plugin entry "
                 "point); this name is not one of them.")
    return UnknownNameError(
        f'unknown eval model {name!r}: {reason}. hf_lodc aliases: '
        + ', '.join(f'{k} ({v})' for k, v in EVAL_MODEL_ALIASES.items())
        + f"; hf_lodc models: {', '.join(timm.list_models('lodc_*'))}. Any name in timm.list_models() is "
        f"also accepted as a plain timm backbone (e.g. 'resnet18'; prefix 'timm/' to bypass the aliases), and "
        f"transformers models as {', '.join(list_hf_models())} or hf:<owner>/<repo>.{hint}"
    )


def _runs_at(model: nn.Module, in_chans: int, img_size: Tuple[int, int]) -> bool:
    """Whether one forward of a zero batch at ``img_size`` succeeds (eval mode, no grad, no RNG use)."""
    param = next(model.parameters(), None)
    dd = {'device': param.device, 'dtype': param.dtype} if param is not None else {}
    x = torch.zeros(1, in_chans, *img_size, **dd)  # (1, C, H, W)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    except (RuntimeError, AssertionError, ValueError):
        return False
    finally:
        model.train(was_training)
    return True


def _create_timm_backbone(
        name: str,
        num_classes: int,
        in_chans: int,
        img_size: Tuple[int, int],
        **kwargs: Any,
) -> nn.Module:
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as e:  # an invalid pretrained tag, e.g. 'resnet18.nope'
        raise _unknown(name, str(e).rstrip('.')) from None
    default_size = tuple(cfg.input_size[-2:]) if cfg is not None else _DEFAULT_INPUT_SIZE
    base_args = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)

    model = None
    if cfg is not None and cfg.fixed_input_size:
        try:
            model = timm.create_model(name, img_size=img_size, **base_args)
        except TypeError:  # fixed-size model whose constructor has no img_size
            model = None
    if model is None:
        model = timm.create_model(name, **base_args)

    if not _runs_at(model, in_chans, img_size):
        return ResizeInput(model, default_size)

    patch_size = getattr(getattr(model, 'patch_embed', None), 'patch_size', None)
    if patch_size is not None:
        ph, pw = to_2tuple(patch_size)
        if img_size[0] % ph or img_size[1] % pw:
            warnings.warn(
                f'{name}: image size {img_size[0]}x{img_size[1]} is not a multiple of the patch size '
                f'{ph}x{pw}, so the border pixels are ignored; pass e.g. patch_size=4 to create_eval_model',
                stacklevel=3,
            )
    return model


def create_eval_model(
        name: str,
        num_classes: int,
        in_chans: int,
        img_size: Union[int, Tuple[int, int]],
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        **kwargs: Any,
) -> nn.Module:
    """Create a randomly initialised evaluation network.

    Args:
        name: An alias (``EVAL_MODEL_ALIASES``), a ``lodc_*`` model, or any ``timm.list_models()``
            name (``timm/`` prefix: skip the aliases).
        num_classes: Classifier outputs.
        in_chans: Input channels.
        img_size: Native image size, int or (H, W).
        mean, std: Per-channel normalisation of the inputs (0..1 scale); recorded in a ``lodc_*``
            model's ``pretrained_cfg`` (default: ``timm_cfg.DEFAULT_STATS`` by channel count).
        **kwargs: Passed to the model constructor (e.g. ``norm='batchnorm'``, ``drop_rate=0.1``,
            ``patch_size=4``).

    Returns:
        An ``nn.Module`` mapping (N, in_chans, H, W) to (N, num_classes) with the timm interface.

    Raises:
        UnknownNameError: The name is neither an alias nor a timm model.
        ConfigError: ``pretrained`` was passed (evaluation trains from scratch).
    """
    if 'pretrained' in kwargs:
        raise ConfigError(
            'create_eval_model builds randomly initialised networks (condensed data is evaluated by '
            'training from scratch); do not pass pretrained'
        )
    img_size = tuple(to_2tuple(img_size))
    key = name.strip()
    if key.lower().startswith(HF_PREFIX):
        return create_hf_model(key, num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kwargs)
    if key.lower().startswith(_TIMM_PREFIX):
        model_name = key[len(_TIMM_PREFIX):]
    else:
        model_name = EVAL_MODEL_ALIASES.get(key.lower(), key)
    if not model_name or any(c in model_name for c in '/\\:') or not is_model(model_name):
        raise _unknown(name, 'not an hf_lodc alias nor a timm model')

    if get_arch_name(model_name).startswith('lodc_'):
        if mean is not None or std is not None:
            overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
            overlay.update({k: tuple(float(x) for x in v) for k, v in (('mean', mean), ('std', std)) if v is not None})
            kwargs['pretrained_cfg_overlay'] = overlay
        return timm.create_model(
            model_name, num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kwargs
        )
    return _create_timm_backbone(model_name, num_classes, in_chans, img_size, **kwargs)
