"""Initialisers of a synthetic set: ``noise``, ``real`` and ``svd``.

* ``noise``: Gaussian. For factors, A and B are N(0, r^-1/2) so every entry of A @ B has unit
  variance (the reference code drew both from N(0, 1), giving variance r).
* ``real``: random real images of each class. Pixels: the images. Factors: least-squares fit on a
  *random* rank-r row space (B = random orthonormal rows, A = X B^T), i.e. a projection that is
  not the optimal one; kept to measure what the optimal one buys.
* ``svd``: random real images of each class, each channel replaced by its best rank-r
  approximation (truncated SVD). Pixels: identical to ``real``.

What each means for a parameterisation is its own ``init_noise`` / ``init_real(projection=
"random" | "best")`` (IDC: real images shrunk into the tiles; HaBa: real bases, near-identity
hallucinators); this module only samples ``synset.real_per_class`` real images per class.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..data.types import LabeledImages, normalize
from ..data.sampler import ClassIndex
from ..registry import Registry
from .base import SyntheticSet

__all__ = ["INITS", "initialise", "sample_real"]

InitFn = Callable[[SyntheticSet, "torch.Tensor | None", torch.Generator], None]
INITS: Registry[InitFn] = Registry("init")


def sample_real(
    synset: SyntheticSet, train: LabeledImages, mean, std, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``real_per_class`` distinct random real images of every class, class-major, normalised."""
    index = ClassIndex(train.labels, synset.num_classes)
    idx = index.sample(synset.real_per_class, generator)  # (K * n,)
    return normalize(train.images[idx], mean, std), idx  # (K*n, C, H, W)


@INITS.register("noise")
def _noise(synset: SyntheticSet, real: torch.Tensor | None, g: torch.Generator) -> None:
    synset.init_noise(g)


@INITS.register("real")
def _real(synset: SyntheticSet, real: torch.Tensor | None, g: torch.Generator) -> None:
    assert real is not None
    synset.init_real(real, g, projection="random")


@INITS.register("svd")
def _svd(synset: SyntheticSet, real: torch.Tensor | None, g: torch.Generator) -> None:
    assert real is not None
    synset.init_real(real, g, projection="best")


NEEDS_REAL = {"real", "svd"}


def initialise(
    synset: SyntheticSet, init: str, train: LabeledImages | None, mean, std, generator: torch.Generator
) -> torch.Tensor | None:
    """Fill ``synset`` in place; returns the real indices used (or None for noise)."""
    fn = INITS.get(init)
    real, idx = (None, None)
    if init in NEEDS_REAL:
        assert train is not None, "real/svd init needs the train images"
        real, idx = sample_real(synset, train, mean, std, generator)
    fn(synset, real, generator)
    return idx


def relative_error(approx: torch.Tensor, target: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(approx - target) / torch.linalg.vector_norm(target).clamp_min(1e-12))


