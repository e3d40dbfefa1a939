"""Up-front checks: everything that can fail after hours of condensation, checked before the data is read.

Each function is pure (no condensation, no network) and raises one :class:`~hf_lodc.errors.HfLodcError`
whose single line names the option, the value and what to do. The orchestrator calls them in this
order (see each docstring for when):

* :func:`resolve_output_dir` once, at the start: ``~`` and relative paths become one absolute path
  that the artefact, the checkpoints and the logs all use; ``''`` is refused;
* :func:`check_output_dir` / :func:`lock_output_dir`: writable, not a file, and held by this run only
  (an ``fcntl`` lock beside the directory, released when the process exits);
* :func:`check_repo_id` and :func:`check_token` for ``--push-to-hub`` (offline: the token is looked
  up, not verified);
* :func:`check_strategy` for a DSA strategy given outside a run config (``recipes/experts.py``; the run
  configs check theirs as their own field);
* once the image shape is known (dataset header / first batch): :func:`check_eval_models` (each
  model built once and run on a dummy batch of that shape) and :func:`check_memory` with
  :func:`estimate_memory_bytes` (the synthetic set, its optimiser state and the real data against
  the memory available).

The checks of the Python API's in-memory arguments (``data``, ``images``, ``labels``, ``test``) are
``api_inputs.py``'s: they check what a caller built, not the run's options and surroundings.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .api_inputs import check_data  # an API argument's check, re-exported: the condenser asks preflight for it
from .errors import (
    ArtifactError,
    ConfigError,
    HubAuthError,
    MemoryBudgetError,
    OutputDirLockedError,
    UnknownNameError,
)

__all__ = [
    "OutputLock",
    "available_memory_bytes",
    "check_data",
    "check_eval_models",
    "check_memory",
    "check_output_dir",
    "check_repo_id",
    "check_strategy",
    "check_token",
    "estimate_memory_bytes",
    "lock_output_dir",
    "lock_path",
    "locked_output_dir",
    "resolve_output_dir",
]


# ---------------------------------------------------------------------------------------------
# output directory


def resolve_output_dir(path: str | os.PathLike | None, option: str = "--output-dir") -> Path | None:
    """``None`` -> None (no output); ``''`` refused; ``~`` expanded and relative paths made absolute
    against the current directory, once. Use the returned path everywhere (artefact, checkpoints, logs)."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{option} must be a path, got {path!r} ({type(path).__name__})")
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{option} is empty ({text!r}): name a directory for the artefact, or leave the option "
                          "out to save nothing")
    p = Path(os.path.abspath(os.path.expanduser(text)))
    if p.name in ("", ".", ".."):
        raise ConfigError(f"{option} {text!r} resolves to {str(p)!r}, which cannot be an artefact directory; "
                          "name a new folder")
    return p


def check_output_dir(path: Path, option: str = "--output-dir") -> None:
    """Refuse a file, a directory under a file, or a place nothing can be written; creates nothing."""
    if path.exists() and not path.is_dir():
        raise ArtifactError(f"{option} {str(path)!r} is an existing file; choose a directory")
    probe = path if path.is_dir() else path.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ArtifactError(f"{option} {str(path)!r} lies under the file {str(probe)!r}; choose a directory path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ArtifactError(f"{option} {str(path)!r}: {str(probe)!r} is not writable; choose a writable directory")
    try:  # os.access says yes on a read-only mount for root: try it
        fd = os.open(probe / f".hf_lodc-probe-{os.getpid()}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        raise ArtifactError(f"{option} {str(path)!r}: {str(probe)!r} is not writable ({e.strerror}); "
                            "choose a writable directory") from None
    os.close(fd)
    os.unlink(probe / f".hf_lodc-probe-{os.getpid()}")


def check_output_file(path: str, option: str, if_a_folder: str) -> str:
    """The absolute path of the output file ``option`` names, before any work: not a folder (then
    ``if_a_folder`` says what to name instead), in a folder that exists and can be written."""
    out = Path(os.path.abspath(os.path.expanduser(path)))
    if out.is_dir():
        raise ArtifactError(f"{option} {path!r} is a directory; {if_a_folder}")
    if not out.parent.is_dir():
        raise ArtifactError(f"{option} {path!r}: the folder {str(out.parent)!r} does not exist; create it "
                            "or choose another file")
    if not os.access(out.parent, os.W_OK):
        raise ArtifactError(f"{option} {path!r}: {str(out.parent)!r} is not writable; choose another file")
    return str(out)


def lock_path(path: Path) -> Path:
    """The lock file of output directory ``path``: a hidden sibling (the directory itself is replaced
    atomically when the artefact is written, so the lock cannot live inside it)."""
    return path.parent / f".{path.name}.hf_lodc.lock"


@dataclass
class OutputLock:
    """An exclusive ``fcntl`` lock on one output directory; :meth:`release` (or process exit) frees it."""

    path: Path
    lock_file: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_file)  # unlinked while held: a waiting process re-checks the inode
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text().strip()
    except OSError:
        return "another process"
    pid, _, cmd = text.partition(" ")
    return f"process {pid} ({cmd})" if pid.isdigit() else "another process"


