"""Reading a ``datasets``-loadable condensed set (Hub repo or local folder) into a :class:`CondensedSet`.

Which columns hold the images, the labels and the soft labels is found from the features (an ``Image``,
``Array3D`` or nested-list column; a ``ClassLabel`` or integer column) or given; see ``load``'s docstring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ColumnError, DatasetError, DatasetNotFoundError, SplitError
from .condensed_set import CondensedSet

__all__ = ["read_dataset"]


def _load_split(source: str, config_name: str | None, revision: str | None, split: str):
    import datasets

    from ..data.sources import resolve_source

    path, _hub_id = resolve_source(source)
    kwargs: dict[str, Any] = {}
    if config_name:
        kwargs["name"] = config_name
    if revision and not Path(path).exists():
        kwargs["revision"] = revision
    try:
        dd = datasets.load_dataset(path, **kwargs)
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"condensed set {source!r} not found ({str(e).splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001 - datasets / hub raise many types
        raise DatasetError(f"condensed set {source!r} could not be loaded ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if split not in dd:
        raise SplitError(f"condensed set {source!r} has no split {split!r} (splits: {list(dd)}); pass split=")
    return dd[split]


def _image_candidates(features) -> list[str]:
    import datasets

    seq = tuple(t for t in (getattr(datasets, n, None) for n in ("Sequence", "List", "LargeList"))
                if isinstance(t, type)) + (list,)
    # Image / ArrayND columns, or nested lists of numbers (a tensor stored as lists)
    return [n for n, f in features.items()
            if isinstance(f, (datasets.Image, datasets.Array3D, datasets.Array2D)) or isinstance(f, seq)]


def _label_candidates(features) -> list[str]:
    import datasets

    return [n for n, f in features.items() if isinstance(f, datasets.ClassLabel)
            or (isinstance(f, datasets.Value) and f.dtype.startswith(("int", "uint")))]


def _only(cands: list[str], what: str, option: str, source: str, columns: list[str]) -> str:
    if len(cands) == 1:
        return cands[0]
    raise ColumnError(f"condensed set {source!r}: {'no' if not cands else 'several'} {what} column candidates "
                      f"{cands} among {columns}; pass {option}")


def read_dataset(source: str, config_name: str | None, revision: str | None, split: str,
                 image_column: str | None, label_column: str | None, channels: int,
                 soft_label_column: str | None = None) -> CondensedSet:
    import datasets
    import numpy as np

    ds = _load_split(source, config_name, revision, split)
    cols = list(ds.features)
    if soft_label_column is not None and soft_label_column not in ds.features:
        raise ColumnError(f"condensed set {source!r} has no column {soft_label_column!r} (soft_label_column); "
                          f"columns: {cols}")
    img_col = image_column or _only([c for c in _image_candidates(ds.features) if c != soft_label_column], "image",
                                    "image_column / --image-column", source, cols)
    lab_col = label_column or _only(_label_candidates(ds.features), "label", "label_column / --label-column",
                                    source, cols)
    for c, opt in ((img_col, "image_column"), (lab_col, "label_column")):
        if c not in ds.features:
            raise ColumnError(f"condensed set {source!r} has no column {c!r} ({opt}); columns: {cols}")
    feat = ds.features[img_col]
    if isinstance(feat, datasets.Image):
        mode = "L" if channels == 1 else "RGB"
        arrs = [np.asarray(im.convert(mode)) for im in ds.with_format(None)[img_col]]
        x = torch.from_numpy(np.stack(arrs))  # (N, H, W) or (N, H, W, C) uint8
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
        layout, dtype, itemsize = f"columns {img_col!r} (Image, decoded as {mode}) / {lab_col!r}", "uint8 (Image)", 1
    else:
        x = torch.as_tensor(np.asarray(ds.with_format("numpy")[img_col]))
        if x.dtype == torch.float64 and getattr(feat, "dtype", "") != "float64":
            x = x.float()
        layout = f"columns {img_col!r} ({type(feat).__name__} {getattr(feat, 'dtype', '')}) / {lab_col!r}"
        dtype, itemsize = str(x.dtype).replace("torch.", ""), x.element_size()
        if isinstance(feat, datasets.Array3D) and feat.dtype:
            dtype = feat.dtype
            itemsize = np.dtype(feat.dtype).itemsize
    lab_feat = ds.features[lab_col]
    names = list(lab_feat.names) if isinstance(lab_feat, datasets.ClassLabel) else None
    y = torch.as_tensor(np.asarray(ds.with_format(None)[lab_col], dtype=np.int64))
    soft = None
    if soft_label_column is not None:
        from ..published.soft_labels import as_soft_labels

        v = torch.as_tensor(np.asarray(ds.with_format("numpy")[soft_label_column]))
        if v.dim() != 2 or not v.is_floating_point() or not bool(torch.isfinite(v).all()):
            raise ColumnError(f"condensed set {source!r}: soft-label column {soft_label_column!r} must hold one finite "
                              f"float vector per row (N, K), got {tuple(v.shape)} {v.dtype}")
        soft = as_soft_labels(v)
        layout += f" + soft labels {soft_label_column!r} ({soft.kind})"
    return CondensedSet(images=x, labels=y, kind="dataset", layout=layout, stored_dtype=dtype, itemsize=itemsize,
                        class_names=names, soft=soft)
