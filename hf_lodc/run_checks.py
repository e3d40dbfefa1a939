"""A run's options checked before any work: names, the budget, the networks, evaluation settings.

Everything that can fail without the condensation running fails here, in seconds and before an
output directory is made: once without the data (names, the budget's own arguments, options that
need each other), then with the data's image size and class count (the full budget, every network
built once, memory). The checks that need no registry or data are the config classes' own
(``engine/config.py``); the ones here need the registries, the models or the data. Apart from the
orchestrator so that every entry point (``run_experiment``, ``CondensedDataset.evaluate``, the
continual run) calls the same checks.
"""

from __future__ import annotations

from .engine.config import CondenseConfig, EvalConfig, RunConfig
from .engine.evaluate import EVAL_BACKENDS, EVAL_PROTOCOLS
from .engine.resolve import resolve_config
from .errors import ConfigError, UnknownNameError
from .export.views import check_config_name
from .methods import get_method
from .models import create_eval_model
from .preflight import (check_eval_models, check_memory, check_repo_id, check_strategy, check_token,
                        estimate_memory_bytes)
from .synset.budget import check_budget_args
from .synset.init import INITS

__all__ = ["validate", "validate_eval"]


def validate_eval(ec: EvalConfig, image_shape=None, num_classes: int = 2) -> None:
    """Evaluation settings; ``eval_runs`` 0 means no evaluation. With ``image_shape`` every model is
    built and run once at that size (a ViT at 8 px fails here, not after the condensation)."""
    if ec.eval_runs < 0:
        raise ConfigError(f"eval_runs must be >= 0 (0: no evaluation), got {ec.eval_runs}")
    if ec.eval_epochs <= 0:
        raise ConfigError(f"eval_epochs must be positive, got {ec.eval_epochs}")
    if ec.eval_backend != "auto":
        EVAL_BACKENDS.get(ec.eval_backend)
    EVAL_PROTOCOLS.get(ec.eval_protocol)
    check_strategy(ec.eval_dsa_strategy, "eval_dsa_strategy")
    c, h, w = image_shape or (3, 32, 32)
    for m in ec.eval_models:
        create_eval_model(m, num_classes=2, in_chans=c, img_size=(h, w))  # raises UnknownNameError
    if image_shape is not None and ec.eval_runs:
        check_eval_models(ec.eval_models, image_shape, num_classes)


def validate(cfg: RunConfig, image_shape=None, num_classes: int | None = None, num_real: int = 0,
             num_test: int = 0) -> None:
    """Checks before any work. Without ``image_shape`` (data not read yet): names and the budget's
    own arguments; with it: the full budget at that size, and every network built once."""
    if image_shape is None:
        spec = get_method(cfg.condense.method)
        INITS.get(cfg.condense.init or spec.init)
        check_budget_args(cfg.condense.ipc, cfg.condense.rank if spec.lowrank else None, cfg.condense.images_per_class)
        if spec.dsa:
            check_strategy(cfg.condense.dsa_strategy, "dsa_strategy")
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
        return
    spec, resolved, budget = resolve_config(cfg.condense, image_shape, num_classes)  # classes: for shared numbers (HaBa)
    validate_eval(cfg.eval, image_shape, num_classes or 2)
    c, h, w = image_shape
    try:
        create_eval_model(resolved.matching_model, num_classes=2, in_chans=c, img_size=(h, w))
    except UnknownNameError as e:
        raise UnknownNameError(f"matching_model: {e}") from None
    if num_classes:
        check_memory(estimate_memory_bytes(num_classes, budget.images_per_class, image_shape, budget.rank,
                                           num_real, num_test), _memory_what(cfg.condense, num_classes, budget))


def _memory_what(cc: CondenseConfig, num_classes: int, budget) -> str:
    what = f"ipc {cc.ipc}" if cc.images_per_class is None else f"images_per_class {cc.images_per_class}"
    return (f"{what}: {num_classes} x {budget.images_per_class} synthetic images of {tuple(budget.image_shape)}"
            + (f" at rank {budget.rank}" if budget.rank else ""))
