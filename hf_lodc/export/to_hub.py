"""Condensed sets on the Hugging Face Hub: a repo plain ``datasets.load_dataset`` opens, pushed in one
commit, and read back into an :class:`~hf_lodc.export.artifact.Artifact`.

Repo layout (``LAYOUT_VERSION`` 1), for a condensation named ``N`` (default ``<method>-ipc<k>-r<r>``)::

    README.md                                              the card (hf_lodc.export.card)
    condensations/N/images/train-00000-of-00001.parquet        image (PNG, uint8) + label (ClassLabel)
    condensations/N/pixel_values/train-00000-of-00001.parquet  pixel_values Array3D float32 (C,H,W) + label
    condensations/N/factors/train-00000-of-00001.parquet       A (C,H,r), B (C,r,W) float32 + label (low-rank only)
    condensations/N/preview.png                            grid of the images, one row per class
    condensations/N/hf_lodc.json                           config record + results + history (what from_hub reads)

Configs (the card's ``configs:``): ``N``, ``N-pixel_values``, ``N-factors`` for every condensation,
plus the aliases ``default``, ``pixel_values`` and ``factors`` for the *default condensation*: the
first one pushed to the repo, unless a later push passes ``set_default=True``. So
``load_dataset(repo)`` keeps giving what it gave until the owner says otherwise, and every
condensation stays reachable by name. Pushing ``N`` again replaces only ``N``'s files and record.

A push is ONE ``HfApi.create_commit`` (parquet files, preview, record, card) whose parent is the head
read when the push started: it lands whole or not at all. Everything is built locally first and
byte-deterministic, so re-pushing the same artefact finds nothing changed and makes no commit.
Transient failures (429 with Retry-After, 5xx, dropped connections, a concurrent commit: 412) are
retried with backoff - safe, because a retry re-reads the head and an already-landed commit shows
up as "nothing to change"; auth failures (401/403) are not retried. Nothing local is ever written.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from ..data.types import denormalize_to_uint8
from ..errors import ConfigError, DatasetNotFoundError, HubAuthError, HubError, HubPushError, IncompatibleArtifactError
from ..registry import Registry
from .artifact import Artifact, artifact_from_record
from .card import build_card
from .preview import preview_grid, to_pil

__all__ = [
    "LAYOUT_VERSION", "VIEWS", "View", "PushResult", "LoadedCondensation",
    "check_config_name", "view_datasets", "png_images", "condensation_files", "metadata_record",
    "push_artifact", "load_condensation", "read_card_data",
]

LAYOUT_VERSION = 1
ROOT = "condensations"
META_FILE = "hf_lodc.json"
PREVIEW_FILE = "preview.png"
SHARD = "train-00000-of-00001.parquet"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


# ---------------------------------------------------------------------------------------------
# views: the three forms one condensation is published in


@dataclass(frozen=True)
class View:
    name: str  # folder under condensations/N/
    suffix: str  # config name = N + suffix
    alias: str  # config name of the default condensation's view
    build: Callable[[Artifact], Any]  # artefact -> datasets.Dataset, or None when not applicable


VIEWS: Registry[View] = Registry("view")


def _class_label(art: Artifact):
    import datasets

    return datasets.ClassLabel(names=list(art.source.class_names))


def _images_view(art: Artifact):
    import datasets

    u8 = denormalize_to_uint8(art.images(), art.mean, art.std)  # (N, C, H, W) uint8, clipped to [0, 1]
    features = datasets.Features({"image": datasets.Image(), "label": _class_label(art)})
    return datasets.Dataset.from_dict(
        {"image": [to_pil(x) for x in u8], "label": art.labels.tolist()}, features=features
    )


def _pixel_values_view(art: Artifact):
    import datasets

    x = art.images().contiguous()  # (N, C, H, W) float32, normalised
    features = datasets.Features({
        "pixel_values": datasets.Array3D(shape=tuple(x.shape[1:]), dtype="float32"),
        "label": _class_label(art),
    })
    return datasets.Dataset.from_dict({"pixel_values": x.numpy(), "label": art.labels.tolist()}, features=features)


def _factors_view(art: Artifact):
    import datasets

    if art.synset.kind != "lowrank":
        return None
    A = art.synset.A.detach().float().cpu().contiguous()  # (N, C, H, r)
    B = art.synset.B.detach().float().cpu().contiguous()  # (N, C, r, W)
    features = datasets.Features({
        "A": datasets.Array3D(shape=tuple(A.shape[1:]), dtype="float32"),
        "B": datasets.Array3D(shape=tuple(B.shape[1:]), dtype="float32"),
        "label": _class_label(art),
    })
    return datasets.Dataset.from_dict({"A": A.numpy(), "B": B.numpy(), "label": art.labels.tolist()},
                                      features=features)


VIEWS.add("images", View("images", "", "default", _images_view))
VIEWS.add("pixel_values", View("pixel_values", "-pixel_values", "pixel_values", _pixel_values_view))
VIEWS.add("factors", View("factors", "-factors", "factors", _factors_view))
_VIEW_ORDER = ("images", "pixel_values", "factors")
_RESERVED = {VIEWS.get(v).alias for v in _VIEW_ORDER}


@contextlib.contextmanager
def _quiet_datasets():
    import datasets

    was = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was:
            datasets.enable_progress_bars()


def view_datasets(art: Artifact) -> dict[str, Any]:
    """view name -> ``datasets.Dataset`` for every view that applies to ``art``."""
    with _quiet_datasets():
        out = {v: VIEWS.get(v).build(art) for v in _VIEW_ORDER}
    return {k: v for k, v in out.items() if v is not None}


def png_images(art: Artifact) -> torch.Tensor:
    """The published ``image`` column, PNG-encoded then decoded again: (N, C, H, W) uint8."""
    import numpy as np

    with _quiet_datasets():
        ds = VIEWS.get("images").build(art)
    arrays = [np.asarray(im) for im in ds["image"]]  # decoded PIL images, (H, W) or (H, W, C)
    x = torch.from_numpy(np.stack(arrays))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def _parquet_bytes(ds) -> bytes:
    buf = io.BytesIO()
    with _quiet_datasets():
        ds.to_parquet(buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# names


def check_config_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"config name {name!r} is not usable: use letters, digits, '-', '_' or '.', starting with a letter "
            "or digit, at most 96 characters (e.g. 'lodm-ipc1-r2')"
        )
    if name in _RESERVED or name.endswith(tuple(VIEWS.get(v).suffix for v in _VIEW_ORDER if VIEWS.get(v).suffix)):
        raise ConfigError(
            f"config name {name!r} is reserved: {sorted(_RESERVED)} are the aliases of the default condensation and "
            "the suffixes '-pixel_values' / '-factors' name its other views; choose e.g. 'lodm-ipc1-r2'"
        )
    return name


# ---------------------------------------------------------------------------------------------
# the files of one condensation


def _view_record(name: str, view: str, ds, parquet: bytes) -> dict[str, Any]:
    return {
        "config_name": name + VIEWS.get(view).suffix,
        "path": f"{ROOT}/{name}/{view}/{SHARD}",
        "num_rows": len(ds),
        "num_bytes": int(ds.data.nbytes),
        "parquet_bytes": len(parquet),
        "features": ds.features.to_dict(),
    }


def metadata_record(art: Artifact, name: str, views: dict[str, dict]) -> dict[str, Any]:
    return {
        "layout_version": LAYOUT_VERSION,
        "config_name": name,
        "views": views,
        "artifact": art.config_record(),
        "results": art.results,
        "history": art.history,
    }


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, default=str) + "\n").encode()


def condensation_files(art: Artifact, name: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(repo path -> bytes, metadata record) for condensation ``name``; deterministic bytes."""
    check_config_name(name)
    files: dict[str, bytes] = {}
    views: dict[str, dict] = {}
    for view, ds in view_datasets(art).items():
        pq = _parquet_bytes(ds)
        rec = _view_record(name, view, ds, pq)
        files[rec["path"]] = pq
        views[view] = rec
    u8 = denormalize_to_uint8(art.images(), art.mean, art.std)  # (N, C, H, W)
    files[f"{ROOT}/{name}/{PREVIEW_FILE}"] = preview_grid(u8, art.labels, list(art.source.class_names))
    raw = _json_bytes(metadata_record(art, name, views))
    files[f"{ROOT}/{name}/{META_FILE}"] = raw
    return files, json.loads(raw)  # plain JSON types, exactly what a reader of the repo sees


