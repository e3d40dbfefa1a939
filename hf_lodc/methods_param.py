"""Method rows of the parameterisation methods: IDC, IDC-I, LoIDC, HaBa, LoHaBa.

Registered in the one ``METHODS`` registry by the import at the end of ``methods.py``. ``ParamMethodSpec`` adds what the rows need beyond ``MethodSpec``:

* ``param_options``: constructor options of the parameterisation (IDC ``factor``, HaBa
  ``hallucinators``/``affine``), passed to ``plan_budget(..., parameterisation=, num_classes=, **options)``
  and to the class;
* ``needs_rank``: the row is a low-rank composition (LoIDC, LoHaBa) and takes the config's rank;
* ``objective_options``: the paper's defaults for the objective's typed options, applied by
  ``engine/condenser.py: method_config`` to options the config leaves at their generic default.

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

from .methods import METHODS, MethodSpec

__all__ = ["ParamMethodSpec", "PARAM_METHODS"]


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
    if _spec.name not in METHODS:
        METHODS.add(_spec.name, _spec)
