"""Hub id or local repo path -> uint8 image tensors, integer labels and class names.

``load_image_classification(...)`` is the one entry point. It

1. resolves the source: a local directory, a Hub id served from a local mirror
   (``$HF_LODC_LOCAL_HUB/datasets/<owner>/<name>``, how the tests run offline), or the Hub itself,
   and turns every way ``datasets`` can fail into one of hf_lodc's errors;
2. picks the train and evaluation splits (a missing evaluation split can be carved off the train
   split with a fixed seed);
3. finds the image and label columns (``columns.py``);
4. decodes every image once into one ``(N, C, H, W)`` uint8 tensor (``decode.py``: mixed modes and
   sizes converted to the dominant / declared ones or refused, corrupt rows reported by split and
   row index or skipped);
5. drops unlabelled rows (``-1``), refuses (or drops) classes without train images, and records the
   per-channel mean/std of the train split for normalisation.

The decoded tensors are cached on disk keyed by the dataset fingerprint, so the second load of
CIFAR-10 takes a second, not a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import (
    ClassSizeError,
    ColumnError,
    ConfigError,
    DatasetError,
    DatasetNotFoundError,
    HfLodcError,
    LocalHubNotFoundError,
    LocalPathNotFoundError,
    SplitError,
)
from ..atomic import write_atomically
from .types import ImageClassificationData, LabeledImages, SourceInfo, normalize  # noqa: F401  (re-exported)
from .columns import LabelVocabulary, detect_columns, label_vocabulary
from .decode import TARGET_MODES, decode_split, scan_split, target_mode_of

__all__ = [
    "LabeledImages",
    "SourceInfo",
    "ImageClassificationData",
    "load_image_classification",
    "resolve_source",
    "resolve_dataset_arg",
    "looks_like_path",
    "missing_path_error",
    "local_mirror",
    "default_cache_dir",
    "detect_columns",
]



# ---------------------------------------------------------------------------------------------
# resolving the source


def default_cache_dir() -> Path:
    root = os.environ.get("HF_LODC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hf_lodc"
    )
    return Path(root)


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def looks_like_path(dataset: str) -> bool:
    """``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``: a local path, never a Hub id (``owner/name``)."""
    return dataset.startswith((".", "/", "~", os.sep)) or dataset.count("/") > 1 or "\\" in dataset


def missing_path_error(dataset: str) -> HfLodcError:
    """The error for a local path that does not exist (resolved path, nearest existing folder, cwd)."""
    p = Path(os.path.abspath(os.path.expanduser(dataset)))
    near = _nearest_existing(p.parent)
    if near == p.parent:
        where = f"{str(near)!r} exists but has no entry {p.name!r}"
    else:
        where = f"the nearest existing folder is {str(near)!r}"
    return LocalPathNotFoundError(
        f"dataset {dataset!r} not found: no such directory {str(p)!r} ({where}; cwd: {os.getcwd()}). Pass an "
        "existing dataset folder (was it moved or renamed?)"
    )


def local_mirror() -> Path | None:
    """The folder ``$HF_LODC_LOCAL_HUB`` names (``~`` expanded), None when unset; refused if missing."""
    mirror = os.environ.get("HF_LODC_LOCAL_HUB")
    if not mirror:
        return None
    root = Path(os.path.abspath(os.path.expanduser(mirror)))
    if not root.is_dir():
        raise LocalHubNotFoundError(
            f"HF_LODC_LOCAL_HUB={mirror!r} is not a folder ({str(root)!r} does not exist); point it at the local "
            "mirror (the folder holding datasets/<owner>/<name>) or unset it to use the Hub"
        )
    return root


def resolve_dataset_arg(dataset: str | os.PathLike) -> str:
    """What to record for ``dataset``: the absolute folder for a local path (``~`` expanded, relative
    paths against the current directory), the Hub id unchanged. Call it once where the option is read
    so the artefact evaluates from any directory."""
    text = os.fspath(dataset) if isinstance(dataset, os.PathLike) else dataset
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"dataset must be a Hub id like 'uoft-cs/cifar10' or a local path, got {dataset!r}")
    p = Path(text).expanduser()
    if p.exists() or looks_like_path(text):
        return os.path.abspath(p)
    return text


def resolve_source(dataset: str | os.PathLike) -> tuple[str, str | None]:
    """Return (what to give ``datasets.load_dataset``, Hub id or None).

    A path that exists is used as is (``~`` expanded, made absolute). A Hub id ``owner/name`` is looked
    up first in the local mirror named by ``$HF_LODC_LOCAL_HUB`` (a folder laid out as
    ``datasets/<owner>/<name>``; a mirror folder that does not exist is an error naming it). A local
    path that does not exist (``./x``, ``/x``, ``~/x``, ``a/b/c``) is a path error, never a Hub lookup.
    """
    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    if not dataset or not isinstance(dataset, str) or not dataset.strip():
        raise ConfigError(f"dataset must be a Hub id like 'uoft-cs/cifar10' or a local path, got {dataset!r}")
    p = Path(dataset).expanduser()
    if p.exists():
        if not p.is_dir():
            raise DatasetNotFoundError(f"dataset path {dataset!r} is a file; pass the repository folder")
        return str(p.resolve()), None
    if looks_like_path(dataset):
        raise missing_path_error(dataset)
    mirror = local_mirror()
    if mirror is not None:
        cand = mirror / "datasets" / dataset
        if cand.is_dir():
            return str(cand.resolve()), dataset
    return dataset, dataset


@dataclass
class _LoadContext:
    """What a translated ``datasets`` error needs to name."""

    dataset: str
    source: str
    revision: str | None
    config_name: str | None

    @property
    def endpoint(self) -> str:
        from huggingface_hub import constants

        return constants.ENDPOINT


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _is_yaml_error(e: BaseException, ctx: _LoadContext) -> bool:
    import yaml

    return isinstance(e, yaml.YAMLError)


def _yaml_error(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    problem = getattr(e, "problem", None) or _first_line(e)
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1} of the YAML header)" if mark is not None else ""
    return DatasetError(
        f"dataset {ctx.dataset!r}: its dataset card (README.md) has YAML metadata that cannot be read "
        f"safely: {problem}{where}. Fix the card's YAML header; Python object tags are never loaded."
    )


def _is_missing_revision(e: BaseException, ctx: _LoadContext) -> bool:
    return isinstance(e, FileNotFoundError) and ctx.revision is not None and "revision" in str(e).lower()


def _missing_revision(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r}: revision {ctx.revision!r} does not exist on the Hub ({ctx.endpoint}). "
        "Use an existing branch, tag or commit sha of that repo, or drop revision to read 'main'."
    )


def _is_empty_folder(e: BaseException, ctx: _LoadContext) -> bool:
    return type(e).__name__ == "EmptyDatasetError"


def _empty_folder(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r}: {ctx.source!r} contains no data files that datasets can read "
        "(parquet, arrow, csv/json, or image folders). Point to the dataset repository folder."
    )


def _is_not_found(e: BaseException, ctx: _LoadContext) -> bool:
    return isinstance(e, FileNotFoundError)


def _mirror_note(ctx: _LoadContext) -> str:
    mirror = os.environ.get("HF_LODC_LOCAL_HUB")
    if not mirror:
        return ""
    return f", not in the local mirror HF_LODC_LOCAL_HUB={mirror!r}"


def _not_found(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r} not found: no local folder of that name (cwd: {os.getcwd()}){_mirror_note(ctx)}, "
        f"and no dataset repo {ctx.dataset!r} on the Hub ({ctx.endpoint}) that you can read. Check the spelling, "
        "log in (HF_TOKEN) for private or gated repos, or pass a local folder."
    )


def _is_config_error(e: BaseException, ctx: _LoadContext) -> bool:
    return isinstance(e, ValueError) and ("BuilderConfig" in str(e) or "Config name is missing" in str(e))


def _config_error(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    return DatasetError(f"dataset {ctx.dataset!r}: {_first_line(e)} Choose one with config_name=...")


def _is_empty_split(e: BaseException, ctx: _LoadContext) -> bool:
    return isinstance(e, ValueError) and "corresponds to no data" in str(e)


def _empty_split(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    found = re.search(r'Instruction "(.+?)" corresponds to no data', str(e))
    split = found.group(1) if found else "?"
    return SplitError(
        f"dataset {ctx.dataset!r}: split {split!r} has no rows, and datasets cannot load a dataset with an empty "
        "split. Remove that split's (empty) data files, or its entry under configs in the README, or add rows."
    )


def _is_unreachable(e: BaseException, ctx: _LoadContext) -> bool:
    name = type(e).__name__
    return isinstance(e, (ConnectionError, TimeoutError)) or "Connect" in name or "Timeout" in name


def _unreachable(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r}: cannot reach the Hub ({ctx.endpoint}): {_first_line(e)}; and no local folder "
        f"of that name (cwd: {os.getcwd()}){_mirror_note(ctx)}. Check the spelling, your "
        "network or HF_ENDPOINT; with HF_HUB_OFFLINE=1 only cached datasets load, and HF_LODC_LOCAL_HUB "
        "can name a local mirror."
    )


# first match wins: (does this rule apply?, the error to raise)
_LOAD_ERRORS: list[tuple[Callable[[BaseException, _LoadContext], bool],
                         Callable[[BaseException, _LoadContext], HfLodcError]]] = [
    (_is_yaml_error, _yaml_error),
    (_is_missing_revision, _missing_revision),
    (_is_empty_folder, _empty_folder),
    (_is_not_found, _not_found),
    (_is_config_error, _config_error),
    (_is_empty_split, _empty_split),
    (_is_unreachable, _unreachable),
]


def _load_dataset_dict(source: str, hub_id: str | None, dataset: str, config_name, revision):
    import datasets

    kwargs: dict[str, Any] = {}
    if config_name:
        kwargs["name"] = config_name
    local = Path(source).exists()
    if revision and local:
        warnings.warn(f"revision {revision!r} ignored: dataset {dataset!r} is read from the local folder {source!r}",
                      stacklevel=3)
    elif revision:
        kwargs["revision"] = revision
    ctx = _LoadContext(dataset, source, kwargs.get("revision"), config_name)
    try:
        dd = datasets.load_dataset(source, **kwargs)
    except Exception as e:  # noqa: BLE001 - datasets / hub raise many types; translate them all
        for applies, error in _LOAD_ERRORS:
            if applies(e, ctx):
                raise error(e, ctx) from None
        raise DatasetError(f"dataset {dataset!r} could not be loaded ({type(e).__name__}: {_first_line(e)})") from e
    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    return dd


def _hub_revision_sha(hub_id: str | None, revision: str | None) -> str | None:
    if hub_id is None:
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(hub_id, revision=revision).sha
    except Exception:  # noqa: BLE001 - provenance only; the data itself loaded
        return None


def _card_license(source: str) -> str | None:
    card = Path(source) / "README.md"
    if not card.is_file():
        return None
    try:
        from huggingface_hub import DatasetCard

        lic = DatasetCard.load(card).data.get("license")
    except Exception:  # noqa: BLE001 - provenance only
        return None
    if isinstance(lic, list):
        return str(lic[0]) if lic else None
    return None if lic is None else str(lic)


# ---------------------------------------------------------------------------------------------
# splits


def _pick_splits(dd, dataset: str, train_split: str, eval_split: str | None,
                 holdout_fraction: float | None) -> tuple[dict, bool]:
    """Return ({name: Dataset} for the splits to decode, whether to carve a holdout off train)."""
    available = list(dd.keys())
    if train_split not in dd:
        raise SplitError(
            f"dataset {dataset!r} has no split {train_split!r}; splits: {available}. Choose one with train_split=..."
        )
    if len(dd[train_split]) == 0:
        raise SplitError(f"dataset {dataset!r}: split {train_split!r} is empty; splits: {available}")
    if eval_split is not None and eval_split == train_split:
        raise ConfigError(
            f"eval_split is the train split {train_split!r}: the evaluation would test on the images the set is "
            "condensed from. Pick another split, or holdout_fraction=0.1 with eval_split=None."
        )
    splits = {train_split: dd[train_split]}
    if eval_split is None:
        return splits, holdout_fraction is not None
    if eval_split in dd:
        if holdout_fraction is not None:
            warnings.warn(f"dataset {dataset!r}: holdout_fraction ignored, split {eval_split!r} exists", stacklevel=3)
        splits[eval_split] = dd[eval_split]
        return splits, False
    if holdout_fraction is None:
        raise SplitError(
            f"dataset {dataset!r} has no split {eval_split!r} to evaluate on; splits: {available}. Choose one with "
            f"eval_split=... (None: no evaluation), or carve one off {train_split!r} with holdout_fraction=0.1 "
            "(stratified, seeded by holdout_seed)"
        )
    return splits, True


def _holdout(train: LabeledImages, fraction: float, seed: int, num_classes: int):
    """Stratified split: ``floor(fraction * n_c)`` (at least 1, at most n_c - 1) images of class c held out."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train), generator=g)
    labels = train.labels[perm]
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes)  # (K,)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order)) - starts[labels[order]]  # rank within its class, permuted order
    n_hold = torch.minimum((counts.float() * fraction).floor().long().clamp_min(1), (counts - 1).clamp_min(0))
    is_hold = rank < n_hold[labels]
    return train.subset(perm[~is_hold]), train.subset(perm[is_hold])


