"""Leaderboard rows from evaluations, hf_lodc's own sets and anyone's, in one table on the Hub.

An hf_lodc set (a :class:`~hf_lodc.CondensedDataset` after ``evaluate``) and a foreign set (a
:class:`~hf_lodc.foreign.ForeignEvalReport`) give rows of the same columns
(``export/leaderboard_repo.COLUMNS``): one per evaluation model. :func:`push_to_leaderboard` appends
them to a Hub dataset repo in one commit (``export/leaderboard_repo.append_rows``).

The method is what the user states (``method=``); otherwise it is inferred from the layout, and the
``method_from`` column says which.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError
from .export.leaderboard_repo import COLUMNS, LeaderboardResult, append_rows
from .version import __version__

__all__ = ["leaderboard_rows", "push_to_leaderboard", "protocol_summary", "infer_method"]


def protocol_summary(model: str, protocol: dict[str, Any]) -> str:
    """One line: model, optimiser and lr, batch, schedule, augmentation, input space and loss, test data."""
    p = protocol or {}
    parts = [model, f"{p.get('optimizer', '?')} lr {p.get('lr', '?')}", f"batch {p.get('batch_size', '?')}",
             str(p.get("lr_schedule", "")), str(p.get("augmentation", "")), str(p.get("accuracy", ""))]
    for key in ("input", "loss"):
        if p.get(key):
            parts.append(f"{key} {p[key]}")
    if p.get("test_data"):
        parts.append(f"test {p['test_data']}")
    return "; ".join(x for x in parts if x)


def infer_method(source: str, layout: str, labels_kind: str) -> str:
    """The method a layout implies (the code base's own file structure), or ``unknown (...)``."""
    name = Path(source).name
    m = re.match(r"res_([A-Za-z0-9]+)_", name)
    if layout.startswith("DC/DSA/DM results"):
        return m.group(1) if m else "DC/DSA/DM"
    if name == "images_best.pt":
        return "MTT-family (soft labels, e.g. DATM)" if labels_kind.startswith("soft") else "MTT-family"
    if "IDC" in layout or name == "data.pt":
        return "IDC"
    if labels_kind.startswith("teacher"):
        return "teacher-relabelled (SRe2L/RDED style)"
    return f"unknown ({layout})"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _scores_of(model: str, scores: dict, label_robust: dict) -> tuple[float | None, float | None, str | None]:
    ars = scores.get(model, {})
    lrs = label_robust.get("models", {}).get(model, {})
    packed = {}
    if ars:
        packed["ars"] = ars
    if lrs:
        packed["lrs"] = lrs
        packed["lrs_inputs"] = {k: label_robust[k] for k in ("real_hard_from", "syn_hard_from", "random_soft_from")}
        packed["lrs_inputs"]["real_hard"] = label_robust["real_hard"].get(model)
    return (ars.get("same_bytes", {}).get("ars"), lrs.get("same_bytes", {}).get("lrs"),
            json.dumps(packed, sort_keys=True) if packed else None)


def _foreign_rows(report, method: str | None, date: str) -> list[dict[str, Any]]:
    labels = ("teacher" if report.labels_kind.startswith("teacher") else
              "soft" if report.labels_kind.startswith("soft") else "hard")
    inferred = infer_method(report.source, report.layout, report.labels_kind)
    rows = []
    for model, rec in report.evaluations.items():
        rel = report.relative.get(model) or {}
        ars, lrs, scores = _scores_of(model, report.scores, report.label_robust)
        rows.append({
            "source": report.source, "dataset": report.dataset, "method": method or inferred,
            "method_from": "given" if method else f"inferred from the layout ({report.layout})",
            "layout": report.layout, "num_images": int(report.num_images), "storage_bytes": int(report.storage_bytes),
            "labels": labels, "labels_detail": report.labels_kind, "model": model,
            "protocol": protocol_summary(model, rec.get("protocol", {})),
            "accuracy_mean": float(rec["accuracy_mean"]), "accuracy_std": float(rec["accuracy_std"]),
            "runs": int(rec["runs"]), "epochs": int(rec["epochs"]),
            "random_accuracy": rel.get("random"), "improvement_pp": rel.get("improvement_pp"),
            "ars": ars, "lrs": lrs, "scores": scores, "hf_lodc_version": __version__, "date": date,
        })
    return rows


def _own_rows(cd, method: str | None, date: str) -> list[dict[str, Any]]:
    res, cfg = cd.results or {}, cd.config or {}
    evals = res.get("evaluations") or {}
    storage = (res.get("storage") or {}).get("stored_bytes")
    inferred = str(cfg.get("method") or res.get("method") or "unknown")
    layout = f"hf_lodc artefact ({cfg.get('parameterisation', 'pixel')}, {cd.name})"
    rows = []
    for model, rec in evals.items():
        rows.append({
            "source": str(getattr(cd, "source_id", None) or cd.name), "dataset": str(cd.data_config.dataset),
            "method": method or inferred, "method_from": "given" if method else "inferred from the artefact's record",
            "layout": layout, "num_images": int(len(cd.labels)),
            "storage_bytes": int(storage) if storage is not None else None, "labels": "hard",
            "labels_detail": "hard (class ids)", "model": model,
            "protocol": protocol_summary(model, rec.get("protocol", {})),
            "accuracy_mean": float(rec["accuracy_mean"]), "accuracy_std": float(rec["accuracy_std"]),
            "runs": int(rec["runs"]), "epochs": int(rec["epochs"]), "random_accuracy": None, "improvement_pp": None,
            "ars": None, "lrs": None, "scores": None, "hf_lodc_version": __version__, "date": date,
        })
    return rows


def leaderboard_rows(evaluated, *, method: str | None = None, source: str | None = None,
                     date: str | None = None) -> list[dict[str, Any]]:
    """The rows of one evaluated set: a ``ForeignEvalReport`` or an evaluated ``CondensedDataset``.

    ``method``: the method's name as you state it (default: inferred from the layout or the artefact's
    record). ``source``: what the ``source`` column says (default: the report's source, or the set's name).
    """
    from .foreign.report import ForeignEvalReport

    date = date or _now()
    if isinstance(evaluated, ForeignEvalReport):
        rows = _foreign_rows(evaluated, method, date)
    elif hasattr(evaluated, "results") and hasattr(evaluated, "config"):
        rows = _own_rows(evaluated, method, date)
    else:
        raise ConfigError(f"leaderboard rows come from a ForeignEvalReport or an evaluated CondensedDataset, got "
                          f"{type(evaluated).__name__}")
    if not rows:
        raise ConfigError("the set has no evaluation records: evaluate it first (runs > 0) to put it on a leaderboard")
    if source is not None:
        for r in rows:
            r["source"] = source
    assert all(set(r) == set(COLUMNS) for r in rows)  # the repo module checks types; the columns are ours
    return rows


def push_to_leaderboard(repo_id: str, evaluated: Iterable | Any, *, method: str | None = None,
                        source: str | None = None, token: str | None = None, private: bool = False,
                        **options: Any) -> LeaderboardResult:
    """Append the rows of one or several evaluated sets to the leaderboard dataset ``repo_id`` in one commit
    (the repo is created if missing; ``datasets.load_dataset(repo_id)`` reads it). ``options``:
    ``max_retries``, ``retry_wait``, ``log`` (``export/leaderboard_repo.append_rows``)."""
    items = list(evaluated) if isinstance(evaluated, (list, tuple)) else [evaluated]
    rows = [r for item in items for r in leaderboard_rows(item, method=method, source=source)]
    return append_rows(repo_id, rows, token=token, private=private, **options)
