"""Condensation checkpoints on disk: save, read, check, prune, find the latest, say how to resume.

A checkpoint is a directory ``<checkpoint_dir>/iter_<i>/`` holding what ``accelerator.save_state``
writes (the RNG states of every process, and anything the calling script registered) plus
``condenser_state.pt``: the class-major synthetic set and the momentum buffers of its optimiser
gathered from all processes, the iteration, the loss history, the config and the run identity
(``identity.py``). That state is a file of its own rather than a ``register_for_checkpointing``
object because it must be gathered by a collective on every process before the main process
writes it, and because Accelerate matches registered objects by position in an append-only list,
which breaks when one Accelerator runs several condensations (continual learning, tests).

A checkpoint is written to ``.tmp-iter_<i>`` and renamed, so a SIGKILL during a save leaves the
previous one intact; a failed write (disk full, permissions: ``OSError``, or the ``RuntimeError``
torch's zip writer raises on a full disk) removes the partial directory and raises
``ArtifactError``. After a successful save the older checkpoints are pruned. ``latest_checkpoint``
picks the highest complete iteration, with any number of processes.

Resuming (``check_resumable``) refuses a checkpoint whose run identity differs from this run's,
listing every differing setting with both values, and an iteration count smaller than the
checkpoint already ran; evaluation settings and a larger iteration count are fine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ArtifactError, ConfigError
from ..atomic import replace_dir
from .identity import NOT_IDENTITY, check_identity

__all__ = ["CHECKPOINT_PREFIX", "STATE_FILE", "latest_checkpoint", "resume_command", "save_checkpoint",
           "read_checkpoint", "check_resumable", "check_resume_target", "prune", "check_rng_saved",
           "incomplete_checkpoints"]

CHECKPOINT_PREFIX = "iter_"  # <checkpoint_dir>/iter_0000120/ holds the state after 120 iterations
STATE_FILE = "condenser_state.pt"
_WRITE_ERRORS = (OSError, RuntimeError)  # torch.save on a full disk: RuntimeError from the zip writer


def latest_checkpoint(checkpoint_dir: str | os.PathLike | None) -> Path | None:
    """The complete checkpoint with the highest iteration in ``checkpoint_dir`` (None if none)."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return None
    found = [p for p in Path(checkpoint_dir).glob(CHECKPOINT_PREFIX + "*")
             if p.name[len(CHECKPOINT_PREFIX):].isdigit() and (p / STATE_FILE).is_file()]
    return max(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):])) if found else None


