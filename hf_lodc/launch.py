"""What every recipe does the same way: build the Accelerator, and turn errors into exit codes.

Precedence of mixed precision: an explicit ``mixed_precision`` (YAML or ``--mixed-precision``) >
the launcher's (``accelerate launch --mixed_precision bf16``, or ``accelerate config``) > ``no``.

A process of a multi-process run that dies (SIGKILL, the OOM killer, a crash) closes its connections, and
gloo fails the survivors' next collective at once ("Connection closed by peer"). A process that hangs
instead closes nothing: the others wait in the collective until the process group's timeout, torch's
30 minutes by default. ``HF_LODC_COLLECTIVE_TIMEOUT`` (seconds; default :data:`COLLECTIVE_TIMEOUT_S`)
bounds that wait. It also bounds how long the other processes wait for the main one while it alone
saves and pushes the artefact, so it stays well above a push's duration. Either failure becomes one
:class:`PeerLostError` line, not a traceback from every process.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import signal
import sys
import threading
from typing import Callable, Iterator

from .errors import ConfigError, HfLodcError, PeerLostError

__all__ = ["make_accelerator", "accelerated", "exit_codes", "collective_timeout_s", "is_peer_lost", "peer_lost_message",
           "COLLECTIVE_TIMEOUT_ENV", "COLLECTIVE_TIMEOUT_S", "EXIT_ERROR", "EXIT_INTERRUPTED"]

EXIT_ERROR = 2  # bad input / a clear HfLodcError
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM (a checkpoint was saved when one could be)
COLLECTIVE_TIMEOUT_ENV = "HF_LODC_COLLECTIVE_TIMEOUT"
COLLECTIVE_TIMEOUT_S = 600.0  # a hung process is noticed in 10 minutes, not torch's 30; far above a save
# what gloo (and torch's store) say when the other end of a collective is gone or silent
_PEER_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe", "timed out waiting",
              "connection refused")


def collective_timeout_s(value: float | str | None = None) -> float:
    """The process group's timeout in seconds: ``value``, else ``$HF_LODC_COLLECTIVE_TIMEOUT``, else the default."""
    raw = value if value is not None else os.environ.get(COLLECTIVE_TIMEOUT_ENV)
    if raw is None or raw == "":
        return COLLECTIVE_TIMEOUT_S
    try:
        t = float(raw)
    except (TypeError, ValueError):
        t = float("nan")
    if not t > 0 or t == float("inf"):
        raise ConfigError(f"{COLLECTIVE_TIMEOUT_ENV}={raw!r}: the collective timeout must be a positive number "
                          f"of seconds (default {COLLECTIVE_TIMEOUT_S:g})")
    return t


def is_peer_lost(e: BaseException) -> bool:
    """``e`` is a collective's failure because another process died or stopped answering."""
    try:
        import torch.distributed as dist

        if isinstance(e, getattr(dist, "DistError", ())):
            return True
    except ImportError:
        pass
    return isinstance(e, RuntimeError) and any(k in str(e).lower() for k in _PEER_LOST)


def peer_lost_message(e: BaseException, rank: int, world: int, after: str = "") -> str:
    """One line for a process that stopped because another one of the run is gone."""
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return (f"process {rank} of {world}: another process of this run died (killed, out of memory, crashed) or hung "
            f"(no answer within the {collective_timeout_s():g} s collective timeout, ${COLLECTIVE_TIMEOUT_ENV}) "
            f"({first}); this process stops too. "
            + (after or "Check the other processes' logs; if a checkpoint was written, the same launch command "
               "with --resume continues from it"))


def _check_trackers(log_with: list[str]) -> None:
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    for name in log_with:
        if name == "all":
            continue
        if name not in LOGGER_TYPE_TO_CLASS:
            raise ConfigError(f"--log-with {name!r} is not a tracker Accelerate knows; choose from "
                              f"{', '.join(sorted(LOGGER_TYPE_TO_CLASS))} or 'all'")
        if name not in available:
            hint = "pip install 'hf_lodc[tensorboard]'" if name == "tensorboard" else f"pip install {name}"
            raise ConfigError(f"--log-with {name!r}: the package is not installed ({hint})")