# ---------------------------------------------------------------------------------------------
# decoding


def _first_per_class(ds, label_column: str, vocab: LabelVocabulary, k: int, num_classes: int):
    """The first ``k`` rows of every class -> (selected dataset, their row indices in ``ds``)."""
    labels = np.asarray(vocab.encode(ds[label_column]), dtype=np.int64)
    keep = np.concatenate([np.nonzero(labels == c)[0][:k] for c in range(num_classes)] + [np.zeros(0, np.int64)])
    rows = np.sort(keep).astype(np.int64)
    return ds.select(rows), rows


def _counts_text(counter: Counter, fmt=str) -> str:
    return "{" + ", ".join(f"{fmt(k)}: {v}" for k, v in counter.most_common()) + "}"


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _decode_all(splits: dict, dataset: str, image_column: str, label_column: str, vocab: LabelVocabulary,
                image_size, image_mode, mixed: str, skip_corrupt: bool, max_per_class, train_split: str):
    """Decode every split to one mode and size -> ({split: LabeledImages (labels may be -1)}, mode, size, notes)."""
    import datasets

    notes: list[str] = []
    scans = {}
    modes: Counter = Counter()
    sizes: Counter = Counter()
    for name, ds in splits.items():
        rows = np.arange(len(ds), dtype=np.int64)
        if max_per_class is not None and name == train_split:
            ds, rows = _first_per_class(ds, label_column, vocab, max_per_class, len(vocab.class_names))
        raw = ds.cast_column(image_column, datasets.Image(decode=False)).select_columns([image_column])
        scan = scan_split(raw, image_column, name, dataset, rows, skip_corrupt)
        scans[name] = (ds, raw, scan)
        modes.update(scan.modes)
        sizes.update(scan.sizes)
    if not modes:
        raise DatasetError(f"dataset {dataset!r}: no image could be decoded in splits {list(splits)}")
    dom_mode, dom_size = modes.most_common(1)[0][0], sizes.most_common(1)[0][0]  # size: (W, H)
    target_mode = image_mode or target_mode_of(dom_mode)
    if image_size is None:
        target_size = dom_size
    else:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        target_size = (int(w), int(h))
    target = f"{target_mode} {_size_text(target_size)}"
    off_mode = sum(c for m, c in modes.items() if m != dom_mode)
    off_size = sum(c for s, c in sizes.items() if s != dom_size)
    if off_mode or off_size:  # the images disagree with each other
        msg = (
            f"mixed images: {off_mode} not in the dominant mode {dom_mode} (modes: {_counts_text(modes)}), "
            f"{off_size} not of the dominant size {_size_text(dom_size)} (sizes: {_counts_text(sizes, _size_text)})"
        )
        if mixed == "error":
            raise DatasetError(
                f"dataset {dataset!r}: {msg}. Pass mixed='convert' to convert them all to {target} "
                "(choose the target with image_mode= / image_size=)"
            )
        warnings.warn(f"dataset {dataset!r}: {msg}; converting them to {target}", stacklevel=3)
    tensors = {}
    converted = 0
    for name, (ds, raw, scan) in scans.items():
        arr, keep, n_conv = decode_split(raw, image_column, scan, dataset, target_mode, target_size, skip_corrupt)
        converted += n_conv
        if scan.corrupt:
            bad = sorted(int(scan.rows[p]) for p in scan.corrupt)
            msg = f"split {name!r}: skipped {len(bad)} corrupt rows (rows {bad[:10]}{' ...' if len(bad) > 10 else ''})"
            warnings.warn(f"dataset {dataset!r}: {msg}", stacklevel=3)
            notes.append(msg)
        labels = np.asarray(vocab.encode(ds[label_column]), dtype=np.int64)[keep]
        images = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)
        tensors[name] = LabeledImages(images, torch.from_numpy(labels))
    if converted:
        notes.append(
            f"converted {converted} of {sum(modes.values())} images to {target} (modes: {_counts_text(modes)}, "
            f"sizes: {_counts_text(sizes, _size_text)})"
        )
    return tensors, target_mode, target_size, notes


