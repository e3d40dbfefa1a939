"""Every split of a load request decoded to one mode and size.

``decode.py`` turns one split's encoded images into one array; this module decides, across all the
splits read, what that array is: :func:`scan_all` reads every header once and settles the target
mode and size in a :class:`DecodePlan` (the dominant or declared ones; mixed images are converted
with a warning or refused, naming the first row of each other kind), and :func:`decode_all` decodes
every split by that plan, in memory or straight into the memory-mapped decoded cache, checking the
labels of each split against the class list as it goes. The plan comes first because the choice
between memory and the map needs its decoded size before any pixel is decoded.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DatasetError
from .columns import LabelVocabulary
from .decode import TARGET_MODES, decode_split, decode_split_into, scan_split, target_mode_of
from .splits import check_label_range
from .types import LabeledImages

__all__ = ["DecodePlan", "scan_all", "decode_all", "DECODE_THREADS"]

# threads decoding into the cache (PIL releases the GIL while decoding and resizing)
DECODE_THREADS = min(8, os.cpu_count() or 1)


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


@dataclass
class DecodePlan:
    """The header pass over every split: what to decode, to which mode and size."""

    scans: dict  # split -> (dataset, raw image-only dataset, SplitScan)
    target_mode: str
    target_size: tuple[int, int]  # (W, H)
    modes: Counter
    sizes: Counter

    @property
    def decoded_bytes(self) -> int:
        """Bytes of all splits decoded as uint8, if no row is corrupt."""
        w, h = self.target_size
        return sum(len(scan.rows) for _, _, scan in self.scans.values()) * TARGET_MODES[self.target_mode] * h * w


def scan_all(splits: dict, dataset: str, image_column: str, label_column: str, vocab: LabelVocabulary,
             image_size, image_mode, mixed: str, skip_corrupt: bool, max_per_class, train_split: str) -> DecodePlan:
    """Header pass over every split; settles the target mode and size (refusing or warning on mixed images)."""
    import datasets

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
        odd = [f"split {name!r} row {row} ({m} {_size_text(sz)})" for name, (_, _, scan) in scans.items()
               for (m, sz), row in scan.first_row.items() if m != dom_mode or sz != dom_size]
        msg = (
            f"mixed images: {off_mode} not in the dominant mode {dom_mode} (modes: {_counts_text(modes)}), "
            f"{off_size} not of the dominant size {_size_text(dom_size)} (sizes: {_counts_text(sizes, _size_text)}), "
            f"first of each other kind: {', '.join(odd[:5])}"
        )
        if mixed == "error":
            raise DatasetError(
                f"dataset {dataset!r}: {msg}. Pass mixed='convert' to convert them all to {target} "
                "(choose the target with image_mode= / image_size=; on the command line: --mixed convert, "
                "--image-mode, --image-size)"
            )
        warnings.warn(f"dataset {dataset!r}: {msg}; converting them to {target}", stacklevel=3)
    return DecodePlan(scans, target_mode, target_size, modes, sizes)


def decode_all(plan: DecodePlan, dataset: str, image_column: str, label_column: str, vocab: LabelVocabulary,
               skip_corrupt: bool, writer=None):
    """Decode every split of ``plan`` -> ({split: LabeledImages (labels may be -1)}, mode, size, notes).

    With ``writer`` (a decoded-cache ``EntryWriter``) each split is decoded into the cache file's
    memory map instead of memory, with a progress bar, and nothing is returned but the notes.
    """
    notes: list[str] = []
    target_mode, target_size = plan.target_mode, plan.target_size
    channels = TARGET_MODES[target_mode]
    tensors = {}
    converted = 0
    for name, (ds, raw, scan) in plan.scans.items():
        if writer is None:
            arr, keep, n_conv = decode_split(raw, image_column, scan, dataset, target_mode, target_size, skip_corrupt)
        else:
            out = writer.images(name, (len(scan.rows), channels, target_size[1], target_size[0]))  # (n, C, H, W)
            bar = _progress_bar(len(scan.rows), f"decoding {dataset} [{name}] to the cache")
            try:
                arr, keep, n_conv = decode_split_into(raw, image_column, scan, dataset, target_mode, target_size,
                                                      skip_corrupt, out, workers=DECODE_THREADS, progress=bar.update)
            finally:
                bar.close()
        converted += n_conv
        if scan.corrupt:
            bad = sorted(int(scan.rows[p]) for p in scan.corrupt)
            msg = f"split {name!r}: skipped {len(bad)} corrupt rows (rows {bad[:10]}{' ...' if len(bad) > 10 else ''})"
            # the loader's caller: through build <- get_or_build <- load_cache.build_mapped when writing the cache
            warnings.warn(f"dataset {dataset!r}: {msg}", stacklevel=3 if writer is None else 6)
            notes.append(msg)
        labels = np.asarray(vocab.encode(ds[label_column]), dtype=np.int64)
        check_label_range(labels, len(vocab.class_names), dataset, name, scan.rows)
        labels = labels[keep]
        if writer is not None:
            del arr, out  # the writer cuts the file to the rows kept, which needs the map closed
            writer.labels(name, labels, len(vocab.class_names))
            continue
        images = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)
        tensors[name] = LabeledImages(images, torch.from_numpy(labels))
    if converted:
        notes.append(
            f"converted {converted} of {sum(plan.modes.values())} images to {target_mode} {_size_text(target_size)} "
            f"(modes: {_counts_text(plan.modes)}, sizes: {_counts_text(plan.sizes, _size_text)})"
        )
    return tensors, target_mode, target_size, notes


def _progress_bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)  # disable=None: off without a TTY
