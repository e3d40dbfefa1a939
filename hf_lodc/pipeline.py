"""The orchestrator: load -> condense -> evaluate -> artefact -> push, for every entry point.

``recipes/condense.py`` runs all of it (:func:`run_experiment`); ``CondensedDataset`` (api.py) calls
the steps one at a time on the set it holds; a continual run condenses its task memories with
:func:`condense`; the benchmarks load, condense and evaluate through here. The steps:

    load_data(dc, accelerator)      Hub id / local folder -> tensors (the main process fills the cache first)
    validate(cfg, image_shape)      every check that can run before work: names, budget, networks (run_checks.py)
    choose_speed(cfg, data)         the speed options left unset, filled from ``speed`` (run_speed.py)
    condense(data, cfg, ...)        -> Artifact with its run config (the Condenser, under Accelerate when
                                    given one; run_condense.py): the one road from data to a condensed set,
                                    public as ``hf_lodc.condense``
    evaluate(art, test, ec, ...)    fresh networks trained on each evaluated view of the set (float32
                                    ``pixel_values``, uint8 PNG ``image``), runs split over processes;
                                    the records go into ``art.results``: the one evaluation of a set
    publish(art, repo_id, ...)      -> PushResult (one commit)

Everything that can be checked before work starts is checked first, so a bad option fails in
seconds and no output directory is created for it; the artefact is written once, when its results
are complete.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import torch

from .data.cache import is_mapped
from .data.hub import load_image_classification
from .data.types import ImageClassificationData, LabeledImages
from .engine.condenser import CondenseResult
from .engine.config import DataConfig, EvalConfig, RunConfig
from .engine.eval_journal import JOURNAL_NAME, EvalJournal, journal_key
from .engine.evaluate import EvalRecord, evaluate_validated, protocol_of, record_key
from .engine.checkpoint import check_resume_target, latest_checkpoint
from .engine.curve import CURVE_PNG, SNAPSHOT_DIR, draw_curve, evaluate_curve, load_snapshots, save_snapshot
from .engine.signals import Interrupted, sigterm_as_interrupt, sigterm_deferred
from .engine.speed import SpeedPlan
from .errors import HfLodcError, HubError
from .export.artifact import Artifact
from .atomic import check_writable
from .export.save import save_artifact_or_rescue
from .export.views import VIEWS, evaluated_views
from .preflight import check_data, locked_output_dir, resolve_output_dir
# the checks before any work and the speed choice are steps of this orchestrator kept in modules of their
# own (run_checks.py, run_speed.py); importing them here keeps pipeline.validate, pipeline.choose_speed ...
from .run_checks import validate, validate_eval
from .run_speed import choose_eval_speed, choose_speed
# the road from data to artefact (condense, then build the artefact with its run config) is this
# orchestrator's step too, in a module of its own for its length
from .run_condense import condense

__all__ = ["load_data", "validate", "validate_eval", "condense", "evaluate", "eval_seed", "publish",
           "run_experiment", "choose_speed", "choose_eval_speed", "FLOAT32", "UINT8"]

FLOAT32, UINT8 = "pixel_values", "images"  # the evaluated views (export.views): exact tensors, published PNGs


# ---------------------------------------------------------------------------------------------
# load


def load_data(dc: DataConfig, accelerator=None) -> ImageClassificationData:
    """The source as tensors; with several processes the main one reads (and caches) it first."""
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
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
            decoded_cache=dc.decoded_cache,
        )


# ---------------------------------------------------------------------------------------------
# evaluate


def eval_seed(art: Artifact, ec: EvalConfig) -> int:
    """The evaluation seed: ``ec.eval_seed``, else the condensation's own seed."""
    return ec.eval_seed if ec.eval_seed is not None else int(art.condense_config.get("seed", 0))


