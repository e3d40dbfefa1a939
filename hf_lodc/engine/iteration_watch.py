"""What the condensation loop watches per iteration without slowing it: wall time and non-finite values.

Time: every iteration's seconds, and those after the first ``WARMUP_ITERATIONS`` (compile, allocator
and cache warm-up left out), which is what a long run costs per iteration. Non-finite values: on one
process the loss and the synthetic parameters are checked on the device (a flag per iteration, no
host sync) and the flags are read in one sync when the loop next needs a number (a log, a
checkpoint, a stop, the last iteration); the first bad iteration is reported with the last good
checkpoint. Kept apart from the loop so its bookkeeping reads as the algorithm, not as this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch

from ..errors import NonFiniteError

__all__ = ["WARMUP_ITERATIONS", "IterationTimer", "nonfinite_flag", "all_finite", "read_pending",
           "nonfinite_message"]

WARMUP_ITERATIONS = 2


class IterationTimer:
    """Wall time of the iterations of one process: all of them, and those after the warm-up."""

    def __init__(self) -> None:
        self.its, self.seconds, self.steady_its, self.steady_s = 0, 0.0, 0, 0.0

    def add(self, seconds: float) -> None:
        if self.its >= WARMUP_ITERATIONS:
            self.steady_its += 1
            self.steady_s += seconds
        self.its += 1
        self.seconds += seconds

    def steady(self) -> float | None:
        return round(self.steady_s / self.steady_its, 4) if self.steady_its else None


def nonfinite_message(method: str, it: int, loss: float, lr, last_checkpoint: tuple[Path, int] | None) -> str:
    if last_checkpoint is not None:
        path, at = last_checkpoint
        kept = f"; the last good checkpoint is {str(path)!r} (iteration {at}), kept for inspection or --resume"
    else:
        kept = "; no checkpoint was written before it (set checkpoint_every to keep one)"
    return (f"{method}: loss or synthetic data became non-finite at iteration {it} (loss={loss}){kept}. "
            f"Lower the learning rate (lr={lr}) or use mixed_precision='no'.")


def nonfinite_flag(loss, params: Iterable[torch.Tensor]) -> torch.Tensor:
    """A device bool: the loss or any synthetic parameter is non-finite (read later, no sync)."""
    loss = torch.as_tensor(loss)
    bad = ~torch.isfinite(loss.detach()).all()
    for p in params:
        bad = bad | ~torch.isfinite(p.detach()).all()
    return bad


def read_pending(pending: list, message: Callable[[int, float], str]) -> float:
    """One host read for the iterations since the last one; the last loss, or NonFiniteError
    (``message(iteration, loss)``) at the first bad one."""
    flags = torch.stack([f for _, _, f in pending]).cpu()  # (n,) the one sync
    if bool(flags.any()):
        j = int(flags.nonzero()[0, 0])
        it, metrics, _ = pending[j]
        raise NonFiniteError(message(it, float(metrics["loss"])))
    return float(pending[-1][1]["loss"])


def all_finite(params: Iterable[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)
