"""Configs, the condensation loop and the evaluation protocol (the training loop itself is ``hf_lodc.training``).

    config.py      dataclass configs (CondenseConfig composes the objectives' options), checks
    config_sections.py  the flat <-> nested mapping of sectioned run configs (RunConfig, ContinualConfig)
    config_yaml.py the safe YAML reader of config files
    cli.py         argparse options generated from those dataclasses (every recipe)
    eval_protocols.py  the registries of evaluation protocols and backends (below config and evaluate)
    evaluate.py    the evaluation protocol (sequential backend) -> EvalRecord
    vmap_eval.py   the vmap evaluation backend (N networks trained as one)
    identity.py    run identity: what must match to continue a condensation
    checkpoint.py  checkpoint save / read / check / prune / latest / resume command
    resolve.py     a condensation config resolved for a dataset (method defaults, budget, the set built)
    signals.py     SIGINT / SIGTERM turned into a stop at a safe point (checkpoint, save first)
    iteration_watch.py  the loop's iteration timer and non-finite checks (one host sync per read)
    condenser_checkpoints.py  the condenser's run state gathered for a checkpoint and restored on resume
    condenser.py   the condensation loop (set-up, sharding, trackers); hf_lodc.condense (run_condense.py) runs it
    distributed.py class sharding across processes
    coreset.py     random / herding baselines
"""

from .condenser import CondenseResult, Condenser
from .config import CondenseConfig, DataConfig, EvalConfig, RunConfig
from .config_yaml import load_yaml_config
from .evaluate import EvalRecord, evaluate_synthetic
from .identity import check_identity, identity_diff, run_identity
from .signals import Interrupted
from . import vmap_eval as _vmap_eval  # noqa: F401  (registers the "vmap" evaluation backend)

__all__ = [
    "CondenseResult", "Condenser", "Interrupted",
    "CondenseConfig", "DataConfig", "EvalConfig", "RunConfig", "load_yaml_config",
    "EvalRecord", "evaluate_synthetic", "run_identity", "identity_diff", "check_identity",
]