def _evaluate_runs(images: torch.Tensor, labels: torch.Tensor, test: LabeledImages, mean, std, num_classes: int,
                   ec: EvalConfig, seed: int, accelerator, device, progress: bool,
                   keep_state=None, journal: EvalJournal | None = None) -> dict[str, EvalRecord]:
    """The protocol's runs split over processes: run r trains on process r % P; accuracies gathered.

    Run r is seeded by (seed, model, r) alone, so the records equal a one-process evaluation. With a
    ``journal`` (one process), runs it holds under the same key are read back instead of trained.
    """
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    if accelerator is not None:
        device = accelerator.device
    mine = list(range(ec.eval_runs))[rank::world]
    device = device or torch.device("cpu")
    if journal is not None and world == 1 and keep_state is None:  # kept networks need every run trained here
        return _journaled_runs(images, labels, test, mean, std, num_classes, ec, seed, device, progress, journal)
    records = {}
    if mine:
        records = evaluate_validated(images, labels, test, mean, std, num_classes, ec, seed=seed,
                                     device=device, runs=mine,
                                     progress=progress and world == 1, keep_state=keep_state)
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


def _journaled_runs(images, labels, test, mean, std, num_classes: int, ec: EvalConfig, seed: int, device,
                    progress: bool, journal: EvalJournal) -> dict[str, EvalRecord]:
    """Every model's runs on one process, each finished run written to ``journal`` as it ends and the runs
    already there (same key) read back: a stopped evaluation resumes at the run it stopped in."""
    records = {}
    for model in ec.eval_models:
        key = journal_key(images, labels, test, mean, std, num_classes, ec, seed, device, model)
        done = {r: v for r, v in journal.done(key).items() if r < ec.eval_runs}
        todo = [r for r in range(ec.eval_runs) if r not in done]
        if done and progress:
            print(f"[eval] {model}: {len(done)} of {ec.eval_runs} runs finished before the stop, read from "
                  f"{journal.path}; training the other {len(todo)}", flush=True)
        accs = {r: a for r, (a, _) in done.items()}
        wall = sum(s for _, s in done.values())
        if todo:
            new = evaluate_validated(images, labels, test, mean, std, num_classes, replace(ec, eval_models=[model]),
                                     seed=seed, device=device, runs=todo, progress=progress,
                                     keep_state=journal.recorder(key))[model]
            accs.update(zip(todo, new.accuracies))
            wall += new.wall_time_s
        records[model] = EvalRecord(model=model, accuracies=[accs[r] for r in range(ec.eval_runs)],
                                    epochs=ec.eval_epochs, protocol=protocol_of(ec), wall_time_s=wall)
        if done and progress:  # the line above this one, if any, was this sitting's runs alone
            print(f"{records[model].summary()}: all {ec.eval_runs} runs, {len(done)} of them read back from the "
                  "journal", flush=True)
    return records


def evaluate(
    art: Artifact,
    test: LabeledImages | Callable[[], tuple[LabeledImages, str, dict[str, Any] | None]],
    ec: EvalConfig,
    *,
    views: tuple[str, ...] = (FLOAT32, UINT8),
    seed: int | None = None,
    test_data: str | None = None,
    accelerator=None,
    device: torch.device | str | None = None,
    progress: bool = False,
    keep_state: Callable | None = None,
    evaluation_data: dict[str, Any] | None = None,
    held: bool = False,
    speed: str | None = None,
    journal: EvalJournal | None = None,
) -> dict[str, dict[str, EvalRecord]]:
    """Train ``ec.eval_runs`` fresh networks per model on each of ``views`` of ``art`` (the same seeds for
    every view), test them on ``test``; returns view -> model -> record.

    The records go into ``art.results[<the view's results key>]`` (records of other models already
    there are kept), each protocol noting the ``seed`` and ``test_data`` (how the test set was chosen);
    ``evaluation_data`` (split, rows, max_per_class) into ``art.results["evaluation_data"]``.
    With an ``accelerator`` the runs are split over its processes; every process gets all records.
    ``keep_state`` (``engine.evaluate.evaluate_synthetic``) sees the networks trained on the first
    evaluated view (the float32 ``pixel_values``), on the process that trained them; a
    ``TrainedNets`` is gathered onto every process at the end.
    ``held``: a set evaluated apart from its condensation (``CondensedDataset``, a saved set): ``ec``
    is checked against it, its speed options left unset are filled from ``speed``, networks kept for
    publishing are checked to be publishable, and the artefact records that it is evaluated and
    under which ``EvalConfig``. ``test`` may then be a function giving (test set, ``test_data``,
    ``evaluation_data``), called once the options are checked, so a bad option fails before a source
    is read. ``journal`` (``engine.eval_journal``; one process, no ``keep_state``): each finished run is
    written there, and runs it already holds for the same set, test split and options are not trained again.
    """
    for name in views:
        VIEWS.get(name)  # an unknown view name fails before anything is measured
    if held:
        validate_eval(ec, tuple(art.synset.image_shape))
        ec = choose_eval_speed(ec, art, speed, accelerator.device if accelerator is not None else (device or "cpu"))
    if callable(test):
        test, test_data, evaluation_data = test()
    if held and keep_state is not None:  # run_experiment checks this at its door
        from .export.model_repo import check_publishable_models

        check_publishable_models(ec.eval_models, tuple(art.synset.image_shape))
    if evaluation_data is not None:
        art.results["evaluation_data"] = evaluation_data
    seed = eval_seed(art, ec) if seed is None else seed
    out: dict[str, dict[str, EvalRecord]] = {}
    for view in evaluated_views():
        if view.name not in views:
            continue
        images = view.eval_images(art)  # (N, C, H, W) float32, normalised with the source's mean/std
        keep = keep_state if view.name == FLOAT32 else None
        records = _evaluate_runs(images, art.labels, test, art.mean, art.std, art.synset.num_classes, ec, seed,
                                 accelerator, device, progress, keep_state=keep, journal=journal)
        stored = art.results.setdefault(view.results_key, {})
        records = {record_key(m, ec): r for m, r in records.items()}  # "<model>@<protocol>" off the default
        for m, r in records.items():
            d = r.to_dict()
            d["protocol"] = {**d["protocol"], **({"test_data": test_data} if test_data else {}), "seed": seed}
            _keep_replaced(art, view.results_key, m, stored.get(m), d, progress)
            stored[m] = d
        out[view.name] = records
    if held:
        art.results.pop("not_evaluated_because", None)  # a set saved unevaluated is evaluated now
        art.results["evaluated"] = True
    if getattr(keep_state, "gather", None) is not None:
        keep_state.gather(accelerator)
    if held:
        art.run_config = {**(art.run_config or {}), "eval": asdict(ec)}
    return out


