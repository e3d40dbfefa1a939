"""One run end to end: load -> condense -> evaluate -> artefact. Used by the recipes and the API.

Everything that can be checked before work starts is checked first (method, init, budget, model
names, dataset, columns, splits), so a bad option fails in seconds and no output directory is
created for it.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from .data.types import ImageClassificationData
from .data.hub import load_image_classification
from .engine.condenser import CondenseResult, Condenser, resolve_config
from .engine.config import DataConfig, EvalConfig, RunConfig
from .engine.evaluate import EVAL_BACKENDS, EvalRecord, evaluate_synthetic, protocol_of
from .errors import ConfigError, UnknownNameError
from .export.artifact import Artifact, check_writable, save_artifact_or_rescue
from .methods import get_method
from .models import create_eval_model
from .synset.budget import check_budget_args
from .synset.init import INITS

__all__ = ["load_data", "validate", "run_experiment", "results_record", "default_config_name"]


def load_data(dc: DataConfig) -> ImageClassificationData:
    return load_image_classification(
        dc.dataset,
        config_name=dc.config_name,
        revision=dc.revision,
        train_split=dc.train_split,
        eval_split=dc.eval_split,
        image_column=dc.image_column,
        label_column=dc.label_column,
        holdout_fraction=dc.holdout_fraction,
        holdout_seed=dc.holdout_seed,
        image_size=dc.image_size,
        image_mode=dc.image_mode,
        mixed=dc.mixed,
        skip_corrupt=dc.skip_corrupt,
        drop_empty_classes=dc.drop_empty_classes,
        max_per_class=dc.max_per_class,
    )


def validate_eval(ec: EvalConfig, image_shape=None) -> None:
    from .models import create_eval_model

    if ec.eval_runs <= 0:
        raise ConfigError(f"eval_runs must be positive, got {ec.eval_runs}")
    if ec.eval_epochs <= 0:
        raise ConfigError(f"eval_epochs must be positive, got {ec.eval_epochs}")
    if ec.eval_backend != "auto":
        EVAL_BACKENDS.get(ec.eval_backend)
    c, h, w = image_shape or (3, 32, 32)
    for m in ec.eval_models:
        create_eval_model(m, num_classes=2, in_chans=c, img_size=(h, w))  # raises UnknownNameError


def validate(cfg: RunConfig, image_shape=None) -> None:
    """Checks before any work. Without ``image_shape`` (data not read yet): names and the budget's
    own arguments; with it: the full budget at that size, and every network built once."""
    if image_shape is None:
        spec = get_method(cfg.condense.method)
        INITS.get(cfg.condense.init or spec.init)
        check_budget_args(cfg.condense.ipc, cfg.condense.rank if spec.lowrank else None, cfg.condense.images_per_class)
        validate_eval(cfg.eval)
        return
    _, resolved, _ = resolve_config(cfg.condense, image_shape)
    validate_eval(cfg.eval, image_shape)
    c, h, w = image_shape
    try:
        create_eval_model(resolved.matching_model, num_classes=2, in_chans=c, img_size=(h, w))
    except UnknownNameError as e:
        raise UnknownNameError(f"matching_model: {e}") from None


def default_config_name(result_method: str, ipc, rank) -> str:
    ipc_s = f"{ipc:g}" if isinstance(ipc, float) else str(ipc)
    return f"{result_method}-ipc{ipc_s}" + (f"-r{rank}" if rank else "")


def results_record(result: CondenseResult, records: dict, num_classes: int) -> dict[str, Any]:
    storage = result.budget.bytes(num_classes)
    return {
        "method": result.method.name,
        "evaluations": {name: r.to_dict() for name, r in records.items()},
        "condensation": {
            "wall_time_s": round(result.wall_time_s, 2),
            "iterations": result.config.iterations,
            "iterations_per_s": round(result.iterations_per_s, 4) if result.iterations_per_s else None,
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "processes": result.processes,
        },
        "storage": {
            **storage,
            "pixel_ipc_budget": result.budget.ipc,
            "images_per_class": result.budget.images_per_class,
            "rank": result.budget.rank,
            "dtype": "float32",
        },
    }


def evaluate_distributed(result: CondenseResult, data: ImageClassificationData, ec: EvalConfig, condense_seed: int,
                         accelerator=None, progress: bool = True) -> dict:
    """The protocol's runs split over processes: run r trains on process r % P; accuracies gathered.

    Run r is seeded by (seed, model, r) alone, so the records equal a one-process evaluation.
    """
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    seed = ec.eval_seed if ec.eval_seed is not None else condense_seed
    mine = list(range(ec.eval_runs))[rank::world]
    records = {}
    if mine:
        records = evaluate_synthetic(result.images(), result.labels, data.test, data.mean, data.std, data.num_classes,
                                     ec, seed=seed, device=device, runs=mine, progress=progress and world == 1)
    if world == 1:
        return records
    from accelerate.utils import gather_object

    parts = gather_object([(m, r, acc, rec.wall_time_s) for m, rec in records.items()
                           for r, acc in zip(mine, rec.accuracies)])  # every process's (model, run, acc, s)
    merged = {}
    for m in ec.eval_models:
        rows = sorted((r, acc, s) for (mm, r, acc, s) in parts if mm == m)
        merged[m] = EvalRecord(model=m, accuracies=[acc for _, acc, _ in rows], epochs=ec.eval_epochs,
                               protocol=protocol_of(ec),
                               wall_time_s=max(s for _, _, s in rows))
        if progress and rank == 0:
            r = merged[m]
            print(f"[eval] {m}: {r.accuracy_mean:.2f} +- {r.accuracy_std:.2f} % over {r.runs} runs on {world} "
                  f"processes ({r.wall_time_s:.0f} s)", flush=True)
    return merged


def run_experiment(
    cfg: RunConfig,
    *,
    accelerator=None,
    data: ImageClassificationData | None = None,
    progress: bool = True,
    log=print,
) -> Artifact:
    """Condense, evaluate and (if ``cfg.output_dir``) save. Returns the artefact."""
    validate(cfg)
    if data is None:
        with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
            data = load_data(cfg.data)  # the main process fills any cache first; the others then read it
    validate(cfg, data.image_shape)
    out = Path(cfg.output_dir) if cfg.output_dir else None
    if out is not None and (accelerator is None or accelerator.is_main_process):
        check_writable(out)  # a read-only or foreign output dir fails now, not after the condensation
    ckpt = out / "checkpoints" if out else None  # created only when a checkpoint is written
    condenser = Condenser(data, cfg.condense, accelerator=accelerator, checkpoint_dir=ckpt, progress=progress, log=log)
    b = condenser.budget
    log(f"[hf_lodc] {data.info.dataset}: {data.num_classes} classes, {data.info.num_train} train images "
        f"{tuple(data.image_shape)}; method {condenser.spec.name}, budget {b.ipc} pixel image(s)/class -> "
        f"{b.images_per_class} stored/class" + (f" at rank {b.rank}" if b.rank else ""))
    result = condenser.run(resume=cfg.resume)
    if result.iterations_per_s:
        log(f"[hf_lodc] condensed in {result.wall_time_s:.1f} s ({result.iterations_per_s:.3f} it/s)")
    is_main = accelerator is None or accelerator.is_main_process
    records = {}
    if cfg.eval.eval_runs and data.test is not None:
        t0 = time.perf_counter()
        records = evaluate_distributed(result, data, cfg.eval, cfg.condense.seed, accelerator, progress)
        log(f"[hf_lodc] evaluation took {time.perf_counter() - t0:.1f} s")
    art = Artifact(
        synset=result.synset,
        source=data.info,
        budget=result.budget,
        method=result.method.name,
        condense_config=dict(result.config.__dict__),
        run_config=cfg.to_dict(),
        results=results_record(result, records, data.num_classes),
        history=result.history,
    )
    if out is not None and is_main:
        save_artifact_or_rescue(art, out)
        log(f"[hf_lodc] wrote {out}")
    return art