def make_accelerator(mixed_precision: str | None = None, *, cpu: bool = False, log_with: list[str] | None = None,
                     project_dir: str | os.PathLike | None = None, collective_timeout: float | None = None):
    """An ``Accelerator``; ``mixed_precision=None`` leaves the choice to ``accelerate launch``.

    ``log_with`` (tracker names, e.g. ["tensorboard"]) log to ``<project_dir>/logs``; an unknown or
    uninstalled tracker is refused here rather than silently dropped. ``collective_timeout`` (seconds;
    None: :func:`collective_timeout_s`) bounds every collective of a multi-process run.
    """
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration

    timeout = datetime.timedelta(seconds=collective_timeout_s(collective_timeout))
    kw = {"kwargs_handlers": [InitProcessGroupKwargs(timeout=timeout)]}
    if log_with:
        _check_trackers(log_with)
        if project_dir is None:
            raise ConfigError("--log-with needs somewhere to write the logs: set --output-dir "
                              "(logs go to <output-dir>/logs)")
        kw["log_with"] = list(log_with)
        kw["project_config"] = ProjectConfiguration(project_dir=str(project_dir),
                                                    logging_dir=os.path.join(str(project_dir), "logs"))
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu, **kw)


@contextlib.contextmanager
def accelerated(mixed_precision: str | None = None, **kwargs) -> Iterator:
    """``make_accelerator(...)`` for the body of a recipe, shut down cleanly at the end.

    On success every process waits for the others (so the main process can save and push while the
    others stay alive: a worker that exits first makes ``accelerate launch`` kill the main process
    mid-save), then the process group is destroyed and the trackers finished. A process that exits
    with gloo's threads still running aborts ("terminate called without an active exception"),
    which the launcher reports as a failed run. On an error the group is destroyed without waiting:
    the other processes may never reach the barrier.
    """
    accelerator = make_accelerator(mixed_precision, **kwargs)
    ok = False
    try:
        yield accelerator
        ok = True
    finally:
        if ok and accelerator.num_processes > 1:
            accelerator.wait_for_everyone()
        if ok:
            accelerator.end_training()  # finishes the trackers, destroys the process group
        else:
            accelerator.state.destroy_process_group()


#: What a SIGTERM outside the guarded phases says: the condensation loop, the evaluation and the final save
#: install their own handlers (engine/signals.py), which checkpoint or save first and say where.
UNGUARDED_SIGTERM = ("SIGTERM outside the condensation loop, evaluation and save (while loading data, checking "
                     "inputs or starting): nothing in progress is lost; what finished is in the output folder. "
                     "Run the same command again (with --resume if the output folder holds checkpoints)")


@contextlib.contextmanager
def sigterm_as_interrupt(message: str | None = None) -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (like Ctrl-C) in the main thread, so what is finished can be saved
    and the process ends with one line instead of the default handler's silent exit -15."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(message or signal.Signals(signum).name)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def exit_codes(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a recipe's ``main``: HfLodcError (and a collective failed by a lost process) -> "error: ..." and 2;
    Ctrl-C/SIGTERM -> 130."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            with sigterm_as_interrupt(UNGUARDED_SIGTERM):
                return main(*args, **kwargs)
        except HfLodcError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
        except RuntimeError as e:  # a collective outside the condensation loop (evaluation, the final barrier)
            world = int(os.environ.get("WORLD_SIZE", "1") or 1)
            if world == 1 or not is_peer_lost(e):
                raise
            err = PeerLostError(peer_lost_message(e, int(os.environ.get("RANK", "0") or 0), world))
            print(f"error: {err}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt as e:
            if not (getattr(e, "every_process", False) and int(os.environ.get("RANK", "0") or 0) > 0):
                print(f"interrupted: {e}", file=sys.stderr)
            return EXIT_INTERRUPTED

    return wrapped
