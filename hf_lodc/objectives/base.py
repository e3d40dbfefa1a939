"""What every matching objective gets: the real data of its classes, a network factory, augmentation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch
import torch.nn as nn

from ..data.augment import DSAugment
from ..data.types import LabeledImages, normalize
from ..data.sampler import ClassIndex
from ..models import create_eval_model
from ..registry import Registry
from ..seeding import derive_seed

__all__ = ["RealSampler", "MatchContext", "Objective", "OBJECTIVES"]


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
        # stored once on the device as uint8 (a quarter of float32): batches are gathered, normalised
        # (and augmented) there, so no image crosses the host-device link after this
        self.images = train.images[keep].to(self.device)  # (N', C, H, W) uint8, only the owned classes
        self.mean, self.std = mean.to(self.device), std.to(self.device)

    def indices(self, per_class: int, generator: torch.Generator) -> torch.Tensor:
        """Rows of a class-balanced batch, class-major: (K * per_class,) on the device."""
        return self.index.sample(per_class, generator).to(self.device)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """The normalised float32 images of rows ``idx``: (len(idx), C, H, W) on the device."""
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
    options: dict = field(default_factory=dict)  # objective-specific (outer/inner loops, lr_net, ...)

    def make_net(self, *purpose) -> nn.Module:
        """A freshly initialised matching network; its init depends only on (seed, purpose)."""
        c, h, w = self.image_shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "net", *purpose))
            net = create_eval_model(self.model, num_classes=self.num_classes, in_chans=c, img_size=(h, w))
        return net.to(self.device)


class Objective:
    """One condensation iteration: ``step`` updates the synthetic set and returns metrics."""

    def __init__(self, ctx: MatchContext):
        self.ctx = ctx

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

