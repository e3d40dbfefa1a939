"""One run end to end: load -> condense -> evaluate -> artefact. Used by the recipes and the API.

Everything that can be checked before work starts is checked first (method, init, budget, model
names, dataset, columns, splits), so a bad option fails in seconds and no output directory is
created for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .data.hub import ImageClassificationData, load_image_classification
from .engine.condenser import CondenseResult, Condenser, resolve_config
from .engine.config import DataConfig, EvalConfig, RunConfig
from .engine.evaluate import EVAL_BACKENDS, evaluate_synthetic
from .errors import ConfigError
from .export.artifact import Artifact, save_artifact

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
        mixed=dc.mixed,
        skip_corrupt=dc.skip_corrupt,
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


def validate(cfg: RunConfig, image_shape=(3, 32, 32)) -> None:
    """Checks that need no data (the budget is re-checked with the real image shape later)."""
    resolve_config(cfg.condense, image_shape)
    validate_eval(cfg.eval, image_shape)


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
        },
        "storage": {
            **storage,
            "pixel_ipc_budget": result.budget.ipc,
            "images_per_class": result.budget.images_per_class,
            "rank": result.budget.rank,
            "dtype": "float32",
        },
    }


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
        data = load_data(cfg.data)
    validate(cfg, data.image_shape)
    out = Path(cfg.output_dir) if cfg.output_dir else None
    ckpt = out / "checkpoints" if out else None  # created only when a checkpoint is written
    condenser = Condenser(data, cfg.condense, accelerator=accelerator, checkpoint_dir=ckpt, progress=progress)
    b = condenser.budget
    log(f"[hf_lodc] {data.info.dataset}: {data.num_classes} classes, {data.info.num_train} train images "
        f"{tuple(data.image_shape)}; method {condenser.spec.name}, budget {b.ipc} pixel image(s)/class -> "
        f"{b.images_per_class} stored/class" + (f" at rank {b.rank}" if b.rank else ""))
    result = condenser.run(resume=cfg.resume)
    if result.iterations_per_s:
        log(f"[hf_lodc] condensed in {result.wall_time_s:.1f} s ({result.iterations_per_s:.3f} it/s)")
    is_main = accelerator is None or accelerator.is_main_process
    records = {}
    if cfg.eval.eval_runs and data.test is not None and is_main:
        device = accelerator.device if accelerator is not None else torch.device("cpu")
        seed = cfg.eval.eval_seed if cfg.eval.eval_seed is not None else cfg.condense.seed
        t0 = time.perf_counter()
        records = evaluate_synthetic(result.images(), result.labels, data.test, data.mean, data.std,
                                     data.num_classes, cfg.eval, seed=seed, device=device, progress=progress)
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
        save_artifact(art, out)
        log(f"[hf_lodc] wrote {out}")
    return art