# ---------------------------------------------------------------------------------------------
# labels


def _drop_unlabelled(li: LabeledImages, num_classes: int, dataset: str, split: str, notes: list[str]) -> LabeledImages:
    """Refuse ids outside the class list; drop rows labelled -1 (missing) with a warning."""
    lab = li.labels
    bad = (lab < -1) | (lab >= num_classes)
    if bool(bad.any()):
        raise ColumnError(
            f"dataset {dataset!r}, split {split!r}: {int(bad.sum())} labels outside 0..{num_classes - 1} "
            f"(e.g. {int(lab[bad][0])}); the label column's class names do not cover them"
        )
    unlabelled = lab == -1
    n = int(unlabelled.sum())
    if n and n < len(li):
        msg = f"split {split!r}: dropped {n} rows without a label (-1 or missing)"
        warnings.warn(f"dataset {dataset!r}: {msg}", stacklevel=4)
        notes.append(msg)
    return li.subset(~unlabelled) if n else li


def _drop_empty_classes(train: LabeledImages, test: LabeledImages | None, class_names: list[str], drop: bool,
                        dataset: str, train_split: str, notes: list[str]):
    counts = torch.bincount(train.labels, minlength=len(class_names))  # (K,)
    empty = counts == 0
    if not bool(empty.any()):
        return train, test, class_names
    names = [class_names[i] for i in torch.nonzero(empty).flatten().tolist()]
    shown = f"{names[:10]}{' ...' if len(names) > 10 else ''}"
    if not drop:
        raise ClassSizeError(
            f"dataset {dataset!r}, split {train_split!r}: {len(names)} of {len(class_names)} classes have no "
            f"images: {shown}. Pass drop_empty_classes=True to drop them (and their evaluation rows), or use "
            "another split."
        )
    new_id = torch.cumsum(~empty, 0) - 1  # old class id -> new id (valid where ~empty)
    train = LabeledImages(train.images, new_id[train.labels])
    dropped_eval = 0
    if test is not None:
        keep = ~empty[test.labels]
        dropped_eval = int((~keep).sum())
        test = test.subset(keep)
        test = LabeledImages(test.images, new_id[test.labels])
    msg = f"dropped {len(names)} classes without train images: {shown} ({dropped_eval} evaluation rows)"
    warnings.warn(f"dataset {dataset!r}: {msg}", stacklevel=3)
    notes.append(msg)
    return train, test, [n for n, e in zip(class_names, empty.tolist()) if not e]


