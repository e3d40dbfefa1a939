"""Stop signals (SIGINT, SIGTERM) turned into a stop at a safe point, so a killed run loses nothing finished.

Three places, one rule (the work done so far is kept, the message says how to go on): the
condensation loop checks a flag between iterations, or leaves a step at once when the step's inputs
were copied (``abortable.py``), then checkpoints; the evaluation after it is interrupted like by
Ctrl-C so the condensed set can be saved unevaluated; the final save lets a SIGTERM wait until the
artefact is written. They live together so the handlers (installed in the main thread only, and
always restored) are written once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from ..launch import sigterm_as_interrupt  # below the engine: the recipes' exit handling uses it too
from .abortable import AbortableStep, StepAborted
from .checkpoint import resume_command

__all__ = ["Interrupted", "catch_signals", "interrupt_message", "sigterm_as_interrupt", "sigterm_deferred"]


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM during condensation: a checkpoint was saved (path and resume command in the message)."""

    every_process = True  # all processes of a run stop together with the same message: one prints it


@contextlib.contextmanager
def catch_signals(guard: AbortableStep | None = None):
    """Turn SIGINT/SIGTERM into a flag checked between iterations (main thread only); inside a step
    whose starting state ``guard`` copied, leave the step at once (``StepAborted``)."""
    flag = {"sig": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["sig"] is not None:  # second signal: stop now
            raise KeyboardInterrupt
        flag["sig"] = signum
        if guard is not None:
            guard.signalled = True
            if guard.may_leave():
                guard.active = False
                raise StepAborted

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def interrupt_message(sig: int | None, done: int, total: int, path: Path | None, world: int) -> str:
    """What an interrupted condensation says: where it stopped, where its checkpoint is, how to resume."""
    name = signal.Signals(sig).name if sig else "a stop signal to another process of this run"
    head = f"interrupted by {name} after iteration {done}/{total}; "
    if path is None:
        return head + "no checkpoint directory was set (set output_dir), so the progress is lost"
    return head + f"checkpoint saved to {str(path)!r}. Resume with: {resume_command(world)}"


@contextlib.contextmanager
def sigterm_deferred():
    """SIGTERM during the block (the final save) waits until the block is done, then raises
    KeyboardInterrupt: a launcher killing the process mid-save must not cost the finished run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
    if got:
        raise KeyboardInterrupt(f"{signal.Signals(got[0]).name} (the artefact was saved first)")
