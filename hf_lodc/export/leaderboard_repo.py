"""A leaderboard of condensed sets as a Hub dataset repo: one JSON-lines file and a card naming it.

The repo holds ``data/leaderboard.jsonl`` (one row per evaluated set and model, the columns of
:data:`COLUMNS`, every value a scalar so ``datasets`` infers one schema for all rows) and a README
whose ``configs`` point the default config at that file, so ``datasets.load_dataset(repo)`` reads it
with no code of ours.

Appending is one commit: read the rows file at the head, add the new rows, commit the file (and the
card) with ``parent_commit=head``. A concurrent writer moves the head and the Hub answers 412; the
attempt is retried from a fresh read (``hub_http.with_retries``, bounded), so neither writer's rows
are lost and a failed append leaves the repo as it was.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, HubPushError
from .hub_http import GaveUp, read_remote, refusal, resolve_token, with_retries

__all__ = ["COLUMNS", "LEADERBOARD_FILE", "LeaderboardResult", "append_rows", "leaderboard_card"]

LEADERBOARD_FILE = "data/leaderboard.jsonl"
_TABLE_START, _TABLE_END = "<!-- hf_lodc:leaderboard-table -->", "<!-- /hf_lodc:leaderboard-table -->"

# column -> (python types allowed besides None, what it holds); the card's column list is rendered from this
COLUMNS: dict[str, tuple[tuple[type, ...], str]] = {
    "source": ((str,), "the evaluated set: Hub repo id, local path or file name"),
    "dataset": ((str,), "the real dataset it was condensed from and tested on"),
    "method": ((str,), "the method, as the user stated it or as the layout implies"),
    "method_from": ((str,), "'given' or 'inferred from ...'"),
    "layout": ((str,), "how the set was read (hf_lodc artefact, DC res_*.pt, MTT images_best.pt, ...)"),
    "num_images": ((int,), "images the set trains on (after decoding)"),
    "storage_bytes": ((int,), "the set's storage in bytes (soft labels included when it has them)"),
    "labels": ((str,), "hard | soft | teacher"),
    "labels_detail": ((str,), "the label protocol in words"),
    "model": ((str,), "evaluation model"),
    "protocol": ((str,), "the evaluation protocol in one line"),
    "accuracy_mean": ((float,), "mean last-epoch test accuracy over the runs, percent"),
    "accuracy_std": ((float,), "its standard deviation, percent"),
    "runs": ((int,), "networks trained"),
    "epochs": ((int,), "epochs each"),
    "random_accuracy": ((float,), "random real images at the same storage, same protocol, percent"),
    "improvement_pp": ((float,), "accuracy_mean - random_accuracy, percentage points"),
    "ars": ((float,), "DD-Ranking's Augmentation-Robust Score against the same-bytes random baseline"),
    "lrs": ((float,), "DD-Ranking's Label-Robust Score against the same-bytes random baseline"),
    "scores": ((str,), "every score and its inputs, as JSON (both random baselines)"),
    "hf_lodc_version": ((str,), "the hf_lodc version that evaluated it"),
    "date": ((str,), "UTC date and time of the evaluation (ISO 8601; loads as a timestamp)"),
}


@dataclass
class LeaderboardResult:
    repo_id: str
    commit_sha: str
    rows_added: int
    rows_total: int
    url: str


def check_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row has exactly :data:`COLUMNS`, each a scalar of its column's type or None (floats finite);
    checked before anything is sent."""
    if not rows:
        raise ConfigError("no leaderboard rows to append (was anything evaluated?)")
    out = []
    for i, row in enumerate(rows):
        extra, missing = set(row) - set(COLUMNS), set(COLUMNS) - set(row)
        if extra or missing:
            raise ConfigError(f"leaderboard row {i}: unknown column(s) {sorted(extra)}, missing {sorted(missing)}")
        clean = {}
        for col, (types, _) in COLUMNS.items():
            v = row[col]
            if isinstance(v, int) and not isinstance(v, bool) and float in types:
                v = float(v)
            if v is not None and (isinstance(v, bool) or not isinstance(v, types)):
                raise ConfigError(f"leaderboard row {i}: {col} must be {types[0].__name__} or None, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[col] = v
        out.append(clean)
    return out


def _parse(text: bytes | None) -> list[dict[str, Any]]:
    if not text:
        return []
    rows = []
    for n, line in enumerate(text.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise HubPushError(f"{LEADERBOARD_FILE} line {n} is not JSON ({e}); nothing was appended") from None
            rows.append({c: row.get(c) for c in COLUMNS} | {k: v for k, v in row.items() if k not in COLUMNS})
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    ranked = sorted(rows, key=lambda r: (r["dataset"] or "", r["storage_bytes"] or 0, -(r["accuracy_mean"] or 0)))
    lines = ["| dataset | method | storage (bytes) | labels | model | accuracy (%) | random same bytes (%) | ARS | LRS "
             "| runs x epochs | date |", "|---|---|---:|---|---|---:|---:|---:|---:|---|---|"]
    for r in ranked:
        lines.append(f"| {r['dataset']} | {r['method']} | {f(r['storage_bytes'], ',')} | {r['labels']} | {r['model']} "
                     f"| {f(r['accuracy_mean'], '.2f')} ± {f(r['accuracy_std'], '.2f')} | {f(r['random_accuracy'], '.2f')} "
                     f"| {f(r['ars'], '.4f')} | {f(r['lrs'], '.4f')} | {r['runs']} x {r['epochs']} | "
                     f"{(r['date'] or '')[:10]} |")
    return "\n".join(lines)


def leaderboard_card(rows: list[dict[str, Any]], existing: str | None = None) -> str:
    """The README: a new card, or ``existing`` with only the table between the markers replaced (a card
    edited by hand without the markers is left as it is)."""
    table = f"{_TABLE_START}\n{_table(rows)}\n{_TABLE_END}"
    if existing is not None:
        if _TABLE_START in existing and _TABLE_END in existing:
            head, rest = existing.split(_TABLE_START, 1)
            return head + table + rest.split(_TABLE_END, 1)[1]
        return existing
    cols = "\n".join(f"- `{c}`: {doc}" for c, (_, doc) in COLUMNS.items())
    return (f"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: {LEADERBOARD_FILE}\n"
            f"tags:\n- dataset-condensation\n- leaderboard\n- hf_lodc\n---\n\n# Condensed-set leaderboard\n\n"
            f"Condensed sets evaluated by hf_lodc (`recipes/evaluate.py ... --leaderboard REPO`), "
            f"each against random real images at the same storage under the same protocol.\n\n"
            f"```python\nfrom datasets import load_dataset\nrows = load_dataset(\"<this repo>\", split=\"train\")\n```\n\n"
            f"{table}\n\n## Columns\n\n{cols}\n")


def append_rows(repo_id: str, rows: list[dict[str, Any]], *, token: str | None = None, private: bool = False,
                max_retries: int = 4, retry_wait: float = 2.0,
                log: Callable[[str], None] | None = print) -> LeaderboardResult:
    """Append ``rows`` to the leaderboard in dataset repo ``repo_id`` (created if missing) in one commit.

    Raises ConfigError (bad repo id or rows, before any request), HubAuthError (no token, rejected token,
    no write access) or HubPushError (the Hub unreachable or the rows file unreadable: nothing appended;
    a repo this call created is deleted again, so no empty leaderboard is left behind)."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    from ..preflight import check_repo_id

    check_repo_id(repo_id, "--leaderboard")
    rows = check_rows(rows)
    api = HfApi(token=resolve_token(token))
    say = log or (lambda _m: None)
    state: dict[str, Any] = {"ensured": False, "created_here": False}

    def attempt(_n: int) -> LeaderboardResult:
        if not state["ensured"]:
            try:
                api.repo_info(repo_id, repo_type="dataset")
            except RepositoryNotFoundError:
                api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
                state["created_here"] = True
            state["ensured"] = True
        head = api.repo_info(repo_id, repo_type="dataset", revision="main").sha
        current = _parse(read_remote(api, repo_id, head, LEADERBOARD_FILE))
        readme = read_remote(api, repo_id, head, "README.md")
        merged = current + rows
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged).encode()
        card = leaderboard_card(merged, readme.decode() if readme is not None else None).encode()
        ops = [CommitOperationAdd(LEADERBOARD_FILE, body)]
        if readme is None or card != readme:
            ops.append(CommitOperationAdd("README.md", card))
        msg = f"hf_lodc: leaderboard +{len(rows)} row(s) ({', '.join(sorted({r['method'] for r in rows}))})"
        commit = api.create_commit(repo_id, ops, commit_message=msg, repo_type="dataset", parent_commit=head)
        say(f"[hf_lodc] leaderboard {api.endpoint}/datasets/{repo_id}: +{len(rows)} row(s), {len(merged)} in all "
            f"({commit.oid[:12]})")
        return LeaderboardResult(repo_id, commit.oid, len(rows), len(merged), f"{api.endpoint}/datasets/{repo_id}")

    try:
        return with_retries(attempt, max_retries=max_retries, retry_wait=retry_wait, say=say)
    except GaveUp as e:
        f = e.failure
        removed = state["created_here"] and _remove_if_empty(api, repo_id)
        refused = refusal(f, api, repo_id, "dataset", "nothing was appended")
        if refused is not None:
            raise refused from None
        raise HubPushError(f"appending to the leaderboard {repo_id!r} failed after {e.attempts} attempt(s): "
                           f"{f.message}; nothing was appended (each attempt is one commit, made or not)"
                           f"{'; the empty repo created for it was deleted again' if removed else ''}. Run the "
                           f"evaluation's --leaderboard again when the Hub is reachable") from None


def _remove_if_empty(api, repo_id: str) -> bool:
    """Delete the leaderboard repo this append created when it holds no commit but the Hub's initial one
    (every append failed): an empty repo would load as no dataset at all. False when it cannot be checked."""
    try:
        if len(api.list_repo_commits(repo_id, repo_type="dataset")) > 1:
            return False
        api.delete_repo(repo_id, repo_type="dataset")
        return True
    except Exception:  # noqa: BLE001 - the Hub may still be unreachable
        return False
