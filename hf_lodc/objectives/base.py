"""What every matching objective gets: the real data of its classes, a network factory, augmentation,
and its own typed options.

Options: each objective class names its options dataclass (``Options``, a subclass of
:class:`ObjectiveOptions`: defaults, range rules, and ``resolve`` against the run's budget). A
``CondenseConfig`` (``engine/config.py``) holds the chosen method's instance (its ``options``
field, recorded nested); the CLI and YAML take the registered objectives' fields as flat names
(``engine/condense_options.py``), and the condenser hands the objective its own resolved options
object in ``MatchContext.options``; nothing outside the objective knows what they mean.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, ContextManager, Mapping

import torch
import torch.nn as nn

from ..data.augment import DSAugment
from ..data.cache import is_mapped
from ..data.types import LabeledImages, normalize
from ..data.sampler import ClassIndex
from ..training.loop import seeded_net
from ..errors import ConfigError
from ..registry import Registry

__all__ = ["RealSampler", "MatchContext", "Objective", "ObjectiveOptions", "OBJECTIVES", "options_for", "option"]

# a range rule: (predicate on a non-None value, what the value must be)
Rule = tuple[Callable[[Any], bool], str]
POSITIVE: Rule = (lambda v: v > 0, "> 0")


def option(default: Any, help: str) -> Any:
    """A field of an options dataclass: its default and the help text the CLI shows."""
    return field(default=default, metadata={"help": help})


@dataclass
class ObjectiveOptions:
    """An objective's options (none by default). Subclasses: dataclasses whose field names are unique
    across objectives (they become flat options: ``--outer-loop``, ``expert_dir:`` in YAML), each
    with a default and, where needed, a rule in ``RULES``."""

    RULES: ClassVar[dict[str, Rule]] = {}
    # options checked against the run when the options are resolved (``resolve``, in the validate
    # step) rather than on their own: option -> what is checked
    CHECKED_ON_RESOLVE: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for name, (ok, what) in self.RULES.items():
            value = getattr(self, name)
            if value is not None and not ok(value):
                raise ConfigError(f"{type(self).__name__}: option {name!r} must be {what}, got {value!r}")

    def resolve(self, budget, iterations: int) -> "ObjectiveOptions":
        """These options with their budget-dependent defaults filled in, checked against the run
        (``budget``: the run's ``Budget``; ``iterations``: how many the run will do). No change by default."""
        return self

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any] | Any) -> "ObjectiveOptions":
        """This objective's fields picked out of a flat mapping or object (e.g. a ``CondenseConfig``)."""
        get = flat.get if isinstance(flat, Mapping) else (lambda k, d: getattr(flat, k, d))
        missing = object()
        kw = {f.name: get(f.name, missing) for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kw.items() if v is not missing})


class RealSampler:
    """Class-balanced real batches of the classes one process owns, normalised, on the device.

    ``classes`` are global class ids; batches are class-major in that order, so local class k of a
    batch is global class ``classes[k]``.
    """

    def __init__(self, train: LabeledImages, classes: torch.Tensor, mean, std, device: torch.device,
                 num_classes: int, class_names: list[str] | None = None):
        self.classes = classes.long().cpu()
        keep = torch.isin(train.labels, self.classes)
        local = torch.full((num_classes,), -1, dtype=torch.long)
        local[self.classes] = torch.arange(len(self.classes))
        self.local_labels = local[train.labels[keep]]  # (N',) in [0, K_local)
        names = [class_names[c] for c in self.classes.tolist()] if class_names else None
        self.index = ClassIndex(self.local_labels, len(self.classes), names)
        self.device = torch.device(device)
        self.mapped = is_mapped(train.images)
        if self.mapped:
            # a decoded-cache memory map (possibly larger than memory): it stays a map on the host and
            # every batch is gathered from it, then moved; ``rows`` maps local rows to the map's rows
            self.rows = None if bool(keep.all()) else torch.nonzero(keep).flatten()  # (N',) int64
            self.images = train.images  # (N, C, H, W) uint8, file-backed
        else:
            # stored once on the device as uint8 (a quarter of float32): batches are gathered, normalised
            # (and augmented) there, so no image crosses the host-device link after this
            self.images = train.images[keep].to(self.device)  # (N', C, H, W) uint8, only the owned classes
        self.mean, self.std = mean.to(self.device), std.to(self.device)

    def indices(self, per_class: int, generator: torch.Generator, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Rows of a class-balanced batch, class-major: (K * per_class,) on the device (on the host for a
        mapped set, where they are gathered). ``classes``: local class positions to draw from (default all)."""
        idx = self.index.sample(per_class, generator, classes)
        return idx if self.mapped else idx.to(self.device)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """The normalised float32 images of rows ``idx``: (len(idx), C, H, W) on the device."""
        if self.mapped:
            rows = idx.cpu() if self.rows is None else self.rows[idx.cpu()]
            return normalize(self.images[rows].to(self.device, non_blocking=True), self.mean, self.std)
        return normalize(self.images[idx], self.mean, self.std)

    def sample(self, per_class: int, generator: torch.Generator) -> torch.Tensor:
        return self.take(self.indices(per_class, generator))  # (K*b, C, H, W)


@dataclass
class MatchContext:
    """Everything an objective needs, decided once by the engine."""

    num_classes: int  # all classes of the dataset (the network head size)
    classes: torch.Tensor  # (K,) global ids of the classes this process condenses
    image_shape: tuple[int, int, int]
    model: str  # timm name of the matching network
    augment: DSAugment
    sampler: RealSampler
    batch_real: int
    seed: int
    device: torch.device
    autocast: Callable[[], ContextManager] = field(default=contextlib.nullcontext)
    options: ObjectiveOptions | None = None  # the objective's own, resolved (None: its defaults)

    def make_net(self, *purpose) -> nn.Module:
        """A freshly initialised matching network; its init depends only on (seed, purpose)."""
        return seeded_net(self.model, self.num_classes, self.image_shape, self.seed, "net", *purpose,
                          device=self.device)


class Objective:
    """One condensation iteration: ``step`` updates the synthetic set and returns metrics.

    ``Options`` is the objective's options dataclass; ``self.options`` the instance it runs with.
    """

    Options: ClassVar[type[ObjectiveOptions]] = ObjectiveOptions

    def __init__(self, ctx: MatchContext):
        self.ctx = ctx
        opts = ctx.options if ctx.options is not None else self.Options()
        if not isinstance(opts, self.Options):
            raise ConfigError(f"{type(self).__name__} takes {self.Options.__name__}, got {type(opts).__name__}")
        self.options = opts

    def step(self, iteration: int, synset: nn.Module, optimizer: torch.optim.Optimizer,
             generator: torch.Generator) -> dict[str, float]:
        raise NotImplementedError

    def backward(self, loss: torch.Tensor) -> None:
        """Hook for Accelerate (``accelerator.backward``); plain autograd by default."""
        loss.backward()

    def state_dict(self) -> dict:
        """What a checkpoint must keep besides the synthetic set (e.g. a learned lr); none by default."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")


OBJECTIVES: Registry[type[Objective]] = Registry("objective")


def options_for(objective: str, flat: Mapping[str, Any] | Any) -> ObjectiveOptions:
    """The options object of ``objective`` from a flat mapping/config (unresolved)."""
    return OBJECTIVES.get(objective).Options.from_flat(flat)