def _say_if_taken_over(fd: int, path: Path) -> None:
    """A released lock file is unlinked, so one that still names a holder was left by a process that died
    without releasing it (SIGKILL, OOM killer, power loss). The kernel dropped its ``flock`` when it died,
    so the lock is free and is taken over; say so, since the dead run may have left a checkpoint to resume."""
    from .atomic import pid_alive

    try:
        previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        return
    pid, _, cmd = previous.partition(" ")
    if not pid.isdigit() or int(pid) == os.getpid():
        return
    state = "no longer running" if not pid_alive(int(pid)) else "running, but no longer holding it"
    print(f"[hf_lodc] taking over the stale lock of {str(path)!r}: it was held by process {pid} ({cmd}), "
          f"which is {state}", file=sys.stderr)


def lock_output_dir(path: Path, option: str = "--output-dir", command: Sequence[str] | None = None) -> OutputLock:
    """Take the exclusive lock of output directory ``path`` (its parent is created if needed).

    A second run into the same directory fails at once with :class:`OutputDirLockedError` naming the
    pid and command line of the run that holds it. The lock is released by :meth:`OutputLock.release`
    or when the process exits (the kernel drops ``flock`` locks of a dead process): the lock of a run
    killed outright never blocks the next one, which takes it over with a line saying so.
    """
    lock_file = lock_path(path)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(f"{option} {str(path)!r}: cannot create {str(lock_file.parent)!r} ({e.strerror}); "
                            "choose a writable directory") from None
    cmd = " ".join(shlex.quote(a) for a in (command if command is not None else sys.argv)) or "python"
    for _ in range(5):  # retried only if the file was replaced between open and lock
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ArtifactError(f"{option} {str(path)!r}: cannot create the lock file {str(lock_file)!r} "
                                f"({e.strerror}); choose a writable directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputDirLockedError(
                    f"{option} {str(path)!r} is in use by {_holder(lock_file)}; wait for it to finish, stop it, "
                    "or choose another output directory"
                ) from None
            raise ArtifactError(f"{option} {str(path)!r}: cannot lock {str(lock_file)!r} ({e.strerror})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder unlinked it after we opened it: lock the new file
            os.close(fd)
            continue
        _say_if_taken_over(fd, path)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {cmd}\n".encode())
        return OutputLock(path, lock_file, fd)
    raise OutputDirLockedError(f"{option} {str(path)!r}: the lock file {str(lock_file)!r} keeps changing; another "
                               "run is starting there. Choose another output directory")


# ---------------------------------------------------------------------------------------------
# Hub


def check_repo_id(repo_id: str, option: str = "--push-to-hub") -> str:
    """A valid Hub repo id (``owner/name`` or ``name``), by huggingface_hub's own validator."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str):
        raise ConfigError(f"{option} must be a repo id like 'alice/mnist-lodm', got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid"
        raise ConfigError(f"{option} {repo_id!r} is not a valid Hub repo id ({first.rstrip('.')}); use "
                          "'owner/name' with letters, digits, '-', '_' and '.'") from None
    return repo_id


def check_token(token: str | None = None, option: str = "--push-to-hub") -> str:
    """The token a push will use (explicit, ``HF_TOKEN`` or the saved login); refuses when there is none.

    No network: the token is not verified here (the push reports a rejected one)."""
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubAuthError(f"{option} needs a Hub token and none is set: run `hf auth login`, set HF_TOKEN, or "
                           "drop the option (push later with recipes/evaluate.py DIR --eval-runs 0 --push-to-hub REPO)")
    return found


# ---------------------------------------------------------------------------------------------
# names


def check_strategy(strategy: str | None, option: str = "dsa_strategy") -> str:
    """A DSA strategy: ``none`` / empty, or underscore-separated families of ``augment.FAMILIES``."""
    from .data.augment import FAMILIES

    if strategy is None:
        return "none"
    if not isinstance(strategy, str):
        raise ConfigError(f"{option} must be a string like 'color_crop_cutout', got {strategy!r}")
    names = [] if strategy.strip().lower() in ("", "none") else strategy.strip().split("_")
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise UnknownNameError(f"{option} {strategy!r}: unknown DSA family {unknown[0]!r}; valid families: "
                               f"{', '.join(FAMILIES)}, joined by '_' (or 'none')")
    return strategy


def check_eval_models(models: Iterable[str], image_shape: tuple[int, int, int], num_classes: int = 2,
                      option: str = "eval_models") -> None:
    """Build each model once and run it on a dummy batch of ``image_shape`` (C, H, W).

    A model that cannot take that size (``vit_tiny_patch16_224`` at 28 px, a stride that shrinks
    the map to nothing) is a :class:`ConfigError` now, instead of a traceback after the condensation.
    """
    import torch

    from .models import create_eval_model

    c, h, w = (int(v) for v in image_shape)
    for name in models:
        try:
            net = create_eval_model(name, num_classes=max(2, int(num_classes)), in_chans=c, img_size=(h, w))
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - any constructor failure means "not at this size"
            raise ConfigError(_model_msg(option, name, image_shape, e)) from None
        net.eval()
        try:
            with torch.no_grad():
                out = net(torch.zeros(2, c, h, w))  # (2, C, H, W) -> (2, K)
        except Exception as e:  # noqa: BLE001
            raise ConfigError(_model_msg(option, name, image_shape, e)) from None
        if tuple(out.shape) != (2, max(2, int(num_classes))):
            raise ConfigError(f"{option}: model {name!r} maps images {tuple(image_shape)} to outputs "
                              f"{tuple(out.shape)}, not (batch, classes); choose another model")


def _model_msg(option: str, name: str, image_shape, e: BaseException) -> str:
    why = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return (f"{option}: model {name!r} cannot take images of shape {tuple(image_shape)} (C, H, W) "
            f"({type(e).__name__}: {why}); choose a model for this size (e.g. convnet), or resize with --image-size")


# ---------------------------------------------------------------------------------------------
# memory


def estimate_memory_bytes(num_classes: int, images_per_class: int, image_shape: tuple[int, int, int],
                          rank: int | None = None, num_real: int = 0, num_test: int = 0) -> int:
    """Peak host memory of a condensation, roughly: the synthetic parameters with their gradient and
    momentum (3x float32), the decoded synthetic images (float32), and the real data as uint8 plus a
    float32 batch copy of it."""
    c, h, w = (int(v) for v in image_shape)
    n = int(num_classes) * int(images_per_class)
    per_image = c * h * w
    params = n * (c * int(rank) * (h + w) if rank else per_image)
    synthetic = 4 * (3 * params + n * per_image)
    real = (int(num_real) + int(num_test)) * per_image * (1 + 4)
    return synthetic + real


def available_memory_bytes() -> int | None:
    """Memory available to a new allocation (psutil, else /proc/meminfo MemAvailable); None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil is optional
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def check_memory(need_bytes: int, what: str, available: int | None = None, headroom: float = 0.9) -> None:
    """Refuse when ``need_bytes`` exceed ``headroom`` x the available memory (``what`` names the cause,
    e.g. ``"--ipc 100000000: 300000000 synthetic images of (3, 32, 32)"``)."""
    avail = available_memory_bytes() if available is None else available
    if avail is None:
        return
    if need_bytes > headroom * avail:
        raise MemoryBudgetError(f"{what} needs about {_gib(need_bytes)} of memory, {_gib(avail)} is available; "
                                "lower ipc / images_per_class / rank or max_per_class")


@contextlib.contextmanager
def locked_output_dir(path: Path | None, option: str = "--output-dir") -> Iterator[OutputLock | None]:
    """``with locked_output_dir(out):`` check and lock ``out`` (None: nothing) for the whole run."""
    if path is None:
        yield None
        return
    check_output_dir(path, option)
    lock = lock_output_dir(path, option)
    try:
        yield lock
    finally:
        lock.release()

