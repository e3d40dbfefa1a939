"""The condensation loop: budget -> synthetic set -> init -> objective steps -> result.

Randomness: iteration ``i`` draws from a generator derived from (seed, "iter", i) alone, so a run
resumed from a checkpoint at iteration i continues bit-for-bit like one that was never stopped
(the checkpoint holds the synthetic set, the optimiser state, the loss history).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.augment import DSAugment
from ..data.hub import ImageClassificationData
from ..errors import ArtifactError, ConfigError, NonFiniteError
from ..methods import MethodSpec, get_method
from ..objectives import OBJECTIVES, MatchContext, RealSampler
from ..objectives.gm import default_loops
from ..seeding import generator
from ..synset.budget import Budget, plan_budget
from ..synset.init import INITS, initialise
from ..synset.lowrank import PARAMETERISATIONS, SyntheticSet
from .config import CondenseConfig
from .coreset import CORESETS

__all__ = ["CondenseResult", "Condenser", "condense", "build_synset", "matching_model_for", "Interrupted"]

CHECKPOINT_NAME = "checkpoint.pt"


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM during condensation: a checkpoint was saved (path in the message)."""


@dataclass
class CondenseResult:
    synset: SyntheticSet  # on CPU, eval mode
    budget: Budget
    method: MethodSpec
    config: CondenseConfig  # with defaults resolved (init, iterations, lr, loops, model)
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    iterations_per_s: float | None = None
    init_indices: torch.Tensor | None = None  # real train rows used by real/svd init

    def images(self) -> torch.Tensor:
        with torch.no_grad():
            return self.synset().detach().clone()  # (N, C, H, W)

    @property
    def labels(self) -> torch.Tensor:
        return self.synset.labels.clone()


def matching_model_for(image_shape: tuple[int, int, int], name: str = "auto") -> str:
    if name != "auto":
        return name
    return "lodc_convnet_d4_w128" if min(image_shape[1:]) >= 64 else "lodc_convnet_d3_w128"


def resolve_config(cfg: CondenseConfig, image_shape) -> tuple[MethodSpec, CondenseConfig, Budget]:
    """Validate ``cfg`` and fill method defaults; never mutates the caller's config."""
    spec = get_method(cfg.method)
    INITS.get(cfg.init or spec.init)
    rank = cfg.rank if spec.lowrank else None
    if spec.lowrank and rank is None:
        raise ConfigError(f"method {spec.name!r} is low-rank: set rank (e.g. 2)")
    budget = plan_budget(image_shape, ipc=cfg.ipc, rank=rank, images_per_class=cfg.images_per_class)
    iterations = cfg.iterations if cfg.iterations is not None else spec.iterations
    if spec.kind == "coreset":
        iterations = 0
    if iterations < 0:
        raise ConfigError(f"iterations must be >= 0, got {iterations}")
    if cfg.batch_real <= 0:
        raise ConfigError(f"batch_real must be positive, got {cfg.batch_real}")
    if cfg.mixed_precision not in ("no", "bf16", "fp16"):
        raise ConfigError(f"mixed_precision must be no, bf16 or fp16, got {cfg.mixed_precision!r}")
    outer, inner = cfg.outer_loop, cfg.inner_loop
    if spec.objective == "gm":
        d_outer, d_inner = default_loops(budget.ipc)
        outer, inner = outer or d_outer, inner or d_inner
    resolved = CondenseConfig(**{**cfg.__dict__})
    resolved.rank = rank
    resolved.init = cfg.init or spec.init
    resolved.iterations = iterations
    resolved.lr = cfg.lr if cfg.lr is not None else spec.lr
    resolved.outer_loop, resolved.inner_loop = outer, inner
    resolved.matching_model = matching_model_for(image_shape, cfg.matching_model)
    resolved.images_per_class = budget.images_per_class
    return spec, resolved, budget


def build_synset(spec: MethodSpec, num_classes: int, budget: Budget) -> SyntheticSet:
    cls = PARAMETERISATIONS.get(spec.parameterisation)
    return cls(num_classes, budget.images_per_class, budget.image_shape, rank=budget.rank)


