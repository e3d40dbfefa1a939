"""A condensation's objective options: the chosen method's own options object, built from any of the
forms a user or a record gives, and the records of earlier versions read back.

Each objective owns its options as a dataclass (``Objective.Options``: ``GMOptions``, ``TMOptions``,
...; see ``objectives/base.py``). ``CondenseConfig`` (``config.py``) holds the chosen method's
instance in its ``options`` field, so a config and everything recorded from it (``config.json``,
``results.json``, the card, checkpoints: ``condense: {..., "options": {...}}``) carry exactly the
options the method has; a method without objective options holds and records ``None``.

Users still give the options flat (``CondenseConfig(method="dc", outer_loop=2)``, ``--outer-loop``,
``outer_loop:`` in YAML): every registered objective's field names are unique, so a flat name says
which options it belongs to (``objective_option_owners``). A flat option the chosen method does not
have is refused by name, with the methods that do have it.

Records written before the options were nested keep every objective's options flat in ``condense``;
``flat_condense_record`` reads either layout as one flat mapping of the engine's fields plus the
method's options, so identities of an old and a new record of the same run are equal.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

from ..errors import ConfigError
from ..objectives import OBJECTIVES, ObjectiveOptions
from .config_checks import check_option

__all__ = ["OPTIONS_KEY", "objective_option_owners", "method_options", "options_class", "flat_condense_record",
           "flat_option_names"]

# the key of a condense record (and of ``CondenseConfig``) holding the method's objective options
OPTIONS_KEY = "options"


def objective_option_owners(core: typing.Iterable[str] = ()) -> dict[str, tuple[str, Any, Any]]:
    """Flat objective option name -> (objective, type, dataclass field), over the registered objectives.
    ``core``: the engine's field names, which no objective option may reuse."""
    out: dict[str, tuple[str, Any, Any]] = {}
    core = set(core)
    for name in OBJECTIVES.names():
        opts = OBJECTIVES.get(name).Options
        hints = typing.get_type_hints(opts)
        for f in dataclasses.fields(opts):
            if f.name in out and out[f.name][2] is f:  # inherited (haba's options extend tm's): one flat option,
                if issubclass(OBJECTIVES.get(out[f.name][0]).Options, opts):  # owned by the base objective
                    out[f.name] = (name, hints[f.name], f)
                continue
            if f.name in core or f.name in out or f.name == OPTIONS_KEY:
                other = "the engine" if f.name in core or f.name == OPTIONS_KEY else f"objective {out[f.name][0]!r}"
                raise TypeError(f"objective {name!r} option {f.name!r} clashes with {other}'s; rename it")
            out[f.name] = (name, hints[f.name], f)
    return out


def _methods():
    from ..methods import METHODS  # the method table sits above the engine's configs: looked up at call time

    return METHODS


def options_class(method: str) -> type[ObjectiveOptions] | None:
    """The options dataclass of ``method``'s objective; None when it has no objective options."""
    objective = _methods().get(method).objective
    if not objective:
        return None
    cls = OBJECTIVES.get(objective).Options
    return cls if dataclasses.fields(cls) else None


def flat_option_names(method: str) -> tuple[str, ...]:
    cls = options_class(method)
    return tuple(f.name for f in dataclasses.fields(cls)) if cls is not None else ()


def _not_an_option(names: list[str], method: str, source: str) -> ConfigError:
    methods = _methods()
    parts = []
    for n in names:
        having = [m for m in methods.names() if n in flat_option_names(m)]
        parts.append(f"{n!r} (methods that have it: {', '.join(having) if having else 'none'})")
    objective = methods.get(method).objective
    return ConfigError(f"{source}: method {method!r} (objective {objective!r}) has no option "
                       f"{', '.join(parts)}; drop it or choose one of those methods")


def method_options(method: str, options: Any, flat: Mapping[str, Any], source: str = "CondenseConfig"
                   ) -> ObjectiveOptions | None:
    """The options object of ``method`` from ``options`` (an options object of the method's class, a
    mapping of its fields, or None: its defaults) and flat option names (``flat``, which win).

    Every flat value is checked against its own field first (type and range: the same message whatever
    the method), then refused by name if the method does not have it."""
    owners = objective_option_owners()
    checked = {}
    for k, v in flat.items():
        if k not in owners:
            raise TypeError(f"{source}: unexpected option {k!r}")
        checked[k] = check_option(k, v, owners[k][1], source)
    cls = options_class(method)
    own = flat_option_names(method)
    if isinstance(options, ObjectiveOptions):
        if cls is None or type(options) is not cls:
            want = cls.__name__ if cls is not None else "no options"
            raise ConfigError(f"{source}: method {method!r} takes {want}, got {type(options).__name__}")
        base = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    elif isinstance(options, Mapping):
        base = dict(options)
        twice = sorted(set(base) & set(checked))
        if twice:
            raise ConfigError(f"{source}: option {twice[0]!r} is given twice")
    elif options is None:
        base = {}
    else:
        raise ConfigError(f"{source}: option {OPTIONS_KEY!r} must be a mapping of the method's objective options, "
                          f"got {options!r}")
    values = {**base, **checked}
    foreign = sorted(k for k in values if k not in own)
    if foreign:
        raise _not_an_option(foreign, method, source)
    if cls is None:
        return None
    hints = typing.get_type_hints(cls)
    return cls(**{k: check_option(k, v, hints[k], source) for k, v in values.items()})


def flat_condense_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A condense record or identity as one flat mapping: the engine's fields, the method's objective
    options (nested under ``OPTIONS_KEY``, or flat as earlier versions wrote them) and any other key
    (``dataset.*``, ``classes``), without the options of other objectives that earlier versions
    recorded for every run. The method's options are taken as recorded; none are added."""
    out = {k: v for k, v in record.items() if k != OPTIONS_KEY}
    nested = record.get(OPTIONS_KEY)
    if isinstance(nested, Mapping):
        out.update(nested)
    method = record.get("method")
    if not isinstance(method, str) or method not in _methods().names():
        return out  # an unknown method: nothing is dropped, so a comparison still shows every difference
    own = set(flat_option_names(method))
    foreign = set(objective_option_owners()) - own
    return {k: v for k, v in out.items() if k not in foreign}
