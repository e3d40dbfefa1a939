"""Which splits a load reads, and what it keeps of them.

Before decoding: :func:`pick_splits` chooses the train and evaluation splits (or decides to carve
the evaluation split off train), refusing an evaluation on the train split itself. After decoding:
:func:`check_label_range` refuses label ids outside the class list (naming rows), and
:func:`assemble` drops unlabelled rows (``-1``), refuses or drops classes without train images and
carves the class-stratified, seeded holdout; :func:`first_per_class` keeps the first k rows of
each class (a quick evaluation on part of a test split, a continual run's test rows). These are the loader's rules about rows and
classes, apart from how the images are decoded (``decode_plan.py``) or where they come from
(``sources.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import ClassSizeError, ColumnError, ConfigError, DatasetError, SplitError
from .types import LabeledImages

__all__ = ["pick_splits", "check_label_range", "assemble", "first_per_class"]


def pick_splits(dd, dataset: str, train_split: str, eval_split: str | None,
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
            "condensed from. Pick another split, or holdout_fraction=0.1 with eval_split=None (on the command "
            "line: --holdout-fraction 0.1 --eval-split none)."
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
            "(stratified, seeded by holdout_seed; on the command line: --eval-split, --holdout-fraction 0.1)"
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


def check_label_range(labels: np.ndarray, num_classes: int, dataset: str, split: str, rows: np.ndarray) -> None:
    """Refuse ids outside the class list, naming the split's rows (before any is dropped or decoded)."""
    bad = np.nonzero((labels < -1) | (labels >= num_classes))[0]
    if len(bad):
        shown = ", ".join(f"row {int(rows[i])}: {int(labels[i])}" for i in bad[:5])
        raise ColumnError(
            f"dataset {dataset!r}, split {split!r}: {len(bad)} label(s) outside the {num_classes} classes "
            f"0..{num_classes - 1} ({shown}{' ...' if len(bad) > 5 else ''}); the label column's class names "
            "do not cover them. Fix those rows, or the ClassLabel names in the dataset card"
        )


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
    """Refuse classes without train images, or (``drop``) remove them and their evaluation rows and
    renumber the rest -> (train, test, class names)."""
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
            "another split (on the command line: --drop-empty-classes)."
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


def assemble(tensors: dict, class_names: list[str], dataset: str, train_split: str, eval_split: str | None,
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
            "holdout_fraction=0.1 (on the command line: --eval-split none --holdout-fraction 0.1)"
        )
    return train, test, eval_name, class_names


def first_per_class(labels: torch.Tensor, k: int, num_classes: int | None = None) -> torch.Tensor:
    """Sorted row ids of the first ``k`` rows of every class (all rows of smaller classes)."""
    order = torch.argsort(labels, stable=True)  # (N,) rows grouped by class, original order within
    sorted_labels = labels[order]
    counts = torch.bincount(sorted_labels, minlength=num_classes or 0)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order)) - starts[sorted_labels]  # position within its class
    return torch.sort(order[rank < k]).values
