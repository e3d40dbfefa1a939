"""What :func:`~hf_lodc.foreign.evaluate_condensed_set` returns: the record and its summary in words.

Its own module because the recipe, the tests and any caller read the report without running an
evaluation (``to_dict()`` is what ``recipes/evaluate.py`` writes as JSON).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ForeignEvalReport"]


@dataclass
class ForeignEvalReport:
    source: str
    dataset: str
    kind: str
    layout: str
    num_images: int
    images_per_class: dict[str, int]
    image_shape: list[int]
    stored_dtype: str
    storage_bytes: int
    input_normalization: str  # the mode used
    normalization_reason: str  # "given" or what it was inferred from
    label_matching: str
    evaluations: dict[str, dict]  # model -> EvalRecord.to_dict()
    baseline: dict[str, Any]  # random real images at the same storage
    relative: dict[str, dict]  # model -> {set, random, improvement_pp, ratio}
    test_data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    normalization: dict[str, Any] = field(default_factory=dict)  # the input space trained and tested in
    labels_kind: str = "hard"
    label_bytes: int = 0  # soft labels' bytes, included in storage_bytes
    eval_lr: dict[str, Any] = field(default_factory=dict)  # {"lr", "from"}
    scores: dict[str, Any] = field(default_factory=dict)  # model -> {baseline -> DD-Ranking ARS and its inputs}
    warnings: list[str] = field(default_factory=list)  # where the evaluation is not the method's protocol
    # DD-Ranking LRS: {"real_hard_from", "real_hard", "syn_hard_from", "random_soft_from",
    # "models": model -> {baseline -> LRS and its inputs}}; empty when not asked for
    label_robust: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"{self.source} ({self.layout}): {self.num_images} images {tuple(self.image_shape)}, stored as "
            f"{self.stored_dtype}: {self.storage_bytes:,} bytes; values read as {self.input_normalization!r} "
            f"({self.normalization_reason}); labels {self.label_matching}; tested on {self.test_data['rows']} "
            f"real images of {self.dataset!r} split {self.test_data['split']!r}",
        ]
        if self.normalization:
            nm = self.normalization
            detail = {"zca": lambda: f"ZCA whitening, eps {nm['eps']:g}, fitted on {nm['fitted_on']}",
                      "preset": lambda: f"preset {nm['name']!r} mean {nm['mean']} std {nm['std']} ({nm['from']})"}
            lines.append("trained and tested in: " + detail.get(nm.get("kind"), lambda: f"{nm.get('kind')} mean "
                         f"{nm.get('mean')} std {nm.get('std')}")() + f"; labels {self.labels_kind}"
                         + (f"; lr {self.eval_lr['lr']:g} ({self.eval_lr['from']})" if self.eval_lr else ""))
        for m, per in self.scores.items():
            lines.append(f"{m}: DD-Ranking ARS " + "; ".join(
                f"vs random real {name.replace('_', ' ')} ({v['random_images_per_class']}/class) {v['ars']:.4f}"
                for name, v in per.items()))
        for m, per in self.label_robust.get("models", {}).items():
            lines.append(f"{m}: DD-Ranking LRS " + "; ".join(
                f"vs random real {name.replace('_', ' ')} ({v['random_images_per_class']}/class) {v['lrs']:.4f} "
                f"(HLR {v['hlr']:+.4f}, IOR {v['ior']:+.4f})" for name, v in per.items())
                + f"; real hard-label accuracy {self.label_robust['real_hard'][m]:.2f} % "
                  f"({self.label_robust['real_hard_from']})")
        b = self.baseline
        if b.get("images_per_class"):
            lines.append(f"random real baseline: {b['images_per_class']} images/class of the train split "
                         f"({b['storage_bytes']:,} bytes at {b['itemsize']} byte(s)/value), same protocol and seeds")
        else:
            lines.append(f"random real baseline: none ({b.get('reason', 'disabled')})")
        for m, rec in self.evaluations.items():
            line = f"{m}: {rec['accuracy_mean']:.2f} +- {rec['accuracy_std']:.2f} % ({rec['runs']} runs x {rec['epochs']} epochs)"
            rel = self.relative.get(m)
            if rel:
                line += (f"; random real at the same storage {rel['random']:.2f} %, improvement "
                         f"{rel['improvement_pp']:+.2f} points")
            lines.append(line)
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)