def _assemble(tensors: dict, class_names: list[str], dataset: str, train_split: str, eval_split: str | None,
              use_holdout: bool, holdout_fraction, holdout_seed: int, drop_empty_classes: bool, notes: list[str]):
    """Decoded splits -> (train, test or None, evaluation split name, class names): unlabelled rows
    dropped, empty classes refused or dropped, the holdout carved."""
    K = len(class_names)
    train = _drop_unlabelled(tensors[train_split], K, dataset, train_split, notes)
    if len(train) == 0:
        raise DatasetError(
            f"dataset {dataset!r}, split {train_split!r}: no usable rows (all corrupt or unlabelled); see the warnings"
        )
    test, eval_name = None, None
    if eval_split is not None and not use_holdout:
        test = _drop_unlabelled(tensors[eval_split], K, dataset, eval_split, notes)
        eval_name = eval_split
    train, test, class_names = _drop_empty_classes(train, test, class_names, drop_empty_classes, dataset,
                                                   train_split, notes)
    if use_holdout:
        train, test = _holdout(train, holdout_fraction, holdout_seed, len(class_names))
        eval_name = f"{train_split}[holdout {holdout_fraction:g}, seed {holdout_seed}]"
        notes.append(f"evaluation split carved off {train_split!r}: {len(test)} rows, seed {holdout_seed}")
        if len(test) == 0:
            raise SplitError(
                f"dataset {dataset!r}: cannot carve an evaluation split off {train_split!r}: every class has a "
                "single image. Use another eval_split, or eval_split=None for no evaluation."
            )
    if test is not None and len(test) == 0:
        raise SplitError(
            f"dataset {dataset!r}: split {eval_name!r} has no usable rows (all unlabelled, corrupt or of dropped "
            f"classes); choose another eval_split, or carve one off {train_split!r} with eval_split=None, "
            "holdout_fraction=0.1"
        )
    return train, test, eval_name, class_names


