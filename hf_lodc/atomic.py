"""Atomic writes: a file or a directory appears whole under its final name, or not at all.

Everything hf_lodc writes goes through here: the artefact directory (:func:`atomic_dir`, with the
rules for which existing directory it may replace), checkpoint directories (:func:`replace_dir`) and
single files (:func:`write_atomically`: JSON reports, expert trajectories, the decoded-data cache).
A failure (read-only directory, disk full, an exception of the writer) never leaves a half-written
file or directory under the final name.

A process killed outright (SIGKILL, the machine's OOM killer) runs no cleanup, so every temporary name
carries its writer's pid, and the next write of the same target removes the temporaries of writers that
are no longer running (:func:`sweep_dead`); a directory swap cut between its two renames is undone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from safetensors import SafetensorError

from .errors import ArtifactError

__all__ = ["WRITE_ERRORS", "atomic_dir", "artefact_path", "check_writable", "pid_alive", "replace_dir", "sweep_dead",
           "write_atomically"]

# What a run itself may have put in its output directory before the artefact exists.
_RUN_ENTRIES = frozenset({"checkpoints", "logs"})
# Of those, what the artefact keeps when it replaces the directory (tracker logs, `--log-with`).
_KEPT_ENTRIES = ("logs",)
# Failures of the writers that mean "the file system refused" (no space, read-only, quota, ...).
WRITE_ERRORS = (OSError, SafetensorError)


def _is_replaceable(target: Path) -> bool:
    """An existing directory may be replaced only if it is empty, holds only this run's
    checkpoints, or is an hf_lodc artefact: never a folder of the user's own files."""
    if not target.is_dir():
        return False
    names = {e.name for e in target.iterdir()}
    if names <= _RUN_ENTRIES:
        return True
    try:
        return "format_version" in json.loads((target / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _fsync_tree(root: Path) -> None:
    """Flush the files of ``root`` to disk, so a crash after the rename cannot leave them empty."""
    for p in sorted(root.rglob("*")):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a process of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead(target: Path) -> list[Path]:
    """Remove what killed writers of ``target`` left beside it; returns what was removed.

    ``.<name>.tmp<pid>...`` (a file or directory being written) of a dead pid is deleted. ``.<name>.old<pid>``
    (the previous ``target`` during :func:`replace_dir`) of a dead pid is deleted, or renamed back when
    ``target`` is missing: the writer died between moving the old one away and renaming the new one in.
    """
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)(\d+)(?:-.*)?$")
    removed = []
    for p in sorted(parent.iterdir()):
        m = pattern.match(p.name)
        if m is None or pid_alive(int(m.group(2))):
            continue
        if m.group(1) == "old" and not target.exists() and p.is_dir():
            os.replace(p, target)
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed.append(p)
    return removed


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is restored if the rename fails."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = target.with_name(f".{target.name}.old{os.getpid()}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old, target)  # roll back: the previous artefact stays where it was
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = True, keep: tuple[str, ...] = ()):
    """Yield a temporary directory next to ``target``; on success it replaces ``target``.

    ``keep``: entries of the run's own (``checkpoints``) that move from the old ``target`` into the new
    one, besides the tracker logs that always do.

    On any failure (read-only file system, disk full, an exception in the ``with`` body) the
    temporary directory is removed and ``target`` is left exactly as it was: no partial artefact.
    File-system failures become :class:`ArtifactError`; other exceptions propagate unchanged.
    """
    target = artefact_path(target)
    sweep_dead(target)
    existed = target.exists()
    if existed:
        if not overwrite:
            raise ArtifactError(f"{str(target)!r} exists; pass overwrite=True or choose another directory")
        if not _is_replaceable(target):
            raise ArtifactError(
                f"{str(target)!r} exists and is not an hf_lodc artefact (it is a file, or a folder with other "
                "files); refusing to replace it. Choose a new or empty output directory."
            )
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp{os.getpid()}-", dir=parent))
    except OSError as e:
        raise ArtifactError(
            f"cannot write the artefact {str(target)!r}: {str(parent)!r} is not writable ({e.strerror or e}). "
            "Choose a writable output directory."
        ) from None
    moved: list[str] = []
    try:
        yield tmp
        _fsync_tree(tmp)
        if existed:
            for name in (*_KEPT_ENTRIES, *keep):  # moved, not copied (same file system); moved back on failure
                if (target / name).exists() and not (tmp / name).exists():
                    os.replace(target / name, tmp / name)
                    moved.append(name)
        replace_dir(tmp, target)
    except WRITE_ERRORS as e:
        _move_back(tmp, target, moved)
        shutil.rmtree(tmp, ignore_errors=True)
        kept = "the artefact already there is unchanged" if existed else "no directory was created"
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ArtifactError(
            f"writing the artefact {str(target)!r} failed ({reason}); nothing partial was left: {kept}. "
            "Free some space or choose another output directory."
        ) from e
    except BaseException:
        _move_back(tmp, target, moved)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_back(tmp: Path, target: Path, names: list[str]) -> None:
    for name in names:
        if (tmp / name).exists() and target.is_dir():
            os.replace(tmp / name, target / name)


def artefact_path(target: str | os.PathLike) -> Path:
    """``target`` as an absolute path with a folder name of its own (a file-system root has none)."""
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(target))))
    if target.name in ("", ".", ".."):
        raise ArtifactError(f"{str(target)!r} cannot be an artefact directory; name a new folder")
    return target


def check_writable(target: str | os.PathLike) -> None:
    """Fail now, not after hours of condensation, if ``target`` could not receive an artefact.

    Creates nothing: probes the nearest existing ancestor with a temporary directory it removes.
    """
    target = artefact_path(target)
    if target.exists() and not _is_replaceable(target):
        raise ArtifactError(
            f"{str(target)!r} exists and is not an hf_lodc artefact (it is a file, or a folder with other "
            "files); refusing to replace it. Choose a new or empty output directory."
        )
    probe_root = target.parent
    while not probe_root.exists():
        probe_root = probe_root.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hf_lodc-probe", dir=probe_root))
    except OSError as e:
        raise ArtifactError(
            f"cannot write the artefact {str(target)!r}: {str(probe_root)!r} is not writable "
            f"({e.strerror or e}). Choose a writable output directory."
        ) from None


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` to a temporary sibling of ``path`` (its parent is created), then rename it over
    ``path``, so readers see the old file or the whole new one. On failure the temporary file is
    removed and the exception propagates unchanged."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    sweep_dead(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
