"""The Condenser's checkpoint bookkeeping: its run state gathered, written, read back and restored.

``checkpoint.py`` knows files (write atomically, read, check, prune, find the latest); this part
knows what a condensation's state is: the synthetic set and the momentum of its optimiser
gathered class-major from every process, the loss history, the objective's state, the config and
the run identity, and, on resume, this process's class rows of them put back (the same
class-row split loads the freshly initialised or a given set). It is a mixin of
``Condenser`` (``condenser.py``) so the loop reads as the algorithm; it uses the Condenser's
attributes (``synset``, ``classes``, ``local_positions``, ``sharded``, ``comm``, ``accelerator``,
``checkpoint_dir``, ``history``, ``objective``, ``cfg``, ``data``, ``log``) and keeps
``last_checkpoint``, ``start_iteration``, ``init_indices`` and the objective state it loads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..errors import ArtifactError
from .checkpoint import (STATE_FILE, check_resumable, check_rng_saved, incomplete_checkpoints, latest_checkpoint,
                         read_checkpoint, save_checkpoint)
from .distributed import class_rows, gather_class_rows
from .identity import run_identity

__all__ = ["CheckpointedRun"]


class CheckpointedRun:
    """Mixin of ``Condenser``: checkpoint save / load and the run identity a resume is checked against."""

    def identity(self) -> dict[str, Any]:
        """This run's identity (``identity.run_identity``), computed once (it hashes the train set)."""
        if self._identity is None:
            self._identity = run_identity(self.cfg, self.data, self.classes)
        return self._identity

    def _keep_own_classes(self, full_state: dict[str, torch.Tensor]) -> None:
        """Load this process's class rows of a full class-major synset state."""
        n = self.synset.per_class
        own = {k: class_rows(full_state[k], n, self.local_positions) for k in self.synset.class_state_keys()}
        own.update({k: full_state[k] for k in self.synset.shared_state_keys()})  # shared: whole
        own["labels"] = self.synset.labels
        self.synset.load_state_dict(own)

    def _gather_state(self, opt: torch.optim.Optimizer) -> dict[str, Any]:
        """The full, class-major state of the run (collective under several processes)."""
        K, n = len(self.classes), self.synset.per_class
        shared = set(self.synset.shared_state_keys())

        def full(name: str, t: torch.Tensor) -> torch.Tensor:
            if self.sharded and name not in shared:  # class rows; shared tensors are whole everywhere
                return gather_class_rows(self.comm, t.detach(), n, K).cpu()
            return t.detach().cpu().clone()

        state = self.synset.state_dict()
        synset = {k: full(k, state[k]) for k in [*self.synset.class_state_keys(), *shared]}
        momentum = {}
        for name, p in self.synset.named_parameters():
            buf = opt.state.get(p, {}).get("momentum_buffer")  # same presence on every process
            momentum[name] = full(name, buf) if buf is not None else None
        objective = self.objective.state_dict() if self.objective is not None else {}
        return {
            "iteration": None, "synset": synset, "momentum": momentum, "history": list(self.history),
            "objective": objective,
            "config": self.cfg.to_dict(), "init_indices": self.init_indices,  # plain values: weights_only loads it
            "num_processes": self.comm.world,
            # every sitting's time so far, so a resumed run's record is its whole cost
            "timing": self._timer.totals(time.perf_counter() - self._t0) if self._timer is not None else None,
        }

    def save_checkpoint(self, iteration: int, opt: torch.optim.Optimizer) -> Path | None:
        """Write the checkpoint after ``iteration`` iterations (every process must call it)."""
        if self.checkpoint_dir is None:
            return None
        state = self._gather_state(opt)
        state["iteration"] = iteration
        state["identity"] = self.identity()
        final = save_checkpoint(self.checkpoint_dir, iteration, state, self.comm, self.accelerator)
        self.last_checkpoint = (final, iteration)
        return final

    def load_checkpoint(self, opt: torch.optim.Optimizer) -> bool:
        """Continue from the latest checkpoint in ``checkpoint_dir``; False if there is none."""
        p = latest_checkpoint(self.checkpoint_dir)
        broken = incomplete_checkpoints(self.checkpoint_dir, p)
        if broken:
            raise ArtifactError(f"checkpoint {str(broken[-1])!r} is incomplete (no {STATE_FILE}): it was damaged after "
                                f"it was written. Delete that folder to resume from "
                                f"{'the older ' + repr(str(p)) if p is not None else 'iteration 0'}")
        if p is None:
            if self.checkpoint_dir is not None:
                self.log(f"[hf_lodc] no checkpoint in {str(self.checkpoint_dir)!r}: starting from iteration 0")
            return False
        ck = read_checkpoint(p)
        check_resumable(ck, self.identity(), self.cfg.iterations, p)
        if self.accelerator is not None:
            check_rng_saved(p)
            self.accelerator.load_state(str(p))  # RNG states (a process without a saved one keeps its own)
        self._keep_own_classes(ck["synset"])
        n = self.synset.per_class
        shared = set(self.synset.shared_state_keys())
        for name, param in self.synset.named_parameters():
            buf = ck["momentum"].get(name)
            if buf is not None:
                own = buf if name in shared else class_rows(buf, n, self.local_positions)
                opt.state[param]["momentum_buffer"] = own.to(param.device).clone()
        self.history = list(ck["history"])
        self._objective_state = ck.get("objective") or {}
        self._timing_before = ck.get("timing")  # None: written before timing was kept
        self.start_iteration = int(ck["iteration"])
        self.init_indices = ck.get("init_indices")
        self.last_checkpoint = (p, self.start_iteration)
        self.log(f"[hf_lodc] resumed from {str(p)!r} at iteration {self.start_iteration}/{self.cfg.iterations}")
        return True

    def _save_final_checkpoint(self, done: int, opt: torch.optim.Optimizer) -> None:
        """A safety net for the evaluation that follows, not a result: a full disk here must not cost the
        finished set, which the caller still holds and saves (or rescues) after the evaluation."""
        try:
            self.save_checkpoint(done, opt)
        except ArtifactError as e:
            self.log(f"[hf_lodc] warning: {e}; going on with the finished set in memory (it is saved after the "
                     "evaluation, to a rescue folder if need be)")
