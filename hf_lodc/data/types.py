"""The tensor types every stage shares: labelled uint8 images, where they came from, normalisation.

These sit at the bottom of the package: the Hub/local loader (``hub.py``) produces them and
everything downstream (sampler, synthetic sets, objectives, evaluation, export) consumes them
without importing the loader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = ["LabeledImages", "SourceInfo", "ImageClassificationData", "normalize", "denormalize_to_uint8"]


@dataclass
class LabeledImages:
    """Images as one uint8 tensor plus integer labels (class-contiguous order is NOT assumed)."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return int(self.labels.numel())

    def normalized(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """Float images normalised with per-channel ``mean``/``std`` (given on the 0..1 scale)."""
        return normalize(self.images, mean, std)

    def subset(self, index: torch.Tensor) -> "LabeledImages":
        return LabeledImages(self.images[index], self.labels[index])


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 -> float32 normalised with per-channel mean/std on the 0..1 scale."""
    x = images_u8.to(torch.float32, copy=True).div_(255.0)  # (N, C, H, W), never the caller's tensor
    # in place: one float copy at a time (16 000 images at 64 px are 786 MB each), the same bits as x - m / s
    return x.sub_(mean.view(1, -1, 1, 1).to(x)).div_(std.view(1, -1, 1, 1).to(x))


def denormalize_to_uint8(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`, clamped and rounded to uint8."""
    y = x.detach().float() * std.view(1, -1, 1, 1).to(x.device) + mean.view(1, -1, 1, 1).to(x.device)
    return (y.clamp(0, 1) * 255.0).round().to(torch.uint8)


@dataclass
class SourceInfo:
    """Everything needed to say where the data came from and how it was read (saved in artefacts)."""

    dataset: str  # what the user passed (Hub id or path)
    resolved_path: str | None  # local directory actually read, None when loaded from the Hub
    hub_id: str | None  # Hub id, when known
    config_name: str | None
    revision: str | None
    revision_sha: str | None
    train_split: str
    eval_split: str | None
    image_column: str
    label_column: str
    class_names: list[str]
    image_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]
    std: list[float]
    num_train: int
    num_eval: int
    license: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceInfo":
        d = dict(d)
        d["image_shape"] = tuple(d["image_shape"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class ImageClassificationData:
    train: LabeledImages
    test: LabeledImages | None
    info: SourceInfo

    @property
    def mean(self) -> torch.Tensor:
        return torch.tensor(self.info.mean)

    @property
    def std(self) -> torch.Tensor:
        return torch.tensor(self.info.std)

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.info.image_shape
