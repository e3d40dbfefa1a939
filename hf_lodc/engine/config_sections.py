"""The flat <-> nested mapping of run configs made of sections (data, condense, eval) plus top-level fields.

Every option name is unique across the sections, so one flat mapping (the CLI options, or a YAML
file with the same keys) fills all of them, and a nested one (``to_dict``, as saved in artefacts)
says where each belongs. Written once here for ``RunConfig`` (``config.py``) and
``continual.ContinualConfig``, apart from the fields so that a second run config reuses the mapping
without the fields of the first.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, fields
from typing import Any

from ..errors import ConfigError

__all__ = ["Sectioned"]


class Sectioned:
    """Mixin of run configs made of sections (``SECTIONS``: data, condense, eval) plus top-level
    fields: the flat <-> nested mapping (``to_flat``, ``from_dict``, ``replace``), written once for
    ``RunConfig`` and ``continual.ContinualConfig``. A subclass provides ``from_flat`` and
    ``option_owners()`` (flat name -> (section or "top", type))."""

    SECTIONS: typing.ClassVar[tuple[str, ...]] = ("data", "condense", "eval")

    @classmethod
    def option_owners(cls) -> dict[str, tuple[str, Any]]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def to_flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in self.SECTIONS:
            section = getattr(self, s)
            out.update(section.to_flat() if hasattr(section, "to_flat") else asdict(section))
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.SECTIONS})  # type: ignore[arg-type]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config"):
        """Accepts the nested form (``to_dict``) or the flat form (CLI option names), or a mix; an
        option under a section it does not belong to is refused by name."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a mapping of option names to values, got {type(d).__name__}")
        owners = cls.option_owners()
        flat: dict[str, Any] = {}

        def put(key: Any, value: Any, section: str | None) -> None:
            name = str(key).replace("-", "_")
            owner = owners.get(name, (section,))[0]
            if section is not None and owner != section:
                where = "at the top level" if owner == "top" else f"to section {owner!r}"
                raise ConfigError(f"{source}: option {name!r} belongs {where}, not {section!r}")
            if name in flat:
                raise ConfigError(f"{source}: option {name!r} is given twice")
            flat[name] = value

        for k, v in d.items():
            if k in cls.SECTIONS:
                if v is None:
                    continue  # an empty section
                if not isinstance(v, dict):
                    raise ConfigError(
                        f"{source}: section {k!r} must be a mapping of option names to values, got {v!r}"
                    )
                for kk, vv in v.items():
                    put(kk, vv, k)
            else:
                put(k, v, None)
        return cls.from_flat(flat, source)  # type: ignore[attr-defined]

    def replace(self, **flat: Any):
        base = self.to_flat()
        section = getattr(self, "condense", None)
        opts = getattr(section, "options", None)
        if opts is not None and flat.get("method", section.method) != section.method:
            # another method: the old method's options left at their defaults are not carried over (the
            # new method may not have them); one set to another value is, and is refused if it does not fit
            default = type(opts)()
            for f in fields(opts):
                if getattr(opts, f.name) == getattr(default, f.name):
                    base.pop(f.name, None)
        return type(self).from_flat({**base, **flat})  # type: ignore[attr-defined]
