"""DD-Ranking's two scores of a condensed set (``ddranking`` 0.2.0, ``metrics/soft_label.py`` and
``metrics/aug_robust.py``), as pure functions of accuracies given as fractions in [0, 1].

* Label-Robust Score: HLR = Acc(real, hard) - Acc(syn, hard) (how far the set's images alone are from
  the full real data), IOR = Acc(syn, soft) - Acc(random, soft) (what the images add over random real
  images under the set's own soft-label protocol); alpha = lambda IOR - (1 - lambda) HLR.
* Augmentation-Robust Score: beta = lambda (Acc(syn, aug) - Acc(random, aug)) + (1 - lambda)
  (Acc(syn, no aug) - Acc(random, no aug)).

Both are squashed by ``(e^x - e^-1) / (e - e^-1)``, which maps x in [-1, 1] onto [0, 1]; lambda is 0.5.
"""

from __future__ import annotations

import math

__all__ = ["LAMBDA", "squash", "hard_label_recovery", "improvement_over_random", "label_robust_score",
           "augmentation_robust_score"]

LAMBDA = 0.5


def _fraction(name: str, v: float) -> float:
    from ..errors import ConfigError

    if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ConfigError(f"{name} must be an accuracy as a fraction in [0, 1], got {v!r}")
    return float(v)


def _weight(lam: float) -> float:
    return _fraction("lambda", lam)


def squash(x: float) -> float:
    """(e^x - e^-1) / (e - e^-1): -1 -> 0, 0 -> 0.269, 1 -> 1."""
    return (math.exp(x) - math.exp(-1.0)) / (math.e - math.exp(-1.0))


def hard_label_recovery(acc_real_hard: float, acc_syn_hard: float) -> float:
    """HLR = Acc(real, hard) - Acc(syn, hard)."""
    return _fraction("acc_real_hard", acc_real_hard) - _fraction("acc_syn_hard", acc_syn_hard)


def improvement_over_random(acc_syn_soft: float, acc_random_soft: float) -> float:
    """IOR = Acc(syn, soft) - Acc(random, soft)."""
    return _fraction("acc_syn_soft", acc_syn_soft) - _fraction("acc_random_soft", acc_random_soft)


def label_robust_score(acc_real_hard: float, acc_syn_hard: float, acc_syn_soft: float, acc_random_soft: float,
                       lam: float = LAMBDA) -> dict[str, float]:
    """{"hlr", "ior", "alpha", "lrs"}."""
    lam = _weight(lam)
    hlr = hard_label_recovery(acc_real_hard, acc_syn_hard)
    ior = improvement_over_random(acc_syn_soft, acc_random_soft)
    alpha = lam * ior - (1.0 - lam) * hlr
    return {"hlr": hlr, "ior": ior, "alpha": alpha, "lrs": squash(alpha)}


def augmentation_robust_score(acc_syn_aug: float, acc_random_aug: float, acc_syn_noaug: float,
                              acc_random_noaug: float, lam: float = LAMBDA) -> dict[str, float]:
    """{"beta", "ars"}."""
    lam = _weight(lam)
    beta = (lam * (_fraction("acc_syn_aug", acc_syn_aug) - _fraction("acc_random_aug", acc_random_aug))
            + (1.0 - lam) * (_fraction("acc_syn_noaug", acc_syn_noaug)
                             - _fraction("acc_random_noaug", acc_random_noaug)))
    return {"beta": beta, "ars": squash(beta)}
