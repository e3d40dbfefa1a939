"""Publish one artefact as a condensation of a Hub dataset repo, in one commit.

A push is ONE ``HfApi.create_commit`` (the view parquet files, preview, record, card) whose parent is
the head read when the push started: it lands whole or not at all. Everything is built locally first
(``repo_files``) and byte-deterministic, so re-pushing the same artefact finds nothing changed and makes no commit.
Transient failures (429 with Retry-After, 5xx, dropped connections, a concurrent commit: 412) are
retried with backoff (``hub_http``) - safe, because a retry re-reads the head and an already-landed
commit shows up as "nothing to change"; auth failures (401/403) are not retried. Nothing local is
ever written.

The default condensation (what ``load_dataset(repo)`` gives, through the views' aliases) is the
first one pushed to the repo, unless a later push passes ``set_default=True``. Pushing ``N`` again
replaces only ``N``'s files and record.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Callable

import yaml

from ..errors import HubPushError
from .artifact import Artifact
from .card import build_card, front_matter, is_managed, read_card_data
from .hub_http import GaveUp, read_remote, refusal, resolve_token, with_retries
from .repo_files import condensation_files, folder_condensation
from .views import LAYOUT_VERSION, META_FILE, ROOT, check_config_name, default_config_name

__all__ = ["PushResult", "push_artifact", "push_files", "push_folder"]


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    config_name: str
    commit_sha: str  # head of the repo after the push
    changed: bool  # this push moved the repo head; False: it already held exactly this (no commit made)
    default: str | None  # the condensation `load_dataset(repo)` gives
    configs: tuple[str, ...]  # configs of this condensation
    url: str


# ---------------------------------------------------------------------------------------------
# the commit


def _default_condensation(card_data: dict, records: dict, name: str, set_default: bool | None) -> str | None:
    if set_default:
        return name
    for c in card_data.get("condensation") or []:
        if isinstance(c, dict) and c.get("default") and c.get("config_name") in records:
            return c["config_name"]
    foreign_default = any(isinstance(c, dict) and not is_managed(c) and (c.get("config_name") == "default"
                          or c.get("default")) for c in card_data.get("configs") or [])
    if set_default is None and not foreign_default:
        return name
    return None


def _plan(api, repo_id: str, head: str, remote_files: list[str], name: str, files: dict[str, bytes],
          meta: dict, set_default: bool | None):
    """Operations of the commit that brings ``name`` into the repo at ``head``."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    readme = read_remote(api, repo_id, head, "README.md") if "README.md" in remote_files else None
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
            raw = read_remote(api, repo_id, head, path)
            with contextlib.suppress(ValueError, TypeError):
                other = json.loads(raw)
                if isinstance(other, dict) and other.get("layout_version") == LAYOUT_VERSION:
                    records[parts[1]] = other
    default = _default_condensation(card_data, records, name, set_default)
    front = front_matter(records, default, card_data)
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
    config_name: str | None = None,
    test=None,
    models: list[dict] | None = None,
    **options: Any,
) -> PushResult:
    """Publish ``art`` as condensation ``config_name`` of dataset repo ``repo_id`` in one commit.

    ``test``: the real test split (``LabeledImages``, uint8) the set was evaluated on, published as the
    ``validation`` and ``test`` splits of the ``images`` and ``pixel_values`` configs (one copy of the
    files, both split names); None: the repo has only ``train``. ``models``: model repos trained on the
    set (``export.model_repo``), linked from the card.

    ``options``: as :func:`push_files` (``private``, ``token``, ``set_default``, ``commit_message``,
    ``max_retries``, ``retry_wait``, ``log``).
    """
    name = check_config_name(config_name or default_config_name(art.method, art.budget.ipc, art.budget.rank))
    files, meta = condensation_files(art, name, test, models)  # all local work first: a bad artefact fails offline
    return push_files(files, meta, name, repo_id, **options)


def push_folder(path, repo_id: str, **options: Any) -> PushResult:
    """Upload the condensation of a local artefact folder (``save_to_disk`` / ``--output-dir``) as it is:
    its ``condensations/`` files unchanged (the card is re-rendered with the repo's other condensations);
    options as :func:`push_artifact`."""
    name, files, meta = folder_condensation(path)
    return push_files(files, meta, name, repo_id, **options)


def push_files(
    files: dict[str, bytes],
    meta: dict[str, Any],
    name: str,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    set_default: bool | None = None,
    commit_message: str | None = None,
    max_retries: int = 4,
    retry_wait: float = 2.0,
    log: Callable[[str], None] | None = print,
) -> PushResult:
    """Commit the files of condensation ``name`` (record ``meta``) to ``repo_id`` with the card, in one commit.

    ``set_default``: None = becomes the default condensation only if the repo has none yet;
    True = becomes it; False = never. Raises :class:`HubAuthError` (token missing/invalid, no
    write access) or :class:`HubPushError` (the remote is unchanged; the message says so).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(token=resolve_token(token))
    say = log or (lambda _m: None)
    state: dict[str, Any] = {"created_here": False, "ensured": False, "first_head": None}

    def attempt(_n: int) -> PushResult:
        if not state["ensured"]:
            try:
                api.repo_info(repo_id, repo_type="dataset")
            except RepositoryNotFoundError:
                api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
                state["created_here"] = True
            state["ensured"] = True
        info = api.repo_info(repo_id, repo_type="dataset", revision="main")
        head = info.sha
        state["first_head"] = state["first_head"] or head
        remote_files = [s.rfilename for s in info.siblings or []]
        ops, default = _plan(api, repo_id, head, remote_files, name, files, meta, set_default)
        verb = "update" if f"{ROOT}/{name}/{META_FILE}" in remote_files else "add"
        msg = commit_message or f"hf_lodc: {verb} {name}"
        commit = api.create_commit(repo_id, ops, commit_message=msg, repo_type="dataset", parent_commit=head)
        changed = commit.oid != state["first_head"]  # also True when an earlier attempt landed but its reply was lost
        say(f"[hf_lodc] {'pushed' if changed else 'already up to date:'} {name} -> "
            f"{api.endpoint}/datasets/{repo_id} ({commit.oid[:12]})")
        return PushResult(
            repo_id=repo_id, config_name=name, commit_sha=commit.oid, changed=changed, default=default,
            configs=tuple(v["config_name"] for v in meta["views"].values()),
            url=f"{api.endpoint}/datasets/{repo_id}",
        )

    try:
        return with_retries(attempt, max_retries=max_retries, retry_wait=retry_wait, say=say)
    except GaveUp as e:
        failure = e.failure
        refused = refusal(failure, api, repo_id, "dataset", "nothing was pushed and the local artefact is untouched")
        if refused is not None:
            raise refused from None
        raise HubPushError(_failure_message(api, repo_id, name, e.attempts, failure, state["first_head"],
                                            state["created_here"])) from None


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
