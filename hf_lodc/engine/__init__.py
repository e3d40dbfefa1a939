"""Configs, the condensation loop and the evaluation protocol."""

from .condenser import CondenseResult, Condenser, Interrupted, condense
from .config import CondenseConfig, DataConfig, EvalConfig, RunConfig, load_yaml_config
from .evaluate import EvalRecord, evaluate_synthetic
from . import vmap_eval as _vmap_eval  # noqa: F401  (registers the "vmap" evaluation backend)

__all__ = [
    "CondenseResult", "Condenser", "Interrupted", "condense",
    "CondenseConfig", "DataConfig", "EvalConfig", "RunConfig", "load_yaml_config",
    "EvalRecord", "evaluate_synthetic",
]
