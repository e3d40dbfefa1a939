"""Tiny image-classification datasets written in the Hugging Face Hub repository layout, for tests.

A dataset is a folder with a ``README.md`` (YAML ``configs:`` + ``dataset_info:`` with the features,
ClassLabel names included) and one parquet file per split under ``data/``, exactly what
``datasets.load_dataset(folder)`` and the Hub read. The same folder can be uploaded to the fake Hub
(``hub_server.api.upload_folder``) to test the remote path.

Two levels:

* :func:`write_dataset` writes given columns + features (full control: extra image columns, no label
  column, a binary column, ...);
* :func:`make_dataset` builds the usual shape: ``num_classes`` classes, ``per_class`` images per
  class per split, one PNG mode and size, a label type (``classlabel``/``int``/``str``/``float``),
  optional corrupt rows and rows of another mode/size. Rows interleave the classes (row ``i`` has
  class ``i % K``), so nothing may assume class-contiguous order.

Images are real PNG bytes made by PIL from a seeded generator; corrupt images are real broken PNG
files (:func:`corrupt_png_bytes`): a truncated one whose header still reads, or garbage.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

__all__ = [
    "LABEL_TYPES",
    "IMAGE_MODES",
    "png_bytes",
    "corrupt_png_bytes",
    "label_feature",
    "write_dataset",
    "make_dataset",
    "tiny_imagenet_like",
    "OddRow",
]

LABEL_TYPES = ("classlabel", "int", "str", "float")
IMAGE_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16")


def png_bytes(mode: str = "RGB", size: tuple[int, int] = (8, 8), seed: int = 0, fmt: str = "PNG") -> bytes:
    """Encoded bytes of a random image of PIL ``mode`` and ``size`` (W, H); CMYK is stored as JPEG/TIFF."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").quantize(colors=16)
    elif mode == "1":
        img = Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255, "L").convert("1")
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))  # -> mode I;16
    else:
        bands = len(Image.new(mode, (1, 1)).getbands())
        arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
        img = Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)
    if mode == "CMYK" and fmt == "PNG":
        fmt = "TIFF"  # PNG cannot hold CMYK
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def corrupt_png_bytes(kind: str = "truncated", seed: int = 0, size: tuple[int, int] = (8, 8)) -> bytes:
    """A broken PNG file.

    ``truncated``: a valid PNG cut inside its pixel data (the header, mode and size still read, the
    pixels do not); ``garbage``: the PNG signature followed by noise (cannot even be opened);
    ``empty``: zero bytes.
    """
    good = png_bytes("RGB", size, seed)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "garbage":
        return b"\x89PNG\r\n\x1a\n" + np.random.default_rng(seed).integers(0, 256, 64, dtype=np.uint8).tobytes()
    if kind == "empty":
        return b""
    raise ValueError(f"unknown corruption {kind!r}")


def label_feature(label_type: str, class_names: Sequence[str]):
    import datasets

    if label_type == "classlabel":
        return datasets.ClassLabel(names=list(class_names))
    dtype = {"int": "int64", "str": "string", "float": "float32"}[label_type]
    return datasets.Value(dtype)


def label_value(label_type: str, cls: int, class_names: Sequence[str]) -> Any:
    """The stored label of class ``cls``: its index, name, or the index as a float."""
    return {"classlabel": cls, "int": cls, "str": class_names[cls], "float": float(cls)}[label_type]


