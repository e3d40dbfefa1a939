"""Condensation across processes (``accelerate launch --num_processes P``): shard by class.

Each process owns the classes ``classes[rank::P]``: their synthetic factors, their optimiser
state and their real images. Why by class, not by real-batch shard with all-reduced gradients:

* Both objectives are sums over classes of a term that depends only on that class's synthetic
  images, that class's real batch and the (shared) matching network: DM's
  ``sum_c ||mean phi(real_c) - mean phi(syn_c)||^2`` and gradient matching's
  ``sum_c D(grad L(real_c), grad L(syn_c))``. So the gradient of a class's factors is computed
  entirely by its owner; a step needs no gradient communication at all, only one all-reduce of a
  few scalars (the summed loss, the non-finite and the stop flags) so every process logs the same
  loss and stops at the same iteration.
* Sharding the real batch instead would give every process every class's factors, repeat the
  synthetic forward/backward on every process, and all-reduce a gradient the size of the whole
  synthetic set every step. By class, the real *and* the synthetic work and memory are 1/P each.
* Every process draws the same matching network per iteration (its init depends on
  (seed, iteration) only), so the classes of all processes are matched against one network, as in
  one process.
* Gradient matching trains the network between matching steps on the WHOLE synthetic set: the
  processes all-gather the detached synthetic images (small: K x n images) before the inner
  epochs and train identical copies with a generator shared by all processes (derived from
  (seed, iteration)), so the network trajectory is the same on every process.
* The real batches and DSA draws of a process come from its own generator, so a P-process run is
  the same algorithm as one process with different random draws: statistically the same, not
  bit-identical (tests/test_distributed.py compares loss curves and accuracy).

Limits: P <= number of classes; objectives that couple classes (e.g. trajectory matching) must
not be registered in ``SHARDABLE`` and are refused with a clear error. Uneven shards
(K % P != 0) are fine: collectives pad to the largest shard.

The synthetic state is gathered class-major on every process at the end (and for checkpoints),
so the artefact and the checkpoint have the same format whatever P is, and a checkpoint can be
resumed with a different number of processes.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from ..objectives import OBJECTIVES
from ..objectives.base import Objective
from ..objectives.gm import GradientMatching
from ..registry import Registry
from ..seeding import generator
from ..synset.base import SyntheticSet
from .abortable import AbortableStep, StepAborted

__all__ = ["Collective", "shard_classes", "class_rows", "gather_class_rows", "gather_synset_state",
           "ShardedGradientMatching", "SHARDABLE", "check_shardable", "sharded_objective"]


class Collective:
    """The few collectives condensation needs, through Accelerate; identities on one process."""

    def __init__(self, accelerator=None):
        self.accelerator = accelerator
        self.world = accelerator.num_processes if accelerator is not None else 1
        self.rank = accelerator.process_index if accelerator is not None else 0

        self.guard: AbortableStep | None = None  # the condensation loop's, while it runs

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree(self, loss: float = 0.0, bad: bool = False, stop: bool = False, left: bool = False,
              seconds: float = 0.0) -> list[float]:
        """The one all-reduce that ends each iteration, and opens each collective inside a step: the
        summed loss, how many processes saw a non-finite value, want to stop, left their step, and the
        summed step time. One shape everywhere, so a process that left its step meets the others at
        whichever agreement they reach next (``abortable.py``)."""
        return self.sum([loss, bad, stop, left, seconds])

    @contextlib.contextmanager
    def step_collectives(self):
        """Collectives inside a step: first an agreement (all leave the step together if any process
        has left it), and no stop signal lands halfway through them."""
        g = self.guard
        if self.world == 1 or g is None or not g.copied:  # no copy to go back to: the step runs to its end
            yield
            return
        with g.hold():
            if self.agree(left=g.signalled)[3]:
                raise StepAborted(agreed=True)
            yield

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of a few floats over processes (float64, so NaN/Inf survive)."""
        if self.world == 1:
            return [float(v) for v in values]
        from accelerate.utils import reduce

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.accelerator.device)
        return reduce(t, reduction="sum").cpu().tolist()

    def all_gather_rows(self, local: torch.Tensor) -> list[torch.Tensor]:
        """Every process's ``local`` (k_p, ...) (k_p may differ), in rank order, on every process."""
        if self.world == 1:
            return [local]
        from accelerate.utils import gather

        dev = self.accelerator.device
        counts = gather(torch.tensor([local.shape[0]], device=dev)).cpu().tolist()  # (P,)
        width = max(counts)
        padded = local.new_zeros((width, *local.shape[1:]))
        padded[: local.shape[0]] = local
        stacked = gather(padded.to(dev).contiguous()).view(self.world, width, *local.shape[1:])
        return [stacked[p, : counts[p]] for p in range(self.world)]

    def barrier(self) -> None:
        if self.world > 1:
            self.accelerator.wait_for_everyone()


