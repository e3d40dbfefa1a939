"""Where a load keeps its decoded splits between runs, and which of the two places it uses.

Decoding a dataset is the slow part of a load (a minute for CIFAR-10), so the decoded splits are
kept, keyed by :func:`cache_key` (the request and the ``datasets`` fingerprints of the splits):

* as one tensor file, ``<cache_dir>/tensors/<key>.pt``, read whole into memory
  (:func:`read_tensor_cache` / :func:`write_tensor_cache`; a broken or unwritable file is only a miss);
* or as a memory-mapped entry of ``cache.py`` under ``<cache_dir>/decoded``, for sets that should
  not be in the process's memory (:func:`open_mapped` / :func:`build_mapped`).

:func:`use_map` is the choice between them (``decoded_cache="on"/"off"/"auto"``; "auto" maps a set
larger than :data:`MAP_AUTO_FRACTION` of the machine's or the container's memory).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..atomic import write_atomically
from ..errors import DatasetError
from .cache import as_mapped_tensor, get_or_build, open_entry
from .columns import LabelVocabulary
from .decode_plan import DecodePlan, decode_all
from .types import LabeledImages

__all__ = ["MAP_AUTO_FRACTION", "cache_key", "physical_memory", "use_map", "open_mapped", "build_mapped",
           "read_tensor_cache", "write_tensor_cache"]

# decoded_cache="auto" maps the splits when they exceed this fraction of physical memory: decoding in
# memory also needs a float32 copy of the train split for its mean/std (5x the decoded bytes at the peak)
MAP_AUTO_FRACTION = 0.1


def cache_key(dataset, config_name, revision, splits, *rest) -> str | None:
    """The key of a load request: the source, the ``datasets`` fingerprints of its splits and every option
    that changes the decoded pixels (``rest``); None when a split has no fingerprint (nothing is cached)."""
    try:
        fps = [(name, ds._fingerprint, len(ds)) for name, ds in splits.items()]
    except AttributeError:
        return None
    blob = json.dumps([dataset, config_name, revision, fps, [repr(r) for r in rest], 2], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def physical_memory() -> int | None:
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


def use_map(decoded_cache: str, cache: bool, sig: str | None, nbytes: int, dataset: str) -> bool:
    """Whether to decode into the memory-mapped cache (see ``decoded_cache`` in the loader,
    ``hub.load_image_classification``)."""
    if decoded_cache == "on":
        if sig is None:
            raise DatasetError(f"dataset {dataset!r}: decoded_cache='on' needs a dataset with a fingerprint "
                               "(a datasets Dataset read from files) to key the cache; use decoded_cache='off'")
        return True
    if decoded_cache == "off" or not cache or sig is None:
        return False
    mem = physical_memory()
    return mem is not None and nbytes > MAP_AUTO_FRACTION * mem


def _mapped_splits(entry) -> dict:
    """{split: LabeledImages} whose images are the entry's memory maps (no copy)."""
    tensors = {}
    for name in entry.manifest["splits"]:
        images, labels = entry.split(name)
        tensors[name] = LabeledImages(as_mapped_tensor(images), torch.from_numpy(labels))  # (N, C, H, W) map
    return tensors


def open_mapped(root: Path, sig: str, decoded_cache: str):
    """(tensors, meta) of a sound mapped entry, when the mode would use one; else None."""
    entry = open_entry(root, sig)
    if entry is None:
        return None
    if decoded_cache == "auto":
        mem = physical_memory()
        if mem is None or entry.nbytes <= MAP_AUTO_FRACTION * mem:
            return None  # small enough for memory: "auto" reads it as "off" would
    return _mapped_splits(entry), entry.manifest["meta"]


def build_mapped(root: Path, sig: str, plan: DecodePlan, dataset: str, image_column: str, label_column: str,
                 vocab: LabelVocabulary, skip_corrupt: bool):
    """Decode ``plan`` into the mapped cache entry ``sig`` (or read it, if another process built it)."""
    def build(writer) -> dict:
        _, mode, size, dec_notes = decode_all(plan, dataset, image_column, label_column, vocab, skip_corrupt,
                                              writer=writer)
        return {"meta": {"notes": dec_notes, "mode": mode, "size": list(size)},
                "request": {"dataset": dataset, "splits": list(plan.scans)}}

    entry = get_or_build(root, sig, build, f"dataset {dataset!r} (splits {list(plan.scans)})")
    return _mapped_splits(entry), entry.manifest["meta"]


def read_tensor_cache(path: Path):
    """(tensors, meta) of the tensor file ``path``; None when it is missing or cannot be read."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        tensors = {k: LabeledImages(v["images"], v["labels"]) for k, v in blob["splits"].items()}
        return tensors, json.loads(blob["meta"])
    except Exception:  # noqa: BLE001 - a broken cache entry is re-decoded
        return None


def write_tensor_cache(path: Path, tensors: dict, meta: dict) -> None:
    """Write ``tensors`` and ``meta`` to ``path`` atomically; a failure only means no cache next time."""
    blob = {"splits": {k: {"images": v.images, "labels": v.labels} for k, v in tensors.items()},
            "meta": json.dumps(meta)}
    try:
        write_atomically(path, lambda tmp: torch.save(blob, tmp))
    except (OSError, RuntimeError):  # a cache that cannot be written (read-only, disk full) is not an error
        pass
