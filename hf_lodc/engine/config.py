"""Dataclass configs: what to read, how to condense, how to evaluate. Saved inside every artefact.

Every field name is unique across the three sections, so one flat mapping (the CLI options, or a
YAML file with the same keys) fills all of them; ``RunConfig.to_dict()`` writes them nested.

Objective options (design): each objective owns its options as a dataclass
(``objectives/gm.py: GMOptions``, ``objectives/tm.py: TMOptions``; distribution matching has
none), registered with the objective (``Objective.Options``). ``CondenseConfig`` is composed here:
its engine fields (``_CondenseCore``) plus, flat, the fields of every registered objective's
options, with the objective's defaults, types and range rules. So the flat names users have today
(``hf_lodc.condense(data, method="dc", outer_loop=2)``, ``--outer-loop``, ``expert_dir:`` in YAML)
keep working, an objective registered later gets its options on the CLI and in YAML without an
edit here, and the objective itself is handed its own typed, resolved options object
(``objectives.options_for(name, cfg).resolve(budget, iterations)``). Nothing here knows what an
objective option means.

Every config checks itself when built (from Python, YAML or the CLI): each value against its
field's type, and the range rules of ``_RULES`` (plus the objectives' ``RULES``); options that
name a registry entry (method, init, contrast, DSA strategies, evaluation backend) are checked
against that registry, so a newly registered name is accepted. A wrong value raises
``ConfigError`` naming the option, what it must be and what it got. YAML is read with a safe
loader only (no Python object tags, duplicate keys refused: ``config_yaml.py``), the flat and
nested forms are mapped by ``config_sections.py``, and unknown keys are refused by name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, make_dataclass
from typing import Any, Callable

from ..errors import ConfigError, UnknownNameError
from ..objectives import OBJECTIVES
from .config_sections import Sectioned  # the flat <-> nested mapping, shared with continual.ContinualConfig
from .config_yaml import load_yaml_config  # config files; also importable from here, beside the configs

__all__ = ["DataConfig", "CondenseConfig", "EvalConfig", "RunConfig", "load_yaml_config", "check_option",
           "objective_option_owners", "Sectioned"]


class _Checked:
    """Mixin: type-check and range-check every field after ``__init__``."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = check_option(f.name, getattr(self, f.name), hints[f.name], type(self).__name__)
            object.__setattr__(self, f.name, value)


@dataclass
class DataConfig(_Checked):
    dataset: str = "ylecun/mnist"  # Hub id or local repo folder
    config_name: str | None = None  # source config (subset), e.g. "cifar100"
    revision: str | None = None  # branch / tag / commit of the source repo
    train_split: str = "train"
    eval_split: str | None = "test"  # None: no test split
    image_column: str | None = None  # auto-detected (datasets.Image) when None
    label_column: str | None = None  # auto-detected (ClassLabel) when None
    holdout_fraction: float | None = None  # carve a stratified eval split off train when eval_split is missing
    holdout_seed: int = 0
    image_size: int | None = None  # declared size; dominant size when None
    image_mode: str | None = None  # declared mode (L or RGB); dominant mode when None
    mixed: str = "convert"  # mixed sizes/modes: "convert" (warn) or "error"
    skip_corrupt: bool = False  # drop undecodable rows instead of failing
    drop_empty_classes: bool = False  # drop classes without train images instead of failing
    max_per_class: int | None = None  # cap train images per class (quick experiments)
    # decoded images: "off" in memory, "on" in a memory-mapped file under $HF_LODC_CACHE/decoded (larger
    # than memory), "auto" maps them when they would take over 10 % of the machine's memory
    decoded_cache: str = "auto"


