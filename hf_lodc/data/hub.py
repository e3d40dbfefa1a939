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
from .cache import as_mapped_tensor, decoded_cache_dir, default_cache_dir, get_or_build, is_mapped, open_entry
from .decode import TARGET_MODES, decode_split, decode_split_into, scan_split, target_mode_of

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
# decoded_cache="auto" maps the splits when they exceed this fraction of physical memory: decoding in
# memory also needs a float32 copy of the train split for its mean/std (5x the decoded bytes at the peak)
MAP_AUTO_FRACTION = 0.1
# threads decoding into the cache (PIL releases the GIL while decoding and resizing)
DECODE_THREADS = min(8, os.cpu_count() or 1)



# ---------------------------------------------------------------------------------------------
# resolving the source


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def looks_like_path(dataset: str) -> bool:
    """``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``: a local path, never a Hub id (``owner/name``)."""
    return dataset.startswith((".", "/", "~", os.sep)) or dataset.count("/") > 1 or "\\" in dataset


def missing_path_error(dataset: str, what: str = "dataset") -> HfLodcError:
    """The error for a local path that does not exist (resolved path, nearest existing folder, cwd)."""
    p = Path(os.path.abspath(os.path.expanduser(dataset)))
    near = _nearest_existing(p.parent)
    if near == p.parent:
        where = f"{str(near)!r} exists but has no entry {p.name!r}"
    else:
        where = f"the nearest existing folder is {str(near)!r}"
    return LocalPathNotFoundError(
        f"{what} {dataset!r} not found: no such directory {str(p)!r} ({where}; cwd: {os.getcwd()}). Pass an "
        f"existing {what} folder (was it moved or renamed?)"
    )