def write_dataset(
    root: str | Path,
    splits: Mapping[str, Mapping[str, Sequence[Any]]],
    features,
    *,
    config_name: str = "default",
    license: str | None = "mit",
    card_extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``splits`` (split -> column -> values) with ``features`` in the Hub layout under ``root``.

    Image columns take raw encoded bytes (or ``None``); they are stored as ``{"bytes": ..., "path": None}``.
    """
    import datasets

    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    image_cols = [c for c, f in features.items() if isinstance(f, datasets.Image)]
    split_meta, data_files = [], []
    for split, cols in splits.items():
        cols = {
            c: ([None if b is None else {"bytes": b, "path": None} for b in v] if c in image_cols else list(v))
            for c, v in cols.items()
        }
        ds = datasets.Dataset.from_dict(cols, features=features)
        ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
        split_meta.append({"name": split, "num_bytes": int(ds.data.nbytes), "num_examples": len(ds)})
        data_files.append({"split": split, "path": f"data/{split}-*"})
    meta: dict[str, Any] = {}
    if license:
        meta["license"] = license
    meta["dataset_info"] = {"config_name": config_name, "features": features._to_yaml_list(), "splits": split_meta}
    meta["configs"] = [{"config_name": config_name, "data_files": data_files, "default": True}]
    meta.update(card_extra or {})
    card = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n# test dataset\n\nMade by tests/datasets_factory.py.\n"
    (root / "README.md").write_text(card)
    return root


@dataclass(frozen=True)
class OddRow:
    """A row that differs from the rest: another mode and/or size, corrupt bytes, or no label."""

    mode: str | None = None
    size: tuple[int, int] | None = None  # (W, H)
    corrupt: str | None = None  # "truncated" | "garbage" | "empty"
    unlabelled: bool = False  # label -1 (ClassLabel / int) or null (string / float)


def make_dataset(
    root: str | Path,
    *,
    num_classes: int = 3,
    per_class: Mapping[str, int | Sequence[int]] | None = None,
    size: tuple[int, int] = (8, 8),
    mode: str = "RGB",
    label_type: str = "classlabel",
    class_names: Sequence[str] | None = None,
    odd: Mapping[str, Mapping[int, OddRow]] | None = None,
    image_column: str = "image",
    label_column: str = "label",
    seed: int = 0,
) -> Path:
    """A ``num_classes``-class dataset; ``per_class`` maps split -> images per class (an int, or one
    count per class, 0 allowed). Default: ``{"train": 4, "test": 2}``.

    ``odd[split][row] = OddRow(...)`` replaces that row's image (another mode/size, or corrupt bytes)
    or drops its label.
    """
    import datasets

    per_class = {"train": 4, "test": 2} if per_class is None else per_class
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    features = datasets.Features({image_column: datasets.Image(), label_column: label_feature(label_type, names)})
    splits = {}
    for s_i, (split, counts) in enumerate(per_class.items()):
        counts = [counts] * num_classes if isinstance(counts, int) else list(counts)
        labels = _interleave(counts)
        images, values = [], []
        for row, c in enumerate(labels):
            o = (odd or {}).get(split, {}).get(row) or OddRow()
            row_seed = seed * 1_000_003 + s_i * 10_007 + row
            if o.corrupt:
                images.append(corrupt_png_bytes(o.corrupt, row_seed, o.size or size))
            else:
                images.append(png_bytes(o.mode or mode, o.size or size, row_seed))
            unlabelled = -1 if label_type in ("classlabel", "int") else None
            values.append(unlabelled if o.unlabelled else label_value(label_type, c, names))
        splits[split] = {image_column: images, label_column: values}
    return write_dataset(root, splits, features)


def _interleave(counts: Sequence[int]) -> list[int]:
    """Class ids round-robin: counts (2, 1, 2) -> [0, 1, 2, 0, 2]."""
    out, left = [], list(counts)
    while any(left):
        for c, n in enumerate(left):
            if n:
                out.append(c)
                left[c] -= 1
    return out


def tiny_imagenet_like(root: str | Path, *, per_class: int = 2, eval_per_class: int = 1, num_classes: int = 200,
                       grayscale_rows: Sequence[int] = (3,), seed: int = 0) -> Path:
    """TinyImageNet's shape (zh-plus/tiny-imagenet): 200 WordNet-id classes, 64x64 RGB, splits
    ``train`` and ``valid`` (no ``test``), and a few grayscale images among the RGB ones as in the
    real set."""
    names = [f"n{1440000 + 37 * i:08d}" for i in range(num_classes)]
    odd = {"train": {r: OddRow(mode="L") for r in grayscale_rows}}
    return make_dataset(root, num_classes=num_classes, per_class={"train": per_class, "valid": eval_per_class},
                        size=(64, 64), mode="RGB", class_names=names, odd=odd, seed=seed)
