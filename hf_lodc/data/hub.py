"""Hub id or local repo path -> uint8 image tensors, integer labels and class names.

``load_image_classification(...)`` is the one entry point. It

1. resolves the source: a local directory, a Hub id served from a local mirror
   (``$HF_LODC_LOCAL_HUB/datasets/<owner>/<name>``, how the tests run offline), or the Hub itself
   (``sources.py``), and turns every way ``datasets`` can fail into one of hf_lodc's errors
   (``load_errors.py``);
2. picks the train and evaluation splits (a missing evaluation split can be carved off the train
   split with a fixed seed; ``splits.py``);
3. finds the image and label columns (``columns.py``);
4. decodes every image once into one ``(N, C, H, W)`` uint8 tensor (``decode_plan.py`` settles one
   mode and size across the splits, ``decode.py`` decodes: mixed modes and sizes converted to the
   dominant / declared ones or refused, corrupt rows reported by split and row index or skipped);
5. drops unlabelled rows (``-1``), refuses (or drops) classes without train images (``splits.py``),
   and records the per-channel mean/std of the train split for normalisation.

The decoded tensors are cached on disk keyed by the dataset fingerprint (``load_cache.py``), so the
second load of CIFAR-10 takes a second, not a minute.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ColumnError, ConfigError
from .types import ImageClassificationData, LabeledImages, SourceInfo, normalize  # noqa: F401  (re-exported)
from .columns import detect_columns, label_vocabulary
from .cache import decoded_cache_dir, default_cache_dir, is_mapped
from .decode import TARGET_MODES
from .decode_plan import decode_all, scan_all
from .load_cache import (
    MAP_AUTO_FRACTION,
    build_mapped,
    cache_key,
    open_mapped,
    read_tensor_cache,
    use_map,
    write_tensor_cache,
)
from .sources import (  # the path helpers stay importable from here, where their callers found them
    card_license,
    hub_revision_sha,
    load_dataset_dict,
    local_mirror,
    looks_like_path,
    missing_path_error,
    resolve_dataset_arg,
    resolve_source,
)
from .splits import assemble, pick_splits

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
    "DECODED_CACHE_MODES",
    "MAP_AUTO_FRACTION",
]

DECODED_CACHE_MODES = ("auto", "on", "off")


def _check_options(mixed, image_mode, image_size, holdout_fraction, max_per_class, decoded_cache="auto") -> None:
    if mixed not in ("convert", "error"):
        raise ConfigError(f"mixed must be 'convert' or 'error', got {mixed!r}")
    if decoded_cache not in DECODED_CACHE_MODES:
        raise ConfigError(f"decoded_cache must be one of {', '.join(map(repr, DECODED_CACHE_MODES))}, "
                          f"got {decoded_cache!r}")
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
    decoded_cache: str = "auto",
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
        cache / cache_dir: keep decoded splits under ``cache_dir`` (default ``$HF_LODC_CACHE`` or
            ``~/.cache/hf_lodc``) so the next load skips decoding.
        decoded_cache: where the decoded images live. ``"off"``: in memory (cached as a tensor file
            when ``cache``). ``"on"``: in a uint8 file under ``<cache_dir>/decoded`` read through a
            memory map (``data/cache.py``), so the process's own memory does not grow with the
            dataset. ``"auto"`` (default): ``"on"`` when the decoded splits would take more than
            :data:`MAP_AUTO_FRACTION` of the machine's memory (and ``cache``), else ``"off"``.

    Rows labelled -1 (missing) are dropped with a warning. Every failure is an
    :class:`~hf_lodc.errors.HfLodcError` naming the dataset, split, column or row.
    """
    import datasets

    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    _check_options(mixed, image_mode, image_size, holdout_fraction, max_per_class, decoded_cache)
    source, hub_id = resolve_source(dataset)
    dd = load_dataset_dict(source, hub_id, dataset, config_name, revision)
    splits, use_holdout = pick_splits(dd, dataset, train_split, eval_split, holdout_fraction)
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

    sig = cache_key(dataset, config_name, revision, splits, image_column, label_column, image_size, image_mode,
                    mixed, skip_corrupt, max_per_class)
    cache_file = Path(cache_dir or default_cache_dir()) / "tensors" / f"{sig}.pt"
    cached = read_tensor_cache(cache_file) if cache and sig and decoded_cache != "on" else None
    if cached is None and sig and (decoded_cache == "on" or (decoded_cache == "auto" and cache)):
        cached = open_mapped(decoded_cache_dir(cache_dir), sig, decoded_cache)
    if cached is not None:
        tensors, meta = cached
        for note in meta["notes"]:
            warnings.warn(f"dataset {dataset!r}: {note}", stacklevel=2)
        notes.extend(meta["notes"])
    else:
        plan = scan_all(splits, dataset, image_column, label_column, vocab, image_size, image_mode, mixed,
                        skip_corrupt, max_per_class, train_split)
        if use_map(decoded_cache, cache, sig, plan.decoded_bytes, dataset):
            tensors, meta = build_mapped(decoded_cache_dir(cache_dir), sig, plan, dataset, image_column,
                                         label_column, vocab, skip_corrupt)
            notes.extend(meta["notes"])
        else:
            tensors, target_mode, target_size, dec_notes = decode_all(
                plan, dataset, image_column, label_column, vocab, skip_corrupt)
            notes.extend(dec_notes)
            if cache and sig:
                write_tensor_cache(cache_file, tensors,
                                   {"notes": dec_notes, "mode": target_mode, "size": list(target_size)})

    was_mapped = is_mapped(tensors[train_split].images)
    train, test, eval_name, class_names = assemble(
        tensors, vocab.class_names, dataset, train_split, eval_split, use_holdout, holdout_fraction, holdout_seed,
        drop_empty_classes, notes,
    )
    if was_mapped and not is_mapped(train.images):  # a row subset of a map is a copy in memory
        warnings.warn(
            f"dataset {dataset!r}: the train split was decoded to the memory-mapped cache, but "
            f"{'carving the holdout' if use_holdout else 'dropping unlabelled rows'} copied its {len(train)} kept "
            "images into memory; for a set larger than memory use an evaluation split of its own (eval_split=...) "
            "and labelled rows", stacklevel=2)

    if is_mapped(train.images):  # a float copy of a larger-than-memory set is what the map avoids
        mean, std = _channel_stats_streamed(train.images)
    else:
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
        revision_sha=hub_revision_sha(hub_id, revision) if remote else None,
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
        license=None if remote else card_license(source),
        notes=notes,
    )
    return ImageClassificationData(train=train, test=test, info=info)


def _channel_stats_streamed(images: torch.Tensor, rows_per_chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (unbiased) of uint8 (N, C, H, W) images on the 0..1 scale, read in chunks.

    Exact: a 256-bin histogram per channel, summed in integers; memory is one chunk. The in-memory
    path's float32 reductions agree to ~1e-7, well inside the 6 decimals the result is recorded with.
    """
    c = images.shape[1]
    hist = np.zeros((c, 256), dtype=np.int64)
    arr = images.numpy()  # the map itself, no copy
    for s in range(0, arr.shape[0], rows_per_chunk):
        chunk = arr[s:s + rows_per_chunk]  # (m, C, H, W) uint8, read from the file
        for ch in range(c):
            hist[ch] += np.bincount(chunk[:, ch].reshape(-1), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = hist.sum(axis=1).astype(np.float64)  # (C,)
    mean = (hist * values).sum(axis=1) / n
    var = (hist * (values - mean[:, None]) ** 2).sum(axis=1) / np.maximum(n - 1, 1)
    std = np.where(n > 1, np.sqrt(var), 1.0)  # one pixel: std undefined, as the in-memory path's NaN -> 1
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32).clamp_min(1e-3)