def _keep_replaced(art: Artifact, key: str, model: str, old: dict | None, new: dict, say: bool) -> None:
    """A record measured under other runs, epochs or protocol (seed, precision, test data, ...) than the one
    replacing it (a quick re-check of a long evaluation, say) goes into ``results["replaced_evaluations"]``
    rather than away; the same measurement again just replaces it."""
    if not old or all(old.get(k) == new.get(k) for k in ("runs", "epochs", "protocol")):
        return
    art.results.setdefault("replaced_evaluations", []).append({"results_key": key, "model": model, **old})
    if say:
        print(f"[eval] {model}: the earlier record ({old.get('runs')} runs x {old.get('epochs')} epochs, "
              f"{old.get('accuracy_mean')} %) is kept under results['replaced_evaluations']", flush=True)


# ---------------------------------------------------------------------------------------------
# push


def publish(art: Artifact, repo_id: str, *, saved_in: str | os.PathLike | None = None, test=None, nets=None,
            model_repos: dict[str, str] | None = None, **push_options: Any):
    """Push ``art`` to ``repo_id`` (``export.push.push_artifact``); a Hub failure says where the local copy is.

    ``test``: the real test split to publish as ``validation`` / ``test``. ``nets``: a
    ``export.model_repo.TrainedNets`` filled by the evaluation; its chosen networks are pushed first,
    one model repo each (``model_repos``: model -> repo id), and the dataset card links them.
    """
    from .export.model_repo import push_models
    from .export.push import push_artifact
    from .export.views import check_config_name, default_config_name

    try:
        models = None
        if nets is not None:
            name = check_config_name(push_options.get("config_name")
                                     or default_config_name(art.method, art.budget.ipc, art.budget.rank))
            keep = {k: push_options[k] for k in ("private", "token", "max_retries", "retry_wait", "log")
                    if k in push_options}
            models = push_models(art, nets, repo_id, name, names=model_repos, **keep)
        return push_artifact(art, repo_id, test=test, models=models, **push_options)
    except HubError as e:
        if saved_in:
            raise type(e)(f"{e} The condensed set is saved in {str(saved_in)!r}; publish it later with "
                          f"`python recipes/evaluate.py {saved_in} --eval-runs 0 --push-to-hub {repo_id}`") from None
        raise


# ---------------------------------------------------------------------------------------------
# the whole run


