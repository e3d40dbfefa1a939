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
    """Wall time of the iterations of one process: all of them, and those after the warm-up.

    A resumed run starts from ``before``, the totals its checkpoint carried (``totals``), so the
    record of a run condensed over several sittings is its whole cost, not its last sitting's; each
    sitting leaves its own warm-up out. A checkpoint without them (written before they were kept)
    leaves its iterations untimed, and the record says how many.
    """

    def __init__(self, before: dict | None = None, start_iteration: int = 0) -> None:
        self.its, self.seconds, self.steady_its, self.steady_s = 0, 0.0, 0, 0.0
        b = before or {}
        self.before = {"its": int(b.get("its", 0)), "seconds": float(b.get("seconds", 0.0)),
                       "steady_its": int(b.get("steady_its", 0)), "steady_s": float(b.get("steady_s", 0.0)),
                       "wall_s": float(b.get("wall_s", 0.0)), "sittings": int(b.get("sittings", 0)),
                       "untimed_its": int(b.get("untimed_its", 0))}
        if before is None and start_iteration:  # resumed from a checkpoint that kept no timing
            self.before["untimed_its"] = start_iteration
            self.before["sittings"] = 1

    @property
    def sittings(self) -> int:
        return self.before["sittings"] + 1

    def totals(self, wall_s: float) -> dict:
        """Every sitting's sums so far, this one's ``wall_s`` included (what a checkpoint keeps)."""
        b = self.before
        return {"its": b["its"] + self.its, "seconds": b["seconds"] + self.seconds,
                "steady_its": b["steady_its"] + self.steady_its, "steady_s": b["steady_s"] + self.steady_s,
                "wall_s": b["wall_s"] + wall_s, "sittings": self.sittings, "untimed_its": b["untimed_its"]}

    def iterations_per_s(self) -> float | None:
        its, seconds = self.before["its"] + self.its, self.before["seconds"] + self.seconds
        return its / seconds if its and seconds > 0 else None

    def add(self, seconds: float) -> None:
        if self.its >= WARMUP_ITERATIONS:
            self.steady_its += 1
            self.steady_s += seconds
        self.its += 1
        self.seconds += seconds

    def steady(self) -> float | None:
        its, seconds = self.before["steady_its"] + self.steady_its, self.before["steady_s"] + self.steady_s
        return round(seconds / its, 4) if its else None


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
