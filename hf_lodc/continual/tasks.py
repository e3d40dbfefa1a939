"""Class-incremental tasks: a seeded class order split into T tasks, and per-task views of a dataset.

A task's view (:class:`ClassSubset`) is a new :class:`ImageClassificationData` that physically
contains only the rows of the task's classes, relabelled 0..k-1 in task order. Handing the
condenser this view (not the full dataset) is what guarantees that condensing task t never sees
another task's raw data; ``train_rows`` keeps the global row ids for auditing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..data.splits import first_per_class
from ..data.types import ImageClassificationData, LabeledImages
from ..errors import ConfigError
from ..seeding import generator

__all__ = ["TaskSplit", "split_classes", "ClassSubset", "restrict", "restrict_split", "first_per_class"]


@dataclass(frozen=True)
class TaskSplit:
    """The class order of one seed and its partition into tasks (global class ids)."""

    seed: int
    order: tuple[int, ...]  # all classes, in the order they arrive
    tasks: tuple[tuple[int, ...], ...]  # consecutive chunks of ``order``

    def __len__(self) -> int:
        return len(self.tasks)

    def classes(self, t: int) -> torch.Tensor:
        """(k_t,) global ids of task ``t``'s classes."""
        return torch.tensor(self.tasks[t], dtype=torch.long)

    def seen(self, t: int) -> torch.Tensor:
        """(sum_{s<=t} k_s,) global ids of every class seen after task ``t``, in arrival order."""
        return torch.tensor([c for chunk in self.tasks[: t + 1] for c in chunk], dtype=torch.long)

    def to_dict(self) -> dict:
        return {"seed": self.seed, "order": list(self.order), "tasks": [list(c) for c in self.tasks]}


def split_classes(num_classes: int, tasks: int, seed: int) -> TaskSplit:
    """A random class order (from ``seed`` alone) cut into ``tasks`` chunks of near-equal size."""
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
        raise ConfigError(f"tasks must be a positive integer, got {tasks!r}")
    if tasks > num_classes:
        raise ConfigError(f"tasks={tasks} is more than the {num_classes} classes of the dataset; "
                          f"use tasks <= {num_classes}")
    perm = torch.randperm(num_classes, generator=generator(seed, "continual", "class-order"))  # (K,)
    chunks = torch.tensor_split(perm, tasks)  # sizes differ by at most one (first chunks larger)
    return TaskSplit(seed=seed, order=tuple(perm.tolist()), tasks=tuple(tuple(c.tolist()) for c in chunks))


@dataclass
class ClassSubset:
    """``data`` restricted to ``classes``: local label j is global class ``classes[j]``."""

    data: ImageClassificationData
    classes: torch.Tensor  # (k,) global class ids, in local label order
    train_rows: torch.Tensor  # (N_k,) row ids in the parent's train split, sorted
    test_rows: torch.Tensor | None  # (M_k,) row ids in the parent's test split, sorted

    def to_global(self, local_labels: torch.Tensor) -> torch.Tensor:
        return self.classes[local_labels]


def restrict_split(
    split: LabeledImages, classes: torch.Tensor, num_classes: int, per_class: int | None = None
) -> tuple[LabeledImages, torch.Tensor]:
    """Rows of ``split`` whose label is in ``classes`` (global ids), relabelled to their position there.

    ``per_class`` keeps only the first n rows of each class. Returns (subset, sorted row ids).
    """
    local = torch.full((num_classes,), -1, dtype=torch.long)
    local[classes] = torch.arange(len(classes))
    rows = torch.nonzero(torch.isin(split.labels, classes)).flatten()  # (n,) sorted
    if per_class is not None:
        rows = rows[first_per_class(split.labels[rows], per_class)]
    return LabeledImages(split.images[rows], local[split.labels[rows]]), rows


def restrict(data: ImageClassificationData, classes: torch.Tensor, test_per_class: int | None = None) -> ClassSubset:
    """A view of ``data`` holding only the rows of ``classes`` (global ids), relabelled 0..k-1.

    ``test_per_class`` keeps the first n test images of each class (CPU-sized benchmarks).
    Normalisation (mean/std) is the parent's, so memories of different tasks can be mixed.
    """
    classes = torch.as_tensor(classes, dtype=torch.long).flatten()
    K = data.num_classes
    if classes.numel() == 0 or int(classes.min()) < 0 or int(classes.max()) >= K:
        raise ConfigError(f"class ids must be in 0..{K - 1}, got {classes.tolist()}")
    if torch.unique(classes).numel() != classes.numel():
        raise ConfigError(f"class ids must be distinct, got {classes.tolist()}")
    if test_per_class is not None and test_per_class < 1:
        raise ConfigError(f"test_per_class must be positive or None, got {test_per_class}")
    train, train_rows = restrict_split(data.train, classes, K)
    test, test_rows = None, None
    if data.test is not None:
        test, test_rows = restrict_split(data.test, classes, K, test_per_class)
    names = [data.info.class_names[c] for c in classes.tolist()]
    info = replace(
        data.info,
        class_names=names,
        num_train=len(train),
        num_eval=len(test) if test is not None else 0,
        notes=[*data.info.notes, f"classes {classes.tolist()} of {K} (relabelled 0..{len(names) - 1})"],
    )
    return ClassSubset(ImageClassificationData(train=train, test=test, info=info), classes, train_rows, test_rows)
