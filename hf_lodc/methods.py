"""Condensation methods = objective x parameterisation x augmentation, looked up by name.

The low-rank methods are the full-rank ones with one class swapped (``PixelSet`` -> ``LowRankSet``),
which is the whole point of the plug-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Registry

__all__ = ["MethodSpec", "METHODS", "get_method"]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # "matching" or "coreset"
    parameterisation: str  # "pixel" or "lowrank"
    objective: str | None = None  # OBJECTIVES name for matching methods
    coreset: str | None = None  # CORESETS name for coreset methods
    dsa: bool = False  # DSA augmentation while matching
    lr: float = 1.0  # factor / pixel learning rate (SGD, momentum 0.5)
    iterations: int = 0
    init: str = "real"
    description: str = ""

    @property
    def lowrank(self) -> bool:
        return self.parameterisation == "lowrank"


METHODS: Registry[MethodSpec] = Registry("method")


def _add(spec: MethodSpec) -> None:
    METHODS.add(spec.name, spec)


_add(MethodSpec("lodm", "matching", "lowrank", "dm", dsa=True, lr=1.0, iterations=20000, init="svd",
                description="low-rank distribution matching (Yang et al. 2023)"))
_add(MethodSpec("dm", "matching", "pixel", "dm", dsa=True, lr=1.0, iterations=20000, init="real",
                description="distribution matching (Zhao & Bilen 2023)"))
_add(MethodSpec("lodc", "matching", "lowrank", "gm", dsa=False, lr=0.1, iterations=1000, init="svd",
                description="low-rank gradient matching"))
_add(MethodSpec("dc", "matching", "pixel", "gm", dsa=False, lr=0.1, iterations=1000, init="real",
                description="dataset condensation by gradient matching (Zhao et al. 2021)"))
_add(MethodSpec("lodsa", "matching", "lowrank", "gm", dsa=True, lr=0.1, iterations=1000, init="svd",
                description="low-rank gradient matching with DSA"))
_add(MethodSpec("dsa", "matching", "pixel", "gm", dsa=True, lr=0.1, iterations=1000, init="real",
                description="gradient matching with differentiable siamese augmentation (Zhao & Bilen 2021)"))
_add(MethodSpec("lomtt", "matching", "lowrank", "tm", dsa=True, lr=1000.0, iterations=5000, init="svd",
                description="low-rank trajectory matching (needs expert_dir)"))
_add(MethodSpec("mtt", "matching", "pixel", "tm", dsa=True, lr=1000.0, iterations=5000, init="real",
                description="matching training trajectories (Cazenavette et al. 2022; needs expert_dir)"))
_add(MethodSpec("random", "coreset", "pixel", coreset="random", init="real",
                description="random real images"))
_add(MethodSpec("herding", "coreset", "pixel", coreset="herding", init="real",
                description="herding on a random ConvNet embedding"))
_add(MethodSpec("lorandom", "coreset", "lowrank", coreset="random", init="svd",
                description="rank-r truncated SVD of random real images, no matching (low-rank baseline)"))


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name)


from . import methods_param as _methods_param  # noqa: E402,F401  (registers idc, idc-i, loidc, haba, lohaba)
