"""``datasets.load_dataset`` failures -> hf_lodc's errors, each naming the dataset and what to do.

``datasets`` and ``huggingface_hub`` fail in many ways that say little to a user (a YAML error in
the card, an ``EmptyDatasetError``, a ``FileNotFoundError`` that means a missing revision, a
``DatasetGenerationError`` around a damaged parquet shard). Each is recognised here by a pair: a
test (``_is_*``) and the error it becomes; :func:`translate_load_error` applies the first pair that
matches. A new failure mode is one more pair in ``_LOAD_ERRORS``, not another branch in the loader.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DatasetError, DatasetNotFoundError, HfLodcError, SplitError

__all__ = ["LoadContext", "first_line", "translate_load_error"]


@dataclass
class LoadContext:
    """What a translated ``datasets`` error needs to name."""

    dataset: str
    source: str
    revision: str | None
    config_name: str | None

    @property
    def endpoint(self) -> str:
        from huggingface_hub import constants

        return constants.ENDPOINT


def first_line(e: BaseException) -> str:
    """The first line of ``e``'s message (its type's name when it has none): errors stay one line."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _is_yaml_error(e: BaseException, ctx: LoadContext) -> bool:
    import yaml

    return isinstance(e, yaml.YAMLError)


def _yaml_error(e: BaseException, ctx: LoadContext) -> HfLodcError:
    problem = getattr(e, "problem", None) or first_line(e)
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1} of the YAML header)" if mark is not None else ""
    return DatasetError(
        f"dataset {ctx.dataset!r}: its dataset card (README.md) has YAML metadata that cannot be read "
        f"safely: {problem}{where}. Fix the card's YAML header; Python object tags are never loaded."
    )


def _is_missing_revision(e: BaseException, ctx: LoadContext) -> bool:
    return isinstance(e, FileNotFoundError) and ctx.revision is not None and "revision" in str(e).lower()


def _missing_revision(e: BaseException, ctx: LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r}: revision {ctx.revision!r} does not exist on the Hub ({ctx.endpoint}). "
        "Use an existing branch, tag or commit sha of that repo, or drop revision to read 'main'."
    )


def _is_empty_folder(e: BaseException, ctx: LoadContext) -> bool:
    return type(e).__name__ == "EmptyDatasetError"


def _empty_folder(e: BaseException, ctx: LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r}: {ctx.source!r} contains no data files that datasets can read "
        "(parquet, arrow, csv/json, or image folders). Point to the dataset repository folder."
    )


def _is_not_found(e: BaseException, ctx: LoadContext) -> bool:
    return isinstance(e, FileNotFoundError)


def _mirror_note(ctx: LoadContext) -> str:
    mirror = os.environ.get("HF_LODC_LOCAL_HUB")
    if not mirror:
        return ""
    return f", not in the local mirror HF_LODC_LOCAL_HUB={mirror!r}"


def _not_found(e: BaseException, ctx: LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r} not found: no local folder of that name (cwd: {os.getcwd()}){_mirror_note(ctx)}, "
        f"and no dataset repo {ctx.dataset!r} on the Hub ({ctx.endpoint}) that you can read. Check the spelling, "
        "log in (HF_TOKEN) for private or gated repos, or pass a local folder."
    )


def _is_config_error(e: BaseException, ctx: LoadContext) -> bool:
    return isinstance(e, ValueError) and ("BuilderConfig" in str(e) or "Config name is missing" in str(e))


def _config_error(e: BaseException, ctx: LoadContext) -> HfLodcError:
    return DatasetError(f"dataset {ctx.dataset!r}: {first_line(e)} Choose one with config_name=...")


def _is_empty_split(e: BaseException, ctx: LoadContext) -> bool:
    return isinstance(e, ValueError) and "corresponds to no data" in str(e)


def _empty_split(e: BaseException, ctx: LoadContext) -> HfLodcError:
    found = re.search(r'Instruction "(.+?)" corresponds to no data', str(e))
    split = found.group(1) if found else "?"
    return SplitError(
        f"dataset {ctx.dataset!r}: split {split!r} has no rows, and datasets cannot load a dataset with an empty "
        "split. Remove that split's (empty) data files, or its entry under configs in the README, or add rows."
    )


