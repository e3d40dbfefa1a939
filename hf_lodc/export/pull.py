"""Read one condensation back from a Hub dataset repo (or a local folder with the same layout) into an
:class:`~hf_lodc.export.artifact.Artifact`: the record ``condensations/N/hf_lodc.json`` plus the view
that rebuilds the set exactly (``views.View.restores``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import DatasetNotFoundError, HubError, IncompatibleArtifactError
from .artifact import Artifact, artifact_from_record
from .card import read_card_data
from .hub_http import GaveUp, classify, read_remote, with_retries
from .views import (LAYOUT_VERSION, META_FILE, ROOT, VIEWS, condensation_of, has_exact_view, ordered_views,
                    quiet_datasets, reserved_names)

__all__ = ["LoadedCondensation", "load_condensation"]


@dataclass
class LoadedCondensation:
    artifact: Artifact
    name: str  # condensation name in the repo
    where: str  # repo id or directory
    revision_sha: str | None  # commit read (Hub only)
    meta: dict[str, Any]  # the hf_lodc.json record
    card_data: dict[str, Any]


class _HubRepo:
    def __init__(self, repo_id: str, revision: str | None, token: str | None):
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        self.api = HfApi(token=token)
        self.repo_id, self.token = repo_id, token
        try:
            info = self.api.repo_info(repo_id, repo_type="dataset", revision=revision, files_metadata=True)
        except RevisionNotFoundError:
            raise DatasetNotFoundError(
                f"dataset repo {repo_id!r} has no revision {revision!r}; use a branch, tag or commit sha"
            ) from None
        except RepositoryNotFoundError:
            raise DatasetNotFoundError(
                f"dataset repo {repo_id!r} not found on {self.api.endpoint} (or it is private and your token has no "
                "access); check the id, or pass a local directory"
            ) from None
        except Exception as e:  # noqa: BLE001
            f = classify(e)
            if f is None:
                raise
            raise HubError(f"cannot read dataset repo {repo_id!r} from {self.api.endpoint}: {f.message}") from None
        self.sha = info.sha
        self.files = sorted(s.rfilename for s in info.siblings or [])
        self.sizes = {s.rfilename: s.size for s in info.siblings or [] if s.size is not None}
        self.where = repo_id
        for f in self.files:
            _check_repo_path(f, repo_id, "a file of the repo")

    def read(self, path: str) -> bytes | None:
        _check_text_size(self.sizes.get(path), path, self.where)
        try:  # a 5xx, 429 or dropped connection on one file is transient: read the pinned commit again
            return with_retries(lambda _n: read_remote(self.api, self.repo_id, self.sha, path), max_retries=3,
                                retry_wait=1.0, say=lambda _m: None)
        except GaveUp as e:
            raise HubError(f"cannot read {path} of dataset repo {self.repo_id!r} from {self.api.endpoint} "
                           f"(after {e.attempts} attempt(s)): {e.failure.message}") from None

    def load(self, config: str):
        import datasets

        return datasets.load_dataset(self.repo_id, config, revision=self.sha, split="train", token=self.token)


class _LocalRepo:
    def __init__(self, path: Path):
        self.path = path
        self.sha = None
        self.where = str(path)
        root = path.resolve()
        for p in path.rglob("*"):  # a link out of the folder would make "reading the set" read any file
            if p.is_symlink() and not p.resolve().is_relative_to(root):
                raise IncompatibleArtifactError(
                    f"{self.where!r}: {p.relative_to(path).as_posix()!r} is a link to {str(p.resolve())!r}, outside "
                    "the folder; a condensed set is read only from its own files. Copy the files in instead")
        self.files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())

    def read(self, path: str) -> bytes | None:
        p = self.path / path
        if not p.is_file():
            return None
        _check_text_size(p.stat().st_size, path, self.where)
        return p.read_bytes()

    @property
    def sizes(self) -> dict[str, int]:
        return {f: (self.path / f).stat().st_size for f in self.files}

    def load(self, config: str):
        import datasets

        return datasets.load_dataset(str(self.path), config, split="train")


MAX_TEXT_BYTES = 16 << 20  # a card or a condensation record: kilobytes; more is not one hf_lodc wrote


def _check_text_size(size: int | None, path: str, where: str) -> None:
    if size is not None and size > MAX_TEXT_BYTES:
        raise IncompatibleArtifactError(
            f"{where!r}: {path} is {size} bytes, more than a card or record of a condensed set can be "
            f"({MAX_TEXT_BYTES >> 20} MiB); refusing to read it")


def _check_data_size(repo, name: str, art_rec: dict, meta_path: str) -> None:
    """The files of one condensation hold a few copies of the set (its views): a repo whose files there are
    far larger than the record's set could be is refused before they are downloaded."""
    try:
        shape = [int(v) for v in art_rec["image_shape"]]
        units = int(art_rec["num_classes"]) * int(art_rec["images_per_class"])
    except (KeyError, TypeError, ValueError):
        return  # the record's own check names the bad field
    per_set = units * shape[0] * shape[1] * shape[2] * 4  # float32 pixels of the whole set
    limit = (64 << 20) + 32 * per_set
    total = sum(v for f, v in repo.sizes.items() if f.startswith(f"{ROOT}/{name}/"))
    if total > limit:
        raise IncompatibleArtifactError(
            f"{repo.where!r}: the files of {ROOT}/{name}/ take {total} bytes, far more than a set of {units} "
            f"images of {shape} described by {meta_path} needs (at most {limit}); refusing to download them")


