"""Contrast of a finished synthetic set: ``none`` or ``class_std`` (the default for matching methods).

Why: the matching networks (ConvNet-3 with instance norm) are blind to the scale of an input image:
conv(s x) + b, instance-normalised, equals conv(x) + b instance-normalised for any s > 0 (the bias
cancels in the mean subtraction; only the norm's eps differs). A loss with that invariance has
gradients orthogonal to x, so every SGD step can only *grow* ||x||: after DM the images end with
several times the per-image std of normalised real images. Networks with instance norm do not care;
BatchNorm networks do: their running statistics, collected on the synthetic set, misfit the real test
images and they fall to chance (docs/protocol.md, "Contrast of the finished set", has the figures
before and after). The published pixels and uint8 PNGs also clip far less when the contrast is
the real one.

``class_std`` multiplies every synthetic image by one positive scale (all channels together, so it
stays in the direction the matching network cannot see; of the DSA augmentations only the
brightness shift is not scale-equivariant) chosen so the image's pixel std equals the mean
per-image std of real images of its class. How a scale is applied is the parameterisation's
``rescale_`` (factors: split evenly between A and B, sqrt each, keeping them balanced for further
condensation; IDC pixel units: per tile; units shared by several decoded images: geometric mean).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..data.types import LabeledImages, normalize
from ..registry import Registry
from .base import SyntheticSet

__all__ = ["CONTRASTS", "apply_contrast", "class_image_std", "rescale_images_"]

ContrastFn = Callable[[SyntheticSet, torch.Tensor, LabeledImages, torch.Tensor, torch.Tensor, torch.Generator], None]
CONTRASTS: Registry[ContrastFn] = Registry("contrast")
REFERENCE_IMAGES = 256  # real images per class that set the target std


def rescale_images_(synset: SyntheticSet, scale: torch.Tensor) -> None:
    """Multiply decoded image n of ``synset`` by ``scale[n]`` (> 0) in place, in its own parameterisation
    (``SyntheticSet.rescale_``; exact for pixels, factors and pixel multi-formation)."""
    synset.rescale_(scale)


def class_image_std(train: LabeledImages, classes: torch.Tensor, mean, std, generator: torch.Generator,
                    per_class: int = REFERENCE_IMAGES) -> torch.Tensor:
    """(K,) mean over up to ``per_class`` random real images of class ``classes[k]`` of their pixel std."""
    out = torch.empty(len(classes))
    for k, c in enumerate(classes.tolist()):
        rows = torch.nonzero(train.labels == c).flatten()
        pick = rows[torch.randperm(len(rows), generator=generator)[:per_class]]
        x = normalize(train.images[pick], mean, std)  # (b, C, H, W)
        out[k] = x.flatten(1).std(dim=1).mean()
    return out


@CONTRASTS.register("none")
def _none(synset, classes, train, mean, std, g) -> None:
    return None


@CONTRASTS.register("class_std")
def _class_std(synset: SyntheticSet, classes: torch.Tensor, train: LabeledImages, mean, std,
               g: torch.Generator) -> None:
    target = class_image_std(train, classes, mean, std, g)  # (K,)
    for _ in range(synset.rescale_passes):  # 1 when rescale_ is exact; more where it is approximate (HaBa)
        with torch.no_grad():
            current = synset().detach().flatten(1).std(dim=1)  # (N,) decoded images
        wanted = target[synset.labels.cpu()].to(current)  # (N,) labels are positions in ``classes``
        scale = torch.where(current > 1e-12, wanted / current.clamp_min(1e-12), torch.ones_like(current))
        rescale_images_(synset, scale)


def apply_contrast(name: str, synset: SyntheticSet, classes: torch.Tensor, train: LabeledImages, mean, std,
                   generator: torch.Generator) -> None:
    """Apply contrast ``name`` to ``synset`` (whose label k is global class ``classes[k]``) in place."""
    CONTRASTS.get(name)(synset, classes.long().cpu(), train, mean, std, generator)