@dataclass
class _CondenseCore(_Checked):
    """The engine's own condensation settings; ``CondenseConfig`` adds the objectives' options."""

    method: str = "lodm"  # see hf_lodc.METHODS
    ipc: int | None = 1  # pixel budget: images per class a pixel method may store
    rank: int | None = 2  # factor rank (low-rank methods only)
    images_per_class: int | None = None  # set the stored count directly (within the ipc budget unless ipc=None)
    init: str | None = None  # noise | real | svd; method default when None (svd for low-rank)
    iterations: int | None = None  # method default when None (20 000 DM, 1 000 gradient matching)
    batch_real: int = 256  # real images per class per matching step (paper: 256)
    lr: float | None = None  # synthetic-set lr; method default (DM 1.0, gradient matching 0.1)
    momentum: float = 0.5  # SGD momentum on the synthetic set (paper)
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"  # used by methods with DSA
    matching_model: str = "auto"  # matching network; auto = ConvNet-3 (ConvNet-4 for >= 64 px)
    seed: int = 0
    log_every: int = 10  # record loss every N iterations
    checkpoint_every: int = 0  # 0 = no periodic checkpoints
    # no | bf16 | fp16 for the network passes (factors stay fp32); None = the launcher's choice
    # (`accelerate launch --mixed_precision bf16`, accelerate config) or, when that is "no", speed's
    mixed_precision: str | None = None
    # float32 matmuls and convolutions through TF32 tensor cores (CUDA only; off: float32 stays float32,
    # which torch's own default does NOT guarantee for cuDNN convolutions); recorded in results.json
    tf32: bool = False
    # the matching network's passes in channels_last memory format (recorded); None: speed decides
    channels_last: bool | None = None
    contrast: str = "class_std"  # finished matching sets: a CONTRASTS name (class_std: real per-class std; none)


def objective_option_owners() -> dict[str, tuple[str, Any, Any]]:
    """Flat objective option name -> (objective, type, dataclass field), over the registered objectives."""
    out: dict[str, tuple[str, Any, Any]] = {}
    core = {f.name for f in fields(_CondenseCore)}
    for name in OBJECTIVES.names():
        opts = OBJECTIVES.get(name).Options
        hints = typing.get_type_hints(opts)
        for f in fields(opts):
            if f.name in out and out[f.name][2] is f:  # inherited (haba's options extend tm's): one flat option,
                if issubclass(OBJECTIVES.get(out[f.name][0]).Options, opts):  # owned by the base objective
                    out[f.name] = (name, hints[f.name], f)
                continue
            if f.name in core or f.name in out:
                other = "the engine" if f.name in core else f"objective {out[f.name][0]!r}"
                raise TypeError(f"objective {name!r} option {f.name!r} clashes with {other}'s; rename it")
            out[f.name] = (name, hints[f.name], f)
    return out


def _compose_condense_config() -> type:
    extra = []
    for n, (_, t, f) in objective_option_owners().items():
        kw = ({"default_factory": f.default_factory} if f.default_factory is not dataclasses.MISSING
              else {"default": f.default})
        extra.append((n, t, field(**kw, metadata=f.metadata)))  # the objective's help text travels along
    cls = make_dataclass("CondenseConfig", extra, bases=(_CondenseCore,))
    cls.__module__ = __name__
    cls.__qualname__ = "CondenseConfig"
    cls.__doc__ = ("How to condense: the engine's settings (method, budget, lr, seed, ...) and, flat, every "
                   "registered objective's options (see the module docstring).")
    return cls


CondenseConfig = _compose_condense_config()


@dataclass
class EvalConfig(_Checked):
    eval_models: list[str] = field(default_factory=lambda: ["convnet"])
    eval_runs: int = 5  # independently initialised models per architecture
    eval_epochs: int = 1000  # literature protocol
    eval_lr: float = 0.01
    eval_momentum: float = 0.9
    eval_weight_decay: float = 5e-4
    eval_batch: int = 256
    eval_dsa: bool = True  # DSA on every training batch (protocol)
    eval_dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    eval_seed: int | None = None  # condense seed when None
    eval_backend: str = "auto"  # auto | sequential | vmap (train the runs together)
    eval_protocol: str = "dc"  # dc (DC/DSA/DM literature) | idc (IDC's own: batch 64, multistep lr, CutMix)
    # The three speed options of evaluation; None: ``speed`` decides (engine/speed.py), which is float32
    # eager unless the run is large enough and the hardware has the units. Each is recorded in every
    # accuracy's protocol when on.
    # torch.compile the evaluation network's forward (training and test pass; sequential backend only):
    # less CPU per epoch after a one-off compile, not bit-identical to eager
    eval_compile: bool | None = None
    # the evaluation networks' passes (training and test) under autocast: "no" (float32, the literature's
    # protocol) or "bf16" (weights, gradients and SGD stay float32); pays on bf16 matrix units (AMX, CUDA)
    eval_mixed_precision: str | None = None
    # evaluation networks (and their inputs) in channels_last memory format (sequential backend only):
    # with bf16 on AMX oneDNN's fast convolutions want it
    eval_channels_last: bool | None = None
    # accuracy against iterations: the set as it was after each of these iterations, evaluated with a
    # short protocol (eval_at_runs x eval_at_epochs, the first eval model) after the condensation;
    # recorded in results.json ("curve") and drawn to curve.png in the output folder
    eval_at: list[int] | None = None
    eval_at_runs: int = 2
    eval_at_epochs: int = 300