def _check_repo_path(path: Any, where: str, what: str) -> None:
    """A path inside the repo: relative, no ``..``, no drive or backslash tricks; else the repo is refused
    (a card or listing that points outside the repo folder must not make a read leave it)."""
    import posixpath

    bad = (not isinstance(path, str) or not path or path.startswith(("/", "\\", "~")) or "\\" in path
           or ":" in path.split("/")[0] or ".." in path.split("/") or posixpath.normpath(path).startswith(".."))
    if bad:
        raise IncompatibleArtifactError(
            f"{where!r}: {what} {path!r} points outside the repository (absolute, '..' or a drive); refusing to "
            "read it. Only files inside the repo are read")


def _check_card_paths(card_data: dict, where: str) -> None:
    """Every ``data_files`` path of the card's ``configs:`` stays inside the repo (``datasets`` would
    otherwise resolve ``../x`` against a local folder and read what it names)."""
    for c in card_data.get("configs") or []:
        if not isinstance(c, dict):
            continue
        files = c.get("data_files") or []
        for f in files if isinstance(files, list) else [files]:
            paths = f.get("path") if isinstance(f, dict) else f
            for p in paths if isinstance(paths, list) else [paths]:
                _check_repo_path(p, where, f"the data_files path of config {c.get('config_name')!r}")


def _hub_id_or_missing_path(source: str) -> str:
    """``source`` if it can name a Hub repo holding a condensation (``owner/name``); else the error for a
    local folder that does not exist. A push always lands in a namespace, so a single name that is no
    folder here is a mistyped path, not a repo to look up (and a lookup would fail as a connection error
    when offline, blaming the network)."""
    import os

    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from ..data.sources import looks_like_path, missing_path_error

    if not isinstance(source, str) or not source.strip():
        raise DatasetNotFoundError(f"source must be a local folder or a Hub repo id 'owner/name', got {source!r}")
    if Path(source).expanduser().exists():
        raise IncompatibleArtifactError(f"{source!r} is a file, not a folder holding a condensed set; pass the "
                                        "directory a condensation wrote")
    if looks_like_path(source) or source.endswith(("/", "\\")) or "/" not in source:
        raise missing_path_error(source, "condensed set")
    try:
        validate_repo_id(source)
    except HFValidationError:
        raise DatasetNotFoundError(f"{source!r} is neither an existing folder (cwd: {os.getcwd()}) nor a valid Hub "
                                   "repo id 'owner/name'; pass an existing artefact directory or a repo id") from None
    return source


def _condensation_names(files: list[str]) -> list[str]:
    out = []
    for path in files:
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == ROOT and parts[2] == META_FILE:
            out.append(parts[1])
    return sorted(out)


def _pick(config_name: str | None, names: list[str], card_data: dict, where: str) -> str:
    if config_name is None or config_name in reserved_names():
        for c in card_data.get("condensation") or []:
            if isinstance(c, dict) and c.get("default") and c.get("config_name") in names:
                return c["config_name"]
        if len(names) == 1:
            return names[0]
        raise IncompatibleArtifactError(
            f"{where!r} holds several condensations {names} and its card names no default; pass config_name=..."
        )
    picked = condensation_of(config_name, names)
    if picked is not None:
        return picked
    raise IncompatibleArtifactError(
        f"{where!r} has no condensation {config_name!r} (no file {ROOT}/{config_name}/{META_FILE}); "
        f"available: {names}"
    )


