"""Accuracy against iterations: the set as it was at chosen iterations, evaluated with a short protocol.

A condensation asked for ``eval_at`` hands a CPU copy of the whole set to ``on_snapshot`` after each
of those iterations (``Condenser``). The pipeline keeps the copies (and writes them beside the
checkpoints, ``<output_dir>/checkpoints/snapshots/``, so a resumed run still has the points it passed
before the stop; they go with the checkpoints when the artefact is written) and,
once the condensation is done, trains ``eval_at_runs`` fresh networks for ``eval_at_epochs`` epochs on
each, with the same seeds for every point. The curve says when a condensation has converged and what
more iterations would buy; its protocol is shorter than the final evaluation's, so its accuracies are
comparable with each other, not with the final record (which it is drawn beside).
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomically
from ..data.types import ImageClassificationData
from ..seeding import generator
from ..synset.contrast import apply_contrast
from .condenser import CondenseResult
from .config import EvalConfig
from .evaluate import evaluate_validated

__all__ = ["SNAPSHOT_DIR", "CURVE_PNG", "save_snapshot", "load_snapshots", "curve_config", "evaluate_curve",
           "draw_curve"]

SNAPSHOT_DIR = "snapshots"
CURVE_PNG = "curve.png"


def save_snapshot(folder: Path, iteration: int, state: dict[str, torch.Tensor]) -> Path:
    """Write one snapshot to ``folder`` atomically (a stop mid-write leaves the others intact)."""
    return write_atomically(Path(folder) / f"iter_{iteration:07d}.pt", lambda tmp: torch.save(state, tmp))


def load_snapshots(folder: Path) -> dict[int, dict[str, torch.Tensor]]:
    """The snapshots a previous (stopped) run wrote to ``folder``; unreadable ones are skipped
    (they are taken again when the resumed run passes their iteration)."""
    found: dict[int, dict[str, torch.Tensor]] = {}
    for p in sorted(Path(folder).glob("iter_*.pt")):
        stem = p.stem[len("iter_"):]
        if not stem.isdigit():
            continue
        try:
            found[int(stem)] = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # a damaged file is only a missing point
            continue
    return found


def curve_config(ec: EvalConfig) -> EvalConfig:
    """The short protocol of the curve: ``eval_at_runs`` x ``eval_at_epochs``, the first model."""
    return EvalConfig(**{**asdict(ec), "eval_models": list(ec.eval_models[:1]), "eval_runs": ec.eval_at_runs,
                         "eval_epochs": ec.eval_at_epochs, "eval_at": None})


def evaluate_curve(result: CondenseResult, snapshots: dict[int, dict[str, torch.Tensor]],
                   data: ImageClassificationData, ec: EvalConfig, seed: int, device: torch.device | str = "cpu",
                   progress: bool = False) -> dict[str, Any]:
    """The curve record for results.json: the short protocol and one point per snapshot."""
    short = curve_config(ec)
    model = short.eval_models[0]
    classes = torch.arange(data.num_classes)
    points = []
    for it in sorted(snapshots):
        syn = copy.deepcopy(result.synset).cpu()
        syn.load_state_dict(snapshots[it])
        syn.eval()
        if result.method.kind == "matching":  # the finished set gets its contrast; so does each point
            apply_contrast(result.config.contrast, syn, classes, data.train, data.mean, data.std,
                           generator(result.config.seed, "contrast"))
        with torch.no_grad():
            images = syn().detach()  # (N, C, H, W)
        rec = evaluate_validated(images, syn.labels.clone(), data.test, data.mean, data.std, data.num_classes,
                                 short, seed=seed, device=device, progress=False)[model]  # the run's options
        points.append({"iteration": it, "accuracy_mean": rec.accuracy_mean, "accuracy_std": rec.accuracy_std,
                       "accuracies": list(rec.accuracies)})
        if progress:
            print(f"[curve] iteration {it}: {rec.accuracy_mean:.2f} +- {rec.accuracy_std:.2f} %", flush=True)
    asked = sorted(set(ec.eval_at or ()))
    return {"model": model, "runs": short.eval_runs, "epochs": short.eval_epochs, "seed": seed,
            "protocol": f"{short.eval_runs} x {short.eval_epochs} epochs of {model} per point, same seeds",
            "points": points,
            "not_reached": [i for i in asked if i not in snapshots]}


def draw_curve(curve: dict[str, Any], path: Path, final: dict[str, Any] | None = None, title: str = "") -> Path | None:
    """curve.png: accuracy (mean +- std) against iterations, the final record as a reference line."""
    if not curve.get("points"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [p["iteration"] for p in curve["points"]]
    mean = [p["accuracy_mean"] for p in curve["points"]]
    std = [p["accuracy_std"] for p in curve["points"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=120)
    ax.errorbar(its, mean, yerr=std, marker="o", capsize=3, label=curve["protocol"])
    if final:
        ax.axhline(final["accuracy_mean"], color="grey", linestyle="--",
                   label=f"final: {final['accuracy_mean']:.2f} % ({final['runs']} x {final['epochs']} epochs)")
    ax.set_xlabel("condensation iterations")
    ax.set_ylabel("test accuracy (%)")
    if len(its) > 1 and its[-1] / max(its[0], 1) >= 20:
        ax.set_xscale("log")
    ax.set_title(title or "accuracy against iterations", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        return write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
