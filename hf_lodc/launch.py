"""What every recipe does the same way: build the Accelerator, and turn errors into exit codes.

Precedence of mixed precision: an explicit ``mixed_precision`` (YAML or ``--mixed-precision``) >
the launcher's (``accelerate launch --mixed_precision bf16``, or ``accelerate config``) > ``no``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Callable, Iterator

from .errors import ConfigError, HfLodcError

__all__ = ["make_accelerator", "accelerated", "exit_codes", "EXIT_ERROR", "EXIT_INTERRUPTED"]

EXIT_ERROR = 2  # bad input / a clear HfLodcError
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM (a checkpoint was saved when one could be)


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
                     project_dir: str | os.PathLike | None = None):
    """An ``Accelerator``; ``mixed_precision=None`` leaves the choice to ``accelerate launch``.

    ``log_with`` (tracker names, e.g. ["tensorboard"]) log to ``<project_dir>/logs``; an unknown or
    uninstalled tracker is refused here rather than silently dropped.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    kw = {}
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


def exit_codes(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a recipe's ``main``: HfLodcError -> "error: ..." and 2; Ctrl-C/SIGTERM -> 130."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except HfLodcError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt as e:
            print(f"interrupted: {e}", file=sys.stderr)
            return EXIT_INTERRUPTED

    return wrapped