@dataclass
class RunConfig(Sectioned, _Checked):
    data: DataConfig = field(default_factory=DataConfig)
    condense: CondenseConfig = field(default_factory=CondenseConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str | None = None
    push_to_hub: str | None = None  # repo id to publish to at the end
    hub_private: bool = False
    hub_config_name: str | None = None  # repo config suffix; default "<method>-ipc<k>-r<r>"
    hub_test_split: bool = True  # publish the real test split as the repo's validation / test splits
    hub_push_models: bool = False  # also push one trained network per eval model as a model repo
    resume: bool = False
    # auto: the fastest path this hardware runs correctly for the options left unset (bf16 on matrix
    # units, channels_last, torch.compile when the run repays it); exact: the literature's float32 eager
    # path, bit for bit (engine/speed.py)
    speed: str | None = field(default=None, metadata={"help": (
        "auto (default; $HF_LODC_SPEED changes the default): for the speed options left unset, the fastest "
        "path this hardware runs correctly (bf16 + channels_last on bf16 matrix units, torch.compile when the "
        "run repays it), logged and recorded in results.json; exact: the literature's float32 eager path, "
        "bit for bit")})

    @classmethod
    def option_owners(cls) -> dict[str, tuple[str, Any]]:
        return _field_owners()

    @classmethod
    def from_flat(cls, flat: dict[str, Any], source: str = "config") -> "RunConfig":
        owners = _field_owners()
        unknown = sorted(str(k) for k in flat if k not in owners)
        if unknown:
            raise ConfigError(
                f"{source}: unknown option(s) {unknown}; valid options: {', '.join(sorted(owners))}"
            )
        parts: dict[str, dict[str, Any]] = {s: {} for s in cls.SECTIONS}
        top: dict[str, Any] = {}
        for k, v in flat.items():
            owner, ftype = owners[k]
            v = check_option(k, v, ftype, source)
            (parts[owner] if owner in parts else top)[k] = v
        return cls(
            data=DataConfig(**parts["data"]),
            condense=CondenseConfig(**parts["condense"]),
            eval=EvalConfig(**parts["eval"]),
            **top,
        )


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field_owners() -> dict[str, tuple[str, Any]]:
    owners: dict[str, tuple[str, Any]] = {}
    for section, cls_ in (("data", DataConfig), ("condense", CondenseConfig), ("eval", EvalConfig)):
        for f in fields(cls_):
            owners[f.name] = (section, _hints(cls_)[f.name])
    for f in fields(RunConfig):
        if f.name not in RunConfig.SECTIONS:
            owners[f.name] = ("top", _hints(RunConfig)[f.name])
    return owners


# ---------------------------------------------------------------------------------------------
# value checks


def _one_of(*choices: Any) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), "one of " + ", ".join(map(repr, choices))


_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_MOMENTUM = (lambda v: 0 <= v < 1, "in [0, 1)")

# option -> (predicate on a non-None value, what it must be); types are checked separately
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": (lambda v: bool(v.strip()), "a non-empty Hub id or path"),
    "holdout_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "image_size": _POSITIVE,
    "image_mode": _one_of("L", "RGB"),
    "mixed": _one_of("convert", "error"),
    "max_per_class": _POSITIVE,
    "decoded_cache": _one_of("auto", "on", "off"),
    "iterations": _NON_NEGATIVE,
    "batch_real": _POSITIVE,
    "lr": _POSITIVE,
    "momentum": _MOMENTUM,
    "log_every": _POSITIVE,
    "checkpoint_every": _NON_NEGATIVE,
    "mixed_precision": _one_of("no", "bf16", "fp16"),
    "eval_runs": _NON_NEGATIVE,
    "eval_epochs": _POSITIVE,
    "eval_lr": _POSITIVE,
    "eval_momentum": _MOMENTUM,
    "eval_weight_decay": _NON_NEGATIVE,
    "eval_batch": _POSITIVE,
    "eval_mixed_precision": _one_of("no", "bf16"),
    "speed": _one_of("auto", "exact"),
    "eval_at": (lambda v: all(i > 0 for i in v), "a list of iterations > 0"),
    "eval_at_runs": _POSITIVE,
    "eval_at_epochs": _POSITIVE,
}


