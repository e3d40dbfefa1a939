"""The card's body: the Markdown between ``<!-- hf_lodc:begin -->`` and ``<!-- hf_lodc:end -->``.

How to load the set, the results table (each view's accuracy, and what the uint8 PNGs cost against
the float32 tensors), the accuracy curve, the protocol in words, the trained models, the
condensations with their storage and provenance, and the citation, all computed from the same
``card_metadata`` as the front matter, so the body and the YAML cannot disagree.
"""

from __future__ import annotations

from typing import Any

from .card_metadata import card_metadata
from .views import evaluated_views, ordered_views

__all__ = ["BEGIN", "END", "CITATION", "render_body"]

BEGIN = "<!-- hf_lodc:begin -->"
END = "<!-- hf_lodc:end -->"

CITATION = """@inproceedings{yang2023efficient,
  title     = {An Efficient Dataset Condensation Plugin and Its Application to Continual Learning},
  author    = {Yang, Enneng and Shen, Li and Wang, Zhenyi and Liu, Tongliang and Guo, Guibing},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {36},
  year      = {2023}
}"""


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
