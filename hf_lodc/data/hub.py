"""Hub id or local repo path -> uint8 image tensors, integer labels and class names.

``load_image_classification(...)`` is the one entry point. It

1. resolves the source: a local directory, a Hub id served from a local mirror
   (``$HF_LODC_LOCAL_HUB/datasets/<owner>/<name>``, how the tests run offline), or the Hub itself;
2. finds the image column (``datasets.Image``) and the label column (``ClassLabel``; int or string
   labels are accepted and turned into a class list, floats refused);
3. decodes every image once into one ``(N, C, H, W)`` uint8 tensor (mixed modes/sizes are converted
   to the dominant ones, corrupt rows reported by split and row index);
4. records the per-channel mean/std of the train split for normalisation.

The decoded tensors are cached on disk keyed by the dataset fingerprint, so the second load of
CIFAR-10 takes a second, not a minute.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import (
    ClassSizeError,
    ColumnError,
    ConfigError,
    DatasetError,
    DatasetNotFoundError,
    ImageDecodeError,
    SplitError,
)

__all__ = [
    "LabeledImages",
    "SourceInfo",
    "ImageClassificationData",
    "load_image_classification",
    "resolve_source",
    "default_cache_dir",
]

_MODE_CHANNELS = {"L": 1, "RGB": 3}
_LABEL_NAME_HINTS = ("label", "labels", "fine_label", "class", "target", "y")


@dataclass
class LabeledImages:
    """Images as one uint8 tensor plus integer labels (class-contiguous order is NOT assumed)."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return int(self.labels.numel())

    def normalized(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """Float images normalised with per-channel ``mean``/``std`` (given on the 0..1 scale)."""
        return normalize(self.images, mean, std)

    def subset(self, index: torch.Tensor) -> "LabeledImages":
        return LabeledImages(self.images[index], self.labels[index])


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 -> float32 normalised with per-channel mean/std on the 0..1 scale."""
    x = images_u8.float().div_(255.0)  # (N, C, H, W)
    return (x - mean.view(1, -1, 1, 1).to(x)) / std.view(1, -1, 1, 1).to(x)


def denormalize_to_uint8(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`, clamped and rounded to uint8."""
    y = x.detach().float() * std.view(1, -1, 1, 1).to(x.device) + mean.view(1, -1, 1, 1).to(x.device)
    return (y.clamp(0, 1) * 255.0).round().to(torch.uint8)


@dataclass
class SourceInfo:
    """Everything needed to say where the data came from and how it was read (saved in artefacts)."""

    dataset: str  # what the user passed (Hub id or path)
    resolved_path: str | None  # local directory actually read, None when loaded from the Hub
    hub_id: str | None  # Hub id, when known
    config_name: str | None
    revision: str | None
    revision_sha: str | None
    train_split: str
    eval_split: str | None
    image_column: str
    label_column: str
    class_names: list[str]
    image_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]
    std: list[float]
    num_train: int
    num_eval: int
    license: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceInfo":
        d = dict(d)
        d["image_shape"] = tuple(d["image_shape"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class ImageClassificationData:
    train: LabeledImages
    test: LabeledImages | None
    info: SourceInfo

    @property
    def mean(self) -> torch.Tensor:
        return torch.tensor(self.info.mean)

    @property
    def std(self) -> torch.Tensor:
        return torch.tensor(self.info.std)

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.info.image_shape


# ---------------------------------------------------------------------------------------------
# resolving the source


def default_cache_dir() -> Path:
    root = os.environ.get("HF_LODC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hf_lodc"
    )
    return Path(root)


def resolve_source(dataset: str) -> tuple[str, str | None]:
    """Return (what to give ``datasets.load_dataset``, Hub id or None).

    A path that exists is used as is. A Hub id ``owner/name`` is looked up first in the local
    mirror named by ``$HF_LODC_LOCAL_HUB`` (a folder laid out as ``datasets/<owner>/<name>``).
    """
    if not dataset or not isinstance(dataset, str):
        raise ConfigError(f"dataset must be a Hub id like 'uoft-cs/cifar10' or a local path, got {dataset!r}")
    p = Path(dataset).expanduser()
    if p.exists():
        if not p.is_dir():
            raise DatasetNotFoundError(f"dataset path {dataset!r} is a file; pass the repository folder")
        return str(p.resolve()), None
    mirror = os.environ.get("HF_LODC_LOCAL_HUB")
    if mirror:
        cand = Path(mirror).expanduser() / "datasets" / dataset
        if cand.is_dir():
            return str(cand.resolve()), dataset
    looks_local = dataset.startswith((".", "/", "~")) or dataset.count("/") > 1
    if looks_local:
        raise DatasetNotFoundError(
            f"dataset {dataset!r} not found: no such directory (cwd: {os.getcwd()}). "
            "Pass an existing repository folder or a Hub id 'owner/name'."
        )
    return dataset, dataset


def _load_dataset_dict(source: str, hub_id: str | None, dataset: str, config_name, revision):
    import datasets

    kwargs: dict[str, Any] = {}
    if config_name:
        kwargs["name"] = config_name
    if revision and hub_id is not None and not Path(source).exists():
        kwargs["revision"] = revision
    try:
        dd = datasets.load_dataset(source, **kwargs)
    except FileNotFoundError as e:
        raise DatasetNotFoundError(
            f"dataset {dataset!r} could not be found (Hub id or local path): {e}. "
            "Check the spelling, your network/HF_ENDPOINT, or pass a local folder."
        ) from None
    except ValueError as e:
        msg = str(e)
        if "config" in msg.lower() or "BuilderConfig" in msg:
            raise DatasetError(f"dataset {dataset!r}: {msg}") from None
        raise DatasetError(f"dataset {dataset!r} could not be loaded: {msg}") from None
    except Exception as e:  # datasets / hub raise many types; never leak a deep traceback
        name = type(e).__name__
        if "Revision" in name or "revision" in str(e).lower():
            raise DatasetNotFoundError(
                f"dataset {dataset!r}: revision {revision!r} does not exist ({name}). "
                "Use a branch, tag or commit sha of that repo."
            ) from None
        if "NotFound" in name or "404" in str(e) or "doesn't exist" in str(e):
            raise DatasetNotFoundError(f"dataset {dataset!r} not found on the Hub or locally ({name}: {e})") from None
        raise DatasetError(f"dataset {dataset!r} could not be loaded ({name}: {e})") from None
    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    return dd


def _hub_revision_sha(hub_id: str | None, revision: str | None) -> str | None:
    if hub_id is None:
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(hub_id, revision=revision).sha
    except Exception:
        return None


def _card_license(source: str) -> str | None:
    card = Path(source) / "README.md"
    if not card.is_file():
        return None
    try:
        from huggingface_hub import DatasetCard

        lic = DatasetCard.load(card).data.get("license")
    except Exception:
        return None
    if isinstance(lic, list):
        return lic[0] if lic else None
    return lic


# ---------------------------------------------------------------------------------------------
# columns


def detect_columns(features, dataset: str, image_column: str | None, label_column: str | None) -> tuple[str, str]:
    import datasets

    cols = list(features)
    if image_column is not None:
        if image_column not in features:
            raise ColumnError(f"dataset {dataset!r} has no column {image_column!r}; columns: {cols}")
        if not isinstance(features[image_column], datasets.Image):
            raise ColumnError(
                f"dataset {dataset!r}: column {image_column!r} is {type(features[image_column]).__name__}, "
                "not an Image column"
            )
    else:
        cands = [c for c, f in features.items() if isinstance(f, datasets.Image)]
        if not cands:
            raise ColumnError(
                f"dataset {dataset!r} has no image column (datasets.Image feature); columns: {cols}"
            )
        if len(cands) > 1:
            raise ColumnError(
                f"dataset {dataset!r} has several image columns {cands}; choose one with image_column=..."
            )
        image_column = cands[0]
    if label_column is not None:
        if label_column not in features:
            raise ColumnError(f"dataset {dataset!r} has no column {label_column!r}; columns: {cols}")
    else:
        cands = [c for c, f in features.items() if isinstance(f, datasets.ClassLabel)]
        if len(cands) > 1:
            raise ColumnError(
                f"dataset {dataset!r} has several label columns {cands}; choose one with label_column=..."
            )
        if not cands:
            cands = [c for c in _LABEL_NAME_HINTS if c in features]
        if not cands:
            raise ColumnError(
                f"dataset {dataset!r} has no label column (no ClassLabel feature and none of "
                f"{list(_LABEL_NAME_HINTS)}); columns: {cols}. Pass label_column=..."
            )
        label_column = cands[0]
    return image_column, label_column


def _label_vocabulary(features, splits: dict, dataset: str, label_column: str) -> tuple[list[str], dict | None, str | None]:
    """Return (class_names, value->index map or None for ClassLabel, note)."""
    import datasets

    feat = features[label_column]
    if isinstance(feat, datasets.ClassLabel):
        return list(feat.names), None, None
    if not isinstance(feat, datasets.Value):
        raise ColumnError(
            f"dataset {dataset!r}: label column {label_column!r} has type {type(feat).__name__}; "
            "expected ClassLabel, int or string"
        )
    dtype = feat.dtype
    if dtype.startswith("float") or dtype in ("double", "bool"):
        raise ColumnError(
            f"dataset {dataset!r}: label column {label_column!r} holds {dtype} values; "
            "class labels must be ClassLabel, int or string"
        )
    values: set = set()
    for ds in splits.values():
        values.update(v for v in ds.unique(label_column) if v is not None)
    if not values:
        raise ColumnError(f"dataset {dataset!r}: label column {label_column!r} is empty")
    ordered = sorted(values)
    names = [str(v) for v in ordered]
    note = (
        f"label column {label_column!r} is {dtype}, not ClassLabel: built {len(names)} classes "
        f"from its sorted unique values"
    )
    warnings.warn(note, stacklevel=3)
    return names, {v: i for i, v in enumerate(ordered)}, note


# ---------------------------------------------------------------------------------------------
# decoding


def _open(entry: dict | Any, split: str, row: int, dataset: str):
    from PIL import Image as PILImage

    try:
        if isinstance(entry, dict):
            if entry.get("bytes") is not None:
                img = PILImage.open(io.BytesIO(entry["bytes"]))
            elif entry.get("path"):
                img = PILImage.open(entry["path"])
            else:
                raise ValueError("empty image entry")
        else:
            img = entry
        return img
    except Exception as e:
        raise ImageDecodeError(
            f"dataset {dataset!r}, split {split!r}, row {row}: image cannot be decoded ({type(e).__name__}: {e})"
        ) from None


def _scan(ds, image_column: str, split: str, dataset: str, skip_corrupt: bool):
    """First pass: header-only reads -> (mode, size) counts and corrupt rows."""
    import datasets

    raw = ds.cast_column(image_column, datasets.Image(decode=False)).select_columns([image_column])
    modes: Counter = Counter()
    sizes: Counter = Counter()
    bad: list[int] = []
    row = 0
    for batch in raw.iter(batch_size=2048):
        for entry in batch[image_column]:
            try:
                img = _open(entry, split, row, dataset)
                modes[img.mode] += 1
                sizes[img.size] += 1
            except ImageDecodeError:
                if not skip_corrupt:
                    raise
                bad.append(row)
            row += 1
    return raw, modes, sizes, bad


def _decode_split(
    ds, image_column: str, split: str, dataset: str, mode: str, size: tuple[int, int], skip_corrupt: bool, bad: set
) -> tuple[np.ndarray, int]:
    """Second pass: decode every image to ``mode`` and ``size`` (W, H) -> (N, H, W[, C]) uint8."""
    from PIL import Image as PILImage

    n = len(ds) - len(bad)
    channels = _MODE_CHANNELS[mode]
    out = np.empty((n, size[1], size[0], channels), dtype=np.uint8)
    converted = 0
    row, k = 0, 0
    for batch in ds.iter(batch_size=2048):
        for entry in batch[image_column]:
            if row in bad:
                row += 1
                continue
            img = _open(entry, split, row, dataset)
            try:
                if img.mode != mode or img.size != size:
                    converted += 1
                    if img.mode == "P" and "transparency" in img.info:
                        img = img.convert("RGBA")
                    if img.mode in ("RGBA", "LA") and mode == "RGB":
                        bg = PILImage.new("RGB", img.size, (0, 0, 0))
                        bg.paste(img, mask=img.getchannel("A"))
                        img = bg
                    img = img.convert(mode)
                    if img.size != size:
                        img = img.resize(size, PILImage.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
            except Exception as e:
                if skip_corrupt:
                    bad.add(row)
                    row += 1
                    continue
                raise ImageDecodeError(
                    f"dataset {dataset!r}, split {split!r}, row {row}: image cannot be decoded "
                    f"({type(e).__name__}: {e}). Pass skip_corrupt=True to drop such rows."
                ) from None
            out[k] = arr.reshape(size[1], size[0], channels)
            k += 1
            row += 1
    return out[:k], converted


def _dominant(counter: Counter):
    return counter.most_common(1)[0][0]


def _target_mode(modes: Counter) -> str:
    dom = _dominant(modes)
    return "L" if dom in ("L", "1", "I", "I;16", "F") else "RGB"


# ---------------------------------------------------------------------------------------------
# main entry point


def load_image_classification(
    dataset: str,
    *,
    config_name: str | None = None,
    revision: str | None = None,
    train_split: str = "train",
    eval_split: str | None = "test",
    image_column: str | None = None,
    label_column: str | None = None,
    holdout_fraction: float | None = None,
    holdout_seed: int = 0,
    image_size: int | tuple[int, int] | None = None,
    image_mode: str | None = None,
    mixed: str = "convert",
    skip_corrupt: bool = False,
    max_per_class: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> ImageClassificationData:
    """Load an image-classification dataset as tensors.

    Args:
        dataset: Hub id (``"uoft-cs/cifar10"``) or local repository folder.
        eval_split: split to test on; ``None`` for no test split. If it is missing, pass
            ``holdout_fraction`` to carve a class-stratified one off the train split (seeded).
        image_size / image_mode: declared size (int or (H, W)) and mode (``"L"``/``"RGB"``); by
            default the dominant ones. ``mixed="convert"`` converts other images (with a warning
            that says how many), ``mixed="error"`` refuses with the counts.
        skip_corrupt: drop undecodable rows (counted in ``info.notes``) instead of failing.
        max_per_class: keep at most this many train images per class (first ones; for tests).
    """
    if mixed not in ("convert", "error"):
        raise ConfigError(f"mixed must be 'convert' or 'error', got {mixed!r}")
    if image_mode is not None and image_mode not in _MODE_CHANNELS:
        raise ConfigError(f"image_mode must be one of {sorted(_MODE_CHANNELS)}, got {image_mode!r}")
    if holdout_fraction is not None and not (0.0 < holdout_fraction < 1.0):
        raise ConfigError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")

    source, hub_id = resolve_source(dataset)
    dd = _load_dataset_dict(source, hub_id, dataset, config_name, revision)
    available = list(dd.keys())
    if train_split not in dd:
        raise SplitError(f"dataset {dataset!r} has no split {train_split!r}; splits: {available}")
    use_holdout = False
    if eval_split is not None and eval_split not in dd:
        if holdout_fraction is None:
            raise SplitError(
                f"dataset {dataset!r} has no split {eval_split!r} to evaluate on; splits: {available}. "
                f"Choose one with eval_split=..., or carve one off the train split with holdout_fraction=0.1"
            )
        use_holdout = True
    elif holdout_fraction is not None and eval_split is None:
        use_holdout = True

    splits = {train_split: dd[train_split]}
    if eval_split is not None and not use_holdout:
        splits[eval_split] = dd[eval_split]
    features = dd[train_split].features
    image_column, label_column = detect_columns(features, dataset, image_column, label_column)
    for name, ds in splits.items():
        if image_column not in ds.features or label_column not in ds.features:
            raise ColumnError(
                f"dataset {dataset!r}, split {name!r} lacks column {image_column!r} or {label_column!r}; "
                f"columns: {list(ds.features)}"
            )
    class_names, value_map, label_note = _label_vocabulary(features, splits, dataset, label_column)
    notes = [label_note] if label_note else []

    sig = _cache_key(
        dataset, config_name, revision, splits, image_column, label_column, image_size, image_mode, mixed,
        skip_corrupt, max_per_class,
    )
    cache_file = Path(cache_dir or default_cache_dir()) / "tensors" / f"{sig}.pt"
    cached = _read_cache(cache_file) if cache and sig else None
    if cached is not None:
        tensors, meta = cached
        notes.extend(meta["notes"])
        target_mode, target_size = meta["mode"], tuple(meta["size"])
    else:
        tensors, target_mode, target_size, dec_notes = _decode_all(
            splits, dataset, image_column, label_column, value_map, image_size, image_mode, mixed, skip_corrupt,
            max_per_class, train_split, len(class_names),
        )
        notes.extend(dec_notes)
        if cache and sig:
            _write_cache(cache_file, tensors, {"notes": dec_notes, "mode": target_mode, "size": list(target_size)})

    train = tensors[train_split]
    _check_labels(train.labels, len(class_names), dataset, train_split)
    if use_holdout:
        train, test = _holdout(train, holdout_fraction, holdout_seed, len(class_names))
        eval_name = f"{train_split}[holdout {holdout_fraction:g}, seed {holdout_seed}]"
        notes.append(f"evaluation split carved off {train_split!r}: {len(test)} rows, seed {holdout_seed}")
    elif eval_split is not None:
        test = tensors[eval_split]
        _check_labels(test.labels, len(class_names), dataset, eval_split)
        eval_name = eval_split
    else:
        test, eval_name = None, None

    counts = torch.bincount(train.labels, minlength=len(class_names))
    empty = [class_names[i] for i in torch.nonzero(counts == 0).flatten().tolist()]
    if empty:
        raise ClassSizeError(
            f"dataset {dataset!r}, split {train_split!r}: classes {empty[:10]}"
            f"{' ...' if len(empty) > 10 else ''} have no images; drop them from the label set or pick another split"
        )

    x = train.images.float().div_(255.0)  # (N, C, H, W)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    del x
    info = SourceInfo(
        dataset=dataset,
        resolved_path=source if Path(source).exists() else None,
        hub_id=hub_id,
        config_name=config_name,
        revision=revision,
        revision_sha=_hub_revision_sha(hub_id, revision) if not Path(source).exists() else None,
        train_split=train_split,
        eval_split=eval_name,
        image_column=image_column,
        label_column=label_column,
        class_names=class_names,
        image_shape=tuple(train.images.shape[1:]),
        mean=[round(float(v), 6) for v in mean],
        std=[round(float(v), 6) for v in std],
        num_train=len(train),
        num_eval=len(test) if test is not None else 0,
        license=_card_license(source) if Path(source).exists() else None,
        notes=notes,
    )
    return ImageClassificationData(train=train, test=test, info=info)


def _check_labels(labels: torch.Tensor, num_classes: int, dataset: str, split: str) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ColumnError(
            f"dataset {dataset!r}, split {split!r}: {bad.numel()} labels outside 0..{num_classes - 1} "
            f"(e.g. {int(bad[0])}); missing labels (-1) must be removed first"
        )


def _decode_all(
    splits, dataset, image_column, label_column, value_map, image_size, image_mode, mixed, skip_corrupt,
    max_per_class, train_split, num_classes,
):
    notes: list[str] = []
    scans = {}
    modes: Counter = Counter()
    sizes: Counter = Counter()
    for name, ds in splits.items():
        if max_per_class is not None and name == train_split:
            ds = _first_per_class(ds, label_column, value_map, max_per_class, num_classes)
            splits = {**splits, name: ds}
        raw, m, s, bad = _scan(ds, image_column, name, dataset, skip_corrupt)
        scans[name] = (ds, raw, set(bad))
        modes.update(m)
        sizes.update(s)
        if bad:
            msg = f"split {name!r}: skipped {len(bad)} corrupt rows (first: {bad[:5]})"
            warnings.warn(f"dataset {dataset!r}: {msg}", stacklevel=3)
            notes.append(msg)
    if not modes:
        raise DatasetError(f"dataset {dataset!r} has no decodable images")
    target_mode = image_mode or _target_mode(modes)
    if image_size is None:
        target_size = _dominant(sizes)  # (W, H)
    else:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        target_size = (int(w), int(h))
    off_mode = sum(c for m, c in modes.items() if m != target_mode)
    off_size = sum(c for s, c in sizes.items() if s != target_size)
    if off_mode or off_size:
        msg = (
            f"{off_mode} images not in mode {target_mode} (modes: {dict(modes)}), {off_size} not of size "
            f"{target_size[0]}x{target_size[1]} (sizes: {dict((f'{a}x{b}', c) for (a, b), c in sizes.items())})"
        )
        if mixed == "error":
            raise DatasetError(f"dataset {dataset!r}: {msg}; pass mixed='convert' to convert them")
        warnings.warn(f"dataset {dataset!r}: converted {msg}", stacklevel=3)
        notes.append(f"converted {msg}")
    tensors = {}
    for name, (ds, raw, bad) in scans.items():
        arr, _ = _decode_split(raw, image_column, name, dataset, target_mode, target_size, skip_corrupt, bad)
        keep = np.ones(len(ds), dtype=bool)
        if bad:
            keep[sorted(bad)] = False
        lab = ds.with_format("numpy")[label_column] if value_map is None else None
        if value_map is None:
            labels = np.asarray(lab, dtype=np.int64)[keep]
        else:
            vals = ds[label_column]
            labels = np.asarray([value_map.get(v, -1) for v in vals], dtype=np.int64)[keep]
        images = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)
        tensors[name] = LabeledImages(images, torch.from_numpy(labels))
    return tensors, target_mode, target_size, notes


def _first_per_class(ds, label_column, value_map, k, num_classes):
    labels = ds[label_column]
    if value_map is not None:
        labels = [value_map.get(v, -1) for v in labels]
    labels = np.asarray(labels)
    keep = []
    for c in range(num_classes):  # runs once at load time, not on the hot path
        keep.extend(np.nonzero(labels == c)[0][:k].tolist())
    return ds.select(sorted(keep))


def _holdout(train: LabeledImages, fraction: float, seed: int, num_classes: int):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train), generator=g)
    labels = train.labels[perm]
    # rank of each sample within its class in the permuted order
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order)) - starts[labels[order]]
    n_hold = (counts.float() * fraction).floor().clamp_min(1).long()
    is_hold = rank < n_hold[labels]
    return train.subset(perm[~is_hold]), train.subset(perm[is_hold])


def _cache_key(dataset, config_name, revision, splits, *rest) -> str | None:
    try:
        fps = [(name, ds._fingerprint, len(ds)) for name, ds in splits.items()]
    except AttributeError:
        return None
    blob = json.dumps([dataset, config_name, revision, fps, [repr(r) for r in rest], 1], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _read_cache(path: Path):
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        tensors = {k: LabeledImages(v["images"], v["labels"]) for k, v in blob["splits"].items()}
        return tensors, json.loads(blob["meta"])
    except Exception:
        return None


def _write_cache(path: Path, tensors: dict, meta: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(
            {"splits": {k: {"images": v.images, "labels": v.labels} for k, v in tensors.items()},
             "meta": json.dumps(meta)},
            tmp,
        )
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is not an error
