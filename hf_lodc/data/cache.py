"""Decoded splits on disk, read through memory maps, so a dataset larger than memory can be condensed.

An *entry* holds the decoded splits of one load request: for each split a uint8 ``(N, C, H, W)``
``.npy`` file (channels first, so the tensor that maps it needs no copy to be in the layout every
consumer reads) and its labels, plus ``manifest.json`` (shapes, dtypes, file sizes, a checksum of
each file's header and of blocks sampled across its data, the per-class counts, the decoding notes
and ``"complete": true``). Entries are keyed by the request (source id, revision, the ``datasets``
fingerprints of the splits, requested mode and size, ...): see ``load_cache.cache_key``.

Where: ``$HF_LODC_CACHE/decoded`` (or ``$XDG_CACHE_HOME/hf_lodc/decoded``, by default
``~/.cache/hf_lodc/decoded``). Clear it with ``rm -rf ~/.cache/hf_lodc/decoded`` (nothing else
reads it; an entry in use by a running process stays readable until that process ends, as the
kernel keeps deleted mapped files alive).

Writing is crash-safe and single-writer:

* the builder writes into ``.<key>.tmp-<pid>/`` and the finished folder is renamed to ``<key>/`` in
  one step, with the manifest written (and fsync'd) last; a reader never sees half an entry;
* one process builds (``fcntl.flock`` on ``<key>.lock``); the others wait on the lock and then read
  what it built. A writer that dies releases its lock with its life, and the next one cleans its
  temporary folder and builds again;
* an entry whose manifest is missing, unreadable, not ``complete``, or disagrees with a file's size,
  header or sampled blocks is *damaged*: it is never read, but deleted and rebuilt under the lock.

The arrays are opened copy-on-write (a private map): pages are read from the file on demand and
belong to the page cache (file-backed, reclaimable), so the process's anonymous memory holds only
the batches gathered from them; an in-place write would go to a private page, never to the file.
The map reserves no memory (``MAP_NORESERVE``, see :func:`map_npy`): numpy's own copy-on-write map
(``mmap_mode="c"``) reserves the file's size, which the kernel refuses for a file larger than the
machine's memory (ENOMEM for a 27 GB entry on a 24 GB machine), the very case the cache is for.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mmap
import os
import platform
import shutil
import sys
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..errors import CacheError

__all__ = ["default_cache_dir", "decoded_cache_dir", "CacheEntry", "EntryWriter", "open_entry", "get_or_build",
           "as_mapped_tensor", "is_mapped", "CACHE_FORMAT"]

CACHE_FORMAT = 1  # bump when the layout changes: older entries then read as damaged and are rebuilt
MANIFEST = "manifest.json"
_SAMPLE_BLOCKS, _BLOCK = 16, 4096  # checksum of 16 blocks of 4 KiB spread over each file's data


def default_cache_dir() -> Path:
    """hf_lodc's cache root: ``$HF_LODC_CACHE``, else ``$XDG_CACHE_HOME/hf_lodc`` (``~/.cache/hf_lodc``)."""
    root = os.environ.get("HF_LODC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hf_lodc"
    )
    return Path(root)


def decoded_cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder of the memory-mapped decoded entries under ``root`` (default: :func:`default_cache_dir`)."""
    return Path(root or default_cache_dir()) / "decoded"


# ---------------------------------------------------------------------------------------------
# which tensors are memory-mapped

_MAPPED: set[int] = set()  # storage data pointers of tensors made by as_mapped_tensor


# Linux's MAP_NORESERVE (newer Pythons' mmap module names it), on the architectures where it is 0x4000
_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform == "linux" and platform.machine() in
                     ("x86_64", "aarch64", "arm64", "i686", "riscv64") else None)


def map_npy(path: Path) -> np.ndarray:
    """The ``.npy`` array at ``path`` as a private (copy-on-write) memory map that reserves no memory.

    A private writable map normally reserves its whole size against the machine's memory; under Linux's
    default overcommit rule a map larger than memory + swap is then refused outright. ``MAP_NORESERVE``
    drops the reservation: pages still come from the file on demand, and only a page written in place
    becomes the process's own. Where that flag is unknown, or the kernel refuses even so (strict
    overcommit), the map is read-only (``mmap_mode="r"``: no reservation either)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if _NORESERVE is not None and version in ((1, 0), (2, 0)):
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
            try:
                mm = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE | _NORESERVE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
            except OSError:
                mm = None
            if mm is not None:  # the array keeps the map alive (its .base)
                return np.ndarray(shape, dtype=dtype, buffer=mm, offset=offset, order="F" if fortran else "C")
    return np.load(path, mmap_mode="r")  # torch then warns that the tensor is not writable: it is not


