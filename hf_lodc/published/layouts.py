"""The field's published ``.pt`` layouts that are more than (images, labels): how each is read and decoded.

* DC / DSA / DM ``res_<method>_<dataset>_<model>_<ipc>ipc.pt``: ``{'data': [[images, labels], ...] one
  pair per experiment, 'accs_all_exps': {model: [accuracy, ...]}}``; the accuracies are numpy float64
  scalars, which a plain ``weights_only`` load refuses. :func:`safe_load` allows numpy's scalar, array
  and dtype constructors (data only: no class of the file's choosing is built, nothing else runs) and
  :func:`read_experiments` takes the last experiment's set, as the DC code's final report does.
* HaBa (``distill_fac.py``) saves its bases as ``images_best.pt`` and its hallucinators' state dict as
  ``weights_best.pt`` beside them: read and rendered in ``published/haba.py``.
* IDC ``data.pt``: ``[images in [0, 1], targets]``, each stored image a ``factor`` x ``factor`` mosaic;
  :func:`idc_decode` decodes it as IDC's ``decode_zoom`` does (pad to a multiple of the factor with
  0.5, cut the tiles row by row, bilinear upsampling to full size, labels repeated).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["safe_load", "is_dc_experiments", "read_experiments", "idc_decode"]


def _numpy_globals() -> list:
    """numpy's data constructors under the names files written by numpy 1.x and 2.x use."""
    import numpy as np

    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    out: list = [np.dtype, np.ndarray]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(core.scalar, f"{mod}.scalar"), (core._reconstruct, f"{mod}._reconstruct")]
    out += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType") and n != "StringDType"]
    return out


def safe_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` that also accepts numpy scalars and arrays (never arbitrary
    objects: anything else is refused with the :class:`~hf_lodc.errors.DatasetError` below)."""
    from ..errors import DatasetError

    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise DatasetError(
            f"{str(path)!r} holds Python objects other than tensors, numpy values, lists, tuples and dicts, which "
            f"are refused (unpickling them could run code; {str(e).splitlines()[0][:200]}). Re-save the set as "
            f"torch.save((images, labels), path) or a dict of tensors"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise DatasetError(f"{str(path)!r} is not a readable torch file ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _is_pair(p: Any) -> bool:
    return isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(t, torch.Tensor) for t in p)


def is_dc_experiments(obj: Any) -> bool:
    """The DC/DSA/DM results layout: a dict whose ``'data'`` is a non-empty list of (images, labels) pairs."""
    return (isinstance(obj, dict) and isinstance(obj.get("data"), (list, tuple)) and len(obj["data"]) > 0
            and all(_is_pair(p) for p in obj["data"]))


def _as_float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_experiments(obj: dict) -> tuple[torch.Tensor, torch.Tensor, str, list[str]]:
    """(images, labels, layout words, notes) of the last experiment of a DC/DSA/DM results dict."""
    pairs = obj["data"]
    x, y = pairs[-1]
    notes = []
    accs = obj.get("accs_all_exps")
    if isinstance(accs, dict):
        parts = []
        for model, vals in accs.items():
            vs = [a for a in (_as_float(v) for v in (vals if isinstance(vals, (list, tuple)) else [vals]))
                  if a is not None]
            if vs:
                m = sum(vs) / len(vs)
                parts.append(f"{model}: {len(vs)} value(s), mean {100 * m if m <= 1 else m:.2f} %")
        if parts:
            notes.append("accuracies recorded in the file by its authors (not used): " + "; ".join(parts))
    rest = sorted(str(k) for k in obj if k not in ("data", "accs_all_exps"))
    if rest:
        notes.append(f"ignored keys of the .pt dict: {rest}")
    layout = (f"DC/DSA/DM results {{'data': [[images, labels] x {len(pairs)}], 'accs_all_exps'}}: "
              f"experiment {len(pairs)} of {len(pairs)} (the last)")
    return x, y, layout, notes


def idc_decode(images: torch.Tensor, labels: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """IDC's uniform multi-formation decode: (N, C, H, W) mosaics in [0, 1] -> (N*f^2, C, H, W), labels (N*f^2,).

    Tile-major order as IDC's ``torch.cat`` of the crops: all images' tile (0, 0), then tile (0, 1), ...
    """
    if factor == 1:
        return images, labels
    n, c, h, w = images.shape
    x = images.float()
    rem = h % factor
    if rem > 0:  # IDC pads right and bottom with mid-grey (its images are [0, 1] pixels)
        x = F.pad(x, pad=(0, factor - rem, 0, factor - rem), value=0.5)
    s = math.ceil(h / factor)
    crops = [x[:, :, i * s:(i + 1) * s, j * s:(j + 1) * s] for i in range(factor) for j in range(factor)]
    tiles = torch.cat(crops)  # (f^2 * N, C, s, s)
    out = F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)  # nn.Upsample's default
    return out, labels.repeat(factor * factor)  # (f^2 * N,)

