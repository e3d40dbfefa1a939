"""Per-channel normalisation presets of the field's code bases, and the input space a set is evaluated in.

The DC/DSA/DM, MTT and IDC code bases normalise pixels with fixed constants written in their data
loaders, not with statistics measured on the train split. A set saved by one of them holds
``(pixel - mean) / std`` with those constants, and its authors trained and tested in that space: the
faithful evaluation tests on real images normalised with the same constants. The constants below
are the ones in those loaders (VICO-UoE/DatasetCondensation ``utils.get_dataset``,
GeorgeCazenavette/mtt-distillation ``utils.get_dataset``, snu-mllab/Efficient-Dataset-Condensation
``data.MEANS``/``STDS``). Two differ from what a reader might expect: MTT and IDC normalise CIFAR-100
with CIFAR-10's constants, DC with CIFAR-100's own.

An :class:`InputSpace` is what the evaluation networks see: how real uint8 images map into it (test
split, random baseline) and what it is called in records and reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..data.types import normalize
from ..registry import Registry

__all__ = ["NormalizationPreset", "NORMALIZATION_PRESETS", "InputSpace", "mean_std_space", "preset_space"]


@dataclass(frozen=True)
class NormalizationPreset:
    mean: tuple[float, ...]  # per channel, on the 0..1 pixel scale
    std: tuple[float, ...]
    code_base: str  # where the constants are written, for the report

    @property
    def channels(self) -> int:
        return len(self.mean)


NORMALIZATION_PRESETS: Registry[NormalizationPreset] = Registry("normalisation preset")

_CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
_CIFAR100 = ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_DC = "VICO-UoE/DatasetCondensation utils.get_dataset (DC, DSA, DM)"
_MTT = "GeorgeCazenavette/mtt-distillation utils.get_dataset (MTT without --zca)"
_IDC = "snu-mllab/Efficient-Dataset-Condensation data.MEANS/STDS (IDC)"

NORMALIZATION_PRESETS.add("dc-cifar10", NormalizationPreset(*_CIFAR10, _DC))
NORMALIZATION_PRESETS.add("dc-cifar100", NormalizationPreset(*_CIFAR100, _DC))
NORMALIZATION_PRESETS.add("mtt-cifar10", NormalizationPreset(*_CIFAR10, _MTT))
NORMALIZATION_PRESETS.add("mtt-cifar100", NormalizationPreset(*_CIFAR10, _MTT))  # MTT reuses CIFAR-10's constants
NORMALIZATION_PRESETS.add("idc-cifar10", NormalizationPreset(*_CIFAR10, _IDC))
NORMALIZATION_PRESETS.add("idc-cifar100", NormalizationPreset(*_CIFAR10, _IDC))  # so does IDC
NORMALIZATION_PRESETS.add("mnist", NormalizationPreset((0.1307,), (0.3081,), _DC + "; IDC the same"))
NORMALIZATION_PRESETS.add("fashion-mnist", NormalizationPreset((0.2861,), (0.3530,), _DC + "; IDC the same"))
NORMALIZATION_PRESETS.add("svhn", NormalizationPreset((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                                                      _DC + "; IDC the same"))
NORMALIZATION_PRESETS.add("imagenet", NormalizationPreset(*_IMAGENET, "torchvision's ImageNet constants, used by DC "
                                                          "(TinyImageNet), MTT (Tiny, ImageNet subsets) and IDC"))


@dataclass
class InputSpace:
    """What the evaluation networks are trained and tested on.

    ``real(u8 (n, C, H, W)) -> float32 (n, C, H, W)`` maps real images into the space (the test split,
    batch by batch, and the random real baseline); ``describe`` names it in records and reports.
    ``mean``/``std`` are set when the space is a per-channel normalisation (the evaluation engine can
    then test in it directly).
    """

    name: str  # "source" | a preset name | "zca"
    describe: dict
    real: Callable[[torch.Tensor], torch.Tensor]
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


def mean_std_space(name: str, mean: torch.Tensor, std: torch.Tensor, describe: dict) -> InputSpace:
    m, s = mean.detach().float().clone(), std.detach().float().clone()
    return InputSpace(name=name, describe=describe, real=lambda u8: normalize(u8, m, s), mean=m, std=s)


def preset_space(name: str, channels: int) -> InputSpace:
    """The space of a set normalised with preset ``name``'s constants (must have ``channels`` channels)."""
    from ..errors import ConfigError

    p = NORMALIZATION_PRESETS.get(name)
    if p.channels != channels:
        raise ConfigError(f"normalisation preset {name!r} has {p.channels} channel(s) but the test dataset's images "
                          f"have {channels}; choose a preset of the set's dataset ({', '.join(NORMALIZATION_PRESETS)})")
    return mean_std_space(name, torch.tensor(p.mean), torch.tensor(p.std),
                          {"kind": "preset", "name": name, "mean": list(p.mean), "std": list(p.std),
                           "from": p.code_base})
