"""The speed choice applied to a run: the options a config leaves unset, filled from ``speed`` (auto | exact).

``engine/speed.py`` decides the numeric path from the hardware and the run's FLOPs; this module
asks it for one run (a ``RunConfig`` and its data, or an artefact about to be evaluated) and puts
the answer into the config, so the orchestrator, ``CondensedDataset`` and the benchmarks choose the
same way. A resumed condensation keeps the path its checkpoint was written under. It sits beside
the orchestrator rather than in ``engine`` because evaluating an artefact (``export``) is one of
its inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .data.types import ImageClassificationData
from .engine.config import CondenseConfig, EvalConfig, RunConfig
from .engine.resolve import resolve_config
from .engine.speed import Hardware, SpeedPlan, compiler_problem, default_speed, plan_speed, probe_hardware
from .errors import HfLodcError
from .export.artifact import Artifact

__all__ = ["choose_speed", "choose_eval_speed"]


def choose_speed(cfg: RunConfig, data: ImageClassificationData, accelerator=None, *,
                 hardware: Hardware | None = None, probe: Callable[[str], str | None] = compiler_problem,
                 ) -> tuple[RunConfig, SpeedPlan]:
    """``cfg`` with the speed options it leaves unset filled by ``cfg.speed`` (engine/speed.py), and the
    plan. ``hardware`` / ``probe`` replace the device and compiler probes (tests)."""
    if cfg.speed is None:  # recorded as chosen, so the artefact says which path ran
        cfg = cfg.replace(speed=default_speed())
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    hw = hardware or probe_hardware(device)
    spec, resolved, budget = resolve_config(cfg.condense, data.image_shape, data.num_classes)
    condense_view = cfg.condense
    launched = str(accelerator.mixed_precision) if accelerator is not None else "no"
    if launched != "no":  # `accelerate launch --mixed_precision ...` counts as the user's choice
        condense_view = CondenseConfig(**{**cfg.condense.__dict__, "mixed_precision": launched})
    backend = cfg.eval.eval_backend
    vmap = backend == "vmap" or (backend == "auto" and device.type != "cpu" and cfg.eval.eval_runs > 1)
    plan = plan_speed(cfg.speed, hw, method_objective=spec.objective, matching_model=resolved.matching_model,
                      image_shape=tuple(data.image_shape), num_classes=data.num_classes, batch_real=cfg.condense.batch_real,
                      matched_classes=min(getattr(cfg.condense, "classes_per_iteration", None) or data.num_classes,
                                          data.num_classes),
                      syn_per_class=budget.images_per_class, iterations=resolved.iterations, condense_cfg=condense_view,
                      eval_cfg=cfg.eval, eval_images=data.num_classes * budget.images_per_class,
                      eval_backend_vmap=vmap, probe=probe)
    if cfg.resume and cfg.output_dir:
        _follow_checkpoint(plan, Path(cfg.output_dir) / "checkpoints", cfg.condense.method)
    plan.apply_host_memory()
    chosen = plan.options()
    return (cfg.replace(**chosen) if chosen else cfg), plan


def choose_eval_speed(ec: EvalConfig, art: Artifact, speed: str | None, device: torch.device | str = "cpu", *,
                      hardware: Hardware | None = None, probe: Callable[[str], str | None] = compiler_problem,
                      ) -> EvalConfig:
    """``ec`` with the evaluation speed options it leaves unset filled by ``speed`` (None: the default),
    for evaluating the set of ``art``."""
    device = torch.device(device)
    hw = hardware or probe_hardware(device)
    shape = tuple(art.synset.image_shape)
    n = int(art.labels.numel())
    k = int(art.labels.max()) + 1 if n else 1
    vmap = ec.eval_backend == "vmap" or (ec.eval_backend == "auto" and device.type != "cpu" and ec.eval_runs > 1)
    plan = plan_speed(speed or default_speed(), hw, method_objective=None, matching_model="", image_shape=shape,
                      num_classes=k, batch_real=0, syn_per_class=0, iterations=0, condense_cfg=None, eval_cfg=ec,
                      eval_images=n, eval_backend_vmap=vmap, probe=probe)
    plan.apply_host_memory()
    chosen = plan.options()
    return EvalConfig(**{**ec.__dict__, **chosen}) if chosen else ec


_CONDENSE_SPEED_OPTIONS = ("mixed_precision", "channels_last", "compile", "real_chunk", "fused_stem")


def _follow_checkpoint(plan: SpeedPlan, checkpoint_dir: Path, method: str) -> None:
    """Resuming: the condensation continues on the path its checkpoint was written under (a longer
    run would otherwise cross the compile threshold and be refused for a different identity)."""
    from .engine.checkpoint import latest_checkpoint, read_checkpoint
    from .engine.condense_options import flat_option_names, objective_option_owners
    from .engine.identity import OMIT_AT_DEFAULT

    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        return
    try:
        theirs = read_checkpoint(path).get("identity") or {}
    except HfLodcError:
        return  # the condenser reports the damaged checkpoint with its remedy
    cond = next(p for p in plan.phases if p.phase == "condense")
    followed = []
    foreign = set(objective_option_owners()) - set(flat_option_names(method))  # options of other objectives
    for k in _CONDENSE_SPEED_OPTIONS:
        if k in cond.kept or k in foreign or (k not in theirs and k not in OMIT_AT_DEFAULT):
            continue
        v = theirs.get(k, OMIT_AT_DEFAULT.get(k))
        if cond.options.get(k) != v:
            cond.options[k] = v
            followed.append(f"{k}={v}")
    if followed:
        cond.reasons.append(f"resuming {path.name}: its path ({', '.join(followed)})")

