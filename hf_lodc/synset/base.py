"""The parameterisation contract: what every synthetic-set class answers, so nothing outside
``synset/`` branches on a concrete type.

Vocabulary:

* a **stored unit** is what the budget pays for per class: one pixel image, one pair of rank-r
  factors, one IDC image that holds f*f tiles, one HaBa basis;
* a stored unit **decodes** to ``decoded_per_unit`` training images; ``decoded_per_class`` =
  ``per_class * decoded_per_unit`` (1 for pixels and factors, f^2 for IDC, #hallucinators for HaBa);
* **shared** elements are stored once for all classes (HaBa's hallucinators); they are counted in
  the budget and make a set impossible to shard by class.

A class implementing the contract declares (class-level, usable before construction, by
``synset/budget.py``): ``unit_numel(image_shape, **options)``, ``shared_numel(image_shape, **options)``,
``decoded_per_unit(**options)``, ``check_options(image_shape, **options)``; and on an instance:
``forward()`` (decoded images, class-major (K*decoded_per_class, C, H, W)), ``labels`` (of the
decoded images), ``cost``, ``init_real`` / ``init_noise`` / ``set_images``, ``rescale_``,
``class_state_keys`` / ``shared_state_keys`` / ``check_class_shardable``, ``export_columns`` and
``how_to_decode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..errors import BudgetError, ConfigError
from ..registry import Registry

__all__ = ["SyntheticSet", "PARAMETERISATIONS", "ExportColumn", "class_major_labels", "units_for_budget"]

PARAMETERISATIONS: Registry[type["SyntheticSet"]] = Registry("parameterisation")


def class_major_labels(num_classes: int, per_class: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(per_class)  # (K * n,)


@dataclass(frozen=True)
class ExportColumn:
    """One exported column. ``table`` "units": one row per stored unit (class-major, with a ``label``
    column); "shared": one row per shared module (e.g. per hallucinator); "images": one row per
    decoded image. ``shape`` is the shape of one cell; ``dtype`` a numpy/datasets dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    table: str
    description: str = ""


