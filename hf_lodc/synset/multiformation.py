"""Multi-formation (IDC: Kim et al., ICML 2022), optionally on low-rank units (LoIDC).

A stored unit is one H x W image ``S`` -- kept as pixels, or, for LoIDC, as per-channel rank-r
factors A (C, H, r), B (C, r, W) with S = A @ B per channel (the low-rank plug-in of Yang et al.
applied to IDC's stored image). Decoding splits ``S`` into a ``factor`` x ``factor`` grid of tiles
and resizes every tile bilinearly (``align_corners=False``) back to H x W, so one unit decodes to
f^2 training images, all labelled with the unit's class.

Tile grid: rows are cut into f bands of heights ``[s+1]*(H % f) + [s]*(f - H % f)`` with s = H // f
(columns alike), as IDC's initialiser cuts them (IDC's decoder pads with a constant instead; the
two agree whenever f divides H, as for 28x28 and 32x32 at f = 2). Tiles are taken row-major, so
decoded image ``class*n*f^2 + unit*f^2 + (i*f + j)`` is tile (i, j) of unit ``unit`` of ``class``.

Storage is exactly the unit's: C*H*W numbers (pixels) or C*r*(H+W) (LoIDC) per stored unit, no
shared numbers; the budget of ipc pixel images per class buys the same number of units as the
pixel or low-rank set, each decoding to f^2 images.

``init_real`` takes f^2 real images per unit, downsamples each to its tile's size (bilinear with
antialiasing, where IDC uses nearest-neighbour ``F.interpolate``; antialiasing keeps thin MNIST
strokes) and pastes them into the tiles, as IDC's "mix" initialisation; LoIDC then fits the factors
to that tiled image (truncated SVD, or a random row space for ``projection="random"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import BudgetError
from .base import PARAMETERISATIONS, ExportColumn, SyntheticSet, check_positive_int
from .lowrank import LowRankSet, check_rank
from .pixel import PixelSet

__all__ = ["MultiFormationSet", "tile_bounds"]


def tile_bounds(size: int, factor: int) -> list[tuple[int, int]]:
    """[(start, length)] of the ``factor`` bands of a side of ``size`` pixels (longer bands first)."""
    s, rem = divmod(size, factor)
    out, at = [], 0
    for i in range(factor):
        n = s + 1 if i < rem else s
        out.append((at, n))
        at += n
    return out


@PARAMETERISATIONS.register("multiformation")
class MultiFormationSet(SyntheticSet):
    """IDC multi-formation of pixel units (``rank=None``) or of rank-r factor units (LoIDC)."""

    kind = "multiformation"
    OPTIONS = ("rank", "factor")

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int], rank: int | None = None,
                 factor: int = 2, *, persistent_labels: bool = True):
        self.check_options(image_shape, rank=rank, factor=factor)
        super().__init__(num_classes, per_class, image_shape, decoded_per_unit=factor * factor,
                         persistent_labels=persistent_labels)
        self.factor = int(factor)
        self._rank = None if rank is None else int(rank)
        if self._rank is None:
            self.store = PixelSet(num_classes, per_class, image_shape, persistent_labels=False)
        else:
            self.store = LowRankSet(num_classes, per_class, image_shape, rank=self._rank, persistent_labels=False)

    # -- storage ------------------------------------------------------------------------------
    @classmethod
    def check_options(cls, image_shape, rank=None, factor=2, **options) -> None:
        check_positive_int("factor", factor)
        c, h, w = image_shape
        if factor > min(h, w):
            raise BudgetError(f"multi-formation factor {factor} is larger than the {h}x{w} image; use factor <= "
                              f"{min(h, w)} (IDC uses 2, 3 on ImageNet)")
        if rank is not None:
            check_rank(image_shape, rank)

    @classmethod
    def unit_numel(cls, image_shape, rank=None, factor=2, **options) -> int:
        c, h, w = image_shape
        return c * h * w if rank is None else c * rank * (h + w)

    @classmethod
    def decoded_per_unit_for(cls, factor=2, **options) -> int:
        return factor * factor

    @property
    def rank(self) -> int | None:
        return self._rank

    @property
    def real_per_class(self) -> int:
        return self.per_class * self.factor ** 2

    # -- decoding -------------------------------------------------------------------------------
    def forward(self) -> torch.Tensor:
        return self.decode(self.store())

    def decode(self, stored: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) stored images -> (N*f^2, C, H, W) decoded, unit-major then tile row-major."""
        n, c, h, w = stored.shape
        tiles = [F.interpolate(stored[:, :, r0:r0 + rh, c0:c0 + cw], size=(h, w), mode="bilinear",
                               align_corners=False)  # (N, C, H, W)
                 for r0, rh in tile_bounds(h, self.factor) for c0, cw in tile_bounds(w, self.factor)]
        return torch.stack(tiles, dim=1).reshape(n * self.factor ** 2, c, h, w)  # (N*f^2, C, H, W)

    def compose(self, images: torch.Tensor) -> torch.Tensor:
        """(N*f^2, C, H, W) -> (N, C, H, W): every group of f^2 images shrunk into the tiles of one image."""
        f = self.factor
        c, h, w = self.image_shape
        groups = images.reshape(-1, f * f, c, h, w)  # (N, f^2, C, H, W)
        out = images.new_zeros(groups.shape[0], c, h, w)
        t = 0
        for r0, rh in tile_bounds(h, f):
            for c0, cw in tile_bounds(w, f):
                out[:, :, r0:r0 + rh, c0:c0 + cw] = F.interpolate(groups[:, t], size=(rh, cw), mode="bilinear",
                                                                  align_corners=False, antialias=True)
                t += 1
        return out

    # -- initialisation -------------------------------------------------------------------------
    def set_images(self, images: torch.Tensor) -> None:
        self.store.set_images(self.compose(images))

    def init_real(self, real: torch.Tensor, generator: torch.Generator, projection: str = "best") -> None:
        self.store.init_real(self.compose(real), generator, projection)

    def init_noise(self, generator: torch.Generator) -> None:
        self.store.init_noise(generator)

    # -- contrast -------------------------------------------------------------------------------
    def rescale_(self, scale: torch.Tensor) -> None:
        """Pixel units: each tile is scaled by its own decoded image's factor (bilinear resizing is
        linear and tile-local, so this is exact). Factor units cannot scale tiles apart: the unit is
        scaled by the geometric mean of its f^2 factors."""
        f2 = self.factor ** 2
        per_tile = scale.reshape(-1, f2)  # (N, f^2)
        if self._rank is not None:
            self.store.rescale_(per_tile.log().mean(1).exp())
            return
        with torch.no_grad():
            x = self.store.images
            c, h, w = self.image_shape
            t = 0
            for r0, rh in tile_bounds(h, self.factor):
                for c0, cw in tile_bounds(w, self.factor):
                    x[:, :, r0:r0 + rh, c0:c0 + cw] *= per_tile[:, t].to(x).view(-1, 1, 1, 1)
                    t += 1

    # -- sharding / export ----------------------------------------------------------------------
    def class_state_keys(self) -> list[str]:
        return [f"store.{k}" for k in self.store.class_state_keys()]

    def export_columns(self) -> list[ExportColumn]:
        return self.store.export_columns()

    def export_tables(self) -> dict[str, dict[str, torch.Tensor]]:
        return self.store.export_tables()

    def load_export_tables(self, tables) -> None:
        self.store.load_export_tables(tables)

    def how_to_decode(self) -> str:
        c, h, w = self.image_shape
        f = self.factor
        unit = ("`pixel_values` (C, H, W) is the stored image S" if self._rank is None else
                f"S = A @ B per channel (rank {self._rank} factors A (C, H, r), B (C, r, W))")
        return (f"Multi-formation (IDC, factor {f}): every row is one stored unit; {unit}. Cut S into a {f}x{f} "
                f"grid of tiles (bands of {[n for _, n in tile_bounds(h, f)]} rows and "
                f"{[n for _, n in tile_bounds(w, f)]} columns, tiles row-major) and resize every tile to {h}x{w} "
                "with bilinear interpolation (`torch.nn.functional.interpolate(tile, size=(H, W), mode='bilinear', "
                f"align_corners=False)`): {f * f} training images per row, all with the row's label, normalised "
                "with the source data's mean and std.")
