"""Encoded images -> one ``(N, H, W, C)`` uint8 array of a single mode and size.

Two passes over each split:

1. :func:`scan_split` reads only the image headers (mode, size) and finds rows that cannot even be
   opened;
2. :func:`decode_split` decodes every image and converts it to the target mode (``L`` or ``RGB``)
   and size (bilinear resize). Alpha (RGBA, LA, transparent palettes) is composited on black,
   16-bit greyscale is scaled to 8 bits, CMYK / palette / YCbCr go through PIL's conversion.

:func:`decode_split_into` is the decode pass for the on-disk cache: rows go straight into a
channels-first memory map, decoded by a few threads (PIL releases the GIL while it decodes and
resizes), each row at a position fixed by the scan, so the result does not depend on the thread count.

A row whose bytes cannot be decoded raises :class:`~hf_lodc.errors.ImageDecodeError` naming the
split and the row's index in that split, or is skipped (and counted) with ``skip_corrupt``.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ImageDecodeError

__all__ = ["TARGET_MODES", "SplitScan", "scan_split", "decode_split", "decode_split_into", "target_mode_of",
           "convert_image"]

TARGET_MODES = {"L": 1, "RGB": 3}  # stored mode -> channels
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def target_mode_of(mode: str) -> str:
    """The stored mode an image of PIL ``mode`` maps to by default: ``L`` for greyscale, else ``RGB``."""
    return "L" if mode in _GREY_MODES else "RGB"


@dataclass
class SplitScan:
    """Header facts of one split; ``rows[i]`` is the split's own row index of entry ``i``."""

    split: str
    rows: np.ndarray  # (n,) int64
    modes: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (W, H) -> count
    corrupt: dict[int, str] = field(default_factory=dict)  # position in the split -> reason
    first_row: dict = field(default_factory=dict)  # (mode, (W, H)) -> the split's first row of that kind


def _open(entry: Any):
    """PIL image of a ``datasets.Image(decode=False)`` entry (lazy: only the header is read)."""
    from PIL import Image as PILImage

    if isinstance(entry, dict):
        if entry.get("bytes") is not None:
            return PILImage.open(io.BytesIO(entry["bytes"]))
        if entry.get("path"):
            path = entry["path"]
            if "://" in path:  # remote / archive member: let datasets resolve it
                import datasets

                return datasets.Image().decode_example(entry)
            return PILImage.open(path)
        raise ValueError("the row has no image (empty or null)")
    if entry is None:
        raise ValueError("the row has no image (empty or null)")
    return entry  # already a PIL image


def _reason(exc: BaseException) -> str:
    if type(exc).__name__ == "UnidentifiedImageError":  # its text names a BytesIO object: say what it means
        return "UnidentifiedImageError: not an image format PIL can read"
    return f"{type(exc).__name__}: {exc}"


def _decode_error(dataset: str, split: str, row: int, exc: BaseException) -> ImageDecodeError:
    return ImageDecodeError(
        f"dataset {dataset!r}, split {split!r}, row {row}: image cannot be decoded ({_reason(exc)}). "
        "Pass skip_corrupt=True to drop such rows (on the command line: --skip-corrupt)."
    )


def scan_split(raw, image_column: str, split: str, dataset: str, rows: np.ndarray, skip_corrupt: bool) -> SplitScan:
    """Header pass over ``raw`` (image column cast to ``decode=False``)."""
    scan = SplitScan(split, rows)
    pos = 0
    for batch in raw.iter(batch_size=1024):
        for entry in batch[image_column]:
            try:
                img = _open(entry)
                scan.modes[img.mode] += 1
                scan.sizes[img.size] += 1
                scan.first_row.setdefault((img.mode, img.size), int(rows[pos]))
            except Exception as e:  # noqa: BLE001 - any decoder failure means "corrupt row"
                if not skip_corrupt:
                    raise _decode_error(dataset, split, int(rows[pos]), e) from None
                scan.corrupt[pos] = _reason(e)
            pos += 1
    return scan