def shard_classes(classes: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """The classes process ``rank`` owns: every ``world``-th, starting at ``rank``."""
    if world > len(classes):
        raise ConfigError(
            f"{world} processes but only {len(classes)} classes to condense: condensation is sharded by "
            f"class, so use at most {len(classes)} processes (accelerate launch --num_processes)"
        )
    return classes[rank::world]


def class_rows(t: torch.Tensor, per_class: int, positions: torch.Tensor) -> torch.Tensor:
    """Rows of the classes at ``positions`` from a class-major tensor (K*n, ...) -> (k*n, ...)."""
    return t.view(-1, per_class, *t.shape[1:])[positions.to(t.device)].reshape(-1, *t.shape[1:])


def gather_class_rows(comm: Collective, local: torch.Tensor, per_class: int, num_classes: int) -> torch.Tensor:
    """Class-major (k_p*n, ...) blocks of every process -> the full class-major (K*n, ...) tensor.

    Process p holds classes ``p::P`` (positions in the condensed class list), so class position
    ``p + P*j`` is block j of process p.
    """
    parts = comm.all_gather_rows(local.reshape(-1, per_class, *local.shape[1:]))  # p -> (k_p, n, ...)
    out = local.new_empty((num_classes, per_class, *local.shape[1:]))
    for p, part in enumerate(parts):
        out[p :: comm.world] = part.to(out.device)
    return out.reshape(num_classes * per_class, *local.shape[1:])


def gather_synset_state(comm: Collective, synset: SyntheticSet, num_classes: int) -> dict[str, torch.Tensor]:
    """The full class-major state of a sharded synthetic set (every process gets it), on the CPU."""
    n = synset.per_class
    state = synset.state_dict()
    out = {name: gather_class_rows(comm, state[name].detach(), n, num_classes).cpu()
           for name in synset.class_state_keys()}  # labels are rebuilt by the full set's constructor
    out.update({name: state[name].detach().cpu().clone() for name in synset.shared_state_keys()})
    return out


class ShardedGradientMatching(GradientMatching):
    """Gradient matching on a class shard: the inner loop trains on the all-gathered synthetic set.

    ``step`` is the one-process algorithm on this process's classes; only ``inner_data`` (the set
    the network trains on between matching steps) and the generator of the inner epochs change,
    so that every process trains the same network the same way.
    """

    def __init__(self, ctx, comm: Collective, num_classes: int):
        super().__init__(ctx)
        self.comm = comm
        self.total_classes = num_classes  # classes condensed over all processes
        self._inner_generator: torch.Generator | None = None

    def step(self, iteration, synset, optimizer, generator_):
        # one stream for the inner epochs, identical on every process (the per-process generator
        # drives this process's real batches and DSA draws)
        self._inner_generator = generator(self.ctx.seed, "gm-inner", iteration)
        return super().step(iteration, synset, optimizer, generator_)

    def _train_net(self, net, net_opt, synset, generator_):
        super()._train_net(net, net_opt, synset, self._inner_generator)

    def inner_data(self, synset) -> tuple[torch.Tensor, torch.Tensor]:
        x_local, y_local = super().inner_data(synset)  # (k*n, C, H, W), (k*n,) global labels
        n = synset.decoded_per_class
        with self.comm.step_collectives():
            x = gather_class_rows(self.comm, x_local, n, self.total_classes)  # (K*n, C, H, W)
            y = gather_class_rows(self.comm, y_local, n, self.total_classes)  # (K*n,)
        return x, y


# objective name -> factory(ctx, comm, num_classes) for objectives that are sums over classes
SHARDABLE: Registry[Any] = Registry("class-shardable objective")
SHARDABLE.add("dm", lambda ctx, comm, K: OBJECTIVES.get("dm")(ctx))  # no cross-class term at all
SHARDABLE.add("gm", ShardedGradientMatching)


def check_shardable(name: str) -> None:
    if name not in SHARDABLE:
        raise ConfigError(
            f"objective {name!r} couples classes and cannot be sharded by class across processes; run it "
            f"with one process (class-shardable objectives: {', '.join(SHARDABLE.names())})"
        )


def sharded_objective(name: str, ctx, comm: Collective, num_classes: int) -> Objective:
    check_shardable(name)
    return SHARDABLE.get(name)(ctx, comm, num_classes)
