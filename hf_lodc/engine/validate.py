"""The checks of a run's options that need a registry's method row, a network, the image shape or the memory.

An option is checked in one place. The config classes (``config.py``) check each field on its own:
its type, its range (``_RULES``) and, for a name, the registry it names (``_NAME_CHECKS``). What
needs more than the one field is checked here, once per run and before any data-heavy work:
the budget (ipc, rank and images_per_class together, then at the image size), the networks (each
evaluation model built once at the image size, the matching network), the memory the set will
take, and the options that only some evaluation backends run. ``run_checks.validate`` adds the
output and Hub checks and is what every entry point calls; the engine's own public entries
(``hf_lodc.condense``, ``hf_lodc.evaluate_synthetic``) call these functions themselves, since they
can be reached without it. Past them the engine trusts its inputs.

``VALIDATED`` names every option whose value is checked here or in ``run_checks``, ``RELATIONS`` the
checks of options that need each other (tests/test_validation_once.py holds them against the config's
own checks: each option's value has one owner).
"""

from __future__ import annotations

from ..errors import ConfigError, UnknownNameError
from ..methods import get_method
from ..synset.budget import Budget, check_budget_args
from .config import CondenseConfig, EvalConfig

__all__ = ["VALIDATED", "LOADER_CHECKED", "RELATIONS", "validated_options", "validate_condense", "validate_condense_data", "validate_eval", "sequential_only", "memory_what"]

# option -> what the validate step checks of its value (the config classes check every option's type;
# an objective's options checked on resolve are added by ``validated_options``)
VALIDATED: dict[str, str] = {
    "ipc": "the pixel budget: positive, then what it buys at the image size and in memory (synset/budget.py)",
    "rank": "positive, then what it buys at the image size and in memory",
    "images_per_class": "positive, within the ipc budget at the image size, and in memory",
    "matching_model": "a model that builds at the image size",
    "eval_models": "a non-empty list of models, each built and run once at the image size",
    "output_dir": "not empty, not a file, writable, not in use (run_experiment, with preflight's checks)",
    "push_to_hub": "a valid Hub repo id, and a token to push with (run_checks)",
    "hub_config_name": "a valid repo config name (run_checks)",
}

# options that name something inside the dataset: the loader checks them when it reads the header
# (data/hub.py), the first read of the data, before any image is decoded
LOADER_CHECKED: dict[str, str] = {
    "config_name": "a config of the source", "revision": "a revision of the source",
    "train_split": "a split of the source", "eval_split": "a split of the source, not the train split",
    "image_column": "an image column", "label_column": "a label column",
}

# checks of options that need each other: (options, what); each in one place, named in its message
RELATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("method", "rank"), "a low-rank method needs rank (resolve_config)"),
    (("ipc", "images_per_class"), "one of them is given (synset/budget.py)"),
    (("resume", "output_dir"), "resume needs output_dir (run_checks)"),
    (("checkpoint_every", "output_dir"), "checkpoints need output_dir (run_checks)"),
    (("eval_compile", "eval_channels_last", "eval_mixed_precision", "eval_backend"),
     "the sequential-only options need a backend that runs them (validate_eval)"),
    (("hub_push_models", "push_to_hub", "eval_runs"), "pushed models need a push and runs (run_checks)"),
)


def validated_options() -> dict[str, str]:
    """``VALIDATED`` plus every registered objective's options checked on resolve (``CHECKED_ON_RESOLVE``)."""
    from ..objectives import OBJECTIVES

    out = dict(VALIDATED)
    for name in OBJECTIVES.names():
        out.update(OBJECTIVES.get(name).Options.CHECKED_ON_RESOLVE)
    return out


def sequential_only(cfg: EvalConfig) -> list[str]:
    """The options set in ``cfg`` that only the sequential backend runs: torch.compile of one network's
    forward; channels_last weights (vmap stacks them); autocast, which torch does not apply inside
    ``vmap`` (the stacked passes would silently stay float32)."""
    on = {"eval_compile": cfg.eval_compile, "eval_channels_last": cfg.eval_channels_last,
          "eval_mixed_precision": (cfg.eval_mixed_precision or "no") != "no"}
    return [name for name, v in on.items() if v]


def validate_eval(ec: EvalConfig, image_shape=None, num_classes: int = 2) -> None:
    """Evaluation settings; ``eval_runs`` 0 means no evaluation. Without ``image_shape`` each model's
    name is checked by building it at a default size; with it (and runs to make) every model is built
    and run once at that size (a ViT at 8 px fails here, not after the condensation)."""
    from ..models import create_eval_model
    from ..preflight import check_eval_models

    if not ec.eval_models:
        raise ConfigError(f"option 'eval_models' must be a non-empty list of model names, got {ec.eval_models!r}")
    only = sequential_only(ec)
    if only and ec.eval_backend not in ("auto", "sequential"):
        raise ConfigError(f"{', '.join(only)} run(s) through the sequential evaluation backend only; "
                          f"eval_backend={ec.eval_backend!r} cannot (set eval_backend='sequential' or 'auto', or drop "
                          f"{' and '.join(only)})")
    if image_shape is not None and ec.eval_runs:
        check_eval_models(ec.eval_models, image_shape, num_classes)
        return
    c, h, w = image_shape or (3, 32, 32)
    for m in ec.eval_models:
        create_eval_model(m, num_classes=2, in_chans=c, img_size=(h, w))  # raises UnknownNameError


def validate_condense(cc: CondenseConfig, image_shape=None, num_classes: int | None = None, num_real: int = 0,
                      num_test: int = 0) -> None:
    """Without ``image_shape`` (data not read yet): the budget's own arguments. With it: the budget at that
    size (``resolve_config``, which also asks the objective, e.g. for ``expert_dir``), the matching network
    built once, and the memory of the set and of ``num_real`` + ``num_test`` real images held as uint8."""
    from ..models import create_eval_model
    from ..preflight import check_memory, estimate_memory_bytes
    from .resolve import resolve_config

    if image_shape is None:
        spec = get_method(cc.method)
        check_budget_args(cc.ipc, cc.rank if spec.lowrank else None, cc.images_per_class)
        return
    _, resolved, budget = resolve_config(cc, image_shape, num_classes)  # classes: for shared numbers (HaBa)
    c, h, w = image_shape
    try:
        create_eval_model(resolved.matching_model, num_classes=2, in_chans=c, img_size=(h, w))
    except UnknownNameError as e:
        raise UnknownNameError(f"matching_model: {e}") from None
    if num_classes:
        check_memory(estimate_memory_bytes(num_classes, budget.images_per_class, image_shape, budget.rank,
                                           num_real, num_test), memory_what(cc, num_classes, budget))


def validate_condense_data(data, cc: CondenseConfig) -> None:
    """For an entry that condenses data handed in by a caller (``hf_lodc.condense``,
    ``CondensedDataset.condense``): the data argument, then ``validate_condense`` at its size."""
    from ..data.cache import is_mapped
    from ..preflight import check_data

    check_data(data)
    validate_condense(cc, data.image_shape, data.num_classes, 0 if is_mapped(data.train.images) else len(data.train))


def memory_what(cc: CondenseConfig, num_classes: int, budget: Budget) -> str:
    what = f"ipc {cc.ipc}" if cc.images_per_class is None else f"images_per_class {cc.images_per_class}"
    return (f"{what}: {num_classes} x {budget.images_per_class} synthetic images of {tuple(budget.image_shape)}"
            + (f" at rank {budget.rank}" if budget.rank else ""))
