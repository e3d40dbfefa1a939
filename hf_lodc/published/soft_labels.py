"""Soft labels stored beside a condensed set, and the losses that train on them.

DATM saves learned logits (``labels_best.pt``, (N, K) float) beside its images; other methods store
probabilities. Both are kept as they are stored (their bytes count in the set's storage) and read
as a target distribution at temperature T: ``softmax(logits / T)``, or for probabilities
``softmax(log(p) / T)`` (= p at T = 1). The losses are the two DD-Ranking evaluates with:

* ``sce``: soft cross-entropy ``-sum_k q_k log softmax(z / T)_k``, averaged over the batch;
* ``kl``: ``T^2 * KL(q || softmax(z / T))``, averaged over the batch (Hinton et al.'s scaling, so the
  gradient's size does not depend on T).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import Registry

__all__ = ["SoftLabels", "SOFT_LOSSES", "soft_criterion", "as_soft_labels"]

SoftLoss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (logits, log q at T, T) -> loss
SOFT_LOSSES: Registry[SoftLoss] = Registry("soft-label loss")


@SOFT_LOSSES.register("sce")
def _sce(logits: torch.Tensor, log_q: torch.Tensor, t: float) -> torch.Tensor:
    return -(log_q.exp() * F.log_softmax(logits / t, dim=1)).sum(1).mean()


@SOFT_LOSSES.register("kl")
def _kl(logits: torch.Tensor, log_q: torch.Tensor, t: float) -> torch.Tensor:
    return F.kl_div(F.log_softmax(logits / t, dim=1), log_q, reduction="batchmean", log_target=True) * t * t


@dataclass
class SoftLabels:
    values: torch.Tensor  # (N, K) as stored
    kind: str  # "logits" | "probabilities"

    @property
    def nbytes(self) -> int:
        return int(self.values.numel()) * self.values.element_size()

    def log_targets(self, temperature: float) -> torch.Tensor:
        """(N, K) log of the target distribution at ``temperature``."""
        v = self.values.detach().float()
        z = v if self.kind == "logits" else v.clamp_min(1e-12).log()
        return F.log_softmax(z / temperature, dim=1)


def as_soft_labels(y: torch.Tensor) -> SoftLabels:
    """(N, K) float labels that are not one-hot: probabilities when rows are non-negative and sum to 1."""
    yf = y.detach().float()
    probs = bool((yf >= 0).all()) and bool(torch.allclose(yf.sum(1), torch.ones(len(yf)), atol=1e-3))
    return SoftLabels(values=y.detach(), kind="probabilities" if probs else "logits")


def soft_criterion(loss: str, temperature: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``criterion(logits (b, K), log targets (b, K))`` for ``train_network``: the targets handed to training
    are ``SoftLabels.log_targets(temperature)``, so the batch loss only applies the loss."""
    from ..errors import ConfigError

    fn = SOFT_LOSSES.get(loss)
    if not temperature > 0:
        raise ConfigError(f"the soft-label temperature must be positive, got {temperature}")
    return lambda logits, log_q: fn(logits, log_q, float(temperature))
