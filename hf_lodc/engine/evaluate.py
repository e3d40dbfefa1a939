"""The literature's evaluation protocol: train fresh networks on the synthetic set only, test on real.

Protocol ``dc`` (DC/DSA/DM lineage, the default): SGD lr 0.01, momentum 0.9, weight decay 5e-4,
batch 256, E epochs with lr x 0.1 after the first E//2, DSA on every training batch (one family per
batch, values per image), accuracy on the real test split after the LAST epoch (never the best over
checkpoints), mean +- std over independently initialised models. (The reference code runs E+1
epochs and decays after epoch E//2+1; the difference is one epoch.)

Protocol ``idc`` (IDC's own evaluation, Kim et al. 2022, its public test code): the same SGD
settings, but batch 64, lr x 0.2 at 2E/3 and again at 5E/6, and CutMix (lam ~ U(0, 1)) on half
of the batches after DSA, with DSA's cutout family dropped (CutMix replaces it). Its accuracies
are stored under ``<model>@idc`` beside the ``dc`` ones, so both can be compared in one artefact.
Accuracy is still the last epoch's (IDC's code also logs a best-epoch figure; we never report it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

from ..data.augment import DSAugment
from ..data.types import LabeledImages
from ..errors import ConfigError
from ..seeding import generator
from .config import EvalConfig
from .eval_protocols import EVAL_BACKENDS, EVAL_PROTOCOLS, EvalProtocol
from .validate import sequential_only, validate_eval
from ..training import device as device_settings
from ..training.loop import TrainSchedule, forward_fn, seeded_net, test_accuracy, train_network

__all__ = ["EvalRecord", "evaluate_synthetic", "evaluate_validated", "train_one", "test_accuracy", "protocol_of", "schedule_of",
           "augment_of", "autocast_of", "record_key", "EvalProtocol", "EVAL_PROTOCOLS", "EVAL_BACKENDS"]


def record_key(model: str, cfg: EvalConfig) -> str:
    """Where a model's accuracy is stored in results: ``model`` for the default protocol, else
    ``model@protocol`` (so the numbers of both protocols live side by side)."""
    return model if cfg.eval_protocol == "dc" else f"{model}@{cfg.eval_protocol}"


def augment_of(cfg: EvalConfig) -> DSAugment:
    """The DSA of the evaluation training: the config's strategy less the protocol's dropped families."""
    if not cfg.eval_dsa:
        return DSAugment("none")
    drop = EVAL_PROTOCOLS.get(cfg.eval_protocol).drop_families
    names = [f for f in cfg.eval_dsa_strategy.strip().split("_") if f and f not in drop and f != "none"]
    return DSAugment("_".join(names) or "none")


@dataclass
class EvalRecord:
    model: str
    accuracies: list[float]  # percent, one per run
    epochs: int
    protocol: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def runs(self) -> int:
        return len(self.accuracies)

    @property
    def accuracy_mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def accuracy_std(self) -> float:
        if len(self.accuracies) < 2:
            return 0.0
        m = self.accuracy_mean
        return math.sqrt(sum((a - m) ** 2 for a in self.accuracies) / len(self.accuracies))  # population std, as the literature (np.std)

    def summary(self) -> str:
        """One line for the log: ``[eval] convnet: 44.88 +- 0.28 % over 5 runs (3041 s)``."""
        return (f"[eval] {self.model}: {self.accuracy_mean:.2f} +- {self.accuracy_std:.2f} % over {self.runs} runs "
                f"({self.wall_time_s:.0f} s)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "accuracy_mean": round(self.accuracy_mean, 3),
            "accuracy_std": round(self.accuracy_std, 3),
            "runs": self.runs,
            "epochs": self.epochs,
            "accuracies": [round(a, 3) for a in self.accuracies],
            "wall_time_s": round(self.wall_time_s, 2),
            "protocol": self.protocol,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalRecord":
        return cls(model=d["model"], accuracies=list(d["accuracies"]), epochs=int(d["epochs"]),
                   protocol=dict(d.get("protocol", {})), wall_time_s=float(d.get("wall_time_s", 0.0)))


def protocol_of(cfg: EvalConfig) -> dict[str, Any]:
    """The settings that make an accuracy comparable; stored with every result."""
    sched, aug = schedule_of(cfg), augment_of(cfg)
    out = {
        "optimizer": "sgd",
        "lr": cfg.eval_lr,
        "momentum": cfg.eval_momentum,
        "weight_decay": cfg.eval_weight_decay,
        "batch_size": sched.batch,
        "epochs": cfg.eval_epochs,
        "lr_schedule": sched.describe_lr(),
        "augmentation": (f"dsa:{cfg.eval_dsa_strategy}" if cfg.eval_dsa else "none") if cfg.eval_protocol == "dc"
        else (f"dsa:{'_'.join(aug.families)}" if aug.enabled else "none"),
        "accuracy": "last epoch (not best)",
        "zca": False,
        "test_split": "real test split",
    }
    if cfg.eval_protocol != "dc":  # the default protocol's record is what it always was
        out["name"] = cfg.eval_protocol
        out["description"] = EVAL_PROTOCOLS.get(cfg.eval_protocol).description
        out["cutmix_p"] = sched.cutmix_p
    if cfg.eval_compile:  # only when on: default records stay what they were
        out["compile"] = "torch.compile (inductor), not bit-identical to eager"
    if (cfg.eval_mixed_precision or "no") != "no":
        out["precision"] = f"{cfg.eval_mixed_precision} autocast (network passes; weights, gradients and SGD in float32)"
    if cfg.eval_channels_last:
        out["memory_format"] = "channels_last"
    return out


def autocast_of(cfg: EvalConfig, device: torch.device | str) -> Callable:
    """The context factory evaluation's network passes (training and test) run under."""
    return device_settings.autocast(cfg.eval_mixed_precision or "no", device)


