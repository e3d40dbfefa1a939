"""Exact storage arithmetic, asked of the parameterisation: how many stored units fit the budget of
``ipc`` pixel images per class.

Every parameterisation declares the numbers one stored unit costs (pixels C*H*W; rank-r factors
C*r*(H+W); IDC stores pixel or factor units; HaBa bases likewise) and the numbers it stores once
for all classes (HaBa's hallucinators). The budget of all K classes, K*ipc*C*H*W, pays the shared
numbers once; each class gets floor((K*ipc*C*H*W - shared) / (K*unit)) units (with nothing shared:
floor(ipc*C*H*W / unit), whatever K). Computed on exact integers (the reference code truncated the
ratio before multiplying, storing 10 MNIST r=8 images where 17 fit).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import BudgetError
from .base import PARAMETERISATIONS
from .lowrank import LowRankSet
from .multiformation import MultiFormationSet  # noqa: F401  (registers "multiformation")
from .haba import HaBaSet  # noqa: F401  (registers "haba")

__all__ = ["Budget", "plan_budget", "numel_per_image", "check_budget_args"]


def numel_per_image(image_shape: tuple[int, int, int], rank: int | None) -> int:
    """Stored numbers per synthetic image: C*H*W for pixels, C*r*(H+W) for rank-r factors."""
    c, h, w = image_shape
    return c * h * w if rank is None else LowRankSet.unit_numel((c, h, w), rank=rank)


@dataclass(frozen=True)
class Budget:
    ipc: float  # pixel-equivalent budget, images per class (integer unless set via images_per_class)
    rank: int | None  # None = no low-rank factors
    image_shape: tuple[int, int, int]
    images_per_class: int  # stored units actually stored per class (images, factor pairs, IDC images, bases)
    numel_per_image: int  # numbers per stored unit
    budget_numel_per_class: int  # what ipc pixel images would cost
    used_numel_per_class: int  # what the units of one class store (shared numbers not included)
    parameterisation: str | None = None  # PARAMETERISATIONS name (None in records written before it existed)
    options: dict[str, Any] = field(default_factory=dict)  # its constructor options besides rank
    shared_numel: int = 0  # numbers stored once for all classes (HaBa's hallucinators)
    num_classes: int | None = None  # classes the shared numbers were planned for
    decoded_per_class: int | None = None  # training images per class after decoding
    shared_in_budget: bool = True  # False: the shared numbers were stored but not paid from the budget

    def bytes(self, num_classes: int, itemsize: int = 4) -> dict[str, int]:
        return {
            "stored_bytes": (self.used_numel_per_class * num_classes + self.shared_numel) * itemsize,
            "budget_bytes": self.budget_numel_per_class * num_classes * itemsize,
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _check_ipc(ipc) -> None:
    if not _positive_int(ipc):
        raise BudgetError(f"ipc (pixel images per class) must be a positive integer, got {ipc!r}")


def check_budget_args(ipc: int | None, rank: int | None, images_per_class: int | None) -> None:
    """The checks that need no image shape (run before the data is read)."""
    if rank is not None and not _positive_int(rank):
        raise BudgetError(f"rank must be a positive integer, got {rank!r}")
    if images_per_class is not None and not _positive_int(images_per_class):
        raise BudgetError(f"images_per_class must be a positive integer, got {images_per_class!r}")
    if images_per_class is None and ipc is None:
        raise BudgetError("give the pixel budget ipc (images per class) or images_per_class")
    if ipc is not None:
        _check_ipc(ipc)


def plan_budget(
    image_shape: tuple[int, int, int],
    ipc: int | None = None,
    rank: int | None = None,
    images_per_class: int | None = None,
    *,
    parameterisation: str | None = None,
    num_classes: int | None = None,
    **options: Any,
) -> Budget:
    """Plan the synthetic set of one class.

    Give ``ipc`` (the pixel budget; the number of units follows from the parameterisation) or
    ``images_per_class`` (the unit count; the pixel-equivalent budget is reported).
    ``parameterisation`` defaults to "pixel" (``rank=None``) or "lowrank"; other options (IDC's
    ``factor``, HaBa's ``hallucinators``/``affine``) go to the parameterisation. ``num_classes`` is
    needed when the parameterisation stores shared numbers.
    """
    if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3  # torch.Size is a tuple
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in image_shape)):
        raise BudgetError(f"plan_budget: image_shape must be (C, H, W) of positive integers, got {image_shape!r}; "
                          "the call is plan_budget(image_shape, ipc=..., rank=..., images_per_class=...)")
    c, h, w = (int(v) for v in image_shape)
    check_budget_args(ipc, rank, images_per_class)
    name = parameterisation or ("pixel" if rank is None else "lowrank")
    cls = PARAMETERISATIONS.get(name)
    opts = {k: v for k, v in options.items() if v is not None}
    cls.check_options((c, h, w), rank=rank, **opts)
    per_unit = cls.unit_numel((c, h, w), rank=rank, **opts)
    stored_shared = cls.shared_numel((c, h, w), rank=rank, **opts)
    shared = cls.budget_shared_numel((c, h, w), rank=rank, **opts)  # what the budget pays (0 if not counted)
    decoded = cls.decoded_per_unit_for(rank=rank, **opts)
    pixel = c * h * w
    rank_txt = f" at rank {rank}" if rank else ""
    common = dict(rank=rank, image_shape=(c, h, w), numel_per_image=per_unit, parameterisation=name,
                  options=opts, shared_numel=stored_shared, num_classes=num_classes,
                  shared_in_budget=shared == stored_shared)
    if shared and num_classes is None:
        raise BudgetError(f"parameterisation {name!r} stores {shared} numbers shared by all classes, paid from the "
                          "budget of all classes together: give num_classes")
    if images_per_class is not None:
        used = images_per_class * per_unit
        if ipc is not None:
            k = num_classes or 1
            if k * used + shared > k * ipc * pixel:
                fit = (k * ipc * pixel - shared) // (k * per_unit) if k * ipc * pixel >= shared else 0
                shared_txt = f" plus {shared} shared numbers" if shared else ""
                raise BudgetError(
                    f"images_per_class={images_per_class}{rank_txt} stores {used} "
                    f"numbers per class{shared_txt}, over the budget of ipc={ipc} pixel image(s) ({ipc * pixel}); at "
                    f"most {fit} fit. Lower images_per_class, raise ipc, or set ipc=None to report the budget it implies."
                )
        k = num_classes or 1
        return Budget(
            ipc=ipc if ipc is not None else round((k * used + shared) / (k * pixel), 4),
            images_per_class=images_per_class,
            budget_numel_per_class=(ipc * pixel) if ipc is not None else used + -(-shared // k),
            used_numel_per_class=used,
            decoded_per_class=images_per_class * decoded,
            **common,
        )
    budget = ipc * pixel
    n = cls.units_for_budget((c, h, w), ipc, num_classes, rank=rank, **opts)
    if n < 1:
        if shared:
            raise BudgetError(
                f"a budget of {ipc} pixel image(s) per class for {num_classes} classes ({num_classes * budget} numbers) "
                f"pays the {shared} numbers parameterisation {name!r} shares between classes and leaves less than "
                f"one unit ({per_unit} numbers) per class (with pixel units the shared numbers cost a whole unit per "
                f"class); use low-rank units (a rank), raise ipc, use fewer/smaller shared modules, or set "
                f"shared_in_budget=false (shared numbers stored but not counted; marked in results and the card)"
            )
        raise BudgetError(
            f"a budget of {ipc} pixel image(s) per class ({budget} numbers) buys no rank-{rank} factor image "
            f"({per_unit} numbers each); raise ipc or lower the rank"
        )
    return Budget(
        ipc=ipc,
        images_per_class=int(n),
        budget_numel_per_class=budget,
        used_numel_per_class=int(n) * per_unit,
        decoded_per_class=int(n) * decoded,
        **common,
    )