# ---------------------------------------------------------------------------------------------
# main entry point


def _check_options(mixed, image_mode, image_size, holdout_fraction, max_per_class) -> None:
    if mixed not in ("convert", "error"):
        raise ConfigError(f"mixed must be 'convert' or 'error', got {mixed!r}")
    if image_mode is not None and image_mode not in TARGET_MODES:
        raise ConfigError(f"image_mode must be one of {sorted(TARGET_MODES)} or None, got {image_mode!r}")
    sizes = (image_size,) if isinstance(image_size, int) else image_size
    if image_size is not None and not (
        isinstance(sizes, (tuple, list)) and len(sizes) in (1, 2)
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        raise ConfigError(f"image_size must be a positive int or (H, W), got {image_size!r}")
    if holdout_fraction is not None and not (0.0 < holdout_fraction < 1.0):
        raise ConfigError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    if max_per_class is not None and (isinstance(max_per_class, bool) or not isinstance(max_per_class, int)
                                      or max_per_class <= 0):
        raise ConfigError(f"max_per_class must be a positive integer or None, got {max_per_class!r}")


def load_image_classification(
    dataset: str | os.PathLike,
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
    drop_empty_classes: bool = False,
    max_per_class: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> ImageClassificationData:
    """Load an image-classification dataset as tensors.

    Args:
        dataset: Hub id (``"uoft-cs/cifar10"``) or local repository folder.
        revision: branch, tag or commit of a Hub repo (ignored, with a warning, for a local folder).
        eval_split: split to test on; ``None`` for no test split. If it is missing, pass
            ``holdout_fraction`` to carve a class-stratified one off the train split (seeded by
            ``holdout_seed``; every class keeps at least one train image).
        image_column / label_column: chosen automatically when there is exactly one candidate.
        image_size / image_mode: declared size (int or (H, W)) and mode (``"L"``/``"RGB"``); by
            default the dominant ones. ``mixed="convert"`` converts other images (with a warning
            that says how many), ``mixed="error"`` refuses with the counts.
        skip_corrupt: drop undecodable rows (counted in ``info.notes``) instead of failing.
        drop_empty_classes: drop classes without train images instead of failing.
        max_per_class: keep at most this many train images per class (first ones; for tests).

    Rows labelled -1 (missing) are dropped with a warning. Every failure is an
    :class:`~hf_lodc.errors.HfLodcError` naming the dataset, split, column or row.
    """
    import datasets

    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    _check_options(mixed, image_mode, image_size, holdout_fraction, max_per_class)
    source, hub_id = resolve_source(dataset)
    dd = _load_dataset_dict(source, hub_id, dataset, config_name, revision)
    splits, use_holdout = _pick_splits(dd, dataset, train_split, eval_split, holdout_fraction)
    features = splits[train_split].features
    image_column, label_column = detect_columns(features, dataset, image_column, label_column)
    for name, ds in splits.items():
        missing = [c for c in (image_column, label_column) if c not in ds.features]
        if missing:
            raise ColumnError(
                f"dataset {dataset!r}, split {name!r} lacks column(s) {missing}; its columns: {list(ds.features)}"
            )
    notes: list[str] = []
    if not isinstance(features[image_column], datasets.Image):  # binary bytes or file paths
        splits = {n: ds.cast_column(image_column, datasets.Image()) for n, ds in splits.items()}
        notes.append(f"column {image_column!r} ({features[image_column].dtype}) read as encoded images")
    vocab = label_vocabulary(features, splits, dataset, label_column)
    if vocab.note:
        notes.append(vocab.note)

    sig = _cache_key(dataset, config_name, revision, splits, image_column, label_column, image_size, image_mode,
                     mixed, skip_corrupt, max_per_class)
    cache_file = Path(cache_dir or default_cache_dir()) / "tensors" / f"{sig}.pt"
    cached = _read_cache(cache_file) if cache and sig else None
    if cached is not None:
        tensors, meta = cached
        for note in meta["notes"]:
            warnings.warn(f"dataset {dataset!r}: {note}", stacklevel=2)
        notes.extend(meta["notes"])
    else:
        tensors, target_mode, target_size, dec_notes = _decode_all(
            splits, dataset, image_column, label_column, vocab, image_size, image_mode, mixed, skip_corrupt,
            max_per_class, train_split,
        )
        notes.extend(dec_notes)
        if cache and sig:
            _write_cache(cache_file, tensors, {"notes": dec_notes, "mode": target_mode, "size": list(target_size)})

    train, test, eval_name, class_names = _assemble(
        tensors, vocab.class_names, dataset, train_split, eval_split, use_holdout, holdout_fraction, holdout_seed,
        drop_empty_classes, notes,
    )

    x = train.images.float().div_(255.0)  # (N, C, H, W)
    mean = x.mean(dim=(0, 2, 3))
    std = torch.nan_to_num(x.std(dim=(0, 2, 3)), nan=1.0).clamp_min(1e-3)  # NaN: a single pixel
    del x
    remote = not Path(source).exists()
    info = SourceInfo(
        dataset=dataset if hub_id is not None else source,  # a local folder: its absolute path, from any cwd
        resolved_path=None if remote else source,
        hub_id=hub_id,
        config_name=config_name,
        revision=revision,
        revision_sha=_hub_revision_sha(hub_id, revision) if remote else None,
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
        license=None if remote else _card_license(source),
        notes=notes,
    )
    return ImageClassificationData(train=train, test=test, info=info)


# ---------------------------------------------------------------------------------------------
# cache of decoded tensors


def _cache_key(dataset, config_name, revision, splits, *rest) -> str | None:
    try:
        fps = [(name, ds._fingerprint, len(ds)) for name, ds in splits.items()]
    except AttributeError:
        return None
    blob = json.dumps([dataset, config_name, revision, fps, [repr(r) for r in rest], 2], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _read_cache(path: Path):
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        tensors = {k: LabeledImages(v["images"], v["labels"]) for k, v in blob["splits"].items()}
        return tensors, json.loads(blob["meta"])
    except Exception:  # noqa: BLE001 - a broken cache entry is re-decoded
        return None


def _write_cache(path: Path, tensors: dict, meta: dict) -> None:
    blob = {"splits": {k: {"images": v.images, "labels": v.labels} for k, v in tensors.items()},
            "meta": json.dumps(meta)}
    try:
        write_atomically(path, lambda tmp: torch.save(blob, tmp))
    except (OSError, RuntimeError):  # a cache that cannot be written (read-only, disk full) is not an error
        pass
