"""Command-line options generated from config dataclasses: one generator for every recipe.

``add_options(parser, fields, help=...)`` adds ``--field-name`` for each dataclass field, parsed to
the field's type: numbers with argparse's own error (``argument --ipc: invalid int value``),
``none``/``null`` to ``None`` only where the field admits ``None`` (so ``--contrast none`` and
``--dsa-strategy none`` stay the string ``"none"``, the name those options document), booleans as
``--flag/--no-flag``, lists as comma-separated text. Every option defaults to ``argparse.SUPPRESS``
so ``given(args)`` holds only what the command line set, to lay over a YAML file and the defaults;
the config classes then check every value (type, range, registry) and name the option.
``add_alias(parser, "--old", "--new")`` keeps a renamed option's old spelling working for a release:
the same destination and parsing, one deprecation line naming the new option when it is used.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from dataclasses import fields
from typing import Any, Callable, Iterable

from .config_yaml import load_yaml_config

__all__ = ["value_parser", "add_options", "add_alias", "option_fields", "given", "yaml_base", "base_parser"]


def _split(ftype: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(ftype) in (typing.Union, types.UnionType):
        args = typing.get_args(ftype)
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else str), type(None) in args
    return ftype, False


def value_parser(ftype: Any) -> Callable[[str], Any]:
    """Command-line text -> a value of ``ftype`` (see the module docstring)."""
    base, nullable = _split(ftype)
    origin = typing.get_origin(base)

    def parse(text: str) -> Any:
        if nullable and text.strip().lower() in ("none", "null"):
            return None
        if origin is list:
            return [v.strip() for v in text.split(",") if v.strip()]
        if base in (int, float):
            return base(text)  # ValueError -> argparse: "invalid int value: 'ten'"
        return text

    parse.__name__ = base.__name__ if base in (int, float) else "value"
    return parse


def option_fields(*classes: type, skip: Iterable[str] = ()) -> list[tuple[str, Any, str | None]]:
    """(name, resolved type, help) of every field of ``classes`` (dataclasses), minus ``skip``; the
    help is the field's ``metadata["help"]`` (objective options carry theirs) or None."""
    skip = set(skip)
    out = []
    for cls in classes:
        flat = getattr(cls, "flat_fields", None)  # CondenseConfig: its fields, then every objective's options, flat
        if flat is not None:
            out.extend((n, t, meta.get("help")) for n, t, meta in flat() if n not in skip)
            continue
        hints = typing.get_type_hints(cls)
        out.extend((f.name, hints[f.name], f.metadata.get("help")) for f in fields(cls) if f.name not in skip)
    return out


def add_options(p: argparse.ArgumentParser, options: Iterable[tuple[str, Any, str | None]],
                help: dict[str, str] | None = None, extra: dict[str, dict[str, Any]] | None = None) -> None:
    """``--name`` for each (name, type, help); ``help`` overrides per name; ``extra``: more ``add_argument``
    settings per name (``choices``, a ``type`` parser, ``metavar``); defaults suppressed (see ``given``)."""
    help, extra = help or {}, extra or {}
    for name, ftype, text in options:
        flag = "--" + name.replace("_", "-")
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help.get(name, text)}
        if _split(ftype)[0] is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            more = extra.get(name, {})
            shown = None if "choices" in more else name.upper()  # a few choices show themselves in the usage
            kw = {"type": value_parser(ftype), "metavar": shown, **kw, **more}
            p.add_argument(flag, **kw)


class _Deprecated(argparse.Action):
    """An old spelling: prints one deprecation line naming the new option, then sets what it set."""

    def __init__(self, *args: Any, new: str, unset: tuple[str, ...] = (), **kw: Any):
        self.new, self.unset = new, unset
        super().__init__(*args, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        note = ""
        if values in self.unset:  # the old option's default, spelled out: it set nothing, and still does
            note = (f" ({option_string} {values} left the option unset, as leaving {self.new} out does; "
                    f"{self.new} {values} sets it)")
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}{note}", file=sys.stderr)
        if values not in self.unset:
            setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_alias(p: argparse.ArgumentParser, old: str, new: str, *, choices: Iterable[str] | None = None,
              unset: Iterable[str] = ()) -> None:
    """``old`` as a deprecated spelling of the option ``new`` (already added): same destination and parsing,
    a bare flag for a boolean (``--old`` = ``--new``); ``choices`` keep the values the old option took, and a
    value in ``unset`` (the old option's default, spelled out) sets nothing, as it did."""
    action = p._option_string_actions[new]
    kw: dict[str, Any] = {"dest": action.dest, "default": argparse.SUPPRESS, "new": new, "unset": tuple(unset),
                          "help": argparse.SUPPRESS}
    if isinstance(action, argparse.BooleanOptionalAction):
        kw.update(nargs=0, const=True)
    else:
        kw.update(type=action.type, metavar=action.metavar, choices=None if choices is None else tuple(choices))
    p.add_argument(old, action=_Deprecated, **kw)


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """A recipe's parser with the options every config-driven recipe has (--config, --cpu)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file with any of the options below")
    p.add_argument("--cpu", action="store_true", help="force CPU even if a GPU is visible")
    return p


def given(args: argparse.Namespace, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The options the command line set, minus the recipe's own (``exclude``)."""
    drop = {"config", "cpu", *exclude}
    return {k: v for k, v in vars(args).items() if k not in drop}


def yaml_base(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """(the ``--config`` YAML mapping or {}, the source name for error messages)."""
    path = getattr(args, "config", None)
    return (load_yaml_config(path) if path else {}), (path or "config")