def forward_of(cfg: EvalConfig):
    """The evaluation forward ``(net, x) -> logits`` for ``cfg`` (None: ``net(x)``): compiled when
    ``eval_compile``; with ``eval_channels_last`` the batch enters in channels_last strides (one-channel
    images included, cast to the autocast dtype first: ``device.as_memory_format``)."""
    fwd = forward_fn(bool(cfg.eval_compile))
    if not cfg.eval_channels_last:
        return fwd
    call = fwd or (lambda net, x: net(x))
    return lambda net, x: call(net, device_settings.as_memory_format(x, True))


def _memory_format(net: nn.Module, cfg: EvalConfig) -> nn.Module:
    return net.to(memory_format=torch.channels_last) if cfg.eval_channels_last else net


def schedule_of(cfg: EvalConfig) -> TrainSchedule:
    """The protocol's SGD schedule for ``cfg``: momentum, weight decay, its lr schedule, batch and CutMix."""
    p = EVAL_PROTOCOLS.get(cfg.eval_protocol)
    return TrainSchedule(lr=cfg.eval_lr, momentum=cfg.eval_momentum, weight_decay=cfg.eval_weight_decay,
                         batch=p.batch or cfg.eval_batch, epochs=cfg.eval_epochs, lr_schedule=p.lr_schedule,
                         cutmix_p=p.cutmix_p)


def train_one(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: EvalConfig, g: torch.Generator,
    augment: DSAugment, on_epoch: Callable[[int, torch.Tensor], None] | None = None,
) -> nn.Module:
    """Train ``net`` on (images (M, C, H, W) normalised, labels (M,)) with the protocol (through
    ``torch.compile`` when ``cfg.eval_compile``, under ``cfg.eval_mixed_precision``'s autocast)."""
    return train_network(net, images, labels, schedule_of(cfg), g, augment, forward=forward_of(cfg),
                         autocast=autocast_of(cfg, images.device), on_epoch=on_epoch)


def _epoch_bar(model: str, i: int, total: int, epochs: int):
    """A progress bar over one network's epochs (a 1000-epoch run is minutes to an hour on a CPU);
    it reads no loss, so it adds no device sync."""
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc=f"[eval] {model} run {i + 1}/{total}", unit="epoch", leave=False,
                dynamic_ncols=True)


@EVAL_BACKENDS.register("sequential")
def _sequential(model, images, labels, test, mean, std, num_classes, cfg, seed, device, runs,
                keep_state=None, progress=False) -> list[float]:
    aug = augment_of(cfg)
    forward = forward_of(cfg)
    accs = []
    for i, r in enumerate(runs):
        net = seeded_net(model, num_classes, tuple(images.shape[1:]), seed, "eval-net", model, r, device=device)
        net = _memory_format(net, cfg)  # the same values in another layout
        g = generator(seed, "eval-data", model, r)
        bar = _epoch_bar(model, i, len(runs), cfg.eval_epochs) if progress else None
        try:
            train_one(net, images, labels, cfg, g, aug, on_epoch=(lambda ep, loss: bar.update(1)) if bar else None)
        finally:
            if bar is not None:
                bar.close()
        accs.append(test_accuracy(net, test, mean, std, device, forward=forward, autocast=autocast_of(cfg, device)))
        if keep_state is not None:  # after the test: nothing the callback does can change an accuracy
            keep_state(model, r, accs[-1], net.to(memory_format=torch.contiguous_format))  # savable as it is
    return accs


def _announcing(keep_state: Callable | None, total: int, t0: float) -> Callable:
    """A ``keep_state`` that prints each run's accuracy as it finishes, then calls ``keep_state``."""
    done = 0

    def seen(model: str, run: int, acc: float, net: nn.Module) -> None:
        nonlocal done
        done += 1
        print(f"[eval] {model} run {done}/{total}: {acc:.2f} % ({time.perf_counter() - t0:.0f} s)", flush=True)
        if keep_state is not None:
            keep_state(model, run, acc, net)

    return seen


