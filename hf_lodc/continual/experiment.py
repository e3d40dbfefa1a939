"""A class-incremental run: for every seed and memory type, condense task after task, GDumb after each.

Output directory (written by the main process only)::

    memories/seed<s>/<method>/task<t>/   the task's memory, an hf_lodc artefact (resume: reused if present)
    checkpoints/seed<s>/<method>/task<t>/ condensation checkpoints (with checkpoint_every)
    steps/seed<s>/<method>/task<t>.json  the GDumb evaluation after task t (reused when nothing changed)
    continual.json, continual.md, continual.png   the summary (see ``report``)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.types import ImageClassificationData
from ..engine.config import RunConfig
from ..engine.evaluate import EvalRecord, protocol_of
from ..errors import ConfigError
from ..export.save import save_artifact
from ..pipeline import load_data
from ..run_checks import validate
from ..seeding import derive_seed
from .config import ContinualConfig
from .gdumb import gdumb_step
from .memory import TaskMemory, condense_task, load_task_memory
from .report import summarise, write_json, write_report
from .tasks import TaskSplit, restrict, split_classes

__all__ = ["StepResult", "ContinualResult", "run_continual", "validate_continual", "eval_seed_of"]


@dataclass
class StepResult:
    """GDumb after task ``task`` (0-based) of one (seed, memory type)."""

    seed: int
    method: str
    task: int
    classes_seen: list[int]
    evaluations: dict[str, EvalRecord]
    memory_images: int  # synthetic images in the whole memory
    memory_numel: int  # numbers stored in the whole memory
    condense_s: float = 0.0
    reused: bool = False  # loaded from a previous run's step file

    @property
    def num_classes(self) -> int:
        return len(self.classes_seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "method": self.method, "task": self.task, "num_classes": self.num_classes,
            "classes_seen": self.classes_seen, "memory_images": self.memory_images, "memory_numel": self.memory_numel,
            "condense_s": round(self.condense_s, 2),
            "evaluations": {k: r.to_dict() for k, r in self.evaluations.items()},
        }


@dataclass
class ContinualResult:
    config: ContinualConfig
    splits: dict[int, TaskSplit]
    steps: list[StepResult] = field(default_factory=list)
    memories: dict[tuple[int, str], list[TaskMemory]] = field(default_factory=dict)  # (seed, method) -> per task
    summary: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None


def eval_seed_of(cfg: ContinualConfig, seed: int, task: int) -> int:
    """GDumb models after ``task`` are seeded by (seed, task) only: every memory type gets the same inits."""
    base = cfg.eval.eval_seed if cfg.eval.eval_seed is not None else seed
    return derive_seed(base, "continual", "gdumb", task) % (2**31)


def validate_continual(cfg: ContinualConfig, data: ImageClassificationData | None = None) -> None:
    """Everything checkable before work starts (the core checks, per memory type); with ``data``,
    the budgets at its image size and the class split too."""
    shape = data.image_shape if data is not None else None
    task_classes = None  # the fewest classes of a task: the tightest budget where classes share numbers (HaBa)
    if data is not None:
        if data.test is None or len(data.test) == 0:
            raise ConfigError(f"dataset {data.info.dataset!r} has no test split; set eval_split or holdout_fraction")
        task_classes = min(len(t) for t in split_classes(data.num_classes, cfg.tasks, cfg.first_seed).tasks)
    for m in cfg.methods:
        validate(RunConfig(data=cfg.data, condense=cfg.task_condense_config(m, cfg.first_seed, 0), eval=cfg.eval),
                 shape, task_classes)


def _step_settings(cfg: ContinualConfig, seed: int, task: int) -> dict[str, Any]:
    """What a saved GDumb step must agree on to be reused."""
    return {"eval": protocol_of(cfg.eval), "eval_models": list(cfg.eval.eval_models), "eval_runs": cfg.eval.eval_runs,
            "eval_seed": eval_seed_of(cfg, seed, task), "test_per_class": cfg.test_per_class}


def _load_step(path: Path, settings: dict) -> dict[str, EvalRecord] | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("settings") != json.loads(json.dumps(settings, default=str)):
        return None
    return {k: EvalRecord.from_dict(v) for k, v in saved["evaluations"].items()}


class _Run:
    """The loops of :func:`run_continual`; one instance per call."""

    def __init__(self, cfg, data, accelerator, progress, log):
        self.cfg, self.data, self.acc, self.progress, self.log = cfg, data, accelerator, progress, log
        self.device = accelerator.device if accelerator is not None else torch.device("cpu")
        self.is_main = accelerator is None or accelerator.is_main_process
        self.out = Path(cfg.output_dir) if cfg.output_dir else None

    def barrier(self) -> None:
        if self.acc is not None:
            self.acc.wait_for_everyone()

    def task_memory(self, split: TaskSplit, method: str, t: int) -> TaskMemory:
        cfg, seed = self.cfg, split.seed
        subset = restrict(self.data, split.classes(t))  # only task t's rows: no other task's raw data
        ccfg = cfg.task_condense_config(method, seed, t)
        where = f"seed{seed}/{method}/task{t}"
        path = self.out / "memories" / where if self.out else None
        self.barrier()  # every process decides on the same files
        if path is not None and path.is_dir():
            return load_task_memory(path, subset, ccfg, task=t)
        ckpt = self.out / "checkpoints" / where if self.out else None
        record = {"class_order_seed": seed, "class_order": list(split.order), "tasks": cfg.tasks,
                  "memory_ipc": cfg.memory_ipc}
        memory, art = condense_task(subset, ccfg, task=t, record=record, accelerator=self.acc,
                                    checkpoint_dir=ckpt, progress=self.progress)
        if path is not None and self.is_main:
            save_artifact(art, path)
        self.barrier()
        return memory

    def step(self, split: TaskSplit, method: str, t: int, memories: list[TaskMemory]) -> StepResult | None:
        cfg, seed = self.cfg, split.seed
        seen = split.seen(t)
        settings = _step_settings(cfg, seed, t)
        path = self.out / "steps" / f"seed{seed}" / method / f"task{t}.json" if self.out else None
        result = StepResult(seed=seed, method=method, task=t, classes_seen=seen.tolist(), evaluations={},
                            memory_images=sum(len(m.labels) for m in memories),
                            memory_numel=sum(m.stored_numel for m in memories),
                            condense_s=memories[-1].wall_time_s)
        if not self.is_main:
            return None
        if path is not None and all(m.resumed for m in memories):
            saved = _load_step(path, settings)
            if saved is not None:
                result.evaluations, result.reused = saved, True
                return result
        result.evaluations = gdumb_step(memories, self.data, seen, cfg.eval, seed=settings["eval_seed"],
                                        device=self.device, test_per_class=cfg.test_per_class)
        if path is not None:
            write_json(path, {**result.to_dict(), "settings": settings})
        return result

    def run(self) -> ContinualResult:
        cfg = self.cfg
        splits = {s: split_classes(self.data.num_classes, cfg.tasks, s) for s in cfg.seed_list}
        res = ContinualResult(config=cfg, splits=splits, output_dir=self.out)
        for seed, split in splits.items():
            for method in cfg.methods:
                memories: list[TaskMemory] = []
                for t in range(cfg.tasks):
                    t0 = time.perf_counter()
                    memories.append(self.task_memory(split, method, t))
                    step = self.step(split, method, t, memories)
                    if step is None:
                        continue
                    res.steps.append(step)
                    accs = "; ".join(f"{k} {r.accuracy_mean:.2f} +- {r.accuracy_std:.2f} %"
                                     for k, r in step.evaluations.items())
                    how = "resumed" if memories[-1].resumed else f"condensed in {memories[-1].wall_time_s:.0f} s"
                    self.log(f"[continual] seed {seed} {method} task {t + 1}/{cfg.tasks} ({step.num_classes} classes, "
                             f"memory {step.memory_images} images, {how}): {accs} ({time.perf_counter() - t0:.0f} s)")
                res.memories[(seed, method)] = memories
        return res


def run_continual(
    cfg: ContinualConfig,
    *,
    data: ImageClassificationData | None = None,
    accelerator=None,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> ContinualResult:
    """Run every (seed, memory type) through the tasks; write the summary if ``cfg.output_dir``.

    Only the main process evaluates and writes; ``result.steps`` is empty on the others.
    """
    validate_continual(cfg)
    if data is None:
        data = load_data(cfg.data, accelerator)
    validate_continual(cfg, data)
    run = _Run(cfg, data, accelerator, progress, log)
    result = run.run()
    if run.is_main:
        result.summary = summarise(result, data)
        if run.out is not None:
            write_report(result, run.out)
            log(f"[continual] wrote {run.out / 'continual.json'} (+ .md, .png)")
    run.barrier()
    return result
