"""Configs, the condensation loop and the evaluation protocol."""

from .condenser import CondenseResult, Condenser, Interrupted, condense
from .config import CondenseConfig, DataConfig, EvalConfig, RunConfig, load_yaml_config
from .evaluate import EvalRecord, evaluate_synthetic

__all__ = [
    "CondenseResult", "Condenser", "Interrupted", "condense",
    "CondenseConfig", "DataConfig", "EvalConfig", "RunConfig", "load_yaml_config",
    "EvalRecord", "evaluate_synthetic",
]
