"""Bases + hallucinators (HaBa: Liu et al., NeurIPS 2022), optionally with low-rank bases (LoHaBa).

Stored per class: ``per_class`` bases, each an image (C, H, W) or, for LoHaBa, per-channel rank-r
factors A (C, H, r), B (C, r, W) (basis = A @ B). Stored once for all classes: ``hallucinators``
small networks h_1..h_M. Every (basis, hallucinator) pair decodes to one training image with the
basis's label, so a unit (basis) decodes to M images.

Hallucinator (HaBa's public code, "StyleTranslator", with C mid channels and a 3x3 kernel):

    z = conv2d(x, W_enc, b_enc)            (C -> C, 3x3, no padding: (C, H-2, W-2))
    z = scale * z + shift                  (``affine="pixel"``: scale/shift (C, H-2, W-2), as in
                                            their code; ``"channel"``: (C, 1, 1))
    y = conv_transpose2d(z, W_dec, b_dec)  (C -> C, 3x3: back to (C, H, W))

Its numbers, 2*(9*C*C + C) + 2*|scale|, are shared elements of the budget: the pixel budget of all
classes, K*ipc*C*H*W, pays them once, and the bases get what is left:
n = floor((K*ipc*C*H*W - M*hallucinator) / (K*unit)). With ``affine="pixel"`` five hallucinators
cost 27 840 numbers at 3x32x32, 90 % of CIFAR-10's whole IPC-1 budget (30 720): no pixel basis and
no rank-2 basis fits, so the default is ``"channel"`` (174 numbers each at C=3); "pixel" is kept for
larger budgets (e.g. CIFAR-100, IPC 10). The HaBa paper counts the hallucinators outside the
budget at IPC 1; here they are always inside.

Decoded order: class-major, then basis, then hallucinator (image ``(k*n + j)*M + m`` is
h_m(basis j of class k)).

Shared modules make the set impossible to split by class across processes (``shardable=False``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import BudgetError
from .base import PARAMETERISATIONS, ExportColumn, SyntheticSet, check_positive_int
from .lowrank import LowRankSet, check_rank
from .pixel import PixelSet

__all__ = ["HaBaSet", "hallucinator_numel"]

KERNEL = 3
AFFINES = ("channel", "pixel")
HAL_KEYS = ("hal_enc_weight", "hal_enc_bias", "hal_scale", "hal_shift", "hal_dec_weight", "hal_dec_bias")


def _affine_shape(image_shape, affine: str) -> tuple[int, int, int]:
    c, h, w = image_shape
    return (c, h - KERNEL + 1, w - KERNEL + 1) if affine == "pixel" else (c, 1, 1)


def hallucinator_numel(image_shape, affine: str = "channel") -> int:
    c = image_shape[0]
    conv = c * c * KERNEL * KERNEL + c  # weights + bias of one 3x3 C->C convolution
    return 2 * conv + 2 * math.prod(_affine_shape(image_shape, affine))


@PARAMETERISATIONS.register("haba")
class HaBaSet(SyntheticSet):
    """``per_class`` bases per class (pixels or rank-r factors) x ``hallucinators`` shared networks."""

    kind = "haba"
    OPTIONS = ("rank", "hallucinators", "affine", "shared_in_budget")
    rescale_passes = 4  # the hallucinators' biases make scaling a basis only roughly scale its images
    shardable = False

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int], rank: int | None = None,
                 hallucinators: int = 5, affine: str = "channel", shared_in_budget: bool = True, *,
                 persistent_labels: bool = True):
        self.check_options(image_shape, rank=rank, hallucinators=hallucinators, affine=affine)
        super().__init__(num_classes, per_class, image_shape, decoded_per_unit=hallucinators,
                         persistent_labels=persistent_labels)
        self._rank = None if rank is None else int(rank)
        self.hallucinators = int(hallucinators)
        self.affine = affine
        self.shared_in_budget = bool(shared_in_budget)  # False: the hallucinators were not paid from the budget
        if self._rank is None:
            self.bases = PixelSet(num_classes, per_class, image_shape, persistent_labels=False)
        else:
            self.bases = LowRankSet(num_classes, per_class, image_shape, rank=self._rank, persistent_labels=False)
        c = self.image_shape[0]
        M, k = self.hallucinators, KERNEL
        aff = _affine_shape(self.image_shape, affine)
        self.hal_enc_weight = nn.Parameter(torch.zeros(M, c, c, k, k))  # (M, C_out, C_in, k, k)
        self.hal_enc_bias = nn.Parameter(torch.zeros(M, c))
        self.hal_scale = nn.Parameter(torch.ones(M, *aff))  # (M, C, H', W') or (M, C, 1, 1)
        self.hal_shift = nn.Parameter(torch.zeros(M, *aff))
        self.hal_dec_weight = nn.Parameter(torch.zeros(M, c, c, k, k))  # (M, C_in, C_out, k, k) transposed conv
        self.hal_dec_bias = nn.Parameter(torch.zeros(M, c))

    # -- storage ------------------------------------------------------------------------------
    @classmethod
    def check_options(cls, image_shape, rank=None, hallucinators=5, affine="channel", shared_in_budget=True,
                      **options) -> None:
        check_positive_int("hallucinators", hallucinators)
        if not isinstance(shared_in_budget, bool):
            raise BudgetError(f"HaBa shared_in_budget must be true or false, got {shared_in_budget!r}")
        if affine not in AFFINES:
            raise BudgetError(f"HaBa affine must be one of {', '.join(AFFINES)}, got {affine!r}")
        c, h, w = image_shape
        if min(h, w) <= KERNEL:
            raise BudgetError(f"HaBa hallucinators need images larger than {KERNEL}x{KERNEL}, got {h}x{w}")
        if rank is not None:
            check_rank(image_shape, rank)

    @classmethod
    def unit_numel(cls, image_shape, rank=None, **options) -> int:
        c, h, w = image_shape
        return c * h * w if rank is None else c * rank * (h + w)

    @classmethod
    def shared_numel(cls, image_shape, hallucinators=5, affine="channel", **options) -> int:
        return hallucinators * hallucinator_numel(image_shape, affine)

    @classmethod
    def budget_shared_numel(cls, image_shape, shared_in_budget=True, **options) -> int:
        return cls.shared_numel(image_shape, **options) if shared_in_budget else 0

    @classmethod
    def decoded_per_unit_for(cls, hallucinators=5, **options) -> int:
        return hallucinators

    @property
    def rank(self) -> int | None:
        return self._rank

    # -- decoding -------------------------------------------------------------------------------
    def hallucinate(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Hallucinator ``m`` applied to bases x (N, C, H, W) -> (N, C, H, W)."""
        z = F.conv2d(x, self.hal_enc_weight[m], self.hal_enc_bias[m])  # (N, C, H-2, W-2)
        z = z * self.hal_scale[m] + self.hal_shift[m]
        return F.conv_transpose2d(z, self.hal_dec_weight[m], self.hal_dec_bias[m])  # (N, C, H, W)

    def forward(self) -> torch.Tensor:
        x = self.bases()  # (N, C, H, W)
        out = torch.stack([self.hallucinate(x, m) for m in range(self.hallucinators)], dim=1)  # (N, M, C, H, W)
        return out.reshape(-1, *self.image_shape)  # (N*M, C, H, W)

    # -- initialisation -------------------------------------------------------------------------
    def _init_hallucinators(self, generator: torch.Generator, near_identity: bool) -> None:
        """PyTorch's default conv init (U(+-1/sqrt(fan_in))) drawn from ``generator``; with
        ``near_identity`` a centred delta kernel (channel i -> i) plus that noise at 1/10 of its size,
        so that at initialisation every hallucinator roughly reproduces the basis (all but the 1-pixel
        border, which the unpadded 3x3 encoder cannot see)."""
        c, k, M = self.image_shape[0], KERNEL, self.hallucinators
        bound = 1.0 / math.sqrt(c * k * k)
        noise = 0.1 if near_identity else 1.0

        def u(*shape):
            return (torch.rand(shape, generator=generator) * 2 - 1) * bound * noise

        delta = torch.zeros(c, c, k, k)
        if near_identity:
            delta[torch.arange(c), torch.arange(c), k // 2, k // 2] = 1.0
        with torch.no_grad():
            self.hal_enc_weight.copy_(delta + u(M, c, c, k, k))
            self.hal_enc_bias.copy_(u(M, c))
            self.hal_dec_weight.copy_(delta + u(M, c, c, k, k))
            self.hal_dec_bias.copy_(u(M, c))
            self.hal_scale.fill_(1.0)
            self.hal_shift.zero_()

    def set_images(self, images: torch.Tensor) -> None:
        self.bases.set_images(images)

    def init_real(self, real: torch.Tensor, generator: torch.Generator, projection: str = "best") -> None:
        self.bases.init_real(real, generator, projection)
        self._init_hallucinators(generator, near_identity=True)

    def init_noise(self, generator: torch.Generator) -> None:
        self.bases.init_noise(generator)
        self._init_hallucinators(generator, near_identity=False)

    # -- contrast -------------------------------------------------------------------------------
    def rescale_(self, scale: torch.Tensor) -> None:
        """Scale every basis by the geometric mean of its M images' factors (the hallucinators are
        shared by all classes and are left alone); not exact, hence ``rescale_passes``."""
        self.bases.rescale_(scale.reshape(-1, self.hallucinators).log().mean(1).exp())

    # -- sharding / export ----------------------------------------------------------------------
    def class_state_keys(self) -> list[str]:
        return [f"bases.{k}" for k in self.bases.class_state_keys()]

    def shared_state_keys(self) -> list[str]:
        return list(HAL_KEYS)

    def export_columns(self) -> list[ExportColumn]:
        c = self.image_shape[0]
        k = KERNEL
        aff = _affine_shape(self.image_shape, self.affine)
        return self.bases.export_columns() + [
            ExportColumn("enc_weight", (c, c, k, k), "float32", "shared", "encoder conv weight (out, in, 3, 3)"),
            ExportColumn("enc_bias", (c,), "float32", "shared", "encoder conv bias"),
            ExportColumn("scale", aff, "float32", "shared", "affine scale after the encoder"),
            ExportColumn("shift", aff, "float32", "shared", "affine shift after the encoder"),
            ExportColumn("dec_weight", (c, c, k, k), "float32", "shared", "decoder transposed-conv weight (in, out, 3, 3)"),
            ExportColumn("dec_bias", (c,), "float32", "shared", "decoder transposed-conv bias"),
        ]

    def export_tables(self) -> dict[str, dict[str, torch.Tensor]]:
        shared = {k[len("hal_"):]: getattr(self, k).detach().float().cpu() for k in HAL_KEYS}
        return {**self.bases.export_tables(), "shared": shared}

    def load_export_tables(self, tables) -> None:
        self.bases.load_export_tables(tables)
        with torch.no_grad():
            for k in HAL_KEYS:
                getattr(self, k).copy_(torch.as_tensor(tables["shared"][k[len("hal_"):]]))

    def how_to_decode(self) -> str:
        basis = ("`pixel_values` (C, H, W) is the basis" if self._rank is None else
                 f"the basis is A @ B per channel (rank {self._rank} factors A (C, H, r), B (C, r, W))")
        return (f"Bases + hallucinators (HaBa): every row of the units table is one basis with its label; {basis}. "
                f"The shared table has {self.hallucinators} rows, one hallucinator each; hallucinator m maps a basis "
                "x (1, C, H, W) to `conv_transpose2d(scale * conv2d(x, enc_weight, enc_bias) + shift, dec_weight, "
                "dec_bias)` (torch.nn.functional, 3x3 kernels, no padding). Every (basis, hallucinator) pair is one "
                "training image with the basis's label, normalised with the source data's mean and std."
                + ("" if self.shared_in_budget else " NOTE: the hallucinators' numbers were NOT counted in the storage "
                   "budget (shared_in_budget=false), so this set stores more than its ipc says."))