def _dsa_strategy(value: str) -> None:
    from ..data.augment import DSAugment

    DSAugment(value)  # parses the families; raises UnknownNameError naming the valid ones


def _registry_check(registry: Callable[[], Any]) -> Callable[[Any], None]:
    return lambda value: registry().get(value)


def _eval_backends():
    from .eval_protocols import EVAL_BACKENDS  # filled by evaluate / vmap_eval: looked up at check time

    return EVAL_BACKENDS


def _eval_backend(value: str) -> None:
    backends = _eval_backends()
    if value != "auto" and value not in backends:
        raise UnknownNameError(f"unknown evaluation backend {value!r}; valid evaluation backends: auto, "
                               f"{', '.join(backends.names())}")


def _eval_protocols():
    from .eval_protocols import EVAL_PROTOCOLS

    return EVAL_PROTOCOLS


def _methods():
    from ..methods import METHODS

    return METHODS


def _inits():
    from ..synset.init import INITS

    return INITS


def _contrasts():
    from ..synset.contrast import CONTRASTS

    return CONTRASTS


# option -> a check that asks the registry behind it (raises UnknownNameError listing the valid names)
_NAME_CHECKS: dict[str, Callable[[Any], None]] = {
    "method": _registry_check(_methods),
    "init": _registry_check(_inits),
    "contrast": _registry_check(_contrasts),
    "dsa_strategy": _dsa_strategy,
    "eval_dsa_strategy": _dsa_strategy,
    "eval_backend": lambda v: _eval_backend(v),
    "eval_protocol": _registry_check(_eval_protocols),
}


@functools.cache
def _objective_rules() -> dict[str, tuple[Callable[[Any], bool], str]]:
    rules = {}
    for name in OBJECTIVES.names():
        rules.update(OBJECTIVES.get(name).Options.RULES)
    return rules


def check_option(name: str, value: Any, ftype: Any, source: str = "config") -> Any:
    """Check one option: its type (returning the coerced value), its range rule, its registry."""
    value = _coerce(name, value, ftype, source)
    rule = _RULES.get(name) or _objective_rules().get(name)
    if rule is not None and value is not None and not rule[0](value):
        raise ConfigError(f"{source}: option {name!r} must be {rule[1]}, got {value!r}")
    check = _NAME_CHECKS.get(name)
    if check is not None and value is not None:
        check(value)  # the registry's own UnknownNameError: "unknown <kind> <value>; valid <kind>s: ..."
    return value


def _type_error(source: str, name: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"{source}: option {name!r} must be {what}, got {value!r} ({type(value).__name__})")


def _coerce(name: str, value: Any, ftype: Any, source: str) -> Any:
    """Check ``value`` against the field type; accept ints for floats and a comma string for lists."""
    origin = typing.get_origin(ftype)
    args = typing.get_args(ftype)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(name, value, a, source)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise _type_error(source, name, "a list", value)
        if args and args[0] is int:  # "500,1000" from the command line
            value = [int(v) if isinstance(v, str) and v.strip().lstrip("-").isdigit() else v for v in value]
        return [_coerce(name, v, args[0] if args else str, source) for v in value]
    if ftype is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(source, name, "true/false", value)
    if ftype is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise _type_error(source, name, "an integer", value)
    if ftype is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise _type_error(source, name, "a finite number", value)
            return float(value)
        raise _type_error(source, name, "a number", value)
    if ftype is str:
        if isinstance(value, str):
            return value
        raise _type_error(source, name, "a string", value)
    if is_dataclass(ftype) and not isinstance(value, ftype):
        raise _type_error(source, name, f"a {ftype.__name__}", value)
    return value
