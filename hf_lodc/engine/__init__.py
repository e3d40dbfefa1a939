"""Configs, the condensation loop and the evaluation protocol (the training loop itself is ``hf_lodc.training``).

    config.py      dataclass configs (CondenseConfig composes the objectives' options), YAML, checks
    cli.py         argparse options generated from those dataclasses (every recipe)
    eval_protocols.py  the registries of evaluation protocols and backends (below config and evaluate)
    evaluate.py    the evaluation protocol (sequential backend) -> EvalRecord
    vmap_eval.py   the vmap evaluation backend (N networks trained as one)
    identity.py    run identity: what must match to continue a condensation
    checkpoint.py  checkpoint save / read / check / prune / latest / resume command
    condenser.py   the condensation loop (set-up, sharding, signals, trackers)
    distributed.py class sharding across processes
    coreset.py     random / herding baselines
"""

from .condenser import CondenseResult, Condenser, Interrupted, condense
from .config import CondenseConfig, DataConfig, EvalConfig, RunConfig, load_yaml_config
from .evaluate import EvalRecord, evaluate_synthetic
from .identity import check_identity, identity_diff, run_identity
from . import vmap_eval as _vmap_eval  # noqa: F401  (registers the "vmap" evaluation backend)

__all__ = [
    "CondenseResult", "Condenser", "Interrupted", "condense",
    "CondenseConfig", "DataConfig", "EvalConfig", "RunConfig", "load_yaml_config",
    "EvalRecord", "evaluate_synthetic", "run_identity", "identity_diff", "check_identity",
]