def evaluate_synthetic(
    images: torch.Tensor,
    labels: torch.Tensor,
    test: LabeledImages,
    mean: torch.Tensor,
    std: torch.Tensor,
    num_classes: int,
    cfg: EvalConfig | None = None,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    runs: list[int] | None = None,
    progress: bool = False,
    keep_state: Callable[[str, int, float, nn.Module], None] | None = None,
) -> dict[str, EvalRecord]:
    """Train ``cfg.eval_runs`` fresh models per architecture on the synthetic set; test on ``test``.

    ``images`` are normalised like ``test`` will be (with ``mean``/``std``). Run r of a model is
    seeded by (seed, model, r) only, so any subset of runs (``runs``) can be computed anywhere.
    ``keep_state(model, run, accuracy, net)`` is called with each trained network after its test (to
    keep its weights, e.g. ``net.state_dict()``); both backends call it (vmap with the run's weights
    loaded into its own network), so keeping the networks never changes which backend trains them.
    """
    cfg = cfg or EvalConfig()
    if not isinstance(cfg, EvalConfig):
        raise ConfigError(f"cfg must be an EvalConfig, got {type(cfg).__name__}")
    images, labels, mean, std = _checked_arguments(images, labels, test, mean, std, num_classes, cfg)
    # a public entry that the pipeline's validate step does not guard: the options' checks, here
    validate_eval(cfg, tuple(images.shape[1:]), num_classes)
    return _evaluate(images, labels, test, mean, std, num_classes, cfg, seed=seed, device=device, runs=runs,
                     progress=progress, keep_state=keep_state)


def evaluate_validated(images, labels, test, mean, std, num_classes: int, cfg: EvalConfig, **kw: Any
                       ) -> dict[str, EvalRecord]:
    """``evaluate_synthetic`` for a caller whose ``cfg`` passed the validate step at this image size
    (``run_checks.validate`` / ``validate_eval``): the tensor arguments are checked, the options trusted."""
    images, labels, mean, std = _checked_arguments(images, labels, test, mean, std, num_classes, cfg)
    return _evaluate(images, labels, test, mean, std, num_classes, cfg, **kw)


def _checked_arguments(images, labels, test, mean, std, num_classes: int, cfg: EvalConfig):
    from ..api_inputs import check_eval_inputs

    if cfg.eval_runs <= 0:  # 0 is a valid option ("no evaluation"), but not a request to evaluate
        raise ConfigError(f"eval_runs and eval_epochs must be positive, got {cfg.eval_runs}, {cfg.eval_epochs}")
    if test is None or (hasattr(test, "__len__") and len(test) == 0):
        raise ConfigError("evaluation needs a test split; set eval_split or holdout_fraction")
    return check_eval_inputs(images, labels, test, mean, std, num_classes)


def _evaluate(images, labels, test, mean, std, num_classes: int, cfg: EvalConfig, *, seed: int = 0,
              device: torch.device | str = "cpu", runs: list[int] | None = None, progress: bool = False,
              keep_state: Callable[[str, int, float, nn.Module], None] | None = None) -> dict[str, EvalRecord]:
    device = torch.device(device)
    device_settings.ensure(device)  # TF32 / cudnn.benchmark set explicitly (a condensation's, else the defaults)
    images = images.detach().float().to(device)
    labels = labels.long().to(device)
    run_ids = list(range(cfg.eval_runs)) if runs is None else list(runs)
    backend = cfg.eval_backend  # an explicit backend runs every option set (validate_eval)
    if backend == "auto":  # vmap pays off on accelerators; on CPU it measured slower (benchmarks/results/speed_eval.md)
        vectorise = ("vmap" in EVAL_BACKENDS and len(run_ids) > 1 and device.type != "cpu"
                     and not sequential_only(cfg))
        backend = "vmap" if vectorise else "sequential"
    fn = EVAL_BACKENDS.get(backend)
    out = {}
    for model in cfg.eval_models:
        t0 = time.perf_counter()
        seen = keep_state
        extra = {}
        if progress and backend == "sequential":  # a line per trained network and a bar over its epochs
            seen = _announcing(keep_state, len(run_ids), t0)
            extra["progress"] = True
        if seen is not None:
            extra["keep_state"] = seen
        accs = fn(model, images, labels, test, mean, std, num_classes, cfg, seed, device, run_ids, **extra)
        out[model] = EvalRecord(model=model, accuracies=accs, epochs=cfg.eval_epochs, protocol=protocol_of(cfg),
                                wall_time_s=time.perf_counter() - t0)
        if progress:
            print(out[model].summary(), flush=True)
    return out


