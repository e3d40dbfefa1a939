"""GDumb (Prabhu et al., ECCV 2020) on a condensed memory.

After each task a fresh network is trained from scratch on the whole memory with the standard
evaluation protocol (``hf_lodc.engine.evaluate``: SGD, DSA, last-epoch accuracy) and tested on the
test images of every class seen so far. The classifier head covers the seen classes only, indexed
in arrival order.
"""

from __future__ import annotations

import torch

from ..data.types import ImageClassificationData
from ..engine.config import EvalConfig
from ..engine.evaluate import EvalRecord, evaluate_synthetic
from .memory import TaskMemory, memory_tensors
from .tasks import restrict_split

__all__ = ["gdumb_step"]


def gdumb_step(
    memories: list[TaskMemory],
    data: ImageClassificationData,
    seen: torch.Tensor,
    cfg: EvalConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    test_per_class: int | None = None,
) -> dict[str, EvalRecord]:
    """Train ``cfg.eval_runs`` fresh models per architecture on the memory; test on the ``seen`` classes.

    ``seen``: (S,) global ids of the classes seen so far (arrival order); the memory must hold
    exactly those classes. Returns one :class:`EvalRecord` per evaluation model.
    """
    images, labels = memory_tensors(memories)  # (M, C, H, W), (M,) global ids
    if set(labels.unique().tolist()) != set(seen.tolist()):
        raise ValueError(f"the memory holds classes {sorted(labels.unique().tolist())}, "
                         f"expected {sorted(seen.tolist())}")
    local = torch.full((data.num_classes,), -1, dtype=torch.long)
    local[seen] = torch.arange(len(seen))
    test, _ = restrict_split(data.test, seen, data.num_classes, test_per_class)  # labels in arrival order
    return evaluate_synthetic(images, local[labels], test, data.mean, data.std, len(seen), cfg,
                              seed=seed, device=device)