def load_condensation(
    repo_or_dir: str, config_name: str | None = None, *, revision: str | None = None, token: str | None = None
) -> LoadedCondensation:
    """Read one condensation of a repo (Hub id, or a local folder with the same layout)."""
    p = Path(repo_or_dir).expanduser()
    repo = _LocalRepo(p) if p.is_dir() else _HubRepo(_hub_id_or_missing_path(repo_or_dir), revision, token)
    readme = repo.read("README.md")
    try:
        card_data, _ = read_card_data(readme.decode("utf-8", "replace") if readme else None)
    except (ValueError, yaml.YAMLError) as e:  # a malformed card is an incompatible repo, not a crash
        raise IncompatibleArtifactError(
            f"{repo.where!r}: the README.md front matter is not valid (safe) YAML ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]})"
        ) from None
    _check_card_paths(card_data, repo.where)
    names = _condensation_names(repo.files)
    if not names:
        configs = [c.get("config_name") for c in card_data.get("configs") or [] if isinstance(c, dict)]
        raise IncompatibleArtifactError(
            f"{repo.where!r} is not an hf_lodc condensed set: it has no {ROOT}/<name>/{META_FILE} record "
            f"(configs: {configs or 'none'}; files: {repo.files[:8]}{' ...' if len(repo.files) > 8 else ''}). "
            "To evaluate a plain image+label dataset use recipes/evaluate.py with --test-dataset."
        )
    name = _pick(config_name, names, card_data, repo.where)
    meta_path = f"{ROOT}/{name}/{META_FILE}"
    try:
        meta = json.loads(repo.read(meta_path) or b"")
    except ValueError as e:
        raise IncompatibleArtifactError(f"{repo.where!r}: {meta_path} is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise IncompatibleArtifactError(f"{repo.where!r}: {meta_path} is not a JSON object")
    version = meta.get("layout_version")
    if version != LAYOUT_VERSION:
        raise IncompatibleArtifactError(
            f"{repo.where!r}: {meta_path} has layout_version {version!r}; this hf_lodc reads layout_version "
            f"{LAYOUT_VERSION}. Install the hf_lodc version that wrote it, or re-push the set with this one."
        )
    for key in ("artifact", "views"):
        if not isinstance(meta.get(key), dict):
            raise IncompatibleArtifactError(f"{repo.where!r}: {meta_path} lacks the field {key!r}")
    art_rec = meta["artifact"]
    _check_data_size(repo, name, art_rec, meta_path)
    state = _state_from_views(repo, meta, art_rec, meta_path)
    art = artifact_from_record(art_rec, state, meta.get("results") or {}, meta.get("history") or [],
                               where=f"{repo.where}:{meta_path}", tensors_file="the set's exact view",
                               record_file=meta_path)
    return LoadedCondensation(artifact=art, name=name, where=repo.where, revision_sha=repo.sha, meta=meta,
                              card_data=card_data)


def _state_from_views(repo, meta: dict, art_rec: dict, meta_path: str) -> dict[str, torch.Tensor]:
    """Synset state_dict from the view that holds the set exactly (factors: low-rank, pixel_values: pixel)."""
    import numpy as np

    kind = art_rec.get("parameterisation")
    if not has_exact_view(kind) and "units" in meta["views"]:
        return _state_from_tables(repo, meta, art_rec, meta_path)
    exact = [v for v in ordered_views() if v.restores == kind]
    view = exact[0] if exact else next(v for v in ordered_views() if v.restores == "pixel")
    if view.name not in meta["views"]:
        raise IncompatibleArtifactError(
            f"{repo.where!r}: {meta_path} lists no {view.name!r} view, which a {kind!r} set needs to be rebuilt"
        )
    cfg = meta["views"][view.name].get("config_name")
    try:
        with quiet_datasets():
            ds = repo.load(cfg).with_format("numpy")
    except ValueError as e:
        raise IncompatibleArtifactError(
            f"{repo.where!r}: the config {cfg!r} ({view.name}) cannot be loaded ({str(e).splitlines()[0]}); "
            "the card's `configs:` must list it"
        ) from None
    missing = [c for c in (*view.columns, "label") if c not in ds.column_names]
    if missing:
        raise IncompatibleArtifactError(f"{repo.where!r}: config {cfg!r} lacks the column(s) {missing}")
    batch = ds[:]  # column -> numpy array of all rows
    state = {"labels": torch.from_numpy(np.asarray(batch["label"], dtype=np.int64))}
    state.update(view.to_state(batch))
    return state


def _state_from_tables(repo, meta: dict, art_rec: dict, meta_path: str) -> dict[str, torch.Tensor]:
    """Synset state_dict of a parameterisation published as its export tables (``units`` + ``shared``
    views): the set is built from the record and filled by ``load_export_tables``."""
    import numpy as np

    from ..synset.base import PARAMETERISATIONS

    tables: dict[str, dict[str, torch.Tensor]] = {}
    for name, rec in meta["views"].items():
        view = VIEWS.get(name) if name in VIEWS.names() else None
        if view is None or view.table is None:
            continue
        try:
            with quiet_datasets():
                ds = repo.load(rec.get("config_name")).with_format("numpy")
        except ValueError as e:
            raise IncompatibleArtifactError(
                f"{repo.where!r}: the config {rec.get('config_name')!r} ({name}) cannot be loaded "
                f"({str(e).splitlines()[0]}); the card's `configs:` must list it") from None
        batch = ds[:]
        tables[view.table] = {c: torch.from_numpy(np.asarray(batch[c], dtype=np.float32))
                              for c in ds.column_names if c != "label"}
    try:
        cls = PARAMETERISATIONS.get(art_rec["parameterisation"])
        synset = cls(art_rec["num_classes"], art_rec["images_per_class"], tuple(art_rec["image_shape"]),
                     rank=art_rec.get("rank"), **(art_rec.get("param_options") or {}))
        synset.load_export_tables(tables)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise IncompatibleArtifactError(
            f"{repo.where!r}: {meta_path}'s units/shared tables do not rebuild a {art_rec.get('parameterisation')!r} "
            f"set ({type(e).__name__}: {e}); re-push the set with this hf_lodc") from None
    return {k: v.detach().clone() for k, v in synset.state_dict().items()}
