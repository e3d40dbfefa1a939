"""Where a dataset argument points, and reading it: a local folder, a Hub id served from a local
mirror, or the Hub itself.

A dataset is named by one string that can be a path or a Hub id, and the two must never be confused:
``./x``, ``/x``, ``~/x`` and ``a/b/c`` are paths (a missing one is a path error naming the nearest
existing folder, never a Hub lookup), ``owner/name`` is a Hub id, looked up first in the mirror that
``$HF_LODC_LOCAL_HUB`` names (``datasets/<owner>/<name>``, how the tests run offline). The export
side (pulling a condensed set) names its sources the same way, so it asks this module too.

:func:`load_dataset_dict` reads the resolved source with ``datasets`` and turns its failures into
hf_lodc's errors (``load_errors.py``); :func:`hub_revision_sha` and :func:`card_license` read the
provenance the loaded data records.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigError,
    DatasetError,
    DatasetNotFoundError,
    HfLodcError,
    LocalHubNotFoundError,
    LocalPathNotFoundError,
)
from .load_errors import LoadContext, first_line, translate_load_error

__all__ = [
    "looks_like_path",
    "missing_path_error",
    "local_mirror",
    "resolve_dataset_arg",
    "resolve_source",
    "load_dataset_dict",
    "hub_revision_sha",
    "card_license",
]


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def looks_like_path(dataset: str) -> bool:
    """``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``: a local path, never a Hub id (``owner/name``)."""
    return dataset.startswith((".", "/", "~", os.sep)) or dataset.count("/") > 1 or "\\" in dataset


def missing_path_error(dataset: str, what: str = "dataset") -> HfLodcError:
    """The error for a local path that does not exist (resolved path, nearest existing folder, cwd)."""
    p = Path(os.path.abspath(os.path.expanduser(dataset)))
    near = _nearest_existing(p.parent)
    if near == p.parent:
        where = f"{str(near)!r} exists but has no entry {p.name!r}"
    else:
        where = f"the nearest existing folder is {str(near)!r}"
    return LocalPathNotFoundError(
        f"{what} {dataset!r} not found: no such directory {str(p)!r} ({where}; cwd: {os.getcwd()}). Pass an "
        f"existing {what} folder (was it moved or renamed?)"
    )


def local_mirror() -> Path | None:
    """The folder ``$HF_LODC_LOCAL_HUB`` names (``~`` expanded), None when unset; refused if missing."""
    mirror = os.environ.get("HF_LODC_LOCAL_HUB")
    if not mirror:
        return None
    root = Path(os.path.abspath(os.path.expanduser(mirror)))
    if not root.is_dir():
        why = "is a file, not a folder" if root.exists() else "does not exist"
        raise LocalHubNotFoundError(
            f"HF_LODC_LOCAL_HUB={mirror!r} is not a folder ({str(root)!r} {why}); point it at the local "
            "mirror (the folder holding datasets/<owner>/<name>) or unset it to use the Hub"
        )
    return root


def resolve_dataset_arg(dataset: str | os.PathLike) -> str:
    """What to record for ``dataset``: the absolute folder for a local path (``~`` expanded, relative
    paths against the current directory), the Hub id unchanged. Call it once where the option is read
    so the artefact evaluates from any directory."""
    text = os.fspath(dataset) if isinstance(dataset, os.PathLike) else dataset
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"dataset must be a Hub id like 'uoft-cs/cifar10' or a local path, got {dataset!r}")
    p = Path(text).expanduser()
    if p.exists() or looks_like_path(text):
        return os.path.abspath(p)
    return text


def resolve_source(dataset: str | os.PathLike) -> tuple[str, str | None]:
    """Return (what to give ``datasets.load_dataset``, Hub id or None).

    A path that exists is used as is (``~`` expanded, made absolute). A Hub id ``owner/name`` is looked
    up first in the local mirror named by ``$HF_LODC_LOCAL_HUB`` (a folder laid out as
    ``datasets/<owner>/<name>``; a mirror folder that does not exist is an error naming it). A local
    path that does not exist (``./x``, ``/x``, ``~/x``, ``a/b/c``) is a path error, never a Hub lookup.
    """
    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    if not dataset or not isinstance(dataset, str) or not dataset.strip():
        raise ConfigError(f"dataset must be a Hub id like 'uoft-cs/cifar10' or a local path, got {dataset!r}")
    p = Path(dataset).expanduser()
    if p.exists():
        if not p.is_dir():
            raise DatasetNotFoundError(f"dataset path {dataset!r} is a file; pass the repository folder")
        return str(p.resolve()), None
    if looks_like_path(dataset):
        raise missing_path_error(dataset)
    mirror = local_mirror()
    if mirror is not None:
        cand = mirror / "datasets" / dataset
        if cand.is_dir():
            return str(cand.resolve()), dataset
    return dataset, dataset


def load_dataset_dict(source: str, hub_id: str | None, dataset: str, config_name, revision):
    """``datasets.load_dataset`` of a resolved ``source`` -> a ``DatasetDict`` (a lone split becomes
    ``"train"``); every failure is one of hf_lodc's errors naming ``dataset``."""
    import datasets

    kwargs: dict[str, Any] = {}
    if config_name:
        kwargs["name"] = config_name
    local = Path(source).exists()
    if revision and local:
        warnings.warn(f"revision {revision!r} ignored: dataset {dataset!r} is read from the local folder {source!r}",
                      stacklevel=3)
    elif revision:
        kwargs["revision"] = revision
    ctx = LoadContext(dataset, source, kwargs.get("revision"), config_name)
    try:
        dd = datasets.load_dataset(source, **kwargs)
    except Exception as e:  # noqa: BLE001 - datasets / hub raise many types; translate them all
        clear = translate_load_error(e, ctx)
        if clear is not None:
            raise clear from None
        raise DatasetError(f"dataset {dataset!r} could not be loaded ({type(e).__name__}: {first_line(e)})") from e
    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    return dd


def hub_revision_sha(hub_id: str | None, revision: str | None) -> str | None:
    """The commit sha ``revision`` of Hub dataset ``hub_id`` names, for provenance; None when unknown."""
    if hub_id is None:
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(hub_id, revision=revision).sha
    except Exception:  # noqa: BLE001 - provenance only; the data itself loaded
        return None


def card_license(source: str) -> str | None:
    """The license the dataset card of local folder ``source`` declares, for provenance; None when unknown."""
    card = Path(source) / "README.md"
    if not card.is_file():
        return None
    try:
        from huggingface_hub import DatasetCard

        lic = DatasetCard.load(card).data.get("license")
    except Exception:  # noqa: BLE001 - provenance only
        return None
    if isinstance(lic, list):
        return str(lic[0]) if lic else None
    return None if lic is None else str(lic)
