"""Leave a long condensation step at once on SIGINT/SIGTERM, without losing the iteration boundary.

A stop signal is normally honoured between iterations, which is prompt for methods whose steps take
milliseconds but not for those whose steps take tens of seconds (IDC's inner network training, a large
MTT unroll): a supervisor's ``timeout`` would wait that long, or give up and SIGKILL the run. So before
a step that may be slow (the first of a run, or one after a step that took longer than ``SLOW_S``),
the state a step changes is copied: the synthetic set's parameters, the optimiser's momentum buffers,
the objective's own state and torch's global generator. A signal during such a step raises
:class:`StepAborted` from the handler; :meth:`AbortableStep.restore` puts the copy back, so the run
stands exactly at the start of the step and its checkpoint resumes bit-exact (the step is redone
with the same per-iteration generator).

Fast steps take no copy (the copy would cost more than the wait it saves).

Several processes: a process that left its step alone would leave the others waiting in a collective
that it never joins. So every collective of a step and the all-reduce that ends each iteration carry
one agreement: "did any process leave its step?" A process leaving its step joins the next agreement
in the sequence with "yes"; the others learn it there (inside their step or at its end), and all
restore their copies and checkpoint the same iteration together. The signal handler never raises
while a collective is in progress (``hold``), so no process leaves halfway through one. Whether a
step is copied is decided from the step time agreed at the end of the previous iteration, so every
process has a copy when any does.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

import torch

__all__ = ["AbortableStep", "StepAborted", "SLOW_S"]

SLOW_S = 0.5  # a step longer than this is worth a copy: a stop signal then waits for no step


class StepAborted(Exception):
    """Raised inside an abortable step: by the signal handler (``agreed`` False: the other processes do not
    know yet), or by an agreement that found a process had left its step (``agreed`` True)."""

    def __init__(self, agreed: bool = False):
        super().__init__()
        self.agreed = agreed


class AbortableStep:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.copied = False  # inside a step whose starting state is copied (the same on every process)
        self.active = False  # ... and the signal handler may still leave it
        self.signalled = False  # a stop signal arrived (set by the handler)
        self._hold = 0  # collectives in progress: the handler must not leave the step now
        self._last_s: float | None = None
        self._saved: dict[str, Any] | None = None

    def may_leave(self) -> bool:
        """Whether the signal handler may raise :class:`StepAborted` now."""
        return self.active and self._hold == 0

    @contextlib.contextmanager
    def hold(self):
        """A block of collectives the signal handler must not interrupt; a signal that arrived during it
        leaves the step right after it."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
        if self.signalled and self.may_leave():
            self.active = False
            raise StepAborted

    def agreed_step_seconds(self, seconds: float) -> None:
        """The last step's time as agreed by all processes (so they take copies alike)."""
        self._last_s = seconds

    @contextlib.contextmanager
    def step(self, synset: torch.nn.Module, opt: torch.optim.Optimizer, objective):
        """Run one step; copies the state first when the step may be slow."""
        take = self.enabled and (self._last_s is None or self._last_s > SLOW_S)
        if take:
            self._saved = self._copy(synset, opt, objective)
        t0 = time.perf_counter()
        self.copied = self.active = take
        try:
            yield
        finally:
            self.copied = self.active = False
        self._last_s = time.perf_counter() - t0

    @staticmethod
    def _copy(synset, opt, objective) -> dict[str, Any]:
        params = [p for p in synset.parameters()]
        return {
            "params": [p.detach().clone() for p in params],
            "momentum": [None if opt.state.get(p, {}).get("momentum_buffer") is None
                         else opt.state[p]["momentum_buffer"].clone() for p in params],
            "objective": copy.deepcopy(objective.state_dict()),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def restore(self, synset, opt, objective) -> None:
        """Put back the state copied before the aborted step."""
        saved = self._saved
        with torch.no_grad():
            for p, v, m in zip(synset.parameters(), saved["params"], saved["momentum"]):
                p.copy_(v)
                p.grad = None
                if m is None:
                    opt.state.get(p, {}).pop("momentum_buffer", None)
                else:
                    opt.state[p]["momentum_buffer"] = m
        objective.load_state_dict(saved["objective"])
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
