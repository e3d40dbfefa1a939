"""Random real images at the set's storage: the baseline that makes sets of any method comparable.

The set and the baseline train with the same protocol, seeds, input space and (when a teacher
relabels) the same teacher; the report carries the set's accuracy against the baseline's.

Storage
-------
``storage_bytes`` = stored image elements x the stored element size (float32: 4, float16: 2, uint8
and ``Image`` columns: 1; hard labels are not counted, as in the literature's budgets; soft labels
are, at their stored size). Pass
``storage_bytes=`` for sets whose stored form is smaller than the images (e.g. factorised sets).
The random real baseline holds ``floor(storage_bytes / (K x C x H x W x itemsize))`` images per
class, where ``itemsize`` is the set's element size unless ``real_itemsize`` says otherwise (``1``:
real images priced as the uint8 pixels they are).
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.types import LabeledImages
from ..engine.config import EvalConfig
from ..seeding import generator

__all__ = ["random_real", "same_storage_baseline"]


def random_real(train: LabeledImages, k: int, num_classes: int, seed: int) -> LabeledImages:
    g = generator(seed, "foreign-random-real")
    keep = []
    for c in range(num_classes):
        rows = torch.nonzero(train.labels == c).flatten()
        keep.append(rows[torch.randperm(len(rows), generator=g)[:k]])
    return train.subset(torch.cat(keep))


def same_storage_baseline(nbytes: int, itemsize: int, data, test, space, ec: EvalConfig, records: dict, *,
                          seed: int, device, progress: bool, base_kw: dict, base_loss: str,
                          notes: list[str]) -> tuple[dict[str, Any], dict[str, dict]]:
    """(the baseline's entries of the report, model -> the set against it): random real train images, as
    many per class as ``nbytes`` holds at ``itemsize`` bytes per value, trained and tested as the set was
    (``records``: the set's records per model)."""
    from ..published.evaluation import evaluate_in_space

    c, h, w = data.image_shape
    k = nbytes // (data.num_classes * c * h * w * itemsize)
    available = int(torch.bincount(data.train.labels, minlength=data.num_classes).min())
    base: dict[str, Any] = {"itemsize": itemsize, "seed": seed}
    relative: dict[str, dict] = {}
    if k < 1:
        base["reason"] = (f"{nbytes:,} bytes hold less than one real image per class "
                          f"({data.num_classes} x {c * h * w * itemsize:,} bytes)")
        return base, relative
    if k > available:
        notes.append(f"the storage fits {k} real images per class but the train split read has {available}; "
                     f"the baseline uses {available}")
        k = available
    real = random_real(data.train, k, data.num_classes, seed)
    base_records = evaluate_in_space(space.real(real.images), real.labels, test, space, data.num_classes, ec,
                                     seed=seed, device=device, progress=progress, **base_kw)
    for r in base_records.values():
        r.protocol = {**r.protocol, "input": space.name, "loss": base_loss}
    base.update({"images_per_class": k, "storage_bytes": k * data.num_classes * c * h * w * itemsize,
                 "evaluations": {m: r.to_dict() for m, r in base_records.items()}})
    for m, r in records.items():
        rb = base_records[m]
        relative[m] = {"set": round(r.accuracy_mean, 3), "random": round(rb.accuracy_mean, 3),
                       "improvement_pp": round(r.accuracy_mean - rb.accuracy_mean, 3),
                       "ratio": round(r.accuracy_mean / rb.accuracy_mean, 4) if rb.accuracy_mean else None}
    return base, relative