def units_for_budget(unit: int, shared: int, ipc: int, pixel_numel: int, num_classes: int | None) -> int:
    """Largest n with ``num_classes * n * unit + shared <= num_classes * ipc * pixel_numel``.

    With no shared elements this is ``ipc * pixel_numel // unit`` (the class count cancels), so it
    needs no class count; shared elements are paid once from the budget of all classes together.
    """
    budget = ipc * pixel_numel
    if shared == 0:
        return budget // unit
    if num_classes is None:
        raise BudgetError(f"this parameterisation stores {shared} shared numbers, paid from the budget of all "
                          "classes together: give num_classes to plan the budget")
    return max(0, (num_classes * budget - shared) // (num_classes * unit))


class SyntheticSet(nn.Module):
    """Base of every parameterisation: ``per_class`` stored units per class, stored class-major.

    Subclasses set ``kind`` (their registry name) and ``OPTIONS`` (the constructor keywords that,
    with num_classes, per_class and image_shape, rebuild them; recorded in artefacts).
    """

    kind: str = ""
    OPTIONS: tuple[str, ...] = ()
    #: measure-and-rescale passes ``contrast`` needs to reach a std target (1 when ``rescale_`` is exact)
    rescale_passes: int = 1

    def __init__(self, num_classes: int, per_class: int, image_shape: tuple[int, int, int], *,
                 decoded_per_unit: int = 1, persistent_labels: bool = True):
        super().__init__()
        self.num_classes = int(num_classes)
        self.per_class = int(per_class)
        self.image_shape = tuple(int(v) for v in image_shape)
        self._decoded_per_unit = int(decoded_per_unit)
        labels = class_major_labels(num_classes, self.decoded_per_class)  # (K * decoded_per_class,)
        self.register_buffer("labels", labels, persistent=persistent_labels)

    # -- storage (class level: the budget asks before anything is built) ---------------------------
    @classmethod
    def check_options(cls, image_shape: tuple[int, int, int], **options: Any) -> None:
        """Raise BudgetError/ConfigError if ``options`` make no sense at this image shape."""

    @classmethod
    def unit_numel(cls, image_shape: tuple[int, int, int], **options: Any) -> int:
        """Numbers stored per unit (per class, per unit)."""
        raise NotImplementedError

    @classmethod
    def shared_numel(cls, image_shape: tuple[int, int, int], **options: Any) -> int:
        """Numbers stored once for all classes (0 unless the parameterisation has shared modules)."""
        return 0

    @classmethod
    def budget_shared_numel(cls, image_shape: tuple[int, int, int], **options: Any) -> int:
        """Shared numbers the storage budget pays (``shared_numel`` unless an option says they are
        not counted, e.g. HaBa's ``shared_in_budget=False``; then results and cards say so)."""
        return cls.shared_numel(image_shape, **options)

    @classmethod
    def decoded_per_unit_for(cls, **options: Any) -> int:
        return 1

    @classmethod
    def units_for_budget(cls, image_shape, ipc: int, num_classes: int | None = None, **options: Any) -> int:
        """How many units per class fit a budget of ``ipc`` pixel images per class (all classes' budget
        pays the shared elements once)."""
        c, h, w = image_shape
        return units_for_budget(cls.unit_numel(image_shape, **options), cls.budget_shared_numel(image_shape, **options),
                                ipc, c * h * w, num_classes)

    # -- instance view of the same --------------------------------------------------------------
    @property
    def options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.OPTIONS}

    @property
    def numel_per_unit(self) -> int:
        return type(self).unit_numel(self.image_shape, **self.options)

    @property
    def numel_per_image(self) -> int:  # historical name: numbers per stored unit
        return self.numel_per_unit

    @property
    def numel_shared(self) -> int:
        return type(self).shared_numel(self.image_shape, **self.options)

    @property
    def decoded_per_unit(self) -> int:
        return self._decoded_per_unit

    @property
    def decoded_per_class(self) -> int:
        return self.per_class * self.decoded_per_unit

    @property
    def num_units(self) -> int:
        return self.num_classes * self.per_class

    def cost(self, per_class: int | None = None, num_classes: int | None = None) -> int:
        """Exact numbers stored for ``per_class`` units of ``num_classes`` classes (default: this set)."""
        n = self.per_class if per_class is None else per_class
        k = self.num_classes if num_classes is None else num_classes
        return k * n * self.numel_per_unit + self.numel_shared

    def stored_numel(self) -> int:
        """Numbers actually held by the parameters (equals ``cost()``; a test checks it)."""
        return sum(p.numel() for p in self.parameters())

    def __len__(self) -> int:
        """Number of decoded training images."""
        return self.num_classes * self.decoded_per_class

    @property
    def rank(self) -> int | None:
        return None

    # -- decoding -------------------------------------------------------------------------------
    def forward(self) -> torch.Tensor:  # (K * decoded_per_class, C, H, W), class-major
        raise NotImplementedError

    # -- initialisation -------------------------------------------------------------------------
    @property
    def real_per_class(self) -> int:
        """Real images per class that ``init_real`` consumes."""
        return self.per_class

    def set_images(self, images: torch.Tensor) -> None:
        """Best fit of ``real_per_class`` real images per class (class-major) in this parameterisation."""
        raise NotImplementedError

    def init_real(self, real: torch.Tensor, generator: torch.Generator, projection: str = "best") -> None:
        """Initialise from real images (K*real_per_class, C, H, W). ``projection`` "best" (the optimal
        fit, e.g. truncated SVD) or "random" (a random row space; only factor sets differ)."""
        self.set_images(real)

    def init_noise(self, generator: torch.Generator) -> None:
        raise NotImplementedError

    # -- contrast -------------------------------------------------------------------------------
    def rescale_(self, scale: torch.Tensor) -> None:
        """Multiply decoded image i by ``scale[i]`` (> 0) in place, as exactly as the storage allows."""
        raise NotImplementedError

    # -- sharding by class ----------------------------------------------------------------------
    shardable: bool = True

    def class_state_keys(self) -> list[str]:
        """State-dict keys whose tensors are class-major rows, ``per_class`` rows per class."""
        return [k for k in self.state_dict() if k != "labels"]

    def shared_state_keys(self) -> list[str]:
        return []

    def check_class_shardable(self) -> None:
        if not self.shardable:
            raise ConfigError(
                f"parameterisation {self.kind!r} stores {self.numel_shared} numbers shared by all classes "
                f"({', '.join(self.shared_state_keys()) or 'shared modules'}), so it cannot be split by class "
                "across processes; run it with one process"
            )

    # -- export ---------------------------------------------------------------------------------
    def export_columns(self) -> list[ExportColumn]:
        raise NotImplementedError

    def export_tables(self) -> dict[str, dict[str, torch.Tensor]]:
        """table -> column -> tensor with one leading row per row of that table (see ExportColumn)."""
        raise NotImplementedError

    def load_export_tables(self, tables: dict[str, dict[str, torch.Tensor]]) -> None:
        """Inverse of ``export_tables``: fill the parameters from exported columns (Hub round trip)."""
        raise NotImplementedError

    def how_to_decode(self) -> str:
        raise NotImplementedError

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v}" for k, v in self.options.items())
        return f"classes={self.num_classes}, per_class={self.per_class}, image_shape={self.image_shape}{opts}"


def check_positive_int(name: str, value: Any) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise BudgetError(f"{name} must be a positive integer, got {value!r}")
    return value
