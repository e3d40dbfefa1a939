"""Command-line options generated from config dataclasses: one generator for every recipe.

``add_options(parser, fields, help=...)`` adds ``--field-name`` for each dataclass field, parsed to
the field's type: numbers with argparse's own error (``argument --ipc: invalid int value``),
``none``/``null`` to ``None`` only where the field admits ``None`` (so ``--contrast none`` and
``--dsa-strategy none`` stay the string ``"none"``, the name those options document), booleans as
``--flag/--no-flag``, lists as comma-separated text. Every option defaults to ``argparse.SUPPRESS``
so ``given(args)`` holds only what the command line set, to lay over a YAML file and the defaults;
the config classes then check every value (type, range, registry) and name the option.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import fields
from typing import Any, Callable, Iterable

from .config_yaml import load_yaml_config

__all__ = ["value_parser", "add_options", "option_fields", "given", "yaml_base", "base_parser"]


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
                help: dict[str, str] | None = None) -> None:
    """``--name`` for each (name, type, help); ``help`` overrides per name; defaults suppressed (see ``given``)."""
    help = help or {}
    for name, ftype, text in options:
        flag = "--" + name.replace("_", "-")
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help.get(name, text)}
        if _split(ftype)[0] is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            p.add_argument(flag, type=value_parser(ftype), metavar=name.upper(), **kw)


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
