"""timm pretrained configs of the ``lodc_*`` models: their real input size and normalisation.

timm reads a model's data pipeline from ``model.pretrained_cfg`` (``timm.data.resolve_data_config``,
``resolve_model_data_config``, ``create_transform``); without one it falls back to 224 px and
ImageNet statistics, which crashes a ConvNet sized for 28 px. Every ``lodc_*`` architecture
therefore registers a default config (through ``generate_default_cfgs``, as timm's own model files
do) and every model is built by :func:`build_lodc_model`, which then writes into the model's
``pretrained_cfg`` what it was actually built for:

* ``input_size = (in_chans, H, W)`` from the ``in_chans`` / ``img_size`` keywords (the registered
  default is ``(3, 32, 32)``);
* ``num_classes`` of the classifier;
* ``mean`` / ``std``: those given with ``pretrained_cfg_overlay=dict(mean=..., std=...)`` (how
  hf_lodc passes the source dataset's per-channel statistics, ``create_eval_model(mean=, std=)``);
  otherwise the train-split statistics of the datasets these networks are usually trained on,
  by channel count (:data:`DEFAULT_STATS`: 1 channel MNIST, 3 channels CIFAR-10, as hf_lodc
  computes them), or 0.5 / 0.5 for other channel counts;
* ``crop_pct = 1.0`` and bilinear interpolation: small images are used whole, never centre-cropped.

No weights exist (``hf_hub_id`` none, ``url`` empty): ``pretrained=True`` is refused unless the
config given names a weight source (``pretrained_cfg_overlay=dict(file=...)`` or an ``hf-hub:`` /
``local-dir:`` model), which timm then loads as for any of its models.

timm has no plugin entry point, so these names exist only after ``import hf_lodc`` (or
``import hf_lodc.models``) in the same process.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch.nn as nn
from timm.layers import to_2tuple
from timm.models import build_model_with_cfg
from timm.models._builder import resolve_pretrained_cfg

from ..errors import ConfigError

__all__ = ['DEFAULT_STATS', 'lodc_cfg', 'build_lodc_model', 'default_stats']

# in_chans -> (mean, std) on the 0..1 scale: train-split per-channel statistics, computed the way
# hf_lodc.data.hub computes them (population over all pixels of the split)
DEFAULT_STATS: Dict[int, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    1: ((0.1307,), (0.3081,)),  # MNIST
    3: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),  # CIFAR-10
}

_TIMM_KEYWORDS = ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir')


def default_stats(in_chans: int) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """(mean, std) used when none is given: :data:`DEFAULT_STATS`, else 0.5 per channel."""
    return DEFAULT_STATS.get(in_chans, ((0.5,) * in_chans, (0.5,) * in_chans))


def lodc_cfg(first_conv: str, classifier: str = 'fc', fixed_input_size: bool = True, **kwargs: Any) -> dict:
    """A weightless pretrained config for a small-image model (3x32x32 default, CIFAR-10 statistics)."""
    mean, std = default_stats(3)
    return dict(
        url='', hf_hub_id=None,
        num_classes=10, input_size=(3, 32, 32), pool_size=None, fixed_input_size=fixed_input_size,
        crop_pct=1.0, interpolation='bilinear', mean=mean, std=std,
        first_conv=first_conv, classifier=classifier, license='apache-2.0',
        **kwargs,
    )


def _in_chans_of(model: nn.Module, first_conv: Optional[str], fallback: int) -> int:
    try:
        return int(model.get_submodule(first_conv).in_channels) if first_conv else fallback
    except AttributeError:
        return fallback


def build_lodc_model(model_cls: Callable[..., nn.Module], variant: str, pretrained: bool = False,
                     **kwargs: Any) -> nn.Module:
    """Build ``model_cls(**kwargs)`` through timm's builder, with a ``pretrained_cfg`` that matches it.

    Accepts timm's ``pretrained_cfg``, ``pretrained_cfg_overlay`` and ``cache_dir`` keywords.
    """
    pretrained_cfg = kwargs.pop('pretrained_cfg', None)
    overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
    cache_dir = kwargs.pop('cache_dir', None)
    resolved = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay)
    if pretrained and not resolved.has_weights:
        raise ConfigError(
            f'{variant} has no pretrained weights: hf_lodc models are trained from scratch on '
            f'(condensed) data. Create it with pretrained=False, or load a trained one with '
            f'timm.create_model("hf-hub:<repo>", pretrained=True) after `import hf_lodc`.'
        )
    model = build_model_with_cfg(model_cls, variant, pretrained, pretrained_cfg=resolved, cache_dir=cache_dir,
                                 **kwargs)
    cfg = dict(model.pretrained_cfg)
    in_chans = _in_chans_of(model, cfg.get('first_conv'), int(cfg['input_size'][0]))
    h, w = to_2tuple(getattr(model, 'img_size', cfg['input_size'][-2:]))
    cfg['input_size'] = (in_chans, int(h), int(w))
    cfg['num_classes'] = int(getattr(model, 'num_classes', cfg.get('num_classes', 0)))
    mean, std = tuple(cfg['mean']), tuple(cfg['std'])
    if len(mean) != in_chans or len(std) != in_chans:
        explicit = 'mean' in overlay or 'std' in overlay or isinstance(pretrained_cfg, dict)
        if explicit and len(mean) == len(std) == 1:  # one value for every channel, as timm's args allow
            mean, std = mean * in_chans, std * in_chans
        elif explicit:
            raise ConfigError(
                f'{variant}: pretrained_cfg mean/std have {len(mean)}/{len(std)} values for a model with '
                f'in_chans={in_chans}; give one value per channel'
            )
        else:
            mean, std = default_stats(in_chans)
    cfg['mean'], cfg['std'] = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    model.pretrained_cfg = model.default_cfg = cfg
    return model
