"""What some code bases store beside or inside their sets that the set itself does not say.

MTT and its descendants learn the evaluation lr and save it beside the images (``lr_best.pt``); IDC
stores ``factor x factor`` mosaics that its evaluation decodes. Both change how a set must be trained
to be evaluated as its method meant, so they are read here, before the evaluation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError, DatasetError, DatasetNotFoundError
from .condensed_set import CondensedSet

__all__ = ["resolve_lr", "decode_factor"]


def resolve_lr(source: str, eval_lr: float | None, lr_file: str | None) -> tuple[float | None, str | None]:
    """(lr, where it came from): ``eval_lr``, else ``lr_file``, else an ``lr_best.pt`` beside an MTT-style
    ``images_best.pt`` (MTT, DATM and their descendants learn the evaluation lr and save it there)."""
    import math

    from ..published.layouts import safe_load

    if eval_lr is not None:
        if not (isinstance(eval_lr, (int, float)) and math.isfinite(eval_lr) and eval_lr > 0):
            raise ConfigError(f"eval_lr must be a positive number, got {eval_lr!r}")
        return float(eval_lr), "given"
    p = Path(lr_file) if lr_file else None
    if p is None:
        sib = Path(str(source)).expanduser().with_name("lr_best.pt")
        if Path(str(source)).name == "images_best.pt" and sib.is_file():
            p = sib
    if p is None:
        return None, None
    if not p.is_file():
        raise DatasetNotFoundError(f"lr file {str(p)!r} not found")
    v = safe_load(p)
    try:
        lr = float(v.detach().reshape(-1)[0]) if isinstance(v, torch.Tensor) and v.numel() == 1 else float(v)
    except (TypeError, ValueError, AttributeError):
        raise DatasetError(f"{str(p)!r} should hold one learned lr (a scalar), got {type(v).__name__}") from None
    if not (math.isfinite(lr) and lr > 0):
        raise DatasetError(f"{str(p)!r}: the learned lr {lr} is not a positive number")
    return lr, f"learned, read from {p.name}" + ("" if lr_file else " beside images_best.pt")


def decode_factor(cs: CondensedSet, source: str, factor: int | None) -> str | None:
    """Decode IDC mosaics in place when ``factor`` > 1; return a note (also the plain statement that a file
    that looks like IDC's ``data.pt`` was read undecoded)."""
    from ..published.layouts import idc_decode

    looks_idc = (Path(str(source)).name == "data.pt" and cs.layout.startswith("list (images, labels)")
                 and cs.images.is_floating_point() and float(cs.images.min()) >= -0.05
                 and float(cs.images.max()) <= 1.05)
    if factor is None or factor == 1:
        if looks_idc and factor is None:
            return ("this looks like IDC's data.pt ([images in [0, 1], targets]); IDC's runs store factor x factor "
                    "mosaics (factor 2 for CIFAR, SVHN, MNIST): it was evaluated as stored, one image per entry; "
                    "pass factor=2 (--factor 2) to decode it as IDC does")
        return None
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"factor must be a positive integer, got {factor!r}")
    n, _, h, w = cs.images.shape
    if factor > min(h, w):
        raise ConfigError(f"factor {factor} is larger than the {h}x{w} images")
    x = cs.images.float()
    if h % factor and cs.images.dtype != torch.uint8 and not (float(x.min()) >= 0.0 and float(x.max()) <= 1.0):
        raise ConfigError(f"decoding {h}x{w} images with factor {factor} pads them with IDC's mid-grey 0.5, which "
                          f"needs pixels in [0, 1]; these are in [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    u8 = cs.images.dtype == torch.uint8
    cs.images, labels = idc_decode(x / 255.0 if u8 else x, cs.labels, factor)
    if u8:  # keep the stored kind, so the normalisation reads it as it would the stored images
        cs.images = (cs.images * 255.0).round().clamp(0, 255).to(torch.uint8)
    cs.labels = labels
    if cs.soft is not None:
        cs.soft.values = cs.soft.values.repeat(factor * factor, 1)
    return (f"decoded {n} stored images into {len(cs.labels)} with factor {factor} as IDC's decode_zoom does "
            f"(tiles of each stored image upsampled bilinearly to {h}x{w}); storage counts the {n} stored images")