def run_experiment(
    cfg: RunConfig,
    *,
    accelerator=None,
    data: ImageClassificationData | None = None,
    progress: bool = True,
    log=print,
) -> Artifact:
    """Condense, evaluate, save (if ``cfg.output_dir``, once) and push (if ``cfg.push_to_hub``). Returns the artefact.

    The float32 tensors are always evaluated (when ``cfg.eval.eval_runs`` and a test split exist); the
    published uint8 PNGs too when pushing, so the card states what the rounding costs.
    """
    out = resolve_output_dir(cfg.output_dir)  # ~ and relative paths resolved once, used everywhere
    if out is not None:
        cfg = cfg.replace(output_dir=str(out))
    if data is None:
        from .data.hub import resolve_dataset_arg

        cfg = cfg.replace(dataset=resolve_dataset_arg(cfg.data.dataset))  # the artefact records the absolute path
    validate(cfg)
    is_main = accelerator is None or accelerator.is_main_process
    if out is not None and is_main:
        check_writable(out)  # a read-only or foreign output dir fails now, not after the condensation
    if cfg.resume and out is not None:
        check_resume_target(out)  # a finished artefact without a checkpoint is not replaced by a fresh run
    if data is None:
        data = load_data(cfg.data, accelerator)
    else:
        check_data(data)  # handed in by the Python API: checked as the condenser's own entry checks it
    in_memory = [0 if s is None or is_mapped(s.images) else len(s) for s in (data.train, data.test)]  # a map: none
    validate(cfg, data.image_shape, data.num_classes, *in_memory, test_split=data.test is not None)
    cfg, plan = choose_speed(cfg, data, accelerator)
    if is_main:
        for line in plan.lines():
            log(line)
    nets = None
    if cfg.hub_push_models:
        from .export.model_repo import TrainedNets

        nets = TrainedNets()
    # the lock (beside the output dir, so its parent is created) only once every check has passed
    with locked_output_dir(out if is_main else None):
        return _run_locked(cfg, out, accelerator, data, progress, log, is_main, nets, plan)


def _saved_hint(out: Path, cfg: RunConfig) -> str:
    cmd = f"python recipes/evaluate.py {str(out)!r}"
    push = f" --push-to-hub {cfg.push_to_hub}" if cfg.push_to_hub else ""
    return (f"the condensed set is saved, not evaluated, in {str(out)!r}; evaluate it with `{cmd}`"
            + (f" or publish it with `{cmd} --runs 0{push}`" if push else ""))


def _save_unevaluated(art: Artifact, out: Path | None, cfg: RunConfig, why: str, log) -> str:
    """Save the finished condensation before an evaluation failure propagates; returns the hint.

    Interrupted (a stop signal, a supervisor's timeout): the checkpoint written after the last iteration
    stays beside the saved set, so ``--resume`` goes straight to the evaluation as after a SIGKILL;
    otherwise the stale checkpoints go with the directory they lived in."""
    art.results["evaluated"] = False
    art.results["not_evaluated_because"] = why
    for view in evaluated_views():  # partial records of an interrupted evaluation are dropped
        art.results.pop(view.results_key, None)
    art.results[VIEWS.get(FLOAT32).results_key] = {}
    if out is None:
        return "the condensed set was not saved (no --output-dir)"
    resumable = why == "interrupted" and latest_checkpoint(out / "checkpoints") is not None
    try:
        path = save_artifact_or_rescue(art, out, keep=("checkpoints",) if resumable else ())
    except HfLodcError as e:
        return f"saving the condensed set failed too: {e}"
    hint = _saved_hint(Path(path), cfg)
    if resumable and Path(path) == out:
        hint += ("; or finish the run: the same command with --resume evaluates it (its final checkpoint is kept, "
                 "and the evaluation runs that finished are not trained again)")
    return hint


