"""The road from data to artefact: one condensation, recorded with the config it ran under.

This is the one public ``condense`` (``hf_lodc.condense``, ``pipeline.condense``). Every caller that
makes a condensed set goes through it: the Python API (keyword options or a config), the
orchestrator (``recipes/condense.py``), ``CondensedDataset.condense``, a continual run's task
memories and the benchmarks, so each artefact records its run config the same way and the next fix
to "check, condense, then build the artefact" is made once. The loop itself is ``engine.Condenser``.

What a run measured is read from the artefact: the set, its history and budget are fields;
``results["condensation"]`` holds the timings (``wall_time_s``, ``iterations_per_s``,
``steady_seconds_per_iteration``), ``processes`` and the ``device`` settings; ``condense_config`` the
resolved options; ``init_indices`` the real train rows an initialisation picked (in memory only).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import torch

from .data.types import ImageClassificationData
from .engine.condenser import CondenseResult, Condenser
from .engine.config import CondenseConfig, RunConfig, check_option_names
from .engine.speed import SpeedPlan
from .engine.validate import validate_condense_data
from .errors import ConfigError
from .export.artifact import Artifact, build_artifact
from .run_speed import choose_speed

__all__ = ["condense"]


def condense(
    data: ImageClassificationData,
    cfg: RunConfig | CondenseConfig | None = None,
    *,
    speed: bool | SpeedPlan = False,
    continue_from: Artifact | None = None,
    accelerator=None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    snapshot_at: tuple[int, ...] = (),
    on_snapshot: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    checkpoint_at_end: bool = False,
    record: dict[str, Any] | None = None,
    on_result: Callable[[CondenseResult], None] | None = None,
    checked: bool = False,
    **options: Any,
) -> Artifact:
    """Condense ``data`` and return the artefact (not yet evaluated).

        >>> art = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=200)

    ``cfg``: a ``RunConfig`` (recorded whole as the artefact's run config), or a ``CondenseConfig``
    alone when the data came from elsewhere (recorded as the run config's ``condense`` section; the
    source is then the artefact's ``SourceInfo``), or None: the defaults. ``options``: any
    ``CondenseConfig`` option (and any objective's) by its flat name, over ``cfg``'s condense section.
    The data and the options are checked here, before any work. ``record``: further run-config
    sections of the caller (e.g. a continual run's class order). ``checked``: the caller's validate step
    already checked ``cfg`` against this ``data`` (``pipeline.run_experiment``), so it is not checked twice.
    ``speed``: True fills the speed options a ``RunConfig`` leaves unset from its ``speed`` first
    (``run_speed.py``; not for a continued set, which keeps the path it was condensed on); a
    ``SpeedPlan`` is one the caller already chose. Either way the plan goes into ``results["speed"]``.
    Left False, the options' own defaults run (the float32 eager path).
    ``continue_from``: an artefact to continue; ``cfg``'s iterations count from its start, so the
    set's own iterations are already done. ``resume`` continues a checkpoint in ``checkpoint_dir``;
    ``progress`` shows a progress bar; ``on_snapshot(iteration, state)`` sees the set after each
    iteration in ``snapshot_at``; ``checkpoint_at_end`` also checkpoints the finished loop (before a
    long evaluation); ``on_result`` sees the engine's ``CondenseResult`` (unrounded timings) before it
    becomes the artefact.
    """
    if cfg is not None and not isinstance(cfg, (RunConfig, CondenseConfig)):
        raise ConfigError(f"cfg must be a RunConfig or CondenseConfig (or pass options as keywords), got "
                          f"{type(cfg).__name__}")
    check_option_names(options, CondenseConfig, "condense")
    run = cfg if isinstance(cfg, RunConfig) else None
    cc = run.condense if run is not None else cfg
    if options or cc is None:
        cc = CondenseConfig(**{**(cc.__dict__ if cc is not None else {}), **options})
        run = dataclasses.replace(run, condense=cc) if run is not None else None
    if options or not checked:
        validate_condense_data(data, cc)  # the door: the engine trusts what passed
    plan = speed if isinstance(speed, SpeedPlan) else None
    if speed is True and run is not None and continue_from is None:
        run, plan = choose_speed(run, data, accelerator)
        cc = run.condense
        if log is not None:
            for line in plan.lines():
                log(line)
    initial_state = _initial_state(continue_from) if continue_from is not None else None
    condenser = Condenser(data, cc, accelerator=accelerator, checkpoint_dir=checkpoint_dir, progress=progress,
                          initial_state=initial_state, log=log, snapshot_at=snapshot_at, on_snapshot=on_snapshot,
                          checkpoint_at_end=checkpoint_at_end)
    if log is not None:
        b = condenser.budget
        log(f"[hf_lodc] {data.info.dataset}: {data.num_classes} classes, {data.info.num_train} train images "
            f"{tuple(data.image_shape)}; method {condenser.spec.name}, budget {b.ipc} pixel image(s)/class -> "
            f"{b.images_per_class} stored/class" + (f" at rank {b.rank}" if b.rank else ""))
    result = condenser.run(resume=resume)
    ran_here = result.resumed_at is None or result.resumed_at < result.config.iterations
    if log is not None and result.iterations_per_s and ran_here:
        steady = (f"; {result.steady_seconds_per_iteration:.3g} s/iteration after warm-up"
                  if result.steady_seconds_per_iteration else "")
        over = f" over {result.sittings} sittings" if result.sittings > 1 else ""
        log(f"[hf_lodc] condensed in {result.wall_time_s:.1f} s{over} ({result.iterations_per_s:.3f} it/s{steady})")
    if on_result is not None:
        on_result(result)
    recorded = run.to_dict() if run is not None else {"condense": RunConfig(condense=cc).to_dict()["condense"]}
    art = build_artifact(result, data.info, run_config={**recorded, **(record or {})}, continued_from=continue_from,
                         from_iteration=initial_state["iteration"] if initial_state is not None else None)
    if plan is not None:
        art.results["speed"] = plan.record()
    return art


def _initial_state(art: Artifact) -> dict[str, Any]:
    """The engine's starting point for continuing ``art``: its set, its iterations done, its history."""
    done = int(art.condense_config.get("iterations") or 0)
    return {"synset": art.synset.state_dict(), "iteration": done, "history": list(art.history)}
