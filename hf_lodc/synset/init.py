"""Initialisers of a synthetic set: ``noise``, ``real`` and ``svd``.

* ``noise``: Gaussian. For factors, A and B are N(0, r^-1/2) so every entry of A @ B has unit
  variance (the reference code drew both from N(0, 1), giving variance r).
* ``real``: random real images of each class. Pixels: the images. Factors: least-squares fit on a
  *random* rank-r row space (B = random orthonormal rows, A = X B^T), i.e. a projection that is
  not the optimal one; kept to measure what the optimal one buys.
* ``svd``: random real images of each class, each channel replaced by its best rank-r
  approximation (truncated SVD). Pixels: identical to ``real``.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..data.types import LabeledImages, normalize
from ..data.sampler import ClassIndex
from ..registry import Registry
from .lowrank import LowRankSet, SyntheticSet

__all__ = ["INITS", "initialise", "sample_real"]

InitFn = Callable[[SyntheticSet, "torch.Tensor | None", torch.Generator], None]
INITS: Registry[InitFn] = Registry("init")


def sample_real(
    synset: SyntheticSet, train: LabeledImages, mean, std, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` distinct random real images of every class, class-major, normalised."""
    index = ClassIndex(train.labels, synset.num_classes)
    idx = index.sample(synset.per_class, generator)  # (K * n,)
    return normalize(train.images[idx], mean, std), idx  # (K*n, C, H, W)


@INITS.register("noise")
def _noise(synset: SyntheticSet, real: torch.Tensor | None, g: torch.Generator) -> None:
    if isinstance(synset, LowRankSet):
        s = synset.rank ** -0.25  # var(A)=var(B)=r^-1/2 -> var(AB) = r * r^-1 = 1
        A = torch.randn(synset.A.shape, generator=g) * s
        B = torch.randn(synset.B.shape, generator=g) * s
        synset.set_factors(A, B)
    else:
        synset.set_images(torch.randn((len(synset), *synset.image_shape), generator=g))


@INITS.register("real")
def _real(synset: SyntheticSet, real: torch.Tensor | None, g: torch.Generator) -> None:
    assert real is not None
    if isinstance(synset, LowRankSet):
        n, c, h, w = real.shape
        r = synset.rank
        q, _ = torch.linalg.qr(torch.randn(n, c, w, r, generator=g, dtype=torch.float64))  # (N,C,W,r)
        B = q.transpose(-1, -2)  # (N, C, r, W) orthonormal rows
        A = real.double() @ q  # (N, C, H, r): least-squares coefficients on that row space
        synset.set_factors(A.float(), B.float())
    else:
        synset.set_images(real)


@INITS.register("svd")
def _svd(synset: SyntheticSet, real: torch.Tensor | None, g: torch.Generator) -> None:
    assert real is not None
    synset.set_images(real)  # LowRankSet.set_images is the truncated SVD


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