def _run_locked(cfg: RunConfig, out: Path | None, accelerator, data, progress, log, is_main, nets=None,
                plan: SpeedPlan | None = None) -> Artifact:
    ckpt = out / "checkpoints" if out else None  # created only when a checkpoint is written
    curve_at = tuple(sorted(set(cfg.eval.eval_at or ())))
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    snap_dir = ckpt / SNAPSHOT_DIR if ckpt is not None else None
    if curve_at and snap_dir is not None and cfg.resume:
        snapshots.update(load_snapshots(snap_dir))  # the points a stopped run had already passed

    def keep_snapshot(iteration: int, state: dict[str, torch.Tensor]) -> None:
        snapshots[iteration] = state
        if snap_dir is not None and is_main:
            save_snapshot(snap_dir, iteration, state)

    evaluates = bool(cfg.eval.eval_runs and data.test is not None)
    engine: list[CondenseResult] = []  # the curve re-decodes the engine's set at each snapshot
    art = condense(data, cfg, speed=plan if plan is not None else False, accelerator=accelerator, checkpoint_dir=ckpt,
                   resume=cfg.resume, progress=progress, log=log, checkpoint_at_end=evaluates, snapshot_at=curve_at,
                   on_snapshot=keep_snapshot if curve_at else None, on_result=engine.append,
                   checked=True)  # run_experiment's validate step checked the config against this data
    if evaluates:
        t0 = time.perf_counter()
        views = (FLOAT32, UINT8) if cfg.push_to_hub else (FLOAT32,)
        split = data.info.eval_split
        # beside the final checkpoint: a stop keeps both, so --resume goes on at the run it stopped in
        journal = EvalJournal(ckpt / JOURNAL_NAME) if ckpt is not None and is_main else None
        try:
            with sigterm_as_interrupt():
                evaluate(art, data.test, cfg.eval, views=views, seed=eval_seed(art, cfg.eval),
                         test_data=f"split {split!r} ({len(data.test)} rows)", accelerator=accelerator,
                         progress=progress, keep_state=nets, journal=journal,
                         evaluation_data={"split": split, "rows": len(data.test), "max_per_class": None})
        except KeyboardInterrupt as e:
            hint = _save_unevaluated(art, out if is_main else None, cfg, "interrupted", log) if is_main else ""
            sig = str(e) or "SIGINT"
            raise Interrupted(f"interrupted by {sig} during the evaluation; {hint}") from None
        except HfLodcError as e:
            hint = _save_unevaluated(art, out if is_main else None, cfg, f"{type(e).__name__}", log) if is_main else ""
            raise type(e)(f"{e} ({hint})") from None
        except Exception:  # a bug: keep its traceback, but not at the price of the condensation
            if is_main:
                log(f"[hf_lodc] evaluation failed; {_save_unevaluated(art, out, cfg, 'evaluation failed', log)}")
            raise
        log(f"[hf_lodc] evaluation took {time.perf_counter() - t0:.1f} s")
        if curve_at:
            t0 = time.perf_counter()
            device = accelerator.device if accelerator is not None else "cpu"
            with sigterm_as_interrupt():  # an interrupted curve leaves the finished record; save it anyway
                try:
                    art.results["curve"] = evaluate_curve(engine[0], {i: snapshots[i] for i in curve_at if i in snapshots},
                                                          data, cfg.eval, eval_seed(art, cfg.eval), device,
                                                          progress=progress and is_main)
                except KeyboardInterrupt:
                    log("[hf_lodc] the accuracy curve was interrupted; saving the set without it")
            log(f"[hf_lodc] accuracy curve took {time.perf_counter() - t0:.1f} s")
    else:
        art.results["evaluated"] = False
        art.results["not_evaluated_because"] = ("eval_runs is 0" if not cfg.eval.eval_runs
                                                else "the source has no test split")
        log(f"[hf_lodc] no evaluation ({art.results['not_evaluated_because']})")
    if out is not None and is_main:
        with sigterm_deferred():
            save_artifact_or_rescue(art, out, repo={  # the Hub repo layout too: load_dataset(out) works
                "config_name": cfg.hub_config_name, "repo_id": cfg.push_to_hub or out.name,
                "test": data.test if cfg.hub_test_split else None})
        log(f"[hf_lodc] wrote {out}")
        if art.results.get("curve"):
            final = (art.results.get("evaluations") or {}).get(art.results["curve"]["model"])
            png = draw_curve(art.results["curve"], out / CURVE_PNG, final,
                             title=f"{data.info.dataset} {art.method} ipc{art.budget.ipc}")
            if png is not None:
                log(f"[hf_lodc] accuracy against iterations: {png}")
    if cfg.push_to_hub and is_main:
        publish(art, cfg.push_to_hub, saved_in=str(out) if out else None, private=cfg.hub_private,
                config_name=cfg.hub_config_name, test=data.test if cfg.hub_test_split else None, nets=nets)
    return art
