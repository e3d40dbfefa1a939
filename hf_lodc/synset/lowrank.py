"""The synthetic set as an ``nn.Module``: pixels, or the paper's per-channel low-rank factors.

Both parameterisations share one interface, so every objective works on either (the plug-in of
Yang et al. is this one class swap):

* ``forward()`` -> images (N, C, H, W), normalised like the source data;
* ``labels`` buffer (N,), class-major (class c owns rows [c*n, (c+1)*n));
* ``numel_per_image`` and ``state_dict()`` for storage accounting and checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import Registry

__all__ = ["SyntheticSet", "PixelSet", "LowRankSet", "PARAMETERISATIONS", "class_major_labels"]

PARAMETERISATIONS: Registry[type["SyntheticSet"]] = Registry("parameterisation")


def class_major_labels(num_classes: int, per_class: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(per_class)  # (K * n,)


class SyntheticSet(nn.Module):
    """Base: a fixed number of synthetic images per class, stored class-major."""

    kind: str = ""

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.num_classes = int(num_classes)
        self.per_class = int(per_class)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.register_buffer("labels", class_major_labels(num_classes, per_class), persistent=True)

    def __len__(self) -> int:
        return self.num_classes * self.per_class

    @property
    def rank(self) -> int | None:
        return None

    @property
    def numel_per_image(self) -> int:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:  # (N, C, H, W)
        raise NotImplementedError

    def set_images(self, images: torch.Tensor) -> None:
        """Initialise from images (N, C, H, W) (projected onto the parameterisation)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"classes={self.num_classes}, per_class={self.per_class}, image_shape={self.image_shape}"


@PARAMETERISATIONS.register("pixel")
class PixelSet(SyntheticSet):
    """Full-rank synthetic images: one free parameter per pixel."""

    kind = "pixel"

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int], rank: int | None = None):
        super().__init__(num_classes, per_class, image_shape)
        self.images = nn.Parameter(torch.zeros(len(self), *self.image_shape))  # (N, C, H, W)

    @property
    def numel_per_image(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    def forward(self) -> torch.Tensor:
        return self.images

    def set_images(self, images: torch.Tensor) -> None:
        with torch.no_grad():
            self.images.copy_(images.reshape(self.images.shape))


@PARAMETERISATIONS.register("lowrank")
class LowRankSet(SyntheticSet):
    """Per-channel rank-r factors: image[n, c] = A[n, c] @ B[n, c]."""

    kind = "lowrank"

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int], rank: int = 2):
        super().__init__(num_classes, per_class, image_shape)
        c, h, w = self.image_shape
        self._rank = int(rank)
        self.A = nn.Parameter(torch.zeros(len(self), c, h, self._rank))  # (N, C, H, r)
        self.B = nn.Parameter(torch.zeros(len(self), c, self._rank, w))  # (N, C, r, W)

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def numel_per_image(self) -> int:
        c, h, w = self.image_shape
        return c * self._rank * (h + w)

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

    def extra_repr(self) -> str:
        return super().extra_repr() + f", rank={self._rank}"


def truncated_svd_factors(images: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> A (N, C, H, r), B (N, C, r, W) with A @ B the best rank-r approximation.

    The singular values are split evenly (A = U sqrt(S), B = sqrt(S) V^T) so both factors have the
    same scale and receive gradients of similar size.
    """
    U, S, Vh = torch.linalg.svd(images.double(), full_matrices=False)  # (N,C,H,k), (N,C,k), (N,C,k,W)
    s = S[..., :rank].sqrt()  # (N, C, r)
    A = U[..., :, :rank] * s.unsqueeze(-2)  # (N, C, H, r)
    B = s.unsqueeze(-1) * Vh[..., :rank, :]  # (N, C, r, W)
    return A.to(images.dtype), B.to(images.dtype)
