"""Exact storage arithmetic: how many rank-r factor images fit in the budget of k pixel images.

A pixel image costs C*H*W numbers; a rank-r factor image costs C*H*r + C*r*W = C*r*(H+W).
The budget of ``ipc`` pixel images per class therefore buys floor(ipc*H*W / (r*(H+W))) factor images
per class, computed on exact integers (the reference code truncated the ratio before multiplying,
storing 10 MNIST r=8 images where 17 fit).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

from ..errors import BudgetError

__all__ = ["Budget", "plan_budget", "numel_per_image", "check_budget_args"]


def numel_per_image(image_shape: tuple[int, int, int], rank: int | None) -> int:
    """Stored numbers per synthetic image: C*H*W for pixels, C*r*(H+W) for rank-r factors."""
    c, h, w = image_shape
    return c * h * w if rank is None else c * rank * (h + w)


@dataclass(frozen=True)
class Budget:
    ipc: float  # pixel-equivalent budget, images per class (integer unless set via images_per_class)
    rank: int | None  # None = pixel parameterisation
    image_shape: tuple[int, int, int]
    images_per_class: int  # synthetic images actually stored per class
    numel_per_image: int
    budget_numel_per_class: int  # what ipc pixel images would cost
    used_numel_per_class: int  # what is stored

    def bytes(self, num_classes: int, itemsize: int = 4) -> dict[str, int]:
        return {
            "stored_bytes": self.used_numel_per_class * num_classes * itemsize,
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
) -> Budget:
    """Plan the synthetic set of one class.

    Give ``ipc`` (the pixel budget; the number of images follows from the rank) or
    ``images_per_class`` (the count; the pixel-equivalent budget is reported). ``rank=None`` means
    pixel images.
    """
    if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3  # torch.Size is a tuple
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in image_shape)):
        raise BudgetError(f"plan_budget: image_shape must be (C, H, W) of positive integers, got {image_shape!r}; "
                          "the call is plan_budget(image_shape, ipc=..., rank=..., images_per_class=...)")
    c, h, w = (int(v) for v in image_shape)
    check_budget_args(ipc, rank, images_per_class)
    if rank is not None:
        if rank * (h + w) >= h * w:
            bound = -(-h * w // (h + w))  # ceil(HW / (H + W)): ranks below it are cheaper than pixels
            fix = f"Use rank < {bound}" if bound > 1 else "No rank is cheaper at this size; use a pixel method"
            raise BudgetError(
                f"rank {rank} is too high for {h}x{w} images: a factor image costs {c * rank * (h + w)} numbers, "
                f"a pixel image {c * h * w}. {fix} (or the pixel parameterisation)."
            )
    per_img = numel_per_image((c, h, w), rank)
    if images_per_class is not None:
        used = images_per_class * per_img
        if ipc is not None:
            if used > ipc * c * h * w:
                fit = ipc * c * h * w // per_img
                raise BudgetError(
                    f"images_per_class={images_per_class}{f' at rank {rank}' if rank else ''} stores {used} "
                    f"numbers per class, over the budget of ipc={ipc} pixel image(s) ({ipc * c * h * w}); at most "
                    f"{fit} fit. Lower images_per_class, raise ipc, or set ipc=None to report the budget it implies."
                )
        return Budget(
            ipc=ipc if ipc is not None else round(used / (c * h * w), 4),
            rank=rank,
            image_shape=(c, h, w),
            images_per_class=images_per_class,
            numel_per_image=per_img,
            budget_numel_per_class=(ipc * c * h * w) if ipc is not None else used,
            used_numel_per_class=used,
        )
    budget = ipc * c * h * w
    n = budget // per_img
    if n < 1:
        raise BudgetError(
            f"a budget of {ipc} pixel image(s) per class ({budget} numbers) buys no rank-{rank} factor image "
            f"({per_img} numbers each); raise ipc or lower the rank"
        )
    return Budget(
        ipc=ipc,
        rank=rank,
        image_shape=(c, h, w),
        images_per_class=int(n),
        numel_per_image=per_img,
        budget_numel_per_class=budget,
        used_numel_per_class=int(n) * per_img,
    )
