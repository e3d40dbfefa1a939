"""transformers image-classification networks as evaluation models (``hf:vit``, ``hf:resnet``, ...).

A condensed set is judged by how well networks it was not made with learn from it; the Hugging
Face ecosystem's other model library is one more source of such networks. ``create_eval_model``
hands every name that starts with ``hf:`` to :func:`create_hf_model`:

``hf:<architecture>`` (:data:`HF_ARCHITECTURES`)
    A transformers model built from a config sized for the source images (randomly initialised,
    ``from_config``; no weights are ever downloaded):

    * ``hf:vit``: ``ViTForImageClassification``, ``image_size`` = the images' size, patch 4
      (28 px -> 7x7 = 49 tokens, 32 px -> 64), hidden 192, 6 layers, 3 heads, MLP 768
      (ViT-Tiny's width at half its depth), [CLS] token head.
    * ``hf:resnet``: ``ResNetForImageClassification`` in the ResNet-18 layout (basic blocks
      2-2-2-2, widths 64-128-256-512) with a small-image stem: transformers' 7x7 stride-2
      convolution + max-pool (which would leave a 7x7 map of a 28 px image before the first block)
      is replaced by a 3x3 stride-1 convolution and no pool, as in CIFAR ResNets. The rest is
      transformers' code (its blocks, shortcuts, BatchNorm, pooler, classifier).
    * ``hf:convnext``: ``ConvNextForImageClassification`` with a 2x2 patch stem, widths
      32-64-128-256, depths 1-1-2-1 (a small ConvNeXt: 28 px -> 14, 7, 3, 1).

    Keyword arguments of ``create_eval_model`` override config fields (``hidden_size=128``).

``hf:<owner>/<repo>`` or ``hf:<local folder>``
    The ``config.json`` of any Hub model repo whose config maps to an
    ``AutoModelForImageClassification`` class, built with ``from_config`` (config only, no
    weights), with ``num_labels``, ``num_channels`` and, where the config has one, ``image_size``
    set for the source images. Offline this needs the config in the local Hugging Face cache;
    otherwise a :class:`~hf_lodc.errors.ConfigError` says so.

Every model is wrapped in :class:`HFImageClassifier`, so the rest of hf_lodc sees the timm-style
interface: ``net(x) -> logits (N, classes)``, ``embed(x) -> (N, num_features)``,
``num_classes``, ``num_features``, ``get_classifier``/``reset_classifier``. Training uses the same
protocol as every other evaluation model (``engine/evaluate.py``). ``transformers`` is imported
only when an ``hf:`` model is built.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Tuple

import torch
import torch.nn as nn

from ..errors import ConfigError, UnknownNameError
from ..registry import Registry

__all__ = ["HF_PREFIX", "HF_ARCHITECTURES", "HFImageClassifier", "create_hf_model", "list_hf_models"]

HF_PREFIX = "hf:"

# architecture name -> builder(num_classes, in_chans, img_size, **config_overrides) -> PreTrainedModel
HF_ARCHITECTURES: Registry[Callable[..., nn.Module]] = Registry("transformers architecture")


class HFImageClassifier(nn.Module):
    """A transformers ``*ForImageClassification`` model with the timm-style interface hf_lodc uses."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model = model
        self.name = name
        self.num_classes = int(model.config.num_labels)
        self.num_features = self.head_hidden_size = int(self._classifier_linear().in_features)

    def _classifier_linear(self) -> nn.Linear:
        head = self.model.classifier
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if not isinstance(head, nn.Linear) else [head]
        if not linears:
            raise ConfigError(f"{self.name}: the classifier {type(head).__name__} has no linear layer")
        return linears[-1]

    def get_classifier(self) -> nn.Module:
        return self.model.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last linear layer of the head with a fresh one for ``num_classes``."""
        old = self._classifier_linear()
        new = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        head = self.model.classifier
        if head is old:
            self.model.classifier = new
        else:
            parent_name, _, child = next(n for n, m in head.named_modules() if m is old).rpartition(".")
            setattr(head.get_submodule(parent_name) if parent_name else head, child, new)
        self.num_classes = num_classes
        self.model.config.num_labels = num_classes

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The features the classifier reads: pooled map (CNNs) or the [CLS] token (ViT). (N, num_features)"""
        base = getattr(self.model, self.model.base_model_prefix)
        out = base(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)  # (N, C) from (N, C) or (N, C, 1, 1)
        return out.last_hidden_state[:, 0]  # (N, hidden) [CLS] token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W) normalised like the source data
        return self.model(pixel_values=x).logits  # (N, num_classes)


def list_hf_models() -> list[str]:
    """The ``hf:<architecture>`` names (``hf:<owner>/<repo>`` is accepted too)."""
    return [HF_PREFIX + n for n in HF_ARCHITECTURES.names()]


def _transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - transformers is a dependency
        raise ConfigError(f"hf: evaluation models need transformers ({e}); pip install transformers") from None
    return transformers


