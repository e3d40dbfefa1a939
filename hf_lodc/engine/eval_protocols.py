"""Evaluation protocols and backends, looked up by name.

Below both ``config.py`` (which checks ``eval_protocol`` / ``eval_backend`` against these registries) and
``evaluate.py`` (which runs them). The backends are registered by the modules that implement them
(``evaluate.py``: "sequential", ``vmap_eval.py``: "vmap"), both imported by ``hf_lodc.engine``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry

__all__ = ["EVAL_BACKENDS", "EVAL_PROTOCOLS", "EvalProtocol"]

EVAL_BACKENDS: Registry = Registry("evaluation backend")


@dataclass(frozen=True)
class EvalProtocol:
    """What a paper's evaluation fixes beyond ``EvalConfig``'s lr, momentum, weight decay, epochs and
    DSA strategy (those stay the config's)."""

    description: str  # who evaluates this way (card and results)
    lr_schedule: str  # a name in training.loop.LR_SCHEDULES
    batch: int | None = None  # None: the config's eval_batch
    cutmix_p: float = 0.0
    drop_families: tuple[str, ...] = ()  # DSA families the protocol leaves out of the config's strategy


EVAL_PROTOCOLS: Registry[EvalProtocol] = Registry("evaluation protocol")
EVAL_PROTOCOLS.add("dc", EvalProtocol("DC/DSA/DM literature", "step_half"))
EVAL_PROTOCOLS.add("idc", EvalProtocol("IDC's own evaluation (Kim et al., ICML 2022)", "idc_multistep", batch=64,
                                       cutmix_p=0.5, drop_families=("cutout",)))
