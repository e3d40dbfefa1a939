"""Checking one config option at the door: its type (coerced), its range rule, and the registry behind it.

Shared by every config dataclass (``config.py``: ``DataConfig``, ``CondenseConfig``, ``EvalConfig``,
``RunConfig``; ``continual.ContinualConfig``) and by the objectives' options, which bring their own
range rules (``ObjectiveOptions.RULES``). Options that name a registry entry ask that registry when
checked, so a newly registered name is accepted without an edit here.
"""

from __future__ import annotations

import functools
import math
import numbers
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any, Callable

from ..errors import ConfigError, UnknownNameError
from ..objectives import OBJECTIVES

__all__ = ["Checked", "check_option", "hints"]


class Checked:
    """Mixin: type-check and range-check every field after ``__init__``."""

    def __post_init__(self) -> None:
        types_ = hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = check_option(f.name, getattr(self, f.name), types_[f.name], type(self).__name__)
            object.__setattr__(self, f.name, value)


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


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
