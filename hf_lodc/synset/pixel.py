"""Pixel parameterisation: one free number per pixel; a stored unit is one image, decoded as itself."""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import PARAMETERISATIONS, ExportColumn, SyntheticSet

__all__ = ["PixelSet"]


@PARAMETERISATIONS.register("pixel")
class PixelSet(SyntheticSet):
    """Full-rank synthetic images (K*n, C, H, W), class-major."""

    kind = "pixel"
    OPTIONS = ()

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int], rank: int | None = None,
                 *, persistent_labels: bool = True):
        super().__init__(num_classes, per_class, image_shape, persistent_labels=persistent_labels)
        self.images = nn.Parameter(torch.zeros(self.num_units, *self.image_shape))  # (N, C, H, W)

    @classmethod
    def unit_numel(cls, image_shape, **options) -> int:
        c, h, w = image_shape
        return c * h * w

    def forward(self) -> torch.Tensor:
        return self.images  # (N, C, H, W)

    def set_images(self, images: torch.Tensor) -> None:
        with torch.no_grad():
            self.images.copy_(images.reshape(self.images.shape))

    def init_noise(self, generator: torch.Generator) -> None:
        self.set_images(torch.randn((self.num_units, *self.image_shape), generator=generator))

    def rescale_(self, scale: torch.Tensor) -> None:
        with torch.no_grad():
            self.images.mul_(scale.to(self.images).view(-1, 1, 1, 1))

    def export_columns(self) -> list[ExportColumn]:
        return [ExportColumn("pixel_values", self.image_shape, "float32", "units",
                             "the stored image, normalised like the source data")]

    def export_tables(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"units": {"pixel_values": self.images.detach().float().cpu()}}

    def load_export_tables(self, tables) -> None:
        self.set_images(torch.as_tensor(tables["units"]["pixel_values"]))

    def how_to_decode(self) -> str:
        return ("Pixel parameterisation: every row of `pixel_values` (C, H, W) is one training image, normalised "
                "with the source data's mean and std; there is nothing to decode.")