@contextlib.contextmanager
def _catch_signals():
    """Turn SIGINT/SIGTERM into a flag checked between iterations (main thread only)."""
    flag = {"sig": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["sig"] is not None:  # second signal: stop now
            raise KeyboardInterrupt
        flag["sig"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ArtifactError(f"cannot write checkpoint {str(path)!r}: {e.strerror or e}") from None


class Condenser:
    """Runs one condensation. Use :func:`condense` unless you need the pieces."""

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
    ):
        self.data = data
        self.spec, self.cfg, self.budget = resolve_config(cfg, data.image_shape)
        self.accelerator = accelerator
        self.device = accelerator.device if accelerator is not None else torch.device("cpu")
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.progress = progress
        self.on_log = on_log
        K = data.num_classes
        self.classes = classes if classes is not None else torch.arange(K)
        self.synset = build_synset(self.spec, len(self.classes), self.budget)
        self.history: list[dict[str, float]] = []
        self.start_iteration = 0
        self.init_indices = None

    # -- set-up --------------------------------------------------------------------------------
    def _autocast(self):
        mp = self.cfg.mixed_precision
        if self.accelerator is not None:
            return self.accelerator.autocast()
        if mp == "no":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if mp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _context(self) -> MatchContext:
        d, cfg = self.data, self.cfg
        aug = DSAugment(cfg.dsa_strategy if self.spec.dsa else "none")
        sampler = RealSampler(d.train, self.classes, d.mean, d.std, self.device, d.num_classes, d.info.class_names)
        sampler.index.check(1, f"condensing {d.info.dataset!r}")
        return MatchContext(
            num_classes=d.num_classes,
            classes=self.classes,
            image_shape=d.image_shape,
            model=cfg.matching_model,
            augment=aug,
            sampler=sampler,
            batch_real=cfg.batch_real,
            seed=cfg.seed,
            device=self.device,
            autocast=self._autocast,
            options={"outer_loop": cfg.outer_loop, "inner_loop": cfg.inner_loop, "lr_net": cfg.lr_net,
                     "batch_train": cfg.batch_train},
        )

    def initialise(self) -> None:
        d = self.data
        sub = d.train
        if len(self.classes) != d.num_classes:  # this process's classes only, relabelled 0..K'-1
            sampler = RealSampler(d.train, self.classes, d.mean, d.std, torch.device("cpu"), d.num_classes)
            from ..data.hub import LabeledImages

            sub = LabeledImages(sampler.images, sampler.local_labels)
        self.init_indices = initialise(self.synset, self.cfg.init, sub, d.mean, d.std,
                                       self._init_generator())
        if self.spec.kind == "coreset":
            CORESETS.get(self.spec.coreset)(self.synset, d, d.mean, d.std,
                                           generator(self.cfg.seed, "coreset"), self.cfg.matching_model)

    def _init_generator(self) -> torch.Generator:
        if len(self.classes) == self.data.num_classes:
            return generator(self.cfg.seed, "init")
        return generator(self.cfg.seed, "init", tuple(self.classes.tolist()))

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.synset.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum)

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir else None

    def save_checkpoint(self, iteration: int, opt: torch.optim.Optimizer) -> Path | None:
        if self.checkpoint_path is None or not self._is_main():
            return None
        _atomic_torch_save(
            {
                "iteration": iteration,
                "synset": {k: v.detach().cpu() for k, v in self.synset.state_dict().items()},
                "optimizer": opt.state_dict(),
                "history": self.history,
                "config": dict(self.cfg.__dict__),
                "init_indices": self.init_indices,
            },
            self.checkpoint_path,
        )
        return self.checkpoint_path

    def load_checkpoint(self, opt: torch.optim.Optimizer) -> bool:
        p = self.checkpoint_path
        if p is None or not p.is_file():
            return False
        try:
            ck = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as e:
            raise ArtifactError(f"checkpoint {str(p)!r} is unreadable ({type(e).__name__}: {e}); delete it to restart") from None
        theirs = ck.get("config", {})
        for key in ("method", "ipc", "rank", "images_per_class", "init", "seed", "batch_real", "lr"):
            if theirs.get(key) != getattr(self.cfg, key):
                raise ConfigError(
                    f"checkpoint {str(p)!r} was made with {key}={theirs.get(key)!r}, this run has "
                    f"{key}={getattr(self.cfg, key)!r}; use another output dir or the same settings"
                )
        self.synset.load_state_dict(ck["synset"])
        opt.load_state_dict(ck["optimizer"])
        self.history = list(ck["history"])
        self.start_iteration = int(ck["iteration"])
        self.init_indices = ck.get("init_indices")
        return True

    def _is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    # -- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> CondenseResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        self.synset.to(self.device)
        opt = self.optimizer()
        resumed = resume and self.load_checkpoint(opt)
        if not resumed:
            self.initialise()
            self.synset.to(self.device)
            opt = self.optimizer()
        total = cfg.iterations
        timed_its, timed_s = 0, 0.0
        if total > self.start_iteration:
            ctx = self._context()
            objective = OBJECTIVES.get(self.spec.objective)(ctx)
            if self.accelerator is not None:
                objective.backward = self.accelerator.backward
            from tqdm.auto import tqdm

            bar = tqdm(
                total=total, initial=self.start_iteration, desc=f"{self.spec.name} ipc{self.budget.ipc}",
                disable=not (self.progress and self._is_main()), dynamic_ncols=True,
            )
            last_good = self.start_iteration
            with _catch_signals() as flag:
                for it in range(self.start_iteration, total):
                    t_it = time.perf_counter()
                    metrics = objective.step(it, self.synset, opt, generator(cfg.seed, "iter", it))
                    timed_s += time.perf_counter() - t_it
                    timed_its += 1
                    loss = metrics["loss"]
                    if not (loss == loss and abs(loss) != float("inf")) or not self._finite():
                        where = (f"; the last good checkpoint is {str(self.checkpoint_path)!r} (iteration {last_good})"
                                 if self.checkpoint_path and self.checkpoint_path.is_file() else "")
                        raise NonFiniteError(
                            f"{self.spec.name}: loss or synthetic data became non-finite at iteration {it} "
                            f"(loss={loss}){where}. Lower the learning rate (lr={cfg.lr}) or use mixed_precision='no'."
                        )
                    done = it + 1
                    if it % cfg.log_every == 0 or done == total:
                        rec = {"iteration": it, **metrics}
                        self.history.append(rec)
                        if self.on_log:
                            self.on_log(rec)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                    bar.update(1)
                    if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < total:
                        self.save_checkpoint(done, opt)
                        last_good = done
                    if flag["sig"] is not None:
                        path = self.save_checkpoint(done, opt)
                        bar.close()
                        raise Interrupted(
                            f"interrupted by signal {flag['sig']} after iteration {done}/{total}; "
                            + (f"checkpoint saved to {str(path)!r}; rerun the same command with --resume to continue"
                               if path else "no checkpoint directory was set, progress is lost")
                        )
            bar.close()
        self.synset.eval()
        wall = time.perf_counter() - t0
        return CondenseResult(
            synset=self.synset.to("cpu"),
            budget=self.budget,
            method=self.spec,
            config=cfg,
            history=self.history,
            wall_time_s=wall,
            iterations_per_s=(timed_its / timed_s) if timed_its else None,
            init_indices=self.init_indices,
        )

    def _finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.synset.parameters())


def condense(
    data: ImageClassificationData,
    cfg: CondenseConfig | None = None,
    *,
    accelerator=None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> CondenseResult:
    """Condense ``data`` with ``cfg`` (or keyword overrides of the defaults)."""
    cfg = CondenseConfig(**{**(cfg.__dict__ if cfg else {}), **overrides})
    return Condenser(data, cfg, accelerator=accelerator, checkpoint_dir=checkpoint_dir, progress=progress).run(resume)
