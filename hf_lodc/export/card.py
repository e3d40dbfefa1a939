"""The dataset card (README.md) of a repo of condensed sets, rendered from their metadata records.

One record per condensation (``condensations/<name>/hf_lodc.json``, see ``push``) is the single
source: the YAML front matter and the body tables are both computed from it, so every accuracy in
the card is one an evaluation actually measured (never typed in).

Front matter keys written here (``configs`` / ``dataset_info`` by :func:`front_matter`, the others by
:func:`card_metadata`)::

    license, source_datasets, task_categories, tags, pretty_name (if absent)
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

Everything between ``<!-- hf_lodc:begin -->`` and ``<!-- hf_lodc:end -->`` in the body is
regenerated on each push; text outside the markers and front-matter keys hf_lodc does not own
are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .views import ROOT, VIEWS, evaluated_views, ordered_views

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

BEGIN = "<!-- hf_lodc:begin -->"
END = "<!-- hf_lodc:end -->"
# front-matter key order (other keys follow in their existing order): stable bytes -> idempotent pushes
KEY_ORDER = ("pretty_name", "license", "size_categories", "source_datasets", "task_categories", "tags", "configs", "dataset_info",
             "condensation", "results")
CITATION = """@inproceedings{yang2023efficient,
  title     = {An Efficient Dataset Condensation Plugin and Its Application to Continual Learning},
  author    = {Yang, Enneng and Shen, Li and Wang, Zhenyi and Liu, Tongliang and Guo, Guibing},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {36},
  year      = {2023}
}"""



# ---------------------------------------------------------------------------------------------
# YAML entries


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


# ---------------------------------------------------------------------------------------------
# body


def _fmt_acc(r: dict | None) -> str:
    if not r:
        return "not measured"
    return f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f}"


def _protocol_words(p: dict[str, Any], runs: int) -> str:
    aug = p.get("augmentation", "none")
    aug = f"DSA ({aug.split(':', 1)[1]}, one family per batch)" if aug.startswith("dsa:") else aug
    sched = p.get("lr_schedule") or f"x0.1 after epoch {int(p.get('epochs', 0)) // 2}"
    sched = sched.replace("x", "× ").replace(", × ", ", then × ")
    mix = f", CutMix on a batch with probability {p['cutmix_p']}" if p.get("cutmix_p") else ""
    return (
        f"each evaluation model is trained from scratch on the synthetic set only with SGD (lr {p.get('lr')}, "
        f"momentum {p.get('momentum')}, weight decay {p.get('weight_decay')}), batch {p.get('batch_size')}, "
        f"{p.get('epochs')} epochs, lr {sched}, augmentation: {aug}{mix}, "
        f"ZCA {'on' if p.get('zca') else 'off'}; accuracy is measured once, after the last epoch (not the best "
        f"epoch), on the real test split; mean ± std (population) over {runs} independently initialised model(s)"
        + _speed_words(p)
    )


def _speed_words(p: dict[str, Any]) -> str:
    """The speed options an evaluation ran with (bf16 autocast, channels_last, torch.compile), when any."""
    used = [str(p[k]) for k in ("precision", "memory_format", "compile") if p.get(k)]
    return f"; run with {', '.join(used)}" if used else ''


def _results_table(records: dict[str, dict]) -> list[str]:
    """One row per (condensation, model): the accuracy on every evaluated view, and what the second view
    (the uint8 PNGs) costs against the first (the float32 tensors)."""
    views = evaluated_views()
    rows = []
    for name in sorted(records):
        res = records[name].get("results", {})
        per_view = [res.get(v.results_key) or {} for v in views]
        models = [m for i, recs in enumerate(per_view) for m in recs if all(m not in p for p in per_view[:i])]
        for model in models:
            accs = [recs.get(model) for recs in per_view]
            a, b = accs[0], accs[1]
            delta = f"{b['accuracy_mean'] - a['accuracy_mean']:+.2f}" if a and b else "–"
            ref = next(r for r in accs if r)
            cells = " | ".join(_fmt_acc(r) for r in accs)
            rows.append(f"| `{name}` | {model} | {cells} | {delta} | {ref['runs']} × {ref['epochs']} |")
    if not rows:
        return ["No evaluation has been run on these condensed sets yet (`recipes/evaluate.py` adds one)."]
    words = [v.label.split()[0] for v in views]  # "float32", "uint8"
    head = ["| config | model | " + " | ".join(f"accuracy % ({v.label})" for v in views)
            + f" | {words[1]} − {words[0]} | runs × epochs |", "|---" * (len(views) + 4) + "|"]
    return head + rows


def _eval_split_lines(lead: dict, repo_id: str, default: str | None) -> list[str]:
    ev = lead.get("eval_split")
    no_eval = [v.name for v in ordered_views() if v.build_eval is None and v.name in lead["configs"]]
    if not ev:
        return ["This repo has only the `train` split (the condensed set): evaluate on the source's own test "
                "split, normalised with the mean/std below.", ""]
    rev = ev.get("revision_sha") or ev.get("revision")
    where = f"at `{rev}`" if rev else "(no Hub revision recorded: it was read from a local copy or mirror)"
    sub = f", the first {ev['max_per_class']} per class" if ev.get("max_per_class") else ""
    arg = "" if default else f', "{lead["configs"].get("images")}"'
    lines = [
        "### Evaluation splits",
        "",
        f"`validation` and `test` are the real test split `{ev['split']}` of `{ev['source']}` {where} "
        f"({ev['rows']} images{sub}): the images every accuracy in this card was measured on, copied once "
        f"(both split names point at the same parquet files). They have the same features and class names "
        f"as `train`, in the configs of the views {', '.join(f'`{v}`' for v in ev['configs'])} "
        "(`pixel_values` normalised "
        "with the same mean/std), so stock training scripts (transformers' `run_image_classification.py`, "
        "timm's `train.py --dataset hfds/<repo>`) evaluate on real images without extra flags:",
        "",
        "```python",
        f'ds = load_dataset("{repo_id}"{arg})  # train (condensed), validation and test (real)',
        "```",
        "",
    ]
    if no_eval:
        lines += [f"The {', '.join(f'`{n}`' for n in no_eval)} config has no evaluation split (it holds the "
                  "parameters of the set, not images).", ""]
    return lines


def _model_lines(conds: list[dict]) -> list[str]:
    rows = [(c["config_name"], m) for c in conds for m in c.get("models") or []]
    if not rows:
        return []
    lines = ["## Trained models", "",
             "One network per evaluation model, trained on the set under the protocol above (the run whose "
             "accuracy is closest to the median of the runs), in model repos that timm loads after `import hf_lodc`:",
             "", "| config | model | repo | run | accuracy % |", "|---|---|---|---|---|"]
    for name, m in rows:
        lines.append(f"| `{name}` | {m['model']} | [{m['repo_id']}](https://huggingface.co/{m['repo_id']}) | "
                     f"{m['run']} of {m['runs']} | {m['accuracy']:.2f} |")
    return lines + [""]


def _storage_line(c: dict) -> str:
    s = c["storage"]
    if not s.get("stored_bytes"):
        return "–"
    line = f"{s['stored_bytes']:,} B of a {s['pixel_budget_bytes']:,} B pixel budget"
    if s.get("images_as_pixels_bytes") and s["images_as_pixels_bytes"] != s["stored_bytes"]:
        line += f" (the same images as pixels: {s['images_as_pixels_bytes']:,} B)"
    return line


def _curve_lines(records: dict[str, dict], name: str) -> list[str]:
    """The lead condensation's accuracy against iterations (``--eval-at``), when it was measured."""
    curve = ((records.get(name) or {}).get("results") or {}).get("curve") or {}
    if not curve.get("points"):
        return []
    rows = [f"| {p['iteration']} | {p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f} |" for p in curve["points"]]
    return ["### Accuracy against iterations", "",
            f"`{name}` as it was after these iterations, each trained {curve['protocol']} (a shorter protocol "
            "than the table above: compare the rows with each other):", "",
            "| iterations | accuracy % |", "|---|---|", *rows, ""]


