"""The entry: evaluate a foreign condensed set against the real test split and random real at equal storage.

It checks the options that need no data, then runs the steps of the sibling modules in order: read
(``load``), decode and the learned lr (``conventions``), the input space (``input_space``), the set's
labels (hard, soft or a teacher's), the set's evaluation, the baseline and scores (``baseline``), and
returns a :class:`~hf_lodc.foreign.report.ForeignEvalReport`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data.splits import first_per_class
from ..data.types import ImageClassificationData
from ..engine.config import EvalConfig
from ..errors import ConfigError, DatasetError, SplitError
from .baseline import same_storage_baseline
from .conventions import decode_factor, resolve_lr
from .input_space import infer_normalization, space_for, to_source_normalization
from .load import load_condensed_set
from .options import ForeignEvalOptions
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
    config_name: str | None = None,
    revision: str | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    **options: Any,
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
        config_name / revision: the config and revision of a Hub dataset source.
        seed: the evaluation seed (the same run seeds for the set and the baseline).
        **options: the fields of :class:`~hf_lodc.foreign.options.ForeignEvalOptions`, each with its
            help: how to read the set (``split``, ``image_column``, ``labels``, ``labels_file``, ...),
            what its values are (``input_normalization``, ``set_mean`` / ``set_std``, ``zca_eps``,
            ``factor``), how its labels train (``soft_loss``, ``temperature``, ``teacher``, ``eval_lr``,
            ``lr_file``) and what is measured beside it (``baseline``, ``storage_bytes``, ``ars``,
            ``lrs``, ``real_accuracy``, ``max_per_class``, ``eval_max_per_class``). They are checked
            when given, before anything is read.

    Returns:
        A :class:`ForeignEvalReport` (``to_dict()``, ``summary()``).
    """
    from ..data.hub import load_image_classification
    from ..published.evaluation import evaluate_in_space
    from ..published.normalization import NORMALIZATION_PRESETS
    from ..published.soft_labels import soft_criterion

    o = ForeignEvalOptions(**options)  # options that need no data, checked before anything is read or fitted
    split, image_column, label_column, labels, labels_file = (o.split, o.image_column, o.label_column, o.labels,
                                                              o.labels_file)
    input_normalization, set_mean, set_std, zca_eps, factor = (o.input_normalization, o.set_mean, o.set_std,
                                                               o.zca_eps, o.factor)
    soft_loss, temperature, teacher, teacher_model = o.soft_loss, o.temperature, o.teacher, o.teacher_model
    eval_lr, lr_file, soft_label_column = o.eval_lr, o.lr_file, o.soft_label_column
    baseline, storage_bytes, real_itemsize = o.baseline, o.storage_bytes, o.real_itemsize
    max_per_class, eval_max_per_class, ars, lrs = o.max_per_class, o.eval_max_per_class, o.ars, o.lrs
    real_accuracy, real_accuracy_from = o.real_accuracy, o.real_accuracy_from
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