def resume_command(world: int = 1, argv: list[str] | None = None) -> str:
    """The command line that resumes this process's run (the script's own arguments + ``--resume``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0].endswith(".py") or Path(argv[0]).name == "__main__.py":
        return "call again with resume=True and the same checkpoint directory"
    launcher = "python" if world == 1 else f"accelerate launch --num_processes {world} [your launch options]"
    return " ".join([launcher, *(shlex.quote(a) for a in argv if a != "--resume"), "--resume"])


def prune(checkpoint_dir: Path, keep: Path) -> None:
    """Delete older checkpoints and leftovers of interrupted saves (main process)."""
    for p in checkpoint_dir.iterdir():
        if p != keep and p.is_dir() and (p.name.startswith(CHECKPOINT_PREFIX) or p.name.startswith(".tmp-")):
            shutil.rmtree(p, ignore_errors=True)


def _reason(e: BaseException | None) -> str:
    if e is None:
        return "see the main process's error"
    return str(getattr(e, "strerror", None) or e).splitlines()[0] or type(e).__name__


def save_checkpoint(checkpoint_dir: Path, iteration: int, state: dict[str, Any], comm, accelerator=None) -> Path:
    """Write ``state`` (+ the accelerator's state) as the checkpoint after ``iteration`` iterations.

    Every process must call it (``comm`` is the run's ``Collective``); only the main process writes
    ``state``. Raises ``ArtifactError`` on every process if any process failed to write.
    """
    final = checkpoint_dir / f"{CHECKPOINT_PREFIX}{iteration:07d}"
    tmp = checkpoint_dir / f".tmp-{final.name}"
    error: BaseException | None = None
    if comm.is_main:
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        except OSError as e:
            error = e
    if not comm.sum([error is not None])[0]:  # also a barrier: tmp exists for everyone
        if accelerator is not None:
            try:
                accelerator.save_state(str(tmp))  # every process writes its RNG state
            except _WRITE_ERRORS as e:
                error = e
        if not comm.sum([error is not None])[0]:  # a barrier too: every process has written
            if comm.is_main:
                try:
                    torch.save(state, tmp / STATE_FILE)
                    replace_dir(tmp, final)
                    prune(checkpoint_dir, final)
                except _WRITE_ERRORS as e:
                    error = e
    reason = _write_reason(error, checkpoint_dir)  # before the cleanup frees the space the partial files took
    if error is not None and comm.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    if comm.sum([error is not None])[0]:
        raise ArtifactError(f"cannot write checkpoint {str(final)!r}: {reason}; free "
                            f"space or fix permissions "
                            f"of {str(checkpoint_dir)!r} (the previous checkpoint, if any, is intact)")
    return final


def _write_reason(e: BaseException | None, where: Path) -> str:
    """What went wrong in a failed write, in the words of the file system: torch's zip writer reports a
    full disk as "unexpected pos N vs M" or "file write failed", so ask the disk."""
    reason = _reason(e)
    if isinstance(e, RuntimeError) and not isinstance(e, OSError):
        try:
            free = shutil.disk_usage(_nearest_dir(where)).free
        except OSError:
            free = None
        if free is not None and free < (1 << 20):
            return f"no space left on device ({free} bytes free)"
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            return f"the file size limit of this process was reached (ulimit -f: {limit} bytes)"
        return f"the write failed, an I/O error ({reason})"
    return reason


def _nearest_dir(p: Path) -> Path:
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ArtifactError(f"checkpoint {str(path)!r} is unreadable ({type(e).__name__}: {e}); delete it to restart") from None
    missing = [k for k in _STATE_KEYS if k not in state] if isinstance(state, dict) else list(_STATE_KEYS)
    if missing:  # a readable pickle of something else (a list, another program's dict) is no state to continue
        what = f"a {type(state).__name__} without {missing}" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise ArtifactError(f"checkpoint {str(path)!r}: {STATE_FILE} holds {what}, not the state of a condensation; "
                            "it was not written by hf_lodc or is damaged. Delete that checkpoint folder to restart")
    _check_rng_files(path)
    return state


_STATE_KEYS = ("synset", "momentum", "history", "iteration")  # what load_checkpoint reads unconditionally


def check_rng_saved(path: Path) -> None:
    """A checkpoint resumed through Accelerate must hold the main process's RNG state: ``load_state``
    would otherwise go on with fresh randomness and the resumed run silently differ from an
    uninterrupted one (a process beyond the saved ones keeps its own, which is fine)."""
    if not (path / "random_states_0.pkl").is_file():
        raise ArtifactError(f"checkpoint {str(path)!r} has no random_states_0.pkl (the random number generator "
                            "states): resuming from it would not continue the run exactly. Delete that checkpoint "
                            "folder to resume from an older one or restart")


def incomplete_checkpoints(checkpoint_dir: str | os.PathLike | None, after: Path | None) -> list[Path]:
    """``iter_<i>`` folders newer than ``after`` without a state file. A save is written elsewhere and
    renamed whole, so such a folder was damaged afterwards (files deleted): resuming past it, or
    starting afresh over it, would silently drop the iterations it held."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return []
    done = int(after.name[len(CHECKPOINT_PREFIX):]) if after is not None else -1
    return sorted(p for p in Path(checkpoint_dir).glob(CHECKPOINT_PREFIX + "*")
                  if p.name[len(CHECKPOINT_PREFIX):].isdigit() and int(p.name[len(CHECKPOINT_PREFIX):]) > done
                  and not (p / STATE_FILE).is_file())


def _check_rng_files(path: Path) -> None:
    """Accelerate's ``load_state`` skips an unreadable ``random_states_<rank>.pkl`` with an info log and
    continues with fresh randomness: the resumed run would silently differ from an uninterrupted one.
    Each is a torch zip archive; its central directory and CRCs show truncation without unpickling it."""
    for f in sorted(path.glob("random_states_*.pkl")):
        try:
            with zipfile.ZipFile(f) as z:
                bad = z.testzip()
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            bad = str(e) or type(e).__name__
        if bad is not None:
            raise ArtifactError(f"checkpoint {str(path)!r}: {f.name} (the random number generator states) is "
                                f"damaged or truncated ({bad}); resuming from it would not continue the run "
                                "exactly. Delete that checkpoint folder to resume from an older one or restart")


def check_resume_target(out: Path) -> None:
    """Refuse ``--resume`` into ``out`` when it holds a finished artefact and no checkpoint: there is
    nothing to continue, and a fresh run would replace the finished result."""
    if latest_checkpoint(out / "checkpoints") is not None or not (out / "config.json").is_file():
        return
    try:
        record = json.loads((out / "config.json").read_text())
        its = (record.get("condense") or {}).get("iterations") if isinstance(record, dict) else None
    except (OSError, ValueError):
        its = None
    done = f" ({its} iterations)" if isinstance(its, int) else ""
    raise ConfigError(f"--resume: {str(out)!r} holds a finished condensation{done} and no checkpoint, so there is "
                      f"nothing to resume and a new run would replace it. It is already saved there: evaluate it "
                      f"with `python recipes/evaluate.py {shlex.quote(str(out))}`; to condense again, choose "
                      "another --output-dir or drop --resume")


def check_resumable(ck: dict[str, Any], identity: dict[str, Any], iterations: int, path: Path) -> None:
    """Refuse to continue ``ck`` (read from ``path``) with a run of ``identity`` and ``iterations``."""
    fix = (f"use another output dir (or delete {str(path.parent)!r}) to start afresh, or the same settings "
           "to resume")
    theirs = ck.get("identity")
    if theirs is None:  # written before identities were recorded: compare the config it kept
        theirs = {k: v for k, v in (ck.get("config") or {}).items() if k not in NOT_IDENTITY}
        check_identity(identity, theirs, f"checkpoint {str(path)!r}", fix, only_common=True)
    else:
        check_identity(identity, theirs, f"checkpoint {str(path)!r}", fix)
    done = int(ck["iteration"])
    if iterations < done:
        raise ConfigError(f"checkpoint {str(path)!r} already ran {done} iterations, more than iterations={iterations} "
                          f"of this run; resume with iterations >= {done}, or use another output dir to start afresh")