def _is_unreachable(e: BaseException, ctx: LoadContext) -> bool:
    name = type(e).__name__
    return isinstance(e, (ConnectionError, TimeoutError)) or "Connect" in name or "Timeout" in name


def _unreachable(e: BaseException, ctx: LoadContext) -> HfLodcError:
    return DatasetNotFoundError(
        f"dataset {ctx.dataset!r}: cannot reach the Hub ({ctx.endpoint}): {first_line(e)}; and no local folder "
        f"of that name (cwd: {os.getcwd()}){_mirror_note(ctx)}. Check the spelling, your "
        "network or HF_ENDPOINT; with HF_HUB_OFFLINE=1 only cached datasets load, and HF_LODC_LOCAL_HUB "
        "can name a local mirror."
    )


def _is_generation_error(e: BaseException, ctx: LoadContext) -> bool:
    return type(e).__name__ == "DatasetGenerationError"


def _root_cause(e: BaseException) -> BaseException:
    seen = set()
    while (e.__cause__ or e.__context__) is not None and id(e) not in seen:
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return e


def _shard_problems(source: str) -> list[str]:
    """The data files of a local dataset folder that cannot be read, or whose columns disagree with the
    other files of their split (``train-00000-of-00002.parquet`` vs ``train-00001-...``)."""
    import pyarrow.parquet as pq

    root = Path(source)
    if not root.is_dir():
        return []
    problems, columns = [], {}
    for f in sorted(root.rglob("*.parquet")):
        rel = f.relative_to(root).as_posix()
        try:
            columns[rel] = pq.read_schema(f).names
            rows = pq.read_metadata(f).num_rows
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid / OSError for damaged files
            problems.append(f"{rel!r} is damaged or truncated ({first_line(e)})")
            continue
        if rows == 0:  # valid parquet, but datasets' reader fails on it ("BatchSize must be greater than 0")
            problems.append(f"{rel!r} holds no rows (delete it: the datasets library cannot read an empty file)")
    by_split: dict[str, dict[str, list[str]]] = {}
    for rel, cols in columns.items():
        split = re.sub(r"-\d+-of-\d+\.parquet$|\.parquet$", "", rel)
        by_split.setdefault(split, {})[rel] = cols
    for split, files in by_split.items():
        kinds = {tuple(c) for c in files.values()}
        if len(kinds) > 1:
            first = next(iter(files))
            other = next(f for f, c in files.items() if tuple(c) != tuple(files[first]))
            problems.append(f"the files of {split!r} disagree on their columns: {first!r} has {files[first]}, "
                            f"{other!r} has {files[other]}")
    return problems


def _generation_error(e: BaseException, ctx: LoadContext) -> HfLodcError:
    problems = _shard_problems(ctx.source)
    what = "; ".join(problems) if problems else f"{type(_root_cause(e)).__name__}: {first_line(_root_cause(e))}"
    return DatasetError(
        f"dataset {ctx.dataset!r}: its data files cannot be read as one dataset: {what}. Replace the damaged "
        "file(s) (download them again) or make every file of a split hold the same columns and types"
    )


# first match wins: (does this rule apply?, the error to raise)
_LOAD_ERRORS: list[tuple[Callable[[BaseException, LoadContext], bool],
                         Callable[[BaseException, LoadContext], HfLodcError]]] = [
    (_is_yaml_error, _yaml_error),
    (_is_missing_revision, _missing_revision),
    (_is_empty_folder, _empty_folder),
    (_is_not_found, _not_found),
    (_is_config_error, _config_error),
    (_is_empty_split, _empty_split),
    (_is_unreachable, _unreachable),
    (_is_generation_error, _generation_error),
]


def translate_load_error(e: BaseException, ctx: LoadContext) -> HfLodcError | None:
    """The clear error for ``datasets.load_dataset``'s failure ``e`` (first rule that applies), or None
    when no rule knows it (the caller reports it as it is)."""
    for applies, error in _LOAD_ERRORS:
        if applies(e, ctx):
            return error(e, ctx)
    return None
