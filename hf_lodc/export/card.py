"""The dataset card (README.md) of a repo of condensed sets, rendered from their metadata records.

One record per condensation (``condensations/<name>/hf_lodc.json``, see ``push``) is the single
source: the YAML front matter and the body tables are both computed from it, so every accuracy in
the card is one an evaluation actually measured (never typed in).

This module puts the card together and reads it back: the ``configs`` / ``dataset_info`` keys
(:func:`front_matter`), hf_lodc's other keys (``card_metadata``, which lists them) and the body
(``card_body``) in one README (:func:`build_card`).

Everything between ``<!-- hf_lodc:begin -->`` and ``<!-- hf_lodc:end -->`` in the body is
regenerated on each push; text outside the markers and front-matter keys hf_lodc does not own
are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .card_body import BEGIN, CITATION, END, render_body
from .card_metadata import card_metadata, condensation_entry, result_entries
from .views import ROOT, VIEWS

__all__ = [
    "build_card",
    "front_matter",
    "is_managed",
    "read_card_data",
    "card_metadata",
    "condensation_entry",
    "result_entries",
    "render_body",
    "BEGIN",
    "END",
    "CITATION",
]

# front-matter key order (other keys follow in their existing order): stable bytes -> idempotent pushes
KEY_ORDER = ("pretty_name", "license", "size_categories", "source_datasets", "task_categories", "tags", "configs", "dataset_info",
             "condensation", "results")


def _outside_markers(body: str) -> tuple[str, str]:
    """The user's text before / after the generated block, normalised so re-rendering is stable."""
    if BEGIN in body and END in body.split(BEGIN, 1)[1]:
        before, rest = body.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        before = before.strip("\n") + "\n\n" if before.strip() else ""
        after = "\n" + after.strip("\n") + "\n" if after.strip() else ""
        return before, after
    return "", ""


def build_card(
    records: dict[str, dict],
    default: str | None,
    repo_id: str,
    *,
    card_data: dict[str, Any],
    existing_body: str = "",
) -> str:
    """Full README text: ``card_data`` (front matter already holding configs / dataset_info and any
    keys to keep) updated with hf_lodc's keys, then the regenerated body."""
    from huggingface_hub import DatasetCardData

    data = dict(card_data)
    ours = card_metadata(records, default)
    for key in ("task_categories", "source_datasets"):
        ours[key] = _union(data.get(key), ours[key])
    ours["tags"] = _union(data.get("tags"), ours["tags"])
    if data.get("license") and not ours["license"]:
        ours.pop("license")
    data.update({k: v for k, v in ours.items() if v is not None})
    lead = ours["condensation"][0] if ours["condensation"] else None
    if lead and not data.get("pretty_name"):
        data["pretty_name"] = f"Condensed {lead['source']['dataset']}"
    yaml_text = DatasetCardData(**data).to_yaml(original_order=list(KEY_ORDER))
    before, after = _outside_markers(existing_body)
    body = render_body(records, default, repo_id)
    return f"---\n{yaml_text}\n---\n{before}{body}{after}"


def _union(a, b) -> list:
    out: list = []
    for v in list(a or []) + list(b or []):
        if v not in out:
            out.append(v)
    return out


# ---------------------------------------------------------------------------------------------
# reading a card, and its `configs` / `dataset_info`


def read_card_data(text: str | None) -> tuple[dict[str, Any], str]:
    """(front matter mapping, body) of a README; safe YAML only."""
    if not text:
        return {}, ""
    from huggingface_hub import DatasetCard

    card = DatasetCard(text, ignore_metadata_errors=False)
    return card.data.to_dict(), card.text


def is_managed(config: dict) -> bool:
    """Whether a ``configs:`` entry is hf_lodc's (all its data files under ``condensations/``)."""
    files = config.get("data_files") or []
    paths = [f.get("path") if isinstance(f, dict) else f for f in (files if isinstance(files, list) else [files])]
    flat = [p for x in paths for p in (x if isinstance(x, list) else [x])]
    return bool(flat) and all(isinstance(p, str) and p.startswith(ROOT + "/") for p in flat)


def front_matter(records: dict[str, dict], default: str | None, card_data: dict[str, Any]) -> dict[str, Any]:
    """``card_data`` with hf_lodc's configs / dataset_info replaced (every view of every condensation,
    plus the views' aliases for the default one), other configs kept."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    data = dict(card_data)
    old_configs = data.get("configs") or []
    keep = [c for c in old_configs if isinstance(c, dict) and not is_managed(c)]
    managed_names = {c.get("config_name") for c in old_configs if isinstance(c, dict) and is_managed(c)}
    infos = data.get("dataset_info") or []
    infos = [infos] if isinstance(infos, dict) else list(infos)
    keep_infos = [i for i in infos if isinstance(i, dict) and i.get("config_name", "default") not in managed_names]
    data["configs"] = keep or None
    data["dataset_info"] = keep_infos or None
    card = DatasetCardData(**{k: v for k, v in data.items() if v is not None})

    configs: dict[str, dict] = {}
    dinfos: dict[str, Any] = {}
    for name in sorted(records):
        ev = records[name].get("eval_split") or {}
        for view, v in records[name]["views"].items():
            entry = {"data_files": [{"split": "train", "path": str(Path(v["path"]).parent.as_posix()) + "/train-*"}]}
            info = DatasetInfo(features=Features.from_dict(v["features"]), splits=SplitDict(),
                               download_size=v["parquet_bytes"], dataset_size=v["num_bytes"])
            info.splits.add(SplitInfo(name="train", num_bytes=v["num_bytes"], num_examples=v["num_rows"]))
            info.size_in_bytes = v["parquet_bytes"] + v["num_bytes"]
            e = (ev.get("views") or {}).get(view)
            if e:  # the real test split: both names, the same files (stored once)
                folder = str(Path(e["path"]).parent.as_posix())
                for split in ev.get("splits") or ():
                    entry["data_files"].append({"split": split, "path": folder + "/test-*"})
                    info.splits.add(SplitInfo(name=split, num_bytes=e["num_bytes"], num_examples=e["num_rows"]))
                info.download_size += e["parquet_bytes"]
                info.dataset_size += e["num_bytes"]
                info.size_in_bytes += e["parquet_bytes"] + e["num_bytes"]
            names = [v["config_name"]] + ([VIEWS.get(view).alias] if name == default else [])
            for cfg_name in names:  # fresh copies: shared objects would be dumped as YAML anchors
                configs[cfg_name] = json.loads(json.dumps(entry))
                dinfos[cfg_name] = info
    MetadataConfigs(configs).to_dataset_card_data(card)
    DatasetInfosDict(dinfos).to_dataset_card_data(card)
    return card.to_dict()