def _apply_overrides(config: Any, overrides: dict[str, Any], name: str) -> Any:
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ConfigError(f"{name}: {type(config).__name__} has no field {key!r}; check the keyword argument")
        setattr(config, key, value)
    return config


@HF_ARCHITECTURES.register("vit")
def _vit(num_classes: int, in_chans: int, img_size: Tuple[int, int], **overrides: Any) -> nn.Module:
    tf = _transformers()
    config = tf.ViTConfig(
        image_size=img_size[0] if img_size[0] == img_size[1] else list(img_size), num_channels=in_chans,
        patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
        num_labels=num_classes,
    )
    config = _apply_overrides(config, overrides, "hf:vit")
    patch = config.patch_size
    if img_size[0] % patch or img_size[1] % patch:
        warnings.warn(f"hf:vit: image size {img_size[0]}x{img_size[1]} is not a multiple of the patch size "
                      f"{patch}, so the border pixels are ignored; pass patch_size=...", stacklevel=4)
    return tf.ViTForImageClassification(config)


@HF_ARCHITECTURES.register("resnet")
def _resnet(num_classes: int, in_chans: int, img_size: Tuple[int, int], **overrides: Any) -> nn.Module:
    tf = _transformers()
    config = tf.ResNetConfig(
        num_channels=in_chans, embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
        layer_type="basic", hidden_act="relu", downsample_in_first_stage=False, num_labels=num_classes,
    )
    config = _apply_overrides(config, overrides, "hf:resnet")
    model = tf.ResNetForImageClassification(config)
    # small-image stem: 3x3 stride-1 conv (+ transformers' BN and activation), no max-pool
    stem = model.resnet.embedder
    conv = stem.embedder.convolution
    stem.embedder.convolution = nn.Conv2d(in_chans, conv.out_channels, 3, stride=1, padding=1, bias=False)
    stem.pooler = nn.Identity()
    return model


@HF_ARCHITECTURES.register("convnext")
def _convnext(num_classes: int, in_chans: int, img_size: Tuple[int, int], **overrides: Any) -> nn.Module:
    tf = _transformers()
    config = tf.ConvNextConfig(
        num_channels=in_chans, patch_size=2, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 2, 1],
        num_labels=num_classes,
    )
    config = _apply_overrides(config, overrides, "hf:convnext")
    return tf.ConvNextForImageClassification(config)


def _from_hub_config(ref: str, num_classes: int, in_chans: int, img_size: Tuple[int, int],
                     **overrides: Any) -> nn.Module:
    tf = _transformers()
    try:
        config = tf.AutoConfig.from_pretrained(ref)
    except (OSError, ValueError) as e:
        where = "folder" if Path(ref).exists() else "Hub repo"
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        hint = ("HF_HUB_OFFLINE is set, so only the local Hugging Face cache is read: fetch the config once online "
                "(e.g. `hf download REPO config.json`) or give a local folder with a config.json"
                if offline else "check the id, your network (or the local cache when offline) and access rights")
        raise ConfigError(f"eval model 'hf:{ref}': cannot read the config of {where} {ref!r} "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {hint}") from None
    config.num_labels = num_classes  # also resets id2label / label2id
    if hasattr(config, "num_channels"):
        config.num_channels = in_chans
    if hasattr(config, "image_size"):
        config.image_size = img_size[0] if img_size[0] == img_size[1] else list(img_size)
    config = _apply_overrides(config, overrides, f"hf:{ref}")
    try:
        return tf.AutoModelForImageClassification.from_config(config)
    except ValueError as e:
        raise ConfigError(f"eval model 'hf:{ref}': its config ({type(config).__name__}) has no image-classification "
                          f"model in transformers ({str(e).splitlines()[0]}); use an image-classification "
                          f"architecture") from None


def create_hf_model(name: str, num_classes: int, in_chans: int, img_size: Tuple[int, int],
                    **overrides: Any) -> HFImageClassifier:
    """Build ``hf:<architecture>`` or ``hf:<owner>/<repo>`` (config only) for the given images.

    Raises:
        UnknownNameError: ``hf:<name>`` is neither a registered architecture nor a repo id / folder.
        ConfigError: the config cannot be read, or does not describe an image classifier.
    """
    ref = name.strip()[len(HF_PREFIX):].strip()
    if ref.lower() in HF_ARCHITECTURES:
        model = HF_ARCHITECTURES.get(ref.lower())(num_classes, in_chans, tuple(img_size), **overrides)
    elif "/" in ref or Path(ref).is_dir():
        model = _from_hub_config(ref, num_classes, in_chans, tuple(img_size), **overrides)
    else:
        raise UnknownNameError(
            f"unknown eval model {name!r}: transformers architectures are {', '.join(list_hf_models())}, "
            f"or hf:<owner>/<repo> (a Hub config id) or hf:<folder with a config.json>"
        )
    return HFImageClassifier(model, name.strip())
