"""The files of a condensation in a Hub dataset repo, built locally as deterministic bytes.

One condensation ``<name>`` is the parquet file of each view (``views.VIEWS``) under
``condensations/<name>/<view>/``, a preview grid and the metadata record beside them, and, once per repo,
the real test split for the views that carry one. :func:`repo_folder_files` adds the card: every file a
fresh push to an empty repo commits, which is also what a local artefact folder holds (``save.py``), so
``push.py`` (the commit) and ``save.py`` (the folder) both build on this module.
"""

from __future__ import annotations

import io
import json
from typing import Any

from ..data.types import denormalize_to_uint8
from ..errors import HubPushError
from .artifact import Artifact
from .card import build_card, front_matter
from .preview import preview_grid
from .views import (EVAL_SHARD, EVAL_SPLITS, LAYOUT_VERSION, META_FILE, PREVIEW_FILE, ROOT, SHARD, VIEWS,
                    check_config_name, default_config_name, eval_split_datasets, eval_split_folder, quiet_datasets,
                    view_datasets)

__all__ = ["condensation_files", "metadata_record", "repo_folder_files", "folder_condensation", "eval_split_files"]


def _parquet_bytes(ds) -> bytes:
    buf = io.BytesIO()
    with quiet_datasets():
        ds.to_parquet(buf)
    return buf.getvalue()


def _view_record(name: str, view: str, ds, parquet: bytes) -> dict[str, Any]:
    return {
        "config_name": name + VIEWS.get(view).suffix,
        "path": f"{ROOT}/{name}/{view}/{SHARD}",
        "num_rows": len(ds),
        "num_bytes": int(ds.data.nbytes),
        "parquet_bytes": len(parquet),
        "features": ds.features.to_dict(),
    }


def metadata_record(art: Artifact, name: str, views: dict[str, dict], eval_split: dict | None = None,
                    models: list[dict] | None = None) -> dict[str, Any]:
    rec = {
        "layout_version": LAYOUT_VERSION,
        "config_name": name,
        "views": views,
        "artifact": art.config_record(),
        "results": art.results,
        "history": art.history,
    }
    if eval_split:
        rec["eval_split"] = eval_split
    if models:
        rec["models"] = models
    return rec


def eval_split_files(art: Artifact, test) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(repo path -> bytes, record) of the real test split ``test`` (LabeledImages, uint8) stored once per
    repo for the views that carry one; the record names the source, its revision and the rows."""
    src = art.source.to_dict()
    folder = eval_split_folder(src, len(test))
    files: dict[str, bytes] = {}
    views: dict[str, dict] = {}
    for view, ds in eval_split_datasets(test, art).items():
        pq = _parquet_bytes(ds)
        path = f"{folder}/{view}/{EVAL_SHARD}"
        files[path] = pq
        views[view] = {"path": path, "num_rows": len(ds), "num_bytes": int(ds.data.nbytes), "parquet_bytes": len(pq)}
    data = art.results.get("evaluation_data") or {}
    record = {
        "splits": list(EVAL_SPLITS),
        "source": src.get("hub_id") or src.get("dataset"),
        "config_name": src.get("config_name"),
        "revision": src.get("revision"),
        "revision_sha": src.get("revision_sha"),
        "split": src.get("eval_split"),
        "rows": len(test),
        "max_per_class": data.get("max_per_class") if data.get("rows") == len(test) else None,
        "views": views,
    }
    return files, record


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, default=str) + "\n").encode()


def condensation_files(art: Artifact, name: str, test=None, models: list[dict] | None = None
                       ) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(repo path -> bytes, metadata record) for condensation ``name``; deterministic bytes. ``test``: the
    real test split (LabeledImages) to publish as the ``validation`` / ``test`` splits; ``models``: the
    model repos trained on this set (entries for the card)."""
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
    eval_rec = None
    if test is not None and len(test):
        eval_files, eval_rec = eval_split_files(art, test)
        files.update(eval_files)
    raw = _json_bytes(metadata_record(art, name, views, eval_rec, models))
    files[f"{ROOT}/{name}/{META_FILE}"] = raw
    return files, json.loads(raw)  # plain JSON types, exactly what a reader of the repo sees


def repo_folder_files(art: Artifact, *, repo_id: str, config_name: str | None = None, test=None,
                      models: list[dict] | None = None) -> dict[str, bytes]:
    """Every file of a one-condensation repo holding ``art`` (the condensation's files and the card), as
    a fresh push to an empty repo would commit them: what a local artefact folder holds."""
    name = check_config_name(config_name or default_config_name(art.method, art.budget.ipc, art.budget.rank))
    files, meta = condensation_files(art, name, test, models)
    front = front_matter({name: meta}, name, {})
    files["README.md"] = build_card({name: meta}, name, repo_id, card_data=front).encode("utf-8")
    return files


def folder_condensation(path) -> tuple[str, dict[str, bytes], dict[str, Any]]:
    """(name, repo path -> bytes, record) of the one condensation in a local repo folder (``save_to_disk``)."""
    from pathlib import Path

    root = Path(path)
    metas = sorted(root.glob(f"{ROOT}/*/{META_FILE}"))
    metas = [m for m in metas if not m.parent.name.startswith("_")]
    if len(metas) != 1:
        raise HubPushError(f"{str(root)!r} holds {len(metas)} condensations (expected one under {ROOT}/<name>/); "
                           "push a folder written by save_to_disk / --output-dir")
    name = metas[0].parent.name
    meta = json.loads(metas[0].read_bytes())
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / ROOT / name).rglob("*"))
             if p.is_file()}
    for view in (meta.get("eval_split") or {}).get("views", {}).values():
        files[view["path"]] = (root / view["path"]).read_bytes()
    return name, files, meta
