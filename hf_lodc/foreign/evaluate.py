"""The entry: evaluate a foreign condensed set against the real test split and random real at equal storage.

It checks the options that need no data, then runs the steps of the sibling modules in order: read
(``load``), decode and the learned lr (``conventions``), the input space (``input_space``), the set's
labels (hard, soft or a teacher's), the set's evaluation, the baseline and scores (``baseline``), and
returns a :class:`~hf_lodc.foreign.report.ForeignEvalReport`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..data.splits import first_per_class
from ..data.types import ImageClassificationData
from ..engine.config import EvalConfig
from ..errors import ConfigError, DatasetError, SplitError
from .baseline import same_storage_baseline
from .conventions import decode_factor, resolve_lr
from .input_space import NORMALIZATIONS, infer_normalization, space_for, to_source_normalization
from .load import load_condensed_set
from .ranking import ars_scores, check_real_accuracy, lrs_scores
from .report import ForeignEvalReport

__all__ = ["evaluate_condensed_set"]


def evaluate_condensed_set(
    source: str,
    dataset: str | ImageClassificationData,
    *,
    models: Sequence[str] | None = None,
    runs: int | None = None,
    epochs: int | None = None,
    eval_config: EvalConfig | None = None,
    split: str = "train",
    config_name: str | None = None,
    revision: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    labels: str = "auto",
    labels_file: str | None = None,
    input_normalization: str = "auto",
    set_mean: Sequence[float] | None = None,
    set_std: Sequence[float] | None = None,
    storage_bytes: int | None = None,
    real_itemsize: int | None = None,
    baseline: bool = True,
    max_per_class: int | None = None,
    eval_max_per_class: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    zca_eps: float = 0.1,
    factor: int | None = None,
    soft_loss: str = "sce",
    temperature: float = 1.0,
    eval_lr: float | None = None,
    lr_file: str | None = None,
    ars: bool = False,
    soft_label_column: str | None = None,
    teacher: str | None = None,
    teacher_model: str = "convnet",
    lrs: bool = False,
    real_accuracy: float | Mapping[str, float] | str | None = None,
    real_accuracy_from: str | None = None,
) -> ForeignEvalReport:
    """Evaluate a condensed set made by anyone against ``dataset``'s real test split.

    Args:
        source: ``.pt`` file, local dataset folder, HaBa run folder, or Hub dataset repo id
            (``hf_lodc.foreign.load``'s docstring lists the layouts read).
        dataset: the real dataset the set was condensed from (Hub id / folder, or loaded data): its
            classes, image size and train-split statistics define the normalisation, its test split
            is tested on, and its train split gives the random real baseline.
        models / runs / epochs / eval_config: the protocol (``EvalConfig``; defaults: ConvNet-3,
            5 runs x 1000 epochs).
        split / config_name / revision / image_column / label_column: how to read a dataset source.
        labels: ``auto`` | ``by-id`` | ``by-name``. labels_file: labels of an image-only ``.pt``.
        input_normalization: ``auto`` | ``source`` | ``zero-one`` | ``uint8`` | ``zca`` | a preset name
            (``published.normalization.NORMALIZATION_PRESETS``: ``dc-cifar10``, ``mtt-cifar100``, ...);
            ``set_mean`` / ``set_std``: the statistics a ``source``-normalised file used, when not the
            dataset's. zca_eps: the ZCA regularisation (MTT's 0.1).
        factor: IDC multi-formation factor of the stored images (decoded as IDC decodes; storage counts
            the stored images).
        soft_loss / temperature: how soft labels (N, K) train (``sce`` or ``kl``). soft_label_column: a
            dataset source's column of soft labels (one float vector per row, in its ClassLabel's order).
        eval_lr / lr_file: the evaluation lr, given or read from a file (MTT's ``lr_best.pt``; found
            beside an ``images_best.pt`` source when neither is given).
        ars: also train the set and two random real baselines (same bytes; DD-Ranking's same image
            count per class) without augmentation, and report DD-Ranking's Augmentation-Robust Score
            against each (``published/scores.py``; costs three more trainings per baseline and model).
        teacher / teacher_model: a state-dict ``.pt`` of an evaluation model trained on the source in the
            set's input space; it relabels every augmented batch of the set and of the random baseline
            (SRe2L / RDED style), trained with ``soft_loss`` at ``temperature``.
        lrs: also report DD-Ranking's Label-Robust Score against the same two random baselines as ``ars``
            (``foreign/ranking.py`` says which trainings feed it; a soft-label or teacher set trains once
            more with its hard labels). real_accuracy: its Acc(real, hard), in percent: one number, a
            model -> number mapping, or ``"train"`` to train on the whole real train split read (as
            expensive as it sounds); real_accuracy_from: where a given number comes from (reported).
        storage_bytes: override the computed storage (e.g. a factorised set). real_itemsize: bytes
            per value of the baseline's real images (default: the set's element size).
        baseline: also evaluate random real images at the same storage (the relative score).
        max_per_class: read only this many real train images per class (statistics, baseline).
        eval_max_per_class: test on the first k test images per class.

    Returns:
        A :class:`ForeignEvalReport` (``to_dict()``, ``summary()``).
    """
    from ..data.hub import load_image_classification
    from ..published.evaluation import evaluate_in_space
    from ..published.normalization import NORMALIZATION_PRESETS
    from ..published.soft_labels import SOFT_LOSSES, soft_criterion

    # options that need no data, checked before anything is read or fitted
    if ars and not baseline:
        raise ConfigError("ars needs the random real baseline (baseline=True / no --no-baseline)")
    if lrs and not baseline:
        raise ConfigError("lrs needs the random real baseline (baseline=True / no --no-baseline)")
    if lrs and real_accuracy is None:
        raise ConfigError("lrs needs the full real data's hard-label accuracy: pass real_accuracy=<percent> "
                          "(--real-accuracy, e.g. the whole-dataset row of the paper's table, with real_accuracy_from "
                          "saying which) or real_accuracy='train' (--real-accuracy train: one more training per run "
                          "on the whole real train split)")
    if real_accuracy is not None and not lrs:
        raise ConfigError("real_accuracy is only read by the Label-Robust Score: pass lrs=True (--lrs) too")
    valid = NORMALIZATIONS + tuple(NORMALIZATION_PRESETS)
    if input_normalization not in valid:
        raise ConfigError(f"input_normalization must be one of {', '.join(valid)}, got {input_normalization!r}")
    SOFT_LOSSES.get(soft_loss)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ConfigError(f"the soft-label temperature must be positive, got {temperature!r}")
    if not (isinstance(zca_eps, (int, float)) and not isinstance(zca_eps, bool) and zca_eps > 0):
        raise ConfigError(f"zca_eps (the ZCA regularisation) must be a positive number, got {zca_eps!r}")
    for name, v in (("storage_bytes", storage_bytes), ("real_itemsize", real_itemsize)):
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise ConfigError(f"{name} must be a positive whole number of bytes, got {v!r}")
    data = dataset if isinstance(dataset, ImageClassificationData) else \
        load_image_classification(dataset, max_per_class=max_per_class)
    dataset_name = data.info.dataset
    if data.test is None or len(data.test) == 0:
        raise SplitError(f"{dataset_name!r} has no test split to evaluate on")
    from ..published.haba import haba_run_folder

    folder_bases = haba_run_folder(str(source))  # a HaBa run folder: read its images_best.pt + weights_best.pt
    path = str(folder_bases) if folder_bases is not None else source
    cs, matching = load_condensed_set(path, data, split=split, config_name=config_name, revision=revision,
                                      image_column=image_column, label_column=label_column, labels=labels,
                                      labels_file=labels_file, soft_label_column=soft_label_column)
    if teacher is not None and cs.soft is not None:
        raise ConfigError("the set carries soft labels and a teacher was given: use one or the other")
    c, h, w = data.image_shape
    hal = cs.hallucinators  # HaBa: the images are bases, rendered by these during training
    if hal is not None and factor not in (None, 1):
        raise ConfigError("factor decodes IDC mosaics; a HaBa set is decoded by its hallucinators (give no factor)")
    if hal is not None and ars:
        raise ConfigError("ars is not implemented for a HaBa set (its no-augmentation trainings would need the "
                          "hallucinators' random rendering too); run without ars")
    if hal is not None and lrs:
        raise ConfigError("lrs is not implemented for a HaBa set (its hard-label and soft-label trainings would need "
                          "the hallucinators' random rendering too); run without lrs")
    # before any decoding: what the files store (HaBa: bases + hallucinators' parameters)
    stored_bytes = int(cs.images.numel()) * cs.itemsize + (hal.nbytes if hal is not None else 0)
    notes = list(cs.notes)
    decoded = decode_factor(cs, str(source), factor)
    if decoded:
        notes.append(decoded)
    shown = cs.images if hal is None else hal.render_all(cs.images)  # the images the networks see
    if input_normalization == "auto":
        mode, reason = infer_normalization(shown)
        if hal is not None:
            reason += f" (of the {len(shown)} rendered images)"
    else:
        mode, reason = input_normalization, "given"
    if hal is not None and input_normalization == "auto":
        notes.append("HaBa's code saves its bases in its training space: MTT's constants (input_normalization="
                     "'mtt-cifar10', 'mtt-cifar100', 'svhn', 'mnist', ...), or kornia's ZCA under --zca, which its "
                     "CIFAR scripts use ('zca'); the auto choice was inferred from the rendered images: pass "
                     "input_normalization when the run's settings are known")
    if (set_mean is not None or set_std is not None) and mode != "source":
        raise ConfigError(f"set_mean/set_std describe a 'source'-normalised file, but the values are read as {mode!r}")
    x, space = space_for(mode, shown, data, zca_eps, max_per_class, notes)
    if mode == "source" and input_normalization == "auto" and set_mean is None and set_std is None:
        fits = [n for n in NORMALIZATION_PRESETS if NORMALIZATION_PRESETS.get(n).channels == c]
        notes.append(f"the values were read as normalised with {data.info.dataset!r}'s train statistics; sets saved by "
                     f"the DC/DSA/DM, MTT and IDC code bases use fixed constants instead: pass "
                     f"input_normalization=<preset> (--input-normalization; for {c} channel(s): {', '.join(fits)})")
    after = None  # HaBa: the change of space applied to each rendered batch (the hallucinators run as stored)
    if hal is not None and x is None:
        def after(t: torch.Tensor) -> torch.Tensor:
            return to_source_normalization(t, mode, data.mean.to(t.device), data.std.to(t.device), set_mean, set_std)
    if x is None:
        x = to_source_normalization(shown, mode, data.mean, data.std, set_mean, set_std)  # (N, C, H, W) float32
    if not bool(torch.isfinite(x).all()):
        raise DatasetError(f"{source!r}: the images contain NaN or Inf")
    decode = None
    if hal is not None:
        x = cs.images.float()  # the bases (N, C_in, H, W): each training batch is rendered from them
        hal_dev = hal.to(device)
        decode = lambda g: hal_dev.batch_renderer(g, after)  # noqa: E731

    lr, lr_from = resolve_lr(str(path), eval_lr, lr_file)
    ec = eval_config or EvalConfig()
    overrides = {k: v for k, v in {"eval_models": list(models) if models else None, "eval_runs": runs,
                                   "eval_epochs": epochs, "eval_lr": lr}.items() if v is not None}
    ec = EvalConfig(**{**asdict(ec), **overrides})
    if hal is not None and lr_from is None and eval_lr is None:
        notes.append("HaBa's evaluation trains with the lr its distillation learned (syn_lr), which its code does not "
                     "save: the protocol's lr was used; pass eval_lr (--eval-lr) or an lr_best.pt if it is known")
    real_acc = check_real_accuracy(real_accuracy, ec.eval_models) if lrs else None
    if lr_from:
        notes.append(f"evaluation lr {lr:g} ({lr_from}); the random real baseline trains with the same lr")
    test = data.test
    if eval_max_per_class is not None:
        test = test.subset(first_per_class(test.labels, eval_max_per_class, data.num_classes))
    counts = torch.bincount(cs.labels, minlength=data.num_classes)
    criterion, targets, label_bytes, labels_kind = None, cs.labels, 0, "hard"
    if cs.soft is not None:
        criterion = soft_criterion(soft_loss, temperature)
        targets = cs.soft.log_targets(temperature)  # (N, K)
        label_bytes = cs.soft.nbytes
        labels_kind = f"soft ({cs.soft.kind}; loss {soft_loss}, temperature {temperature:g})"
        notes.append(f"storage_bytes counts the soft labels: {label_bytes:,} bytes ({tuple(cs.soft.values.shape)} "
                     f"{str(cs.soft.values.dtype).replace('torch.', '')}); the random real baseline trains on its "
                     f"hard labels with cross-entropy (no teacher relabels it)")
    elif teacher is None:
        notes.append("labels are not counted in storage_bytes")
    warnings = []
    if cs.kind == "dataset" and cs.soft is None:
        from ..published.relabel import hard_label_warning, is_image_folder, teacher_protocol_note

        if is_image_folder(str(source)):
            if teacher is None:
                warnings.append(hard_label_warning())
            else:
                notes.append(teacher_protocol_note())
    wrap, base_kw = None, {}
    if teacher is not None:
        from ..published.teacher import TeacherLabelled, load_teacher, teacher_criterion

        tnet = load_teacher(teacher, teacher_model, data.num_classes, (c, h, w), device)
        criterion = teacher_criterion(soft_loss, temperature)
        wrap = lambda net: TeacherLabelled(net, tnet)  # noqa: E731
        base_kw = {"criterion": criterion, "wrap": wrap}
        labels_kind = (f"teacher {teacher_model} ({Path(teacher).name}) relabels each augmented batch; loss {soft_loss}, "
                       f"temperature {temperature:g}")
        notes.append(f"teacher relabelling: the teacher must have been trained on {data.info.dataset!r} in this input "
                     f"space ({space.name}); the random baseline is relabelled by the same teacher with the same loss; "
                     f"storage_bytes counts the images only (the teacher is not priced)")
    nbytes = int(storage_bytes) if storage_bytes is not None else stored_bytes + label_bytes

    # not pipeline.evaluate: a set made elsewhere has no artefact to record into, trains in its own input
    # space (soft labels, a teacher, HaBa's rendering) and is reported beside a baseline; the protocol,
    # the run seeds and the test rows (first_per_class) are the same ones
    records = evaluate_in_space(x, targets, test, space, data.num_classes, ec, seed=seed, device=device,
                                criterion=criterion, progress=progress, wrap=wrap, decode=decode,
                                image_shape=(c, h, w))
    base_loss = "cross-entropy" if teacher is None else f"teacher {soft_loss} (T={temperature:g})"
    for r in records.values():
        r.protocol = {**r.protocol, "input": space.name, "loss": base_loss if cs.soft is None
                      else f"{soft_loss} (T={temperature:g})"}
    base: dict[str, Any] = {"enabled": bool(baseline)}
    relative: dict[str, dict] = {}
    if baseline:
        entries, relative = same_storage_baseline(
            nbytes, int(real_itemsize or cs.itemsize), data, test, space, ec, records, seed=seed, device=device,
            progress=progress, base_kw=base_kw, base_loss=base_loss, notes=notes)
        base.update(entries)
    scores: dict[str, Any] = {}
    cache: dict = {}  # random same-count trainings both scores read
    if ars:
        scores = ars_scores(x, targets, criterion, test, space, data, ec, records, base, seed, device, progress,
                            notes, wrap, base_kw, cache=cache)
    label_robust: dict[str, Any] = {}
    if lrs:
        label_robust = lrs_scores(x, cs.labels, test, space, data, ec, records, base, seed, device, progress, notes,
                                  real_accuracy=real_acc, real_accuracy_from=real_accuracy_from,
                                  hard_label_set=cs.soft is None and teacher is None,
                                  soft_without_teacher=cs.soft is not None, base_kw=base_kw, cache=cache)
    names = data.info.class_names
    return ForeignEvalReport(
        source=str(source), dataset=dataset_name, kind=cs.kind, layout=cs.layout, num_images=len(cs.labels),
        images_per_class={names[i]: int(n) for i, n in enumerate(counts.tolist())},
        image_shape=[c, h, w], stored_dtype=cs.stored_dtype, storage_bytes=nbytes,
        input_normalization=mode, normalization_reason=reason, label_matching=matching,
        evaluations={m: r.to_dict() for m, r in records.items()}, baseline=base, relative=relative,
        test_data={"dataset": dataset_name, "split": data.info.eval_split, "rows": len(test),
                   "max_per_class": eval_max_per_class},
        notes=notes, normalization=space.describe, labels_kind=labels_kind, label_bytes=label_bytes,
        eval_lr={"lr": ec.eval_lr, "from": lr_from or "protocol default"}, scores=scores, warnings=warnings,
        label_robust=label_robust,
    )
