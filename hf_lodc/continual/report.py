"""Summary of a continual run: accuracy after each task, final and average incremental accuracy.

Statistics pool every (seed, evaluation model) pair: mean +- population std (as the literature).
Average incremental accuracy is the mean over tasks of the accuracy after each task, computed per
(seed, model index) trajectory and then pooled.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..data.types import ImageClassificationData
from ..engine.evaluate import protocol_of
from ..errors import ArtifactError
from ..export.artifact import environment_info
from ..atomic import write_atomically

__all__ = ["write_json", "summarise", "markdown_table", "plot_curves", "write_report"]


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (temporary sibling, then rename)."""
    text = json.dumps(obj, indent=2, default=str) + "\n"
    try:
        write_atomically(path, lambda tmp: tmp.write_text(text))
    except OSError as e:
        raise ArtifactError(f"cannot write {str(path)!r}: {e.strerror or e}") from None


def _stats(values: list[float]) -> dict[str, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / len(values)) if len(values) > 1 else 0.0
    return {"mean": round(m, 3), "std": round(sd, 3), "n": len(values)}


def _storage(memories) -> dict[str, Any]:
    b = memories[0].budget
    return {"images_per_class": b.images_per_class, "rank": b.rank, "numbers_per_class": b.used_numel_per_class,
            "budget_numbers_per_class": b.budget_numel_per_class, "shared_numbers": b.shared_numel}