def render_body(records: dict[str, dict], default: str | None, repo_id: str) -> str:
    meta = card_metadata(records, default)
    conds = {c["config_name"]: c for c in meta["condensation"]}
    lead = conds.get(default) or (next(iter(conds.values())) if conds else None)
    lines = [BEGIN, ""]
    if lead is None:
        return "\n".join(lines + [END]) + "\n"
    src = lead["source"]["dataset"]
    src_link = f"[{src}](https://huggingface.co/datasets/{src})" if lead["source"].get("on_hub") else f"`{src}`"
    lines += [
        f"# Condensed {src}",
        "",
        f"Synthetic training sets distilled from {src_link} with "
        "hf_lodc (dataset condensation with per-channel low-rank factors, Yang et al., "
        "NeurIPS 2023). A network trained from scratch on these few images is tested on the real test split; "
        "the accuracies below were measured by that evaluation, and the same numbers are in the card's YAML "
        "(`results:`).",
        "",
    ]
    if default:
        lines += [f"![synthetic images of `{default}`, one row per class]"
                  f"(condensations/{default}/preview.png)", ""]
    cfg = lead["configs"]  # view -> config name of the lead condensation
    load = []
    for v in ordered_views():
        if v.name not in cfg:
            continue
        if default:  # the aliases; "default" is what load_dataset(repo) gives without a name
            arg = "" if v.alias == "default" else f'"{v.alias}", '
        else:
            arg = f'"{cfg[v.name]}", '
        var, comment = v.snippet
        load.append(f'{var} = load_dataset("{repo_id}", {arg}split="train")  # {comment}'
                    + (" (the default: `load_dataset(repo)`)" if default and v.alias == "default" else ""))
    views = ordered_views()
    own = ", ".join(f"`<name>{v.suffix}`" for v in views)
    aliases = [f"`{v.alias}`" for v in views]
    aliases = ", ".join(aliases[:-1]) + f" and {aliases[-1]}"
    lines += [
        "## Load it",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        *load,
        "```",
        "",
        "`pixel_values` are normalised with the source's per-channel mean/std (below): that is what the "
        "reported accuracy was measured on. The `image` column is the same tensor de-normalised, clipped to "
        "[0, 1] and rounded to uint8 (viewer-friendly; the table shows what that rounding costs). For low-rank "
        "sets, `pixel_values[c] = A[c] @ B[c]` for each channel c. Each condensation also has configs of its own "
        f"({own}), listed below; {aliases} point at the default condensation. To train, normalise the `image` column with the "
        "mean/std, or use `pixel_values` directly, e.g. `px.with_format('torch')`.",
        "",
        *_eval_split_lines(lead, repo_id, default),
        "## Results",
        "",
        *_results_table(records),
        "",
        *_curve_lines(records, lead["config_name"]),
    ]
    protocols = [(r["protocol"], r["runs"]) for r in meta["results"] if r.get("protocol")]
    if protocols:
        firsts: dict[str, tuple[dict, int]] = {}  # protocol name -> its first record
        for p, runs in protocols:
            firsts.setdefault(p.get("name", "dc"), (p, runs))
        for name, (p, runs) in firsts.items():
            if name == "dc":
                lines += [f"Protocol (DC/DSA/DM literature): {_protocol_words(p, runs)}."]
            else:
                lines += ["", f"Protocol `{name}` ({p.get('description', name)}; rows `<model>@{name}`): "
                          f"{_protocol_words(p, runs)}."]
        tests = sorted({r["protocol"].get("test_data") for r in meta["results"] if r["protocol"].get("test_data")})
        if tests:
            lines += ["", f"Test data: {'; '.join(tests)}."]
        lines += [""]
    lines += _model_lines(meta["condensation"])
    lines += [
        "## Condensations in this repo",
        "",
        "| config | method | rank | pixel budget (IPC) | stored images / class | iterations | init | seed | "
        "storage (float32) | wall time | hardware |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in conds.items():
        wall = f"{c['wall_time_s']:.0f} s" if c.get("wall_time_s") is not None else "–"
        star = " (default)" if c["default"] else ""
        lines.append(
            f"| `{name}`{star} | {c['method']} | {c['rank'] if c['rank'] is not None else 'full'} | "
            f"{c['pixel_budget_ipc']} | {c['images_per_class']} | {c['iterations']} | {c['init']} | {c['seed']} | "
            f"{_storage_line(c)} | {wall} | {c['hardware'] or '–'} |"
        )
    lines += [""]
    for name, c in conds.items():
        s = c["source"]
        rev = s.get("revision_sha") or s.get("revision")
        sha = f" at `{rev}`" if rev else (" (no Hub revision recorded: read from a local copy or mirror, "
                                           "`revision_sha: null`)" if not s.get("revision_sha") else "")
        versions = ", ".join(f"{k} {v}" for k, v in c["versions"].items())
        lines += [
            f"- `{name}`: configs {', '.join(f'`{v}`' for v in c['configs'].values())}; source `{s['dataset']}`"
            f"{sha}, split `{s['train_split']}` ({s['num_train']} images), evaluated on `{s['eval_split']}`; "
            f"normalisation mean {c['normalisation']['mean']}, std {c['normalisation']['std']}; "
            f"augmentation while condensing: {c['augmentation']}; {versions}. "
            f"Preview: `condensations/{name}/preview.png`.",
        ]
        if c.get("how_to_decode") and c.get("parameterisation") not in (None, "pixel"):
            opts = ", ".join(f"{k}={v}" for k, v in c["param_options"].items())
            lines += [f"  - How to decode `{name}` ({c['parameterisation']}{'; ' + opts if opts else ''}; "
                      f"{c['decoded_per_class']} training images per class): {c['how_to_decode']}"]
        if not c.get("shared_in_budget", True):
            lines += [f"  - `{name}`: hallucinators NOT counted: its {c['shared_numel']} shared numbers were stored "
                      "but not paid from the pixel budget (shared_in_budget=false), so it stores more than its IPC."]
    lines += [
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
        END,
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the whole card


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
