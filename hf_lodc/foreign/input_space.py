"""What a foreign set's stored values are, and the space its networks train and test in.

Normalisation (``input_normalization``)
---------------------------------------
What the stored values are, so they can be brought to the source's normalisation (per-channel
mean/std of its train split, what the test images get):

* ``source``: already normalised, ``(pixel - mean) / std`` with the source's statistics (hf_lodc's
  ``pixel_values``, the DC/DM/MTT/IDC code bases), or with ``set_mean``/``set_std`` when the
  file used other statistics (they are undone first);
* ``zero-one``: pixel values in [0, 1];
* ``uint8``: pixel values in [0, 255];
* a preset name (``dc-cifar10``, ``mtt-cifar100``, ``mnist``, ...: ``published/normalization.py``):
  normalised with a code base's fixed constants; the set is trained as stored and the test split and
  the random baseline are normalised with the same constants;
* ``zca``: ZCA-whitened [0, 1] pixels (MTT-family ``--zca``); ZCA is fitted on the train split as
  those code bases fit it (``zca_eps``, default 0.1) and whitens the test split and the baseline;
* ``auto`` (default): uint8 dtype or ``Image`` columns -> ``uint8``; values within [0, 1] ->
  ``zero-one``; values within [0, 255] with a maximum above 1.5 and integer-valued -> ``uint8``;
  whitened statistics (per-channel std below 0.6, neighbouring pixels weakly correlated) -> ``zca``;
  anything else (negative values, a mean near 0) -> ``source``. The report states the choice, the
  statistics it was made from and the space the networks were trained and tested in.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..data.types import ImageClassificationData
from ..errors import ConfigError

__all__ = ["NORMALIZATIONS", "infer_normalization", "to_source_normalization", "space_for"]

NORMALIZATIONS = ("auto", "source", "zero-one", "uint8", "zca")  # and the presets of published.normalization


def infer_normalization(x: torch.Tensor) -> tuple[str, str]:
    """(mode, reason) from the stored values: see the module docstring."""
    if x.dtype == torch.uint8:
        return "uint8", "uint8 values"
    xf = x.detach().float()
    lo, hi, mean = float(xf.min()), float(xf.max()), float(xf.mean())
    rng = f"values in [{lo:.3g}, {hi:.3g}], mean {mean:.3g}"
    if lo >= 0.0 and hi <= 1.0:
        return "zero-one", f"inferred from {rng}"
    if lo >= 0.0 and hi <= 255.0 and hi > 1.5 and bool((xf == xf.round()).all()):
        return "uint8", f"inferred from {rng} (integer-valued)"
    from ..published.zca import looks_whitened

    whitened, st = looks_whitened(xf)
    stats = f"per-channel std {st['channel_std']:.3g}, neighbouring-pixel correlation {st['neighbour_corr']:.3g}"
    if whitened:
        return "zca", (f"inferred from {rng}, {stats}: ZCA-whitened statistics (a set normalised per channel has std "
                       f"near 1 and correlation above 0.8); pass input_normalization to override")
    return "source", f"inferred from {rng}, {stats}"


def to_source_normalization(x: torch.Tensor, mode: str, mean: torch.Tensor, std: torch.Tensor,
                            set_mean: Sequence[float] | None = None,
                            set_std: Sequence[float] | None = None) -> torch.Tensor:
    """Stored values ``x`` (N, C, H, W) -> float32 normalised with the source's ``mean``/``std``."""
    xf = x.detach().float()
    m, s = mean.view(1, -1, 1, 1).float(), std.view(1, -1, 1, 1).float()
    if mode == "uint8":
        return (xf / 255.0 - m) / s
    if mode == "zero-one":
        return (xf - m) / s
    if mode == "source":
        if set_mean is None and set_std is None:
            return xf
        sm = torch.tensor(set_mean if set_mean is not None else mean.tolist()).view(1, -1, 1, 1).float()
        ss = torch.tensor(set_std if set_std is not None else std.tolist()).view(1, -1, 1, 1).float()
        return (xf * ss + sm - m) / s  # undo the set's normalisation, apply the source's
    raise ConfigError(f"input_normalization must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}")


def space_for(mode: str, cs_images: torch.Tensor, data: ImageClassificationData, zca_eps: float,
              max_per_class: int | None, notes: list[str]):
    """(images in the evaluation space, the space) for a normalisation mode."""
    from ..published.normalization import NORMALIZATION_PRESETS, InputSpace, mean_std_space, preset_space
    from ..published.zca import fit_zca

    if mode == "zca":
        if cs_images.dtype == torch.uint8:
            raise ConfigError("uint8 images cannot be ZCA-whitened values; read them as 'uint8'")
        zca = fit_zca(data.train.images, zca_eps)
        if max_per_class is not None:
            notes.append(f"ZCA fitted on {zca.rows} train images (max_per_class={max_per_class}); the code bases fit "
                         f"it on the whole train split")
        return cs_images.float(), InputSpace(
            name="zca", real=zca.from_uint8,
            describe={"kind": "zca", "eps": zca.eps, "fitted_on": f"{zca.rows} real train images of "
                      f"{data.info.dataset!r} as [0, 1] pixels", "method": "kornia ZCAWhitening's transform "
                      "(per-feature mean, unbiased covariance, U diag((S + eps)^-1/2) U^T), as MTT's --zca"})
    if mode in NORMALIZATION_PRESETS:
        if cs_images.dtype == torch.uint8:
            raise ConfigError(f"uint8 images cannot be values normalised with preset {mode!r}; read them as 'uint8'")
        return cs_images.float(), preset_space(mode, int(data.image_shape[0]))
    return None, mean_std_space("source", data.mean, data.std,
                                {"kind": "source statistics", "mean": [round(float(v), 4) for v in data.mean],
                                 "std": [round(float(v), 4) for v in data.std],
                                 "measured_on": f"{len(data.train)} real train images of {data.info.dataset!r}"})