# ---------------------------------------------------------------------------------------------
# card front matter: configs + dataset_info


def _managed(config: dict) -> bool:
    files = config.get("data_files") or []
    paths = [f.get("path") if isinstance(f, dict) else f for f in (files if isinstance(files, list) else [files])]
    flat = [p for x in paths for p in (x if isinstance(x, list) else [x])]
    return bool(flat) and all(isinstance(p, str) and p.startswith(ROOT + "/") for p in flat)


def _front_matter(records: dict[str, dict], default: str | None, card_data: dict[str, Any]) -> dict[str, Any]:
    """``card_data`` with hf_lodc's configs / dataset_info replaced, other configs kept."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    data = dict(card_data)
    old_configs = data.get("configs") or []
    keep = [c for c in old_configs if isinstance(c, dict) and not _managed(c)]
    managed_names = {c.get("config_name") for c in old_configs if isinstance(c, dict) and _managed(c)}
    infos = data.get("dataset_info") or []
    infos = [infos] if isinstance(infos, dict) else list(infos)
    keep_infos = [i for i in infos if isinstance(i, dict) and i.get("config_name", "default") not in managed_names]
    data["configs"] = keep or None
    data["dataset_info"] = keep_infos or None
    card = DatasetCardData(**{k: v for k, v in data.items() if v is not None})

    configs: dict[str, dict] = {}
    dinfos: dict[str, Any] = {}
    for name in sorted(records):
        for view, v in records[name]["views"].items():
            entry = {"data_files": [{"split": "train", "path": str(Path(v["path"]).parent.as_posix()) + "/train-*"}]}
            info = DatasetInfo(features=Features.from_dict(v["features"]), splits=SplitDict(),
                               download_size=v["parquet_bytes"], dataset_size=v["num_bytes"])
            info.splits.add(SplitInfo(name="train", num_bytes=v["num_bytes"], num_examples=v["num_rows"]))
            info.size_in_bytes = v["parquet_bytes"] + v["num_bytes"]
            names = [v["config_name"]] + ([VIEWS.get(view).alias] if name == default else [])
            for cfg_name in names:  # fresh copies: shared objects would be dumped as YAML anchors
                configs[cfg_name] = json.loads(json.dumps(entry))
                dinfos[cfg_name] = info
    MetadataConfigs(configs).to_dataset_card_data(card)
    DatasetInfosDict(dinfos).to_dataset_card_data(card)
    return card.to_dict()


# ---------------------------------------------------------------------------------------------
# errors


def _transport_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for mod in ("httpx2", "httpx"):
        with contextlib.suppress(Exception):
            errs.append(importlib.import_module(mod).TransportError)
    return tuple(errs)


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


@dataclass
class _Failure:
    kind: str  # "auth" | "forbidden" | "notfound" | "retry" | "fatal"
    status: int | None
    wait: float | None
    message: str


def _classify(exc: BaseException) -> _Failure | None:
    """Map a client exception to what to do; None when it is no Hub/network error (a bug: re-raise)."""
    from huggingface_hub.errors import HfHubHTTPError

    transport = _transport_errors()
    for e in _chain(exc):
        if isinstance(e, HfHubHTTPError) and getattr(e, "response", None) is not None:
            r = e.response
            status = r.status_code
            server_msg = " ".join((r.headers.get("X-Error-Message") or str(e)).split())[:400]
            wait = None
            with contextlib.suppress(TypeError, ValueError):
                wait = float(r.headers.get("Retry-After"))
            if status == 401:
                return _Failure("auth", status, None, server_msg)
            if status == 403:
                return _Failure("forbidden", status, None, server_msg)
            if status in (408, 409, 412, 429) or status >= 500:
                return _Failure("retry", status, wait, f"{status}: {server_msg}")
            if status == 404:
                return _Failure("notfound", status, None, server_msg)
            return _Failure("fatal", status, None, f"{status}: {server_msg}")
        if isinstance(e, transport):
            return _Failure("retry", None, None, f"connection failed ({type(e).__name__}: {e})")
    if isinstance(exc, ValueError) and "yaml" in str(exc).lower():  # card rejected by the validator
        return _Failure("fatal", 400, None, str(exc))
    return None


# ---------------------------------------------------------------------------------------------
# push


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    config_name: str
    commit_sha: str  # head of the repo after the push
    changed: bool  # this push moved the repo head; False: it already held exactly this (no commit made)
    default: str | None  # the condensation `load_dataset(repo)` gives
    configs: tuple[str, ...]  # configs of this condensation
    url: str


def _resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubAuthError(
            "no Hugging Face token found: set HF_TOKEN, run `hf auth login`, or pass token=...; "
            "nothing was pushed and the local artefact is untouched"
        )
    return token


def _read_remote(api, repo_id: str, sha: str, path: str) -> bytes | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        p = hf_hub_download(repo_id, path, repo_type="dataset", revision=sha, token=api.token, endpoint=api.endpoint)
    except EntryNotFoundError:
        return None
    return Path(p).read_bytes()


def read_card_data(text: str | None) -> tuple[dict[str, Any], str]:
    """(front matter mapping, body) of a README; safe YAML only."""
    if not text:
        return {}, ""
    from huggingface_hub import DatasetCard

    card = DatasetCard(text, ignore_metadata_errors=False)
    return card.data.to_dict(), card.text


def _default_condensation(card_data: dict, records: dict, name: str, set_default: bool | None) -> str | None:
    if set_default:
        return name
    for c in card_data.get("condensation") or []:
        if isinstance(c, dict) and c.get("default") and c.get("config_name") in records:
            return c["config_name"]
    foreign_default = any(isinstance(c, dict) and not _managed(c) and (c.get("config_name") == "default"
                          or c.get("default")) for c in card_data.get("configs") or [])
    if set_default is None and not foreign_default:
        return name
    return None


def _plan(api, repo_id: str, head: str, remote_files: list[str], name: str, files: dict[str, bytes],
          meta: dict, set_default: bool | None):
    """Operations of the commit that brings ``name`` into the repo at ``head``."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    readme = _read_remote(api, repo_id, head, "README.md") if "README.md" in remote_files else None
    try:
        card_data, body = read_card_data(readme.decode("utf-8", "replace") if readme else None)
    except (ValueError, yaml.YAMLError) as e:
        raise HubPushError(
            f"the README.md of {repo_id!r} has a front matter that is not valid (safe) YAML ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); fix or delete it, then push again. Nothing was pushed; the local "
            "artefact is untouched"
        ) from None
    records = {name: meta}
    for path in remote_files:
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == ROOT and parts[2] == META_FILE and parts[1] != name:
            raw = _read_remote(api, repo_id, head, path)
            with contextlib.suppress(ValueError, TypeError):
                other = json.loads(raw)
                if isinstance(other, dict) and other.get("layout_version") == LAYOUT_VERSION:
                    records[parts[1]] = other
    default = _default_condensation(card_data, records, name, set_default)
    front = _front_matter(records, default, card_data)
    card = build_card(records, default, repo_id, card_data=front, existing_body=body)
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b) for p, b in sorted(files.items())]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    stale = [p for p in remote_files if p.startswith(f"{ROOT}/{name}/") and p not in files]
    ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
    return ops, default


