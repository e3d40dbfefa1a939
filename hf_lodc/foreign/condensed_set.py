"""The set as read from a foreign source, before any normalisation.

Its own module because both readers (``pt_file`` and ``dataset_source``) build it and the loader,
the IDC decoding and the evaluation read it: below all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["CondensedSet"]


@dataclass
class CondensedSet:
    """A set read from a ``.pt`` file or a dataset, before any normalisation."""

    images: torch.Tensor  # (N, C, H, W), stored dtype
    labels: torch.Tensor  # (N,) int64 class ids of the source dataset
    kind: str  # "pt" | "dataset"
    layout: str  # how it was read, in words
    stored_dtype: str
    itemsize: int  # bytes per stored image element
    class_names: list[str] | None = None  # the set's own names, when it has them
    notes: list[str] = field(default_factory=list)
    soft: Any = None  # published.soft_labels.SoftLabels (N, K) when the labels are soft
    # published.haba.Hallucinators when ``images`` are HaBa's bases: the training images are rendered from them
    hallucinators: Any = None