def local_mirror() -> Path | None:
    """The folder ``$HF_LODC_LOCAL_HUB`` names (``~`` expanded), None when unset; refused if missing."""
    mirror = os.environ.get("HF_LODC_LOCAL_HUB")
    if not mirror:
        return None
    root = Path(os.path.abspath(os.path.expanduser(mirror)))
    if not root.is_dir():
        why = "is a file, not a folder" if root.exists() else "does not exist"
        raise LocalHubNotFoundError(
            f"HF_LODC_LOCAL_HUB={mirror!r} is not a folder ({str(root)!r} {why}); point it at the local "
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


def _is_generation_error(e: BaseException, ctx: _LoadContext) -> bool:
    return type(e).__name__ == "DatasetGenerationError"


def _root_cause(e: BaseException) -> BaseException:
    seen = set()
    while (e.__cause__ or e.__context__) is not None and id(e) not in seen:
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return e


def _shard_problems(source: str) -> list[str]:
    """The data files of a local dataset folder that cannot be read, or whose columns disagree with the
    other files of their split (``train-00000-of-00002.parquet`` vs ``train-00001-...``)."""
    import pyarrow.parquet as pq

    root = Path(source)
    if not root.is_dir():
        return []
    problems, columns = [], {}
    for f in sorted(root.rglob("*.parquet")):
        rel = f.relative_to(root).as_posix()
        try:
            columns[rel] = pq.read_schema(f).names
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid / OSError for damaged files
            problems.append(f"{rel!r} is damaged or truncated ({_first_line(e)})")
    by_split: dict[str, dict[str, list[str]]] = {}
    for rel, cols in columns.items():
        split = re.sub(r"-\d+-of-\d+\.parquet$|\.parquet$", "", rel)
        by_split.setdefault(split, {})[rel] = cols
    for split, files in by_split.items():
        kinds = {tuple(c) for c in files.values()}
        if len(kinds) > 1:
            first = next(iter(files))
            other = next(f for f, c in files.items() if tuple(c) != tuple(files[first]))
            problems.append(f"the files of {split!r} disagree on their columns: {first!r} has {files[first]}, "
                            f"{other!r} has {files[other]}")
    return problems


def _generation_error(e: BaseException, ctx: _LoadContext) -> HfLodcError:
    problems = _shard_problems(ctx.source)
    what = "; ".join(problems) if problems else f"{type(_root_cause(e)).__name__}: {_first_line(_root_cause(e))}"
    return DatasetError(
        f"dataset {ctx.dataset!r}: its data files cannot be read as one dataset: {what}. Replace the damaged "
        "file(s) (download them again) or make every file of a split hold the same columns and types"
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
    (_is_generation_error, _generation_error),
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


@dataclass
class _DecodePlan:
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


def _scan_all(splits: dict, dataset: str, image_column: str, label_column: str, vocab: LabelVocabulary,
              image_size, image_mode, mixed: str, skip_corrupt: bool, max_per_class, train_split: str) -> _DecodePlan:
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
    return _DecodePlan(scans, target_mode, target_size, modes, sizes)


def _decode_all(plan: _DecodePlan, dataset: str, image_column: str, label_column: str, vocab: LabelVocabulary,
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
            # the loader's caller: through build <- get_or_build <- _build_mapped when writing the cache
            warnings.warn(f"dataset {dataset!r}: {msg}", stacklevel=3 if writer is None else 6)
            notes.append(msg)
        labels = np.asarray(vocab.encode(ds[label_column]), dtype=np.int64)
        _check_label_range(labels, len(vocab.class_names), dataset, name, scan.rows)
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


# ---------------------------------------------------------------------------------------------
# labels


def _check_label_range(labels: np.ndarray, num_classes: int, dataset: str, split: str, rows: np.ndarray) -> None:
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
            "holdout_fraction=0.1 (on the command line: --eval-split none --holdout-fraction 0.1)"
        )
    return train, test, eval_name, class_names


# ---------------------------------------------------------------------------------------------
# main entry point


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
    cached = _read_cache(cache_file) if cache and sig and decoded_cache != "on" else None
    if cached is None and sig and (decoded_cache == "on" or (decoded_cache == "auto" and cache)):
        cached = _open_mapped(decoded_cache_dir(cache_dir), sig, decoded_cache)
    if cached is not None:
        tensors, meta = cached
        for note in meta["notes"]:
            warnings.warn(f"dataset {dataset!r}: {note}", stacklevel=2)
        notes.extend(meta["notes"])
    else:
        plan = _scan_all(splits, dataset, image_column, label_column, vocab, image_size, image_mode, mixed,
                         skip_corrupt, max_per_class, train_split)
        if _use_map(decoded_cache, cache, sig, plan.decoded_bytes, dataset):
            tensors, meta = _build_mapped(decoded_cache_dir(cache_dir), sig, plan, dataset, image_column,
                                          label_column, vocab, skip_corrupt)
            notes.extend(meta["notes"])
        else:
            tensors, target_mode, target_size, dec_notes = _decode_all(
                plan, dataset, image_column, label_column, vocab, skip_corrupt)
            notes.extend(dec_notes)
            if cache and sig:
                _write_cache(cache_file, tensors, {"notes": dec_notes, "mode": target_mode, "size": list(target_size)})

    was_mapped = is_mapped(tensors[train_split].images)
    train, test, eval_name, class_names = _assemble(
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


def _physical_memory() -> int | None:
    """The machine's memory, or the container's limit (cgroup v2 / v1) when that is lower."""
    try:
        sizes = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    except (ValueError, OSError, AttributeError):
        sizes = []
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            sizes.append(int(Path(limit).read_text().strip()))  # "max" (no limit) fails int()
        except (OSError, ValueError):
            pass
    return min(sizes) if sizes else None


def _use_map(decoded_cache: str, cache: bool, sig: str | None, nbytes: int, dataset: str) -> bool:
    """Whether to decode into the memory-mapped cache (see ``decoded_cache`` in the loader)."""
    if decoded_cache == "on":
        if sig is None:
            raise DatasetError(f"dataset {dataset!r}: decoded_cache='on' needs a dataset with a fingerprint "
                               "(a datasets Dataset read from files) to key the cache; use decoded_cache='off'")
        return True
    if decoded_cache == "off" or not cache or sig is None:
        return False
    mem = _physical_memory()
    return mem is not None and nbytes > MAP_AUTO_FRACTION * mem


def _mapped_splits(entry) -> dict:
    tensors = {}
    for name in entry.manifest["splits"]:
        images, labels = entry.split(name)
        tensors[name] = LabeledImages(as_mapped_tensor(images), torch.from_numpy(labels))  # (N, C, H, W) map
    return tensors


def _open_mapped(root: Path, sig: str, decoded_cache: str):
    """(tensors, meta) of a sound mapped entry, when the mode would use one; else None."""
    entry = open_entry(root, sig)
    if entry is None:
        return None
    if decoded_cache == "auto":
        mem = _physical_memory()
        if mem is None or entry.nbytes <= MAP_AUTO_FRACTION * mem:
            return None  # small enough for memory: "auto" reads it as "off" would
    return _mapped_splits(entry), entry.manifest["meta"]


def _build_mapped(root: Path, sig: str, plan: _DecodePlan, dataset: str, image_column: str, label_column: str,
                  vocab: LabelVocabulary, skip_corrupt: bool):
    """Decode ``plan`` into the mapped cache entry ``sig`` (or read it, if another process built it)."""
    def build(writer) -> dict:
        _, mode, size, dec_notes = _decode_all(plan, dataset, image_column, label_column, vocab, skip_corrupt,
                                               writer=writer)
        return {"meta": {"notes": dec_notes, "mode": mode, "size": list(size)},
                "request": {"dataset": dataset, "splits": list(plan.scans)}}

    entry = get_or_build(root, sig, build, f"dataset {dataset!r} (splits {list(plan.scans)})")
    return _mapped_splits(entry), entry.manifest["meta"]


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