def convert_image(img, mode: str, size: tuple[int, int]):
    """Decode ``img`` fully and return it in ``mode`` (``L``/``RGB``) and ``size`` (W, H)."""
    from PIL import Image as PILImage

    img.load()
    if img.mode.startswith("I;16"):  # 16-bit greyscale: keep the top 8 bits
        img = PILImage.fromarray((np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        bg = PILImage.new("RGB", img.size, (0, 0, 0))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        img = bg
    if img.mode != mode:
        img = img.convert(mode)
    if img.size != size:
        img = img.resize(size, PILImage.BILINEAR)
    return img


def decode_split(raw, image_column: str, scan: SplitScan, dataset: str, mode: str, size: tuple[int, int],
                 skip_corrupt: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode pass. Returns ``(images (n_ok, H, W, C) uint8, keep (n,) bool, converted count)``.

    Rows that fail now (header fine, pixels broken) are added to ``scan.corrupt``.
    """
    n = len(scan.rows)
    channels = TARGET_MODES[mode]
    out = np.empty((n, size[1], size[0], channels), dtype=np.uint8)  # (n, H, W, C)
    keep = np.zeros(n, dtype=bool)
    converted, pos, k = 0, 0, 0
    for batch in raw.iter(batch_size=1024):
        for entry in batch[image_column]:
            if pos not in scan.corrupt:
                try:
                    img = _open(entry)
                    if img.mode != mode or img.size != size:
                        converted += 1
                    arr = np.asarray(convert_image(img, mode, size), dtype=np.uint8)
                    out[k] = arr.reshape(size[1], size[0], channels)
                    keep[pos] = True
                    k += 1
                except Exception as e:  # noqa: BLE001
                    if not skip_corrupt:
                        raise _decode_error(dataset, scan.split, int(scan.rows[pos]), e) from None
                    scan.corrupt[pos] = _reason(e)
            pos += 1
    return out[:k], keep, converted


def _decode_rows(raw, image_column: str, scan: SplitScan, dataset: str, mode: str, size: tuple[int, int],
                 skip_corrupt: bool, out: np.ndarray, target: np.ndarray, start: int, stop: int):
    """Decode positions [start, stop) into ``out[target[pos]]`` (C, H, W) -> (converted, {pos: reason})."""
    channels = TARGET_MODES[mode]
    converted, failed = 0, {}
    entries = raw[start:stop][image_column]  # one arrow read for the chunk
    for pos, entry in zip(range(start, stop), entries):
        if pos in scan.corrupt:
            continue
        try:
            img = _open(entry)
            if img.mode != mode or img.size != size:
                converted += 1
            arr = np.asarray(convert_image(img, mode, size), dtype=np.uint8).reshape(size[1], size[0], channels)
            out[target[pos]] = arr.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        except Exception as e:  # noqa: BLE001 - any decoder failure means "corrupt row"
            if not skip_corrupt:
                raise _decode_error(dataset, scan.split, int(scan.rows[pos]), e) from None
            failed[pos] = _reason(e)
    return converted, failed


def _close_gaps(out: np.ndarray, slots: list[int], n_slots: int, block: int = 4096) -> None:
    """Shift the rows of ``out[:n_slots]`` left over the empty ``slots`` (sorted), in blocks."""
    for j, slot in enumerate(slots):
        end = slots[j + 1] if j + 1 < len(slots) else n_slots
        for s in range(slot + 1, end, block):  # destination below source: a forward copy never overwrites unread rows
            e = min(s + block, end)
            out[s - j - 1:e - j - 1] = out[s:e]


def decode_split_into(raw, image_column: str, scan: SplitScan, dataset: str, mode: str, size: tuple[int, int],
                      skip_corrupt: bool, out: np.ndarray, workers: int = 1,
                      progress: Callable[[int], Any] | None = None, chunk: int = 512) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode pass into ``out``, an (n, C, H, W) uint8 array (a memory map of the decoded cache), with
    ``workers`` threads over chunks of ``chunk`` rows. Returns ``(out[:n_ok], keep (n,) bool, converted)``:
    the same images, in the same order, as :func:`decode_split` (channels first).

    Each row's place is fixed by the scan (its position minus the corrupt rows before it); rows that
    fail only now (header fine, pixels broken) are added to ``scan.corrupt`` and the rows after them
    moved up over the gap, once, at the end.
    """
    from concurrent.futures import ThreadPoolExecutor

    n = len(scan.rows)
    bad = np.zeros(n, dtype=bool)
    bad[list(scan.corrupt)] = True
    target = np.arange(n) - np.cumsum(bad) + bad  # (n,) slot of each good row: corrupt rows before it skipped
    spans = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    converted, late = 0, {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = [pool.submit(_decode_rows, raw, image_column, scan, dataset, mode, size, skip_corrupt, out, target, a, b)
                for a, b in spans]
        try:
            for (a, b), job in zip(spans, jobs):  # in order: the first failing row is the one reported
                c, failed = job.result()
                converted += c
                late.update(failed)
                if progress is not None:
                    progress(b - a)
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
    n_ok = n - len(scan.corrupt)
    if late:
        _close_gaps(out, sorted(int(target[p]) for p in late), n_ok)
        scan.corrupt.update(late)
    keep = np.ones(n, dtype=bool)
    keep[list(scan.corrupt)] = False
    return out[:n - len(scan.corrupt)], keep, converted
