"""Low-rank parameterisation (Yang et al., NeurIPS 2023): per-channel rank-r factors.

A stored unit is the pair A (C, H, r), B (C, r, W) and decodes to one image, image[c] = A[c] @ B[c];
it costs C*r*(H+W) numbers instead of C*H*W.

This module also re-exports the contract (``SyntheticSet``, ``PARAMETERISATIONS``) and ``PixelSet``
under their historical import path.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import BudgetError
from .base import PARAMETERISATIONS, ExportColumn, SyntheticSet, check_positive_int, class_major_labels
from .pixel import PixelSet

__all__ = ["SyntheticSet", "PixelSet", "LowRankSet", "PARAMETERISATIONS", "class_major_labels",
           "truncated_svd_factors", "random_projection_factors", "check_rank"]


def check_rank(image_shape, rank) -> None:
    c, h, w = (int(v) for v in image_shape)
    check_positive_int("rank", rank)
    if rank * (h + w) >= h * w:
        bound = -(-h * w // (h + w))  # ceil(HW / (H + W)): ranks below it are cheaper than pixels
        fix = f"Use rank < {bound}" if bound > 1 else "No rank is cheaper at this size; use a pixel method"
        raise BudgetError(
            f"rank {rank} is too high for {h}x{w} images: a factor image costs {c * rank * (h + w)} numbers, "
            f"a pixel image {c * h * w}. {fix} (or the pixel parameterisation)."
        )


@PARAMETERISATIONS.register("lowrank")
class LowRankSet(SyntheticSet):
    """Per-channel rank-r factors: image[n, c] = A[n, c] @ B[n, c]."""

    kind = "lowrank"
    OPTIONS = ("rank",)

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int], rank: int = 2,
                 *, persistent_labels: bool = True):
        super().__init__(num_classes, per_class, image_shape, persistent_labels=persistent_labels)
        c, h, w = self.image_shape
        self._rank = int(rank)
        self.A = nn.Parameter(torch.zeros(self.num_units, c, h, self._rank))  # (N, C, H, r)
        self.B = nn.Parameter(torch.zeros(self.num_units, c, self._rank, w))  # (N, C, r, W)

    @classmethod
    def check_options(cls, image_shape, rank=None, **options) -> None:
        if rank is None:
            raise BudgetError("the low-rank parameterisation needs a rank (e.g. 2)")
        check_rank(image_shape, rank)

    @classmethod
    def unit_numel(cls, image_shape, rank=2, **options) -> int:
        c, h, w = image_shape
        return c * rank * (h + w)

    @property
    def rank(self) -> int:
        return self._rank

    def forward(self) -> torch.Tensor:
        return torch.matmul(self.A, self.B)  # (N, C, H, r) @ (N, C, r, W) -> (N, C, H, W)

    def set_factors(self, A: torch.Tensor, B: torch.Tensor) -> None:
        with torch.no_grad():
            self.A.copy_(A.reshape(self.A.shape))
            self.B.copy_(B.reshape(self.B.shape))

    def set_images(self, images: torch.Tensor) -> None:
        """Best rank-r approximation of each channel of ``images`` (Eckart-Young), balanced factors."""
        A, B = truncated_svd_factors(images, self._rank)
        self.set_factors(A, B)

    def init_real(self, real: torch.Tensor, generator: torch.Generator, projection: str = "best") -> None:
        if projection == "random":
            self.set_factors(*random_projection_factors(real, self._rank, generator))
        else:
            self.set_images(real)

    def init_noise(self, generator: torch.Generator) -> None:
        s = self._rank ** -0.25  # var(A)=var(B)=r^-1/2 -> var(AB) = r * r^-1 = 1
        A = torch.randn(self.A.shape, generator=generator) * s
        B = torch.randn(self.B.shape, generator=generator) * s
        self.set_factors(A, B)

    def rescale_(self, scale: torch.Tensor) -> None:
        """Scale split evenly between A and B (sqrt each), keeping them balanced."""
        with torch.no_grad():
            s = scale.to(self.A).sqrt().view(-1, 1, 1, 1)  # (N, 1, 1, 1)
            self.A.mul_(s)
            self.B.mul_(s)

    def export_columns(self) -> list[ExportColumn]:
        c, h, w = self.image_shape
        r = self._rank
        return [ExportColumn("A", (c, h, r), "float32", "units", "left factors"),
                ExportColumn("B", (c, r, w), "float32", "units", "right factors")]

    def export_tables(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"units": {"A": self.A.detach().float().cpu(), "B": self.B.detach().float().cpu()}}

    def load_export_tables(self, tables) -> None:
        self.set_factors(torch.as_tensor(tables["units"]["A"]), torch.as_tensor(tables["units"]["B"]))

    def how_to_decode(self) -> str:
        return (f"Low-rank parameterisation (rank {self._rank}): every row stores per-channel factors A (C, H, r) "
                "and B (C, r, W); the training image is A @ B per channel (`numpy.matmul(A, B)`), normalised with "
                "the source data's mean and std.")


SVD_CHUNK = 512  # images per batched SVD: bounds its float64 copies (each matrix is solved on its own: same bits)


def truncated_svd_factors(images: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> A (N, C, H, r), B (N, C, r, W) with A @ B the best rank-r approximation.

    The singular values are split evenly (A = U sqrt(S), B = sqrt(S) V^T) so both factors have the
    same scale and receive gradients of similar size. The images go through the SVD ``SVD_CHUNK`` at a
    time: one batched call holds the input, U and V^T in float64 plus LAPACK's copies, about 7 GB for
    1 000 classes x 16 images at 64 px.
    """
    if len(images) <= SVD_CHUNK:
        return _svd_factors(images, rank)
    parts = [_svd_factors(images[i:i + SVD_CHUNK], rank) for i in range(0, len(images), SVD_CHUNK)]
    return torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])


def _svd_factors(images: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    U, S, Vh = torch.linalg.svd(images.double(), full_matrices=False)  # (N,C,H,k), (N,C,k), (N,C,k,W)
    s = S[..., :rank].sqrt()  # (N, C, r)
    A = U[..., :, :rank] * s.unsqueeze(-2)  # (N, C, H, r)
    B = s.unsqueeze(-1) * Vh[..., :rank, :]  # (N, C, r, W)
    return A.to(images.dtype), B.to(images.dtype)


def random_projection_factors(images: torch.Tensor, rank: int, generator: torch.Generator
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares fit on a *random* rank-r row space: B = random orthonormal rows, A = X B^T."""
    n, c, h, w = images.shape
    q, _ = torch.linalg.qr(torch.randn(n, c, w, rank, generator=generator, dtype=torch.float64))  # (N,C,W,r)
    B = q.transpose(-1, -2)  # (N, C, r, W) orthonormal rows
    A = images.double() @ q  # (N, C, H, r): least-squares coefficients on that row space
    return A.float(), B.float()