def summarise(result, data: ImageClassificationData) -> dict[str, Any]:
    cfg = result.config
    by_key: dict[tuple[str, str], dict[int, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(dict))
    condense_s: dict[str, float] = defaultdict(float)
    eval_s: dict[str, float] = defaultdict(float)
    for s in result.steps:  # (method, model) -> seed -> task -> accuracies of the runs
        condense_s[s.method] += s.condense_s
        for model, rec in s.evaluations.items():
            by_key[(s.method, model)][s.seed][s.task] = list(rec.accuracies)
            eval_s[s.method] += rec.wall_time_s
    seeds = list(result.splits)
    sizes = [len(c) for c in result.splits[seeds[0]].tasks]
    methods: dict[str, Any] = {}
    for method in cfg.methods:
        mem = result.memories.get((seeds[0], method))
        entry: dict[str, Any] = {"storage": _storage(mem) if mem else None,
                                 "condense_s": round(condense_s[method], 1), "gdumb_s": round(eval_s[method], 1),
                                 "models": {}}
        for model in cfg.eval.eval_models:
            per_seed = by_key.get((method, model), {})
            curve = []
            for t in range(cfg.tasks):
                accs = [a for sd in per_seed.values() for a in sd.get(t, [])]
                if accs:
                    curve.append({"task": t + 1, "num_classes": sum(sizes[: t + 1]), **_stats(accs)})
            trajectories = [  # per (seed, run index): accuracies after tasks 1..T
                [sd[t][r] for t in range(cfg.tasks)]
                for sd in per_seed.values() if all(t in sd for t in range(cfg.tasks))
                for r in range(min(len(sd[t]) for t in range(cfg.tasks)))
            ]
            entry["models"][model] = {
                "curve": curve,
                "final_accuracy": _stats([tr[-1] for tr in trajectories]) if trajectories else None,
                "average_incremental_accuracy": (_stats([sum(tr) / len(tr) for tr in trajectories])
                                                 if trajectories else None),
            }
        methods[method] = entry
    return {
        "dataset": data.info.dataset,
        "num_classes": data.num_classes,
        "tasks": cfg.tasks,
        "classes_per_task": sizes,
        "memory_ipc": cfg.memory_ipc,
        "seeds": seeds,
        "learner": "GDumb: after each task a fresh model trained from scratch on the whole memory, "
                   "tested on the test images of all classes seen so far",
        "protocol": {**protocol_of(cfg.eval), "models_per_step": cfg.eval.eval_runs,
                     "test_per_class": cfg.test_per_class or "all"},
        "class_orders": {str(s): sp.to_dict() for s, sp in result.splits.items()},
        "methods": methods,
        "config": cfg.to_dict(),
        "steps": [s.to_dict() for s in result.steps],
        "environment": environment_info(),
    }


def _label(method: str, storage: dict | None) -> str:
    if not storage:
        return method
    r = f", r{storage['rank']}" if storage["rank"] else ""
    return f"{method} ({storage['images_per_class']} img/cls{r})"


def _pm(st: dict | None) -> str:
    return f"{st['mean']:.1f} ± {st['std']:.1f}" if st else "–"


def markdown_table(summary: dict[str, Any]) -> str:
    """One table per evaluation model: a row per memory type, a column per task."""
    sizes = summary["classes_per_task"]
    cols = [sum(sizes[: t + 1]) for t in range(summary["tasks"])]
    models = sorted({m for e in summary["methods"].values() for m in e["models"]})
    p = summary["protocol"]
    lines = [
        f"{summary['dataset']}, class-incremental in {summary['tasks']} tasks, memory {summary['memory_ipc']} pixel "
        f"image(s) per class (equal storage for every row), GDumb, seeds {summary['seeds']}, "
        f"{p['models_per_step']} model(s) × {p['epochs']} epochs per step ({p['augmentation']}), "
        f"test images per class: {p['test_per_class']}. Accuracy % (mean ± std over seeds × models).",
        "",
    ]
    for model in models:
        head = (["memory", "stored / class"] + [f"{c} cls" for c in cols]
                + ["final", "avg. incremental", "time: condense + GDumb"])
        lines += [f"Model `{model}`:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method, e in summary["methods"].items():
            rec = e["models"].get(model)
            if rec is None:
                continue
            st = e["storage"]
            stored = (f"{st['images_per_class']} img" + (f" r{st['rank']}" if st["rank"] else "")
                      + f" ({st['numbers_per_class']} floats)") if st else "–"
            by_task = {c["task"]: c for c in rec["curve"]}
            cells = [_pm(by_task.get(t + 1)) for t in range(summary["tasks"])]
            secs = f"{e['condense_s']:.0f} + {e['gdumb_s']:.0f} s"
            lines.append("| " + " | ".join([method, stored, *cells, _pm(rec["final_accuracy"]),
                                             _pm(rec["average_incremental_accuracy"]), secs]) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_curves(summary: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs number of classes seen, one line per memory type (and model), with ±std bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    models = sorted({m for e in summary["methods"].values() for m in e["models"]})
    for method, e in summary["methods"].items():
        for model, rec in e["models"].items():
            if not rec["curve"]:
                continue
            x = [c["num_classes"] for c in rec["curve"]]
            y = [c["mean"] for c in rec["curve"]]
            sd = [c["std"] for c in rec["curve"]]
            label = _label(method, e["storage"]) + (f" / {model}" if len(models) > 1 else "")
            (line,) = ax.plot(x, y, marker="o", label=label)
            ax.fill_between(x, [a - b for a, b in zip(y, sd)], [a + b for a, b in zip(y, sd)],
                            color=line.get_color(), alpha=0.15)
    ax.set_xlabel("number of classes seen")
    ax.set_ylabel("test accuracy on seen classes (%)")
    ax.set_xticks([sum(summary["classes_per_task"][: t + 1]) for t in range(summary["tasks"])])
    ax.set_title(f"{summary['dataset']}: GDumb, memory {summary['memory_ipc']} pixel img/class", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def write_report(result, out: str | Path, stem: str = "continual") -> dict[str, Path]:
    """``<stem>.json`` (summary), ``<stem>.md`` (table), ``<stem>.png`` (curves) in ``out``."""
    out = Path(out)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    write_json(paths["json"], result.summary)
    md = markdown_table(result.summary) + "\n"
    write_atomically(paths["md"], lambda tmp: tmp.write_text(md))
    plot_curves(result.summary, paths["png"])
    return paths
