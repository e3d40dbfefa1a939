"""The front-matter keys hf_lodc owns in a dataset card, computed from the condensations' records.

What the Hub and its search read (license, tags, sizes, sources) and hf_lodc's own documented YAML
(``condensation``, ``results``): a dataset card has no standard accuracy field, so the evaluation
records become these entries, and the body (``card_body``) renders its tables from the same entries.

Keys written here by :func:`card_metadata` (``configs`` / ``dataset_info`` are ``card.front_matter``'s)::

    license, source_datasets, task_categories, tags (pretty_name, if absent: card.build_card)
    condensation:   one entry per condensation: config_name, default (bool), configs (view ->
                    config name), method, parameterisation, rank, pixel_budget_ipc,
                    images_per_class, num_classes, image_shape, iterations, init, seed, lr,
                    batch_real, augmentation, normalisation {mean, std}, storage {stored_bytes,
                    pixel_budget_bytes, stored_fraction, images_as_pixels_bytes}, source {dataset,
                    on_hub, config_name, revision, revision_sha (null: read from a local copy or mirror),
                    train_split, eval_split, num_train}, eval_split {splits, source, config_name, split,
                    revision, revision_sha, rows, max_per_class, configs} (null: train only), models
                    [{model, repo_id, run, runs, accuracy}], wall_time_s, hardware, versions
    size_categories: the bucket of train + evaluation rows
    results:        one entry per (condensation, evaluation model, data view): config_name, model,
                    data ("pixel_values": the float32 tensors, "images": the uint8 PNGs),
                    accuracy_mean, accuracy_std, runs, epochs, accuracies, protocol (settings, test
                    data, seed)
"""

from __future__ import annotations

from typing import Any

from .views import evaluated_views

__all__ = ["card_metadata", "condensation_entry", "result_entries", "size_category"]


def condensation_entry(name: str, meta: dict[str, Any], is_default: bool) -> dict[str, Any]:
    art = meta["artifact"]
    cond = art.get("condense", {})
    budget = art.get("budget", {})
    src = art.get("source", {})
    env = art.get("environment", {})
    res = meta.get("results", {})
    storage = res.get("storage", {})
    stored, pixel = storage.get("stored_bytes"), storage.get("budget_bytes")
    shape = list(art.get("image_shape", []))
    per_class = art.get("decoded_per_class") or art.get("images_per_class") or 0  # decoded training images
    n_images = per_class * (art.get("num_classes") or 0)
    as_pixels = n_images * _prod(shape) * 4 if shape else None  # the same images stored as float32 pixels
    return {
        "config_name": name,
        "default": bool(is_default),
        "configs": {view: v["config_name"] for view, v in meta["views"].items()},
        "method": art.get("method"),
        "parameterisation": art.get("parameterisation"),
        "rank": art.get("rank"),
        "pixel_budget_ipc": budget.get("ipc"),
        "images_per_class": art.get("images_per_class"),
        "decoded_per_class": art.get("decoded_per_class") or art.get("images_per_class"),
        "param_options": art.get("param_options") or {},
        "shared_numel": art.get("shared_numel") or 0,
        "shared_in_budget": budget.get("shared_in_budget", True),
        "how_to_decode": art.get("how_to_decode"),
        "num_classes": art.get("num_classes"),
        "image_shape": list(art.get("image_shape", [])),
        "iterations": cond.get("iterations"),
        "init": cond.get("init"),
        "seed": cond.get("seed"),
        "lr": cond.get("lr"),
        "batch_real": cond.get("batch_real"),
        "augmentation": cond.get("dsa_strategy") if _uses_dsa(art.get("method")) else "none",
        "normalisation": {"mean": list(src.get("mean", [])), "std": list(src.get("std", []))},
        "storage": {
            "stored_bytes": stored,
            "pixel_budget_bytes": pixel,
            "stored_fraction": round(stored / pixel, 4) if stored and pixel else None,
            "images_as_pixels_bytes": as_pixels,
            "dtype": storage.get("dtype", "float32"),
        },
        "source": {
            "dataset": src.get("hub_id") or src.get("dataset"),
            "on_hub": bool(src.get("hub_id")),
            "config_name": src.get("config_name"),
            "revision": src.get("revision"),
            "revision_sha": src.get("revision_sha"),
            "train_split": src.get("train_split"),
            "eval_split": src.get("eval_split"),
            "num_train": src.get("num_train"),
        },
        "eval_split": _eval_entry(meta.get("eval_split")),
        "models": [dict(m) for m in meta.get("models") or []],
        "wall_time_s": res.get("condensation", {}).get("wall_time_s"),
        "hardware": env.get("hardware"),
        "versions": {k: v for k, v in env.items() if k != "hardware"},
    }


def _eval_entry(ev: dict | None) -> dict[str, Any] | None:
    """The card's summary of the published real test split (None: the repo has only ``train``)."""
    if not ev:
        return None
    return {
        "splits": list(ev.get("splits") or []),
        "source": ev.get("source"),
        "config_name": ev.get("config_name"),
        "split": ev.get("split"),
        "revision": ev.get("revision"),
        "revision_sha": ev.get("revision_sha"),
        "rows": ev.get("rows"),
        "max_per_class": ev.get("max_per_class"),
        "configs": sorted(ev.get("views") or {}),
    }


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` rows."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def _rows(meta: dict[str, Any]) -> int:
    train = max((v.get("num_rows") or 0 for v in meta.get("views", {}).values()), default=0)
    return train + int((meta.get("eval_split") or {}).get("rows") or 0)


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _uses_dsa(method: str | None) -> bool:
    from ..methods import METHODS

    try:
        return METHODS.get(method).dsa
    except Exception:  # a method this hf_lodc does not know: say what was recorded
        return True


def result_entries(name: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
    res = meta.get("results", {})
    out = []
    for view in evaluated_views():
        for model, r in (res.get(view.results_key) or {}).items():
            out.append({
                "config_name": name,
                "model": model,
                "data": view.name,
                "accuracy_mean": r["accuracy_mean"],
                "accuracy_std": r["accuracy_std"],
                "runs": r["runs"],
                "epochs": r["epochs"],
                "accuracies": list(r.get("accuracies", [])),
                "protocol": dict(r.get("protocol", {})),
            })
    return out


def card_metadata(records: dict[str, dict], default: str | None) -> dict[str, Any]:
    """The front-matter keys hf_lodc owns, computed from the records (name -> metadata)."""
    names = sorted(records)
    conds = [condensation_entry(n, records[n], n == default) for n in names]
    results = [e for n in names for e in result_entries(n, records[n])]
    sources = []
    for c in conds:
        s = c["source"]["dataset"]
        if s and c["source"]["on_hub"] and s not in sources:
            sources.append(s)
    methods = sorted({c["method"] for c in conds if c["method"]})
    tags = ["dataset-condensation", "hf_lodc", *methods]
    if any(c.get("rank") for c in conds):  # low-rank units (LoDM, LoIDC, LoHaBa, ...)
        tags.insert(1, "low-rank")
    lead = records.get(default) or (records[names[0]] if names else None)
    license_ = (lead or {}).get("artifact", {}).get("source", {}).get("license")
    rows = max((_rows(records[n]) for n in names), default=0)
    return {
        "license": license_,
        "size_categories": [size_category(rows)] if names else None,
        "source_datasets": sources,
        "task_categories": ["image-classification"],
        "tags": tags,
        "condensation": conds,
        "results": results,
    }
