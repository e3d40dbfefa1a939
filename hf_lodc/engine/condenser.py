"""The condensation loop: budget -> synthetic set -> init -> objective steps -> result.

Randomness: iteration ``i`` draws from a generator derived from (seed, "iter", i) alone (and the
process's shard under several processes), so a run resumed from a checkpoint at iteration i
continues bit-for-bit like one that was never stopped.

Processes: under ``accelerate launch --num_processes P`` the classes are sharded across processes
(``distributed.py`` says why); every process initialises the full set exactly as one process would
and keeps its own classes, and the finished set is gathered class-major on every process, so the
result has the same format (and the same initialisation) whatever P is. Only the main process
shows progress, logs to trackers and writes checkpoint files.

Mixed precision (``accelerator.mixed_precision`` or ``cfg.mixed_precision`` without an
accelerator) covers the network passes only (``autocast``); the factors, their gradients and their
SGD state stay float32, and the factors are never ``prepare``d (no DDP wrapper, no grad scaler:
each process owns different factors, so there is nothing to all-reduce).

Checkpoints (every ``checkpoint_every`` iterations, and on SIGINT/SIGTERM) are written, read and
checked by ``checkpoint.py``, from the run state ``condenser_checkpoints.py`` gathers and restores;
``--resume`` continues only a run with the same identity (``identity.py``: dataset fingerprint,
classes and every result-changing setting). The config is resolved by ``resolve.py``, stop signals
are caught by ``signals.py``, and the iteration timer and non-finite checks are ``iteration_watch.py``.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.augment import DSAugment
from ..data.types import ImageClassificationData, LabeledImages
from ..errors import ConfigError, NonFiniteError, PeerLostError
from ..launch import is_peer_lost, peer_lost_message
from ..methods import MethodSpec
from ..objectives import OBJECTIVES, MatchContext, RealSampler, options_for
from ..seeding import generator
from ..synset.budget import Budget
from ..synset.contrast import apply_contrast
from ..synset.init import initialise
from ..synset.base import SyntheticSet
from .abortable import AbortableStep, StepAborted
from .checkpoint import STATE_FILE, latest_checkpoint, resume_command
from ..training import device as device_settings
from .condenser_checkpoints import CheckpointedRun
from .config import CondenseConfig
from .coreset import CORESETS
from .distributed import Collective, check_shardable, gather_synset_state, shard_classes, sharded_objective
from .iteration_watch import IterationTimer, all_finite, nonfinite_flag, nonfinite_message, read_pending
from .resolve import build_synset, matching_model_for, resolve_config
from .signals import Interrupted, catch_signals, interrupt_message

__all__ = ["CondenseResult", "Condenser", "build_synset", "matching_model_for", "resolve_config",
           "Interrupted", "latest_checkpoint", "resume_command", "STATE_FILE"]


@dataclass
class CondenseResult:
    synset: SyntheticSet  # on CPU, eval mode
    budget: Budget
    method: MethodSpec
    config: CondenseConfig  # with defaults resolved (init, iterations, lr, loops, model)
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    iterations_per_s: float | None = None
    # seconds per iteration after the first WARMUP_ITERATIONS of this process (compile, allocator and
    # cache warm-up left out): what a long run costs per iteration; None for shorter runs
    steady_seconds_per_iteration: float | None = None
    init_indices: torch.Tensor | None = None  # real train rows used by real/svd init
    processes: int = 1  # processes the classes were sharded over
    device_settings: dict | None = None  # training.device settings in force (TF32, cudnn.benchmark, memory format)
    # a run continued from a checkpoint: the times above are every sitting's; ``sittings`` counts them and
    # ``untimed_iterations`` the iterations of a checkpoint that kept no timing (0 when all are timed)
    resumed_at: int | None = None
    sittings: int = 1
    untimed_iterations: int = 0

    def images(self) -> torch.Tensor:
        with torch.no_grad():
            return self.synset().detach().clone()  # (N, C, H, W)

    @property
    def labels(self) -> torch.Tensor:
        return self.synset.labels.clone()


class Condenser(CheckpointedRun):
    """Runs one condensation. Use ``hf_lodc.condense`` (run_condense.py) unless you study the loop itself.

    ``classes`` restricts the condensation to those global class ids (default: all); under several
    processes each one condenses ``classes[rank::P]`` of them. ``initial_state``
    ({"synset": state_dict, "iteration": i, "history": [...]}) continues a finished condensation
    (e.g. one loaded from the Hub) instead of initialising afresh; iteration ``i`` onwards draws the
    same randomness an uninterrupted run would (the optimiser restarts). ``log`` receives one-line
    messages (resume, checkpoints); ``on_log`` the metric records.
    """

    def __init__(
        self,
        data: ImageClassificationData,
        cfg: CondenseConfig,
        *,
        accelerator=None,
        checkpoint_dir: str | os.PathLike | None = None,
        progress: bool = True,
        classes: torch.Tensor | None = None,
        on_log: Callable[[dict[str, float]], None] | None = None,
        initial_state: dict[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
        snapshot_at: tuple[int, ...] = (),
        on_snapshot: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
        checkpoint_at_end: bool = False,
    ):
        # the data and the options are checked by whoever hands them in: hf_lodc.condense (run_condense.py),
        # or the pipeline's validate step (run_checks.py); the memory check among them, before the set is built
        if not isinstance(cfg, CondenseConfig):
            raise ConfigError(f"cfg must be a CondenseConfig, got {type(cfg).__name__}")
        self.data = data
        n_classes = len(classes) if classes is not None else data.num_classes
        self.spec, self.cfg, self.budget = resolve_config(cfg, data.image_shape, n_classes)
        self.accelerator = accelerator
        self.comm = Collective(accelerator)
        if accelerator is not None:  # an Accelerator that was asked for a precision decides it
            launched = str(accelerator.mixed_precision)
            if cfg.mixed_precision is None or launched != "no":
                if cfg.mixed_precision is not None and launched != cfg.mixed_precision:
                    warnings.warn(f"mixed_precision={cfg.mixed_precision!r} in the config, but the Accelerator runs "
                                  f"{launched!r}: using (and recording) the Accelerator's", stacklevel=2)
                self.cfg.mixed_precision = launched
        self.device = accelerator.device if accelerator is not None else torch.device("cpu")
        # numeric settings of the passes, set explicitly (TF32, cudnn.benchmark, memory format) and recorded
        self.device_config = device_settings.configure(self.device, tf32=bool(self.cfg.tf32),
                                                       channels_last=bool(self.cfg.channels_last))
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        # a checkpoint after the last iteration too: a long evaluation that follows can be killed, and
        # --resume then goes straight to it instead of repeating the iterations since the last checkpoint
        self.checkpoint_at_end = checkpoint_at_end
        self.progress = progress
        self.on_log = on_log
        # iterations after which ``on_snapshot(iteration, state)`` sees the whole set's state (CPU copies),
        # e.g. to measure accuracy against iterations
        self.snapshot_at = frozenset(int(i) for i in snapshot_at) if on_snapshot is not None else frozenset()
        self.on_snapshot = on_snapshot
        self.log = log or (lambda msg: None)
        self.classes = (classes if classes is not None else torch.arange(data.num_classes)).long().cpu()
        # coresets and 0-iteration runs have nothing to share out: every process computes the same set
        self.sharded = self.comm.world > 1 and self.spec.kind == "matching" and self.cfg.iterations > 0
        positions = torch.arange(len(self.classes))
        if self.sharded:
            build_synset(self.spec, 1, self.budget).check_class_shardable()  # shared modules: refused up front
            check_shardable(self.spec.objective)
            positions = shard_classes(positions, self.comm.rank, self.comm.world)
        self.local_positions = positions  # positions in ``classes`` this process condenses
        self.local_classes = self.classes[positions]
        self.synset = build_synset(self.spec, len(self.local_classes), self.budget)
        self.history: list[dict[str, float]] = []
        self.start_iteration = 0
        self.init_indices = None
        self.initial_state = initial_state
        self.last_checkpoint: tuple[Path, int] | None = None
        self.objective = None  # built by the loop
        self._objective_state: dict = {}  # from a checkpoint, loaded into the objective once built
        self._timing_before: dict | None = None  # from a checkpoint: the earlier sittings' time
        self._timer: IterationTimer | None = None
        self._t0 = 0.0  # when run() started: a checkpoint's wall time counts from it
        self._identity: dict[str, Any] | None = None

    # -- set-up --------------------------------------------------------------------------------
    def _autocast(self):
        mp = self.cfg.mixed_precision
        if self.accelerator is not None and str(self.accelerator.mixed_precision) == mp:
            return self.accelerator.autocast()
        return device_settings.autocast(mp, self.device)()

    def _context(self) -> MatchContext:
        d, cfg = self.data, self.cfg
        aug = DSAugment(cfg.dsa_strategy if self.spec.dsa else "none")
        sampler = RealSampler(d.train, self.local_classes, d.mean, d.std, self.device, d.num_classes,
                              d.info.class_names)
        sampler.index.check(1, f"condensing {d.info.dataset!r}")
        return MatchContext(
            num_classes=d.num_classes,
            classes=self.local_classes,
            image_shape=d.image_shape,
            model=cfg.matching_model,
            augment=aug,
            sampler=sampler,
            batch_real=cfg.batch_real,
            seed=cfg.seed,
            device=self.device,
            autocast=self._autocast,
            options=options_for(self.spec.objective, cfg),  # resolved by resolve_config
        )

    def _objective(self, ctx: MatchContext):
        # no accelerator.backward: the factors are not a prepared model (nothing to all-reduce, and
        # an fp16 grad scaler would scale gradients that no prepared optimiser unscales)
        if self.sharded:
            return sharded_objective(self.spec.objective, ctx, self.comm, len(self.classes))
        return OBJECTIVES.get(self.spec.objective)(ctx)

    def _iteration_generator(self, iteration: int) -> torch.Generator:
        if not self.sharded:
            return generator(self.cfg.seed, "iter", iteration)
        return generator(self.cfg.seed, "iter", iteration, "shard", self.comm.rank, self.comm.world)

    def initialise(self) -> None:
        """Initialise the FULL set as one process would, then keep this process's classes."""
        full = build_synset(self.spec, len(self.classes), self.budget)
        d = self.data
        train, rows = d.train, None
        if len(self.classes) != d.num_classes:  # a class subset, relabelled 0..K'-1 for the init
            rows = torch.nonzero(torch.isin(d.train.labels, self.classes)).flatten()
            local = torch.full((d.num_classes,), -1, dtype=torch.long)
            local[self.classes] = torch.arange(len(self.classes))
            train = LabeledImages(d.train.images[rows], local[d.train.labels[rows]])
        idx = initialise(full, self.cfg.init, train, d.mean, d.std, self._init_generator())
        if self.spec.kind == "coreset":
            CORESETS.get(self.spec.coreset)(full, d, d.mean, d.std,
                                           generator(self.cfg.seed, "coreset"), self.cfg.matching_model)
        self.init_indices = rows[idx] if (rows is not None and idx is not None) else idx  # global train rows
        self._keep_own_classes(full.state_dict())

    def _init_generator(self) -> torch.Generator:
        if len(self.classes) == self.data.num_classes:
            return generator(self.cfg.seed, "init")
        return generator(self.cfg.seed, "init", tuple(self.classes.tolist()))

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.synset.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum)

    def _load_initial_state(self) -> None:
        st = self.initial_state
        full = build_synset(self.spec, len(self.classes), self.budget)
        try:
            full.load_state_dict(st["synset"])
        except (RuntimeError, KeyError) as e:
            raise ConfigError(
                f"cannot continue from the given synthetic set: it does not match method {self.spec.name!r} with "
                f"{self.budget.images_per_class} unit(s)/class at rank {self.budget.rank} with options "
                f"{self.budget.options} ({e}); use the same method, ipc, rank and parameterisation options, or start afresh"
            ) from None
        self._keep_own_classes(full.state_dict())
        self.start_iteration = int(st.get("iteration", 0))
        self.history = list(st.get("history", []))

    def _is_main(self) -> bool:
        return self.comm.is_main

    # -- trackers ------------------------------------------------------------------------------
    def _start_trackers(self) -> bool:
        """``accelerator.init_trackers`` when the script asked for trackers (``log_with``) and none runs."""
        acc = self.accelerator
        if acc is None or not getattr(acc, "log_with", None) or acc.trackers:
            return False
        simple = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in self.cfg.__dict__.items()}
        acc.init_trackers("hf_lodc", config=simple)
        return True

    def _track(self, record: dict[str, float]) -> None:
        if self.accelerator is not None and self.accelerator.trackers:
            values = {f"condense/{k}": v for k, v in record.items() if k != "iteration"}
            self.accelerator.log(values, step=int(record["iteration"]))

    # -- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> CondenseResult:
        cfg = self.cfg
        t0 = self._t0 = time.perf_counter()
        self.synset.to(self.device)
        opt = self.optimizer()
        resumed = resume and self.load_checkpoint(opt)
        if not resumed:
            if self.initial_state is not None:
                self._load_initial_state()
            else:
                self.initialise()
            self.synset.to(self.device)
            opt = self.optimizer()
        timed = self._timer = (IterationTimer(self._timing_before, self.start_iteration) if resumed
                               else IterationTimer())
        if cfg.iterations > self.start_iteration:
            owns_trackers = self._start_trackers()
            try:
                self._loop(opt, timed)
            except RuntimeError as e:
                if self.comm.world == 1 or not is_peer_lost(e):
                    raise
                raise PeerLostError(peer_lost_message(e, self.comm.rank, self.comm.world, self._resume_hint())) from None
            finally:
                if owns_trackers:
                    for tracker in self.accelerator.trackers:
                        tracker.finish()
        self.synset.eval()
        full = self._full_synset()
        if self.spec.kind == "matching":  # coresets are real images: their contrast is the real one already
            d = self.data
            apply_contrast(cfg.contrast, full, self.classes, d.train, d.mean, d.std,
                           generator(cfg.seed, "contrast"))
        return CondenseResult(
            synset=full,
            budget=self.budget,
            method=self.spec,
            config=cfg,
            history=self.history,
            wall_time_s=timed.totals(time.perf_counter() - t0)["wall_s"],
            iterations_per_s=timed.iterations_per_s(),
            steady_seconds_per_iteration=timed.steady(),
            resumed_at=self.start_iteration if resumed else None,
            sittings=timed.sittings,
            untimed_iterations=timed.before["untimed_its"],
            init_indices=self.init_indices,
            processes=self.comm.world if self.sharded else 1,
            device_settings=asdict(self.device_config),
        )

    def _loop(self, opt: torch.optim.Optimizer, timed: IterationTimer) -> None:
        cfg, total, K = self.cfg, self.cfg.iterations, len(self.classes)
        objective = self.objective = self._objective(self._context())
        if self._objective_state:
            objective.load_state_dict(self._objective_state)
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=self.start_iteration, desc=f"{self.spec.name} ipc{self.budget.ipc}",
                   disable=not (self.progress and self.comm.is_main), dynamic_ncols=True)
        guard = self.comm.guard = AbortableStep()
        try:
            with catch_signals(guard) as flag:
                pending: list[tuple[int, dict, torch.Tensor]] = []  # one process: checked when read
                for it in range(self.start_iteration, total):
                    t_it = time.perf_counter()
                    try:
                        with guard.step(self.synset, opt, objective):
                            metrics = objective.step(it, self.synset, opt, self._iteration_generator(it))
                    except StepAborted as e:
                        if self.comm.world > 1 and not e.agreed:  # the others learn it at their next agreement
                            self.comm.agree(stop=True, left=True)
                        self._leave_step(it, opt, objective, guard, flag["sig"], pending)
                    done = it + 1
                    if self.comm.world == 1:
                        # no host sync per iteration: the loss and the finiteness flag stay on the
                        # device until the next log / checkpoint / stop / last iteration reads them
                        pending.append((it, metrics, nonfinite_flag(metrics["loss"], self.synset.parameters())))
                        stop = flag["sig"] is not None
                        flush = (stop or done == total or it % cfg.log_every == 0 or done in self.snapshot_at
                                 or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0))
                        if not flush:
                            timed.add(time.perf_counter() - t_it)
                            bar.update(1)
                            continue
                        loss = read_pending(pending, self._nonfinite_message)  # raises NonFiniteError at the first bad one
                        metrics = {k: float(v) if torch.is_tensor(v) else v for k, v in metrics.items()}
                        pending.clear()
                        timed.add(time.perf_counter() - t_it)
                    else:
                        bad_here = not (math.isfinite(metrics["loss"]) and all_finite(self.synset.parameters()))
                        step_s = time.perf_counter() - t_it
                        # one all-reduce: the loss summed over classes, whether to stop anywhere, whether a
                        # process left this step (then all go back to its start), the step time
                        loss, bad, stop, left, step_s = self.comm.agree(metrics["loss"], bad_here,
                                                                        flag["sig"] is not None, seconds=step_s)
                        if left:
                            self._leave_step(it, opt, objective, guard, flag["sig"], pending)
                        guard.agreed_step_seconds(step_s / self.comm.world)
                        timed.add(time.perf_counter() - t_it)
                        if bad:
                            raise NonFiniteError(self._nonfinite_message(it, loss))
                    if it % cfg.log_every == 0 or done == total:
                        rec = {"iteration": it, **metrics, "loss": loss, "loss_per_class": loss / K}
                        self.history.append(rec)
                        self._track(rec)
                        if self.on_log:
                            self.on_log(rec)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                    bar.update(1)
                    if stop:
                        path = self.save_checkpoint(done, opt)
                        raise Interrupted(self._interrupt_message(flag["sig"], done, path))
                    if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < total:
                        self.save_checkpoint(done, opt)
                    elif done == total and self.checkpoint_at_end:
                        self._save_final_checkpoint(done, opt)
                    if done in self.snapshot_at:
                        self.on_snapshot(done, self._snapshot_state())
        finally:
            bar.close()
            self.comm.guard = None

    def _leave_step(self, it: int, opt, objective, guard: AbortableStep, sig: int | None, pending: list) -> None:
        """A stop signal left iteration ``it`` midway: back to its start, checkpoint that, stop."""
        guard.restore(self.synset, opt, objective)
        if pending:
            read_pending(pending, self._nonfinite_message)
        path = self.save_checkpoint(it, opt)
        who = signal.Signals(sig).name if sig else "a stop signal to another process"
        self.log(f"[hf_lodc] {who} arrived inside iteration {it}: that step was left at once, redone on resume")
        raise Interrupted(self._interrupt_message(sig, it, path)) from None

    def _nonfinite_message(self, it: int, loss: float) -> str:
        return nonfinite_message(self.spec.name, it, loss, self.cfg.lr, self.last_checkpoint)

    def _resume_hint(self) -> str:
        if self.last_checkpoint is None:
            return "No checkpoint was written (set checkpoint_every to keep one); the run starts afresh"
        path, at = self.last_checkpoint
        return (f"The last checkpoint is {str(path)!r} (iteration {at}/{self.cfg.iterations}). "
                f"Resume with: {resume_command(self.comm.world)}")

    def _interrupt_message(self, sig: int | None, done: int, path: Path | None) -> str:
        return interrupt_message(sig, done, self.cfg.iterations, path, self.comm.world)

    def _snapshot_state(self) -> dict[str, torch.Tensor]:
        """The whole set's state now, as CPU copies (a collective when sharded: every process calls it)."""
        if not self.sharded:
            return {k: v.detach().to("cpu", copy=True) for k, v in self.synset.state_dict().items()}
        return {k: v.detach().clone() for k, v in self._full_synset().state_dict().items()}

    def _full_synset(self) -> SyntheticSet:
        """The whole condensed set on the CPU (gathered class-major from every process)."""
        if not self.sharded:
            return self.synset.to("cpu")
        state = gather_synset_state(self.comm, self.synset, len(self.classes))
        full = build_synset(self.spec, len(self.classes), self.budget)
        full.load_state_dict({**state, "labels": full.labels})
        return full.eval()

