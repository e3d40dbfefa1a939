"""DD-Ranking's two scores measured on a foreign set: the extra trainings they need and their inputs.

The formulas are ``published/scores.py``'s; this module decides which trainings feed them, reusing the
runs the evaluation already made (the set's augmented accuracy, the same-bytes baseline) so each
score costs only the trainings it adds:

* ARS (augmentation robustness): the set and the random baselines again without DSA;
* LRS (label robustness): the full real data's hard-label accuracy (given, or one training on the whole
  real train split read), the set's images with hard labels (nothing extra for a hard-label set:
  its accuracy is both the hard and the "soft" one), and the random baselines under the set's label
  protocol (a teacher relabels them when one relabels the set; stored soft labels have no
  counterpart for random images, so those train on hard labels, as the note says).

Both score against two random baselines: ``same_bytes`` (the report's baseline) and ``same_count``
(DD-Ranking's own: as many real images per class as the set decodes to). ``cache`` holds the
augmented same-count records so ARS and LRS train them once.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Mapping

import torch

from ..engine.config import EvalConfig
from ..errors import ConfigError
from .baseline import random_real

__all__ = ["ars_scores", "lrs_scores", "check_real_accuracy"]


def _random_runs(x, base, data) -> dict[str, tuple[int, dict | None]]:
    """baseline name -> (images per class, its augmented records when already trained)."""
    per_class = max(1, math.ceil(len(x) / data.num_classes))
    available = int(torch.bincount(data.train.labels, minlength=data.num_classes).min())
    runs: dict[str, tuple[int, dict | None]] = {}
    if base.get("images_per_class"):
        runs["same_bytes"] = (base["images_per_class"], base["evaluations"])
    k = min(per_class, available)
    # the same k picks the same images (random_real's seed) and trains them with the same seeds: reuse
    runs["same_count"] = (k, base["evaluations"] if k == base.get("images_per_class") else None)
    return runs


def _random_aug(k, aug_recs, test, space, data, ec, seed, device, progress, base_kw, cache) -> dict:
    from ..published.evaluation import evaluate_in_space

    if aug_recs is not None:
        return aug_recs
    key = ("aug", k)
    if cache is None or key not in cache:
        real = random_real(data.train, k, data.num_classes, seed)
        recs = {m: r.to_dict() for m, r in evaluate_in_space(
            space.real(real.images), real.labels, test, space, data.num_classes, ec, seed=seed, device=device,
            progress=progress, **base_kw).items()}
        if cache is None:
            return recs
        cache[key] = recs
    return cache[key]


def ars_scores(x, targets, criterion, test, space, data, ec, records, base, seed, device, progress,
               notes, wrap=None, base_kw=None, cache: dict | None = None) -> dict[str, Any]:
    """DD-Ranking's ARS per model against the same-bytes baseline (its augmented accuracies already in
    ``base``) and against random real images as many per class as the set decodes to."""
    from ..published.evaluation import evaluate_in_space
    from ..published.scores import augmentation_robust_score

    if not base.get("enabled"):
        raise ConfigError("ars needs the random real baseline (baseline=True / no --no-baseline)")
    noaug = EvalConfig(**{**asdict(ec), "eval_dsa": False})
    base_kw = base_kw or {}
    syn_na = evaluate_in_space(x, targets, test, space, data.num_classes, noaug, seed=seed, device=device,
                               criterion=criterion, progress=progress, wrap=wrap)
    out: dict[str, Any] = {m: {} for m in records}
    noaug_runs: dict = {}
    for name, (k, aug_recs) in _random_runs(x, base, data).items():
        aug_recs = _random_aug(k, aug_recs, test, space, data, ec, seed, device, progress, base_kw, cache)
        if ("noaug", k) not in noaug_runs:
            real = random_real(data.train, k, data.num_classes, seed)
            noaug_runs[("noaug", k)] = evaluate_in_space(space.real(real.images), real.labels, test, space,
                                                         data.num_classes, noaug, seed=seed, device=device,
                                                         progress=progress, **base_kw)
        na = noaug_runs[("noaug", k)]
        for m, r in records.items():
            acc = {"syn_aug": r.accuracy_mean / 100, "random_aug": aug_recs[m]["accuracy_mean"] / 100,
                   "syn_noaug": syn_na[m].accuracy_mean / 100, "random_noaug": na[m].accuracy_mean / 100}
            sc = augmentation_robust_score(acc["syn_aug"], acc["random_aug"], acc["syn_noaug"], acc["random_noaug"])
            out[m][name] = {"random_images_per_class": k, **{a: round(v, 5) for a, v in acc.items()},
                            "beta": round(sc["beta"], 5), "ars": round(sc["ars"], 5)}
    notes.append("ARS: DD-Ranking's Augmentation-Robust Score, lambda 0.5, from mean last-epoch accuracies with and "
                 "without DSA (same lr, schedule and seeds); random baselines train on hard labels unless a teacher relabels "
                 "them")
    return out


def check_real_accuracy(real_accuracy, models) -> dict[str, float] | str:
    """``real_accuracy`` (a percentage, or model -> percentage, or ``"train"``) checked before any data is read:
    model -> percentage for every evaluated model, or ``"train"``."""
    if isinstance(real_accuracy, str):
        if real_accuracy != "train":
            raise ConfigError(f"real_accuracy must be a percentage, a model -> percentage mapping or 'train', got "
                              f"{real_accuracy!r}")
        return "train"
    per = dict(real_accuracy) if isinstance(real_accuracy, Mapping) else {m: real_accuracy for m in models}
    for m, v in per.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= 100:
            raise ConfigError(f"the full real data's accuracy for {m!r} must be a percentage in (0, 100], got {v!r}")
        if v <= 1:
            raise ConfigError(f"the full real data's accuracy for {m!r} is {v!r}: that reads as a fraction; pass it as "
                              f"a percentage (e.g. {v * 100:g}), as the report's accuracies are")
    missing = [m for m in models if m not in per]
    if missing:
        raise ConfigError(f"no full real data accuracy for model(s) {', '.join(missing)}: give one per evaluated model "
                          f"(or one number for all)")
    return {m: float(per[m]) for m in models}


def lrs_scores(x, hard_labels, test, space, data, ec, records, base, seed, device, progress, notes, *,
               real_accuracy: dict[str, float] | str, real_accuracy_from: str | None, hard_label_set: bool,
               soft_without_teacher: bool, base_kw=None, cache: dict | None = None) -> dict[str, Any]:
    """DD-Ranking's LRS per model against the same-bytes and same-count baselines, with where each input came
    from. ``records``: the set's evaluation under its own labels (soft, teacher or hard)."""
    from ..published.evaluation import evaluate_in_space
    from ..published.scores import label_robust_score

    if not base.get("enabled"):
        raise ConfigError("lrs needs the random real baseline (baseline=True / no --no-baseline)")
    base_kw = base_kw or {}
    if real_accuracy == "train":
        full = evaluate_in_space(space.real(data.train.images), data.train.labels, test, space, data.num_classes, ec,
                                 seed=seed, device=device, progress=progress)
        real = {m: r.accuracy_mean for m, r in full.items()}
        per_class = torch.bincount(data.train.labels, minlength=data.num_classes).tolist()
        real_from = (f"trained here on the real train split read ({len(data.train)} images, {min(per_class)}-"
                     f"{max(per_class)} per class), hard labels, same protocol and seeds")
    else:
        real = dict(real_accuracy)
        real_from = f"given ({real_accuracy_from})" if real_accuracy_from else "given"
    if hard_label_set:
        syn_hard = {m: r.accuracy_mean for m, r in records.items()}
        hard_from = "the set's own accuracy: a hard-label set's hard and soft accuracies are the same runs"
    else:
        hard = evaluate_in_space(x, hard_labels, test, space, data.num_classes, ec, seed=seed, device=device,
                                 progress=progress)
        syn_hard = {m: r.accuracy_mean for m, r in hard.items()}
        hard_from = "the set's images trained again with its hard (argmax) labels and cross-entropy"
    out: dict[str, Any] = {m: {} for m in records}
    for name, (k, aug_recs) in _random_runs(x, base, data).items():
        rand = _random_aug(k, aug_recs, test, space, data, ec, seed, device, progress, base_kw, cache)
        for m, r in records.items():
            acc = {"real_hard": real[m] / 100, "syn_hard": syn_hard[m] / 100, "syn_soft": r.accuracy_mean / 100,
                   "random_soft": rand[m]["accuracy_mean"] / 100}
            sc = label_robust_score(acc["real_hard"], acc["syn_hard"], acc["syn_soft"], acc["random_soft"])
            out[m][name] = {"random_images_per_class": k, **{a: round(v, 5) for a, v in acc.items()},
                            **{a: round(sc[a], 5) for a in ("hlr", "ior", "alpha", "lrs")}}
    random_from = ("random real images under the set's label protocol: "
                   + ("relabelled by the same teacher" if base_kw.get("wrap") is not None else
                      "hard labels (stored soft labels have no counterpart for random images)" if soft_without_teacher
                      else "hard labels, as the set's"))
    notes.append("LRS: DD-Ranking's Label-Robust Score, lambda 0.5, from mean last-epoch accuracies (HLR = real hard - "
                 "set hard, IOR = set soft - random soft)")
    return {"real_hard_from": real_from, "real_hard": {m: round(v, 3) for m, v in real.items()},
            "syn_hard_from": hard_from, "random_soft_from": random_from, "models": out}
