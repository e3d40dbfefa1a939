"""Config files: YAML read safely into the mapping the run configs are built from.

Apart from the dataclasses (``config.py``) because reading a file is its own concern: safe loading
only (no Python object tags), a key given twice in one mapping refused, and every failure (missing
file, not UTF-8, bad YAML, not a mapping) a ``ConfigError`` that names the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["load_yaml_config"]


class _SafeNoDuplicatesLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain values only) that also refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    dup = key in seen
                    seen.add(key)
                except TypeError:  # unhashable key: let SafeLoader report it
                    continue
                if dup:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(e: yaml.YAMLError) -> str:
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    if "tag:yaml.org,2002:python/" in problem or "!!python/" in problem:
        tag = problem.split("tag ", 1)[-1].strip().strip("'\"").replace("tag:yaml.org,2002:", "!!")
        return (f"refused the YAML tag {tag}{where}: configs are read with safe loading, which never builds "
                "Python objects; use plain values")
    return f"{problem}{where}"


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config safely (no Python object tags, no duplicate keys) into a flat/nested mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(p)!r}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = yaml.load(text, Loader=_SafeNoDuplicatesLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r}: {_yaml_problem(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(p)!r} must be a mapping of option names to values, got {type(data).__name__}"
        )
    return data
