"""A run's options checked before any work: the one validate step every entry point calls.

Everything that can fail without the condensation running fails here, in seconds and before an
output directory is made: once without the data (the budget's own arguments, the evaluation models'
names, options that need each other, the Hub target), then with the data's image size and class
count (the full budget, every network built once, memory). Each option is checked in one place: the
config classes (``engine/config.py``) check each field on its own (type, range, registry name); the
checks that need a method row, a network, the data or the memory are ``engine/validate.py``'s; the
output and Hub checks are here. The engine trusts what passed. Apart from the orchestrator so that
every entry point (``run_experiment``, ``CondensedDataset.evaluate``, the continual run) calls the same
checks.
"""

from __future__ import annotations

from .engine.config import RunConfig
from .engine.validate import validate_condense, validate_eval
from .errors import ConfigError
from .export.views import check_config_name
from .preflight import check_repo_id, check_token

__all__ = ["validate", "validate_eval"]


def validate(cfg: RunConfig, image_shape=None, num_classes: int | None = None, num_real: int = 0,
             num_test: int = 0, *, test_split: bool = True) -> None:
    """Checks before any work. Without ``image_shape`` (data not read yet): the budget's own arguments,
    the evaluation models' names, the output and Hub options; with it: the full budget at that size,
    every network built once, and the models to publish (``test_split``: the data has a test split)."""
    if image_shape is not None:
        validate_condense(cfg.condense, image_shape, num_classes, num_real, num_test)
        validate_eval(cfg.eval, image_shape, num_classes or 2)
        if cfg.hub_push_models:
            _check_push_models(cfg, image_shape, test_split)
        return
    validate_condense(cfg.condense)
    validate_eval(cfg.eval)
    if cfg.resume and not cfg.output_dir:
        raise ConfigError("--resume needs --output-dir (the checkpoint lives in <output-dir>/checkpoints); "
                          "give the output dir of the interrupted run")
    if cfg.condense.checkpoint_every and not cfg.output_dir:
        raise ConfigError(f"--checkpoint-every {cfg.condense.checkpoint_every} needs --output-dir (checkpoints "
                          "go to <output-dir>/checkpoints); set one, or drop --checkpoint-every")
    if cfg.push_to_hub:
        check_repo_id(cfg.push_to_hub)
        if cfg.hub_config_name is not None:
            check_config_name(cfg.hub_config_name)
        check_token(None)


def _check_push_models(cfg: RunConfig, image_shape, test_split: bool) -> None:
    from .export.model_repo import check_publishable_models

    if not (cfg.push_to_hub and cfg.eval.eval_runs and test_split):
        raise ConfigError("push_models: needs push_to_hub, eval_runs > 0 and a test split (the models pushed are "
                          "the networks the evaluation trains); set them or drop --push-models")
    check_publishable_models(cfg.eval.eval_models, image_shape)
