"""A task's memory: the task's classes condensed (or sampled) from that task's data only.

The memory of task t is an ordinary hf_lodc artefact (``save_artifact``), so it can be inspected,
pushed to the Hub, and found again when a run is resumed: a task whose artefact exists (and was made
with the same settings and classes) is loaded instead of condensed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .. import pipeline
from ..engine.resolve import resolve_config
from ..engine.config import CondenseConfig
from ..errors import ConfigError
from ..engine.identity import check_identity, finished_identity
from ..export.artifact import Artifact, load_artifact
from ..synset.budget import Budget
from .tasks import ClassSubset

__all__ = ["TaskMemory", "condense_task", "load_task_memory", "memory_tensors"]


@dataclass
class TaskMemory:
    task: int
    method: str
    classes: torch.Tensor  # (k,) global class ids of the task
    images: torch.Tensor  # (k*n, C, H, W) float, normalised with the dataset's mean/std
    labels: torch.Tensor  # (k*n,) global class ids
    budget: Budget
    train_rows: torch.Tensor  # (N_k,) global train rows the condensation was given: the task's rows only
    init_rows: torch.Tensor | None  # global train rows picked by the real/svd initialisation
    resumed: bool = False
    wall_time_s: float = 0.0

    @property
    def stored_numel(self) -> int:
        return self.budget.used_numel_per_class * len(self.classes) + self.budget.shared_numel


def condense_task(
    subset: ClassSubset,
    cfg: CondenseConfig,
    *,
    task: int,
    record: dict | None = None,
    accelerator=None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[TaskMemory, Artifact]:
    """Condense ``subset`` (one task's classes and rows, relabelled 0..k-1) with ``cfg``.

    ``record`` (e.g. the class order) is stored in the artefact's results under ``"continual"``.
    """
    art = pipeline.condense(subset.data, cfg, accelerator=accelerator, checkpoint_dir=checkpoint_dir,
                            resume=checkpoint_dir is not None, progress=progress, record={"continual": record or {}})
    init_rows = subset.train_rows[art.init_indices] if art.init_indices is not None else None
    art.results.pop("evaluations")  # the memory is evaluated by GDumb over all seen classes, not alone
    art.results["continual"] = {
        **(record or {}),
        "task": task,
        "classes": subset.classes.tolist(),
        "train_rows_given": len(subset.train_rows),
        "init_rows": init_rows.tolist() if init_rows is not None else None,
    }
    memory = TaskMemory(task=task, method=art.method, classes=subset.classes.clone(), images=art.images(),
                        labels=subset.to_global(art.labels), budget=art.budget, train_rows=subset.train_rows,
                        init_rows=init_rows, wall_time_s=float(art.results["condensation"]["wall_time_s"]))
    return memory, art


def load_task_memory(path: str | os.PathLike, subset: ClassSubset, cfg: CondenseConfig, *, task: int) -> TaskMemory:
    """Load a saved task memory, refusing one made with other settings or other classes."""
    art = load_artifact(path)
    _, want, _ = resolve_config(cfg, subset.data.image_shape, len(subset.classes))  # classes: HaBa shares numbers
    # the same finished set: every result-changing setting, its iterations and contrast (engine/identity.py);
    # keys an older artefact did not record are not compared
    check_identity(finished_identity(want), finished_identity(art.condense_config),
                   f"the saved memory {str(path)!r}", "use another output_dir, the same settings, or delete it",
                   only_common=True)
    saved = art.results.get("continual", {})
    if saved.get("classes") != subset.classes.tolist() or saved.get("task") != task:
        raise ConfigError(
            f"the saved memory {str(path)!r} holds task {saved.get('task')} with classes {saved.get('classes')}, "
            f"this run's task {task} has classes {subset.classes.tolist()}; use another output_dir or delete it"
        )
    init_rows = saved.get("init_rows")
    wall = (art.results.get("condensation") or {}).get("wall_time_s") or 0.0
    return TaskMemory(task=task, method=art.method, classes=subset.classes.clone(), images=art.images(),
                      labels=subset.to_global(art.labels), budget=art.budget, train_rows=subset.train_rows,
                      init_rows=torch.tensor(init_rows, dtype=torch.long) if init_rows is not None else None,
                      resumed=True, wall_time_s=float(wall))


def memory_tensors(memories: list[TaskMemory]) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole memory so far: images (M, C, H, W) and global labels (M,)."""
    return torch.cat([m.images for m in memories]), torch.cat([m.labels for m in memories])