def push_artifact(
    art: Artifact,
    repo_id: str,
    *,
    private: bool = False,
    config_name: str | None = None,
    token: str | None = None,
    set_default: bool | None = None,
    commit_message: str | None = None,
    max_retries: int = 4,
    retry_wait: float = 2.0,
    log: Callable[[str], None] | None = print,
) -> PushResult:
    """Publish ``art`` as condensation ``config_name`` of dataset repo ``repo_id`` in one commit.

    ``set_default``: None = becomes the default condensation only if the repo has none yet;
    True = becomes it; False = never. Raises :class:`HubAuthError` (token missing/invalid, no
    write access) or :class:`HubPushError` (the remote is unchanged; the message says so).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    from ..pipeline import default_config_name

    name = check_config_name(config_name or default_config_name(art.method, art.budget.ipc, art.budget.rank))
    files, meta = condensation_files(art, name)  # all local work first: a bad artefact fails offline
    token = _resolve_token(token)
    api = HfApi(token=token)
    say = log or (lambda _m: None)
    created_here = False
    ensured = False
    first_head: str | None = None
    last: _Failure | None = None
    for attempt in range(1, max_retries + 2):
        try:
            if not ensured:
                try:
                    api.repo_info(repo_id, repo_type="dataset")
                except RepositoryNotFoundError:
                    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
                    created_here = True
                ensured = True
            info = api.repo_info(repo_id, repo_type="dataset", revision="main")
            head = info.sha
            first_head = first_head or head
            remote_files = [s.rfilename for s in info.siblings or []]
            ops, default = _plan(api, repo_id, head, remote_files, name, files, meta, set_default)
            verb = "update" if f"{ROOT}/{name}/{META_FILE}" in remote_files else "add"
            msg = commit_message or f"hf_lodc: {verb} {name}"
            commit = api.create_commit(repo_id, ops, commit_message=msg, repo_type="dataset", parent_commit=head)
            changed = commit.oid != first_head  # also True when an earlier attempt landed but its reply was lost
            say(f"[hf_lodc] {'pushed' if changed else 'already up to date:'} {name} -> "
                f"{api.endpoint}/datasets/{repo_id} ({commit.oid[:12]})")
            return PushResult(
                repo_id=repo_id, config_name=name, commit_sha=commit.oid, changed=changed, default=default,
                configs=tuple(v["config_name"] for v in meta["views"].values()),
                url=f"{api.endpoint}/datasets/{repo_id}",
            )
        except Exception as e:  # noqa: BLE001 - classified below, unknown errors re-raised
            failure = _classify(e)
            if failure is None:
                raise
            last = failure
            if failure.kind == "auth":
                raise HubAuthError(
                    f"the Hub at {api.endpoint} rejected the token (401: {failure.message}): it is invalid or expired. "
                    "Create a write token (Settings > Access Tokens), set HF_TOKEN or run `hf auth login`; "
                    "nothing was pushed and the local artefact is untouched"
                ) from None
            if failure.kind == "forbidden":
                raise HubAuthError(
                    f"user {_whoami(api)!r} may not write to dataset repo {repo_id!r} (403: {failure.message}). "
                    "Push to a repo in your own namespace or ask its owner for write access; nothing was pushed "
                    "and the local artefact is untouched"
                ) from None
            if failure.kind != "retry" or attempt > max_retries:
                break
            wait = failure.wait if failure.wait is not None else min(retry_wait * 2 ** (attempt - 1), 60.0)
            say(f"[hf_lodc] push attempt {attempt} failed ({failure.message}); retrying in {wait:.1f} s")
            time.sleep(wait)
    raise HubPushError(_failure_message(api, repo_id, name, attempt, last, first_head, created_here))


def _whoami(api) -> str:
    try:
        return api.whoami()["name"]
    except Exception:  # noqa: BLE001 - only used to word the message
        return "(unknown user)"


def _failure_message(api, repo_id, name, attempts, last, first_head, created_here) -> str:
    state = "the remote repo could not be checked"
    try:
        now = api.repo_info(repo_id, repo_type="dataset").sha
        if first_head is None or now == first_head:
            state = f"the remote repo is unchanged (still at {now[:12]})"
            if created_here and len(api.list_repo_commits(repo_id, repo_type="dataset")) <= 1:
                api.delete_repo(repo_id, repo_type="dataset")
                state = "the empty repo created for this push was deleted again"
        else:
            state = f"the remote head moved from {first_head[:12]} to {now[:12]} (another writer)"
    except Exception:  # noqa: BLE001 - the Hub may still be unreachable
        if created_here:
            state += f"; an empty repo {repo_id!r} may have been created"
    return (
        f"pushing {name!r} to {repo_id!r} failed after {attempts} attempt(s): {last.message if last else 'unknown'}. "
        f"Nothing was committed: {state}; the local artefact is untouched. Push again when the Hub is reachable."
    )


# ---------------------------------------------------------------------------------------------
# pull


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
            info = self.api.repo_info(repo_id, repo_type="dataset", revision=revision)
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
            f = _classify(e)
            if f is None:
                raise
            raise HubError(f"cannot read dataset repo {repo_id!r} from {self.api.endpoint}: {f.message}") from None
        self.sha = info.sha
        self.files = sorted(s.rfilename for s in info.siblings or [])
        self.where = repo_id

    def read(self, path: str) -> bytes | None:
        return _read_remote(self.api, self.repo_id, self.sha, path)

    def load(self, config: str):
        import datasets

        return datasets.load_dataset(self.repo_id, config, revision=self.sha, split="train", token=self.token)


class _LocalRepo:
    def __init__(self, path: Path):
        self.path = path
        self.sha = None
        self.files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        self.where = str(path)

    def read(self, path: str) -> bytes | None:
        p = self.path / path
        return p.read_bytes() if p.is_file() else None

    def load(self, config: str):
        import datasets

        return datasets.load_dataset(str(self.path), config, split="train")


def _condensation_names(files: list[str]) -> list[str]:
    out = []
    for path in files:
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == ROOT and parts[2] == META_FILE:
            out.append(parts[1])
    return sorted(out)


def _pick(config_name: str | None, names: list[str], card_data: dict, where: str) -> str:
    if config_name is None or config_name in _RESERVED:
        for c in card_data.get("condensation") or []:
            if isinstance(c, dict) and c.get("default") and c.get("config_name") in names:
                return c["config_name"]
        if len(names) == 1:
            return names[0]
        raise IncompatibleArtifactError(
            f"{where!r} holds several condensations {names} and its card names no default; pass config_name=..."
        )
    for suffix in ("-pixel_values", "-factors"):
        if config_name.endswith(suffix) and config_name[: -len(suffix)] in names:
            return config_name[: -len(suffix)]
    if config_name in names:
        return config_name
    raise IncompatibleArtifactError(
        f"{where!r} has no condensation {config_name!r} (no file {ROOT}/{config_name}/{META_FILE}); "
        f"available: {names}"
    )


def load_condensation(
    repo_or_dir: str, config_name: str | None = None, *, revision: str | None = None, token: str | None = None
) -> LoadedCondensation:
    """Read one condensation of a repo (Hub id, or a local folder with the same layout)."""
    p = Path(repo_or_dir).expanduser()
    repo = _LocalRepo(p) if p.is_dir() else _HubRepo(repo_or_dir, revision, token)
    readme = repo.read("README.md")
    try:
        card_data, _ = read_card_data(readme.decode("utf-8", "replace") if readme else None)
    except (ValueError, yaml.YAMLError) as e:  # a malformed card is an incompatible repo, not a crash
        raise IncompatibleArtifactError(
            f"{repo.where!r}: the README.md front matter is not valid (safe) YAML ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]})"
        ) from None
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
    state = _state_from_views(repo, meta, art_rec, meta_path)
    art = artifact_from_record(art_rec, state, meta.get("results") or {}, meta.get("history") or [],
                               where=f"{repo.where}:{meta_path}")
    return LoadedCondensation(artifact=art, name=name, where=repo.where, revision_sha=repo.sha, meta=meta,
                              card_data=card_data)


def _state_from_views(repo, meta: dict, art_rec: dict, meta_path: str) -> dict[str, torch.Tensor]:
    """Synset state_dict from the exact view: factors (low-rank) or pixel_values (pixel)."""
    import numpy as np

    kind = art_rec.get("parameterisation")
    view, columns = ("factors", ("A", "B")) if kind == "lowrank" else ("pixel_values", ("pixel_values",))
    if view not in meta["views"]:
        raise IncompatibleArtifactError(
            f"{repo.where!r}: {meta_path} lists no {view!r} view, which a {kind!r} set needs to be rebuilt"
        )
    cfg = meta["views"][view].get("config_name")
    try:
        with _quiet_datasets():
            ds = repo.load(cfg).with_format("numpy")
    except ValueError as e:
        raise IncompatibleArtifactError(
            f"{repo.where!r}: the config {cfg!r} ({view}) cannot be loaded ({str(e).splitlines()[0]}); "
            "the card's `configs:` must list it"
        ) from None
    missing = [c for c in (*columns, "label") if c not in ds.column_names]
    if missing:
        raise IncompatibleArtifactError(f"{repo.where!r}: config {cfg!r} lacks the column(s) {missing}")
    batch = ds[:]  # column -> numpy array of all rows
    tensors = {c: torch.from_numpy(np.asarray(batch[c], dtype=np.float32)) for c in columns}  # (N, ...)
    labels = torch.from_numpy(np.asarray(batch["label"], dtype=np.int64))
    state = {"labels": labels}
    if kind == "lowrank":
        state.update(A=tensors["A"], B=tensors["B"])
    else:
        state["images"] = tensors["pixel_values"]
    return state
