"""Condensation methods = objective x parameterisation x augmentation, looked up by name in ``METHODS``.

The low-rank methods are the full-rank ones with one class swapped (``PixelSet`` -> ``LowRankSet``),
which is the whole point of the plug-in.

The parameterisation methods (IDC, IDC-I, LoIDC, HaBa, LoHaBa) are rows of the same table;
``ParamMethodSpec`` adds what they need beyond ``MethodSpec``:

* ``param_options``: constructor options of the parameterisation (IDC ``factor``, HaBa
  ``hallucinators``/``affine``), passed to ``plan_budget(..., parameterisation=, num_classes=, **options)``
  and to the class;
* ``needs_rank``: the row is a low-rank composition (LoIDC, LoHaBa) and takes the config's rank;
* ``objective_options``: the paper's defaults for the objective's typed options, applied by
  ``engine/resolve.py: method_config`` to options the config leaves at their generic default.

Settings: IDC's ``misc/reproduce.py`` for CIFAR (ConvNet-3, 2000 outer iterations of 100 matching
rounds, metric mse, n_data 2000, image lr 5e-3 x ipc/10 in [0, 1] pixel space, momentum 0.5, DSA
"color_crop_cutout" while matching); HaBa's ``run_cifar10_ipc1_style5.sh`` (5 hallucinators, 50
student steps, 2 expert epochs, max start epoch 2, image lr 100, lr_lr 1e-7, teacher lr 0.01,
hallucinator lr 100, both with momentum 0.95; adversarial contrastive weights club 0.1, cls 1, likelihood
0.1, contrast 0.1; ZCA there, none here). Objective "haba" (objectives/haba.py) also needs expert_dir. Iteration counts are the papers'; CPU configs shorten them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .registry import Registry

__all__ = ["MethodSpec", "ParamMethodSpec", "METHODS", "PARAM_METHODS", "get_method"]


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


@dataclass(frozen=True)
class ParamMethodSpec(MethodSpec):
    param_options: dict[str, Any] = field(default_factory=dict)
    needs_rank: bool = False
    objective_options: dict[str, Any] = field(default_factory=dict)

    @property
    def lowrank(self) -> bool:  # "takes a rank", as resolve_config reads it
        return self.needs_rank


_IDC = {"match_steps": 100, "metric": "mse", "n_data": 2000, "net_update": True}
_HABA_TM = {"syn_steps": 50, "expert_epochs": 2, "max_start_epoch": 2, "lr_lr": 1e-7, "lr_teacher": 0.01,
            "lambda_club": 0.1, "lambda_cls": 1.0, "lambda_likeli": 0.1, "lambda_contrast": 0.1,
            # deviation: their hallucinator lr (100, = the image lr) makes ours diverge: they have no
            # normalisation layers, so nothing bounds the weights' growth and the decoded images blow up
            # within a few iterations; 1.0 keeps them stable and is untuned
            "lr_hallucinator": 1.0}

PARAM_METHODS = [
    ParamMethodSpec("idc", "matching", "multiformation", "idc", dsa=True, lr=5e-4, iterations=2000, init="real",
                    param_options={"factor": 2}, objective_options=dict(_IDC),
                    description="IDC: multi-formation (factor 2) + gradient matching, network trained on real data "
                                "(Kim et al. 2022)"),
    ParamMethodSpec("idc-i", "matching", "pixel", "idc", dsa=True, lr=5e-4, iterations=2000, init="real",
                    objective_options=dict(_IDC),
                    description="IDC-I: IDC's matching without multi-formation (factor 1; Kim et al. 2022)"),
    ParamMethodSpec("loidc", "matching", "multiformation", "idc", dsa=True, lr=5e-4, iterations=2000, init="svd",
                    param_options={"factor": 2}, needs_rank=True, objective_options=dict(_IDC),
                    description="LoIDC: IDC multi-formation of rank-r factor images (Yang et al. 2023, Table 4)"),
    ParamMethodSpec("haba", "matching", "haba", "haba", dsa=True, lr=100.0, iterations=5000, init="real",
                    param_options={"hallucinators": 5, "affine": "channel"}, objective_options=dict(_HABA_TM),
                    description="HaBa: bases x 5 shared hallucinators, trajectory matching + adversarial contrastive constraints (Liu et al. 2022; needs "
                                "expert_dir)"),
    ParamMethodSpec("lohaba", "matching", "haba", "haba", dsa=True, lr=100.0, iterations=5000, init="svd",
                    param_options={"hallucinators": 5, "affine": "channel"}, needs_rank=True,
                    objective_options=dict(_HABA_TM),
                    description="LoHaBa: rank-r factor bases x 5 shared hallucinators, trajectory matching "
                                "(Yang et al. 2023, Table 4; needs expert_dir)"),
]

for _spec in PARAM_METHODS:
    _add(_spec)


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name)