def as_mapped_tensor(arr: np.ndarray) -> torch.Tensor:
    """A tensor sharing the memory of the mapped ``arr``, remembered as mapped (see :func:`is_mapped`)."""
    t = torch.from_numpy(arr)
    if t.numel() == 0:  # nothing mapped (and no address of its own to remember)
        return t
    ptr = t.untyped_storage().data_ptr()
    _MAPPED.add(ptr)
    weakref.finalize(arr if getattr(arr, "base", None) is None else arr.base, _MAPPED.discard, ptr)
    return t


def is_mapped(t: torch.Tensor) -> bool:
    """Whether ``t`` (or the tensor it is a view of) reads a decoded cache file through a memory map:
    then it must be indexed per batch, never copied whole (a gather copy is an ordinary tensor)."""
    return isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.untyped_storage().data_ptr() in _MAPPED


# ---------------------------------------------------------------------------------------------
# checksums


def _read_header(f) -> tuple[tuple[int, int], tuple[int, ...], bool, np.dtype]:
    """(version, shape, fortran_order, dtype) of the npy file open at its start; leaves ``f`` at the data."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    return version, shape, fortran, dtype


def _file_facts(path: Path) -> dict[str, Any]:
    """Size, npy header (shape, dtype) and checksums of ``path``'s header and of sampled data blocks."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        _, shape, fortran, dtype = _read_header(f)
        offset = f.tell()
        f.seek(0)
        header = f.read(offset)
        h = hashlib.blake2b(digest_size=16)
        span = max(size - offset - _BLOCK, 0)
        for i in range(_SAMPLE_BLOCKS):
            f.seek(offset + (span * i) // max(_SAMPLE_BLOCKS - 1, 1))
            h.update(f.read(_BLOCK))
    return {"bytes": size, "shape": list(shape), "dtype": dtype.str, "fortran": bool(fortran),
            "header_blake2b": hashlib.blake2b(header, digest_size=16).hexdigest(), "sample_blake2b": h.hexdigest()}


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class CacheEntry:
    """A complete, checked entry. ``split(name)`` -> (images (N, C, H, W) uint8 map, labels (N,) int64)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def nbytes(self) -> int:
        return sum(s["images"]["bytes"] for s in self.manifest["splits"].values())

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        facts = self.manifest["splits"][name]
        # (N, C, H, W) uint8, file-backed; a split with no rows cannot be mapped (and needs no map)
        images = map_npy(self.path / facts["images"]["file"]) if facts["rows"] else \
            np.load(self.path / facts["images"]["file"])
        labels = np.load(self.path / facts["labels"]["file"])  # (N,) int64, small: read into memory
        return images, labels

    def class_counts(self, name: str) -> list[int]:
        return list(self.manifest["splits"][name]["class_counts"])


def _check(path: Path, key: str) -> tuple[dict[str, Any] | None, str]:
    """(manifest, "") of a sound entry at ``path``, else (None, what is wrong)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return None, "no manifest (a partial write)"
    except (OSError, ValueError) as e:
        return None, f"unreadable manifest ({type(e).__name__})"
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT or manifest.get("key") != key:
        return None, "manifest of another format or key"
    if manifest.get("complete") is not True:
        return None, "manifest not marked complete"
    try:
        for split, facts in manifest["splits"].items():
            for part in ("images", "labels"):
                want = facts[part]
                got = _file_facts(path / want["file"])
                bad = [k for k, v in got.items() if want.get(k) != v]
                if bad:
                    return None, f"split {split!r} {part}: {', '.join(bad)} differ from the manifest"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"a file cannot be checked ({type(e).__name__}: {e})"
    return manifest, ""


def open_entry(root: str | os.PathLike, key: str) -> CacheEntry | None:
    """The entry ``key`` under ``root`` if it is complete and sound, else None (never a partial one)."""
    path = Path(root) / key
    if not path.is_dir():
        return None
    manifest, _ = _check(path, key)
    return CacheEntry(path, manifest) if manifest is not None else None


# ---------------------------------------------------------------------------------------------
# writing


class EntryWriter:
    """Handed to a builder: ``images(split, shape)`` opens the split's uint8 map to fill,
    ``labels(split, labels, num_classes)`` stores its labels; the manifest is written by ``get_or_build``."""

    def __init__(self, tmp: Path, key: str):
        self.tmp, self.key = tmp, key
        self._splits: dict[str, dict[str, Any]] = {}
        self._maps: dict[str, np.memmap] = {}

    def images(self, split: str, shape: tuple[int, int, int, int]) -> np.memmap:
        """A writable (N, C, H, W) uint8 map of ``split``; ``labels`` later says how many rows are kept."""
        name = f"{split}.images.npy"
        arr = np.lib.format.open_memmap(self.tmp / name, mode="w+", dtype=np.uint8, shape=tuple(shape))
        self._maps[split] = arr
        self._splits.setdefault(split, {})["images"] = {"file": name}
        return arr

    def labels(self, split: str, labels: np.ndarray, num_classes: int) -> None:
        """The labels of the first ``len(labels)`` rows of ``split``'s images (the rows kept)."""
        labels = np.ascontiguousarray(labels, dtype=np.int64)  # (n,)
        arr = self._maps.pop(split)
        n = len(labels)
        if n != arr.shape[0]:  # rows dropped while decoding: cut the file to the rows kept
            arr.flush()
            offset = arr.offset
            row = int(np.prod(arr.shape[1:]))
            del arr
            self._truncate(self.tmp / f"{split}.images.npy", offset, n, row)
        else:
            arr.flush()
            del arr
        name = f"{split}.labels.npy"
        np.save(self.tmp / name, labels)
        valid = labels[labels >= 0]
        self._splits[split]["labels"] = {"file": name}
        self._splits[split]["class_counts"] = np.bincount(valid, minlength=num_classes).tolist()
        self._splits[split]["rows"] = n

    @staticmethod
    def _truncate(path: Path, offset: int, n: int, row: int) -> None:
        """Rewrite the npy header for ``n`` rows and drop the rows past them."""
        with open(path, "r+b") as f:
            version, shape, fortran, dtype = _read_header(f)
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran,
                      "shape": (n,) + tuple(shape[1:])}
            f.seek(0)
            write = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
            write(f, header)  # numpy pads headers to 64 bytes (with room to grow): fewer rows fit the same length
            if f.tell() != offset:
                raise CacheError(f"decoded cache: rewriting the header of {str(path)!r} moved the data")
            f.truncate(offset + n * row)

    def commit(self, meta: dict[str, Any]) -> None:
        if self._maps:
            raise CacheError(f"decoded cache: splits {sorted(self._maps)} were opened but given no labels")
        for split, facts in self._splits.items():
            for part in ("images", "labels"):
                p = self.tmp / facts[part]["file"]
                with open(p, "rb+") as f:
                    os.fsync(f.fileno())
                facts[part].update(_file_facts(p))
        manifest = {"format": CACHE_FORMAT, "key": self.key, "complete": True, "created": time.time(),
                    "splits": self._splits, **meta}
        p = self.tmp / MANIFEST
        with open(p, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def _locked(lock_path: Path, describe: str, poll_s: float = 0.5) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (waiting, with one message, while another holds it)."""
    import fcntl

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if not told:
                    warnings.warn(f"decoded cache: another process is writing {describe}; waiting for it "
                                  f"(lock {str(lock_path)!r})", stacklevel=4)
                    told = True
                time.sleep(poll_s)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove(path: Path) -> None:
    """Delete ``path`` (a folder): first renamed aside, so a half-deleted entry is never at its name."""
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.trash-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def get_or_build(root: str | os.PathLike, key: str, build: Callable[[EntryWriter], dict[str, Any]],
                 describe: str) -> CacheEntry:
    """The entry ``key``: opened if sound, else built once by ``build`` (which fills an
    :class:`EntryWriter` and returns manifest metadata) while other processes wait.

    A damaged or partial entry is deleted and rebuilt (with a warning naming what was wrong).
    Raises :class:`~hf_lodc.errors.CacheError` when the folder cannot be written.
    """
    root = Path(root)
    entry = open_entry(root, key)
    if entry is not None:
        return entry
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root / f"{key}.lock", describe):
            path = root / key
            if path.is_dir():
                manifest, problem = _check(path, key)
                if manifest is not None:  # built by the process we waited for
                    return CacheEntry(path, manifest)
                warnings.warn(f"decoded cache: the entry for {describe} at {str(path)!r} is damaged ({problem}); "
                              "rebuilding it", stacklevel=3)
                _remove(path)
            for stale in root.glob(f".{key}.tmp-*"):  # left by a writer that died (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
            tmp = root / f".{key}.tmp-{os.getpid()}"
            tmp.mkdir()
            try:
                writer = EntryWriter(tmp, key)
                writer.commit(build(writer))
                os.rename(tmp, path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except CacheError:
        raise
    except OSError as e:
        raise CacheError(
            f"decoded cache: cannot write {describe} under {str(root)!r} ({type(e).__name__}: {e}). Free disk space "
            "(the entry needs the decoded size: N x C x H x W bytes), point HF_LODC_CACHE at a writable folder, or "
            "use decoded_cache='off' to decode into memory."
        ) from None
    entry = open_entry(root, key)
    if entry is None:
        raise CacheError(f"decoded cache: the entry for {describe} at {str(root / key)!r} was written but does not "
                         "read back as complete (is the disk full, or another program writing there?)")
    return entry
