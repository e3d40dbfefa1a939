"""Train a network on in-memory images with the protocol: the one loop every trainer uses.

Who trains what here:

* evaluation (``engine/evaluate.py``): a fresh network per run on the synthetic set, SGD with momentum
  and weight decay, the protocol's lr schedule (``LR_SCHEDULES``: the DC protocol's "step_half",
  IDC's "idc_multistep") and, in IDC's protocol, CutMix (``TrainSchedule.cutmix_p``);
* the ``vmap`` evaluation backend (``engine/vmap_eval.py``): N of those at once (``train_stacked``);
* gradient matching's inner loop (``objectives/gm.py``): the matching network on the detached
  synthetic set, plain SGD at ``lr_net``;
* expert trajectories (``objectives/experts.py``): a network on the real train set (uint8 on the
  CPU, normalised per batch by ``prepare``), plain SGD, a snapshot after every epoch (``on_epoch``);
* coresets and objectives build their networks with :func:`seeded_net`.

Both variants run the same epoch/batch skeleton (:func:`_run`): per epoch the schedule sets the lr,
every model draws ONE ``randperm`` from its generator, then per batch every model draws its DSA
parameters (one family per batch, values per image) from the same generator, then (only when
``cutmix_p > 0``) whether to CutMix and the CutMix box and partners, one loss, one SGD step. That draw order is what makes a run reproducible from (seed, purpose) and what makes a
stacked run equal to N single ones.

This module imports only data/models/seeding/registry and ``training.device``, so the objectives and the
engine (above it) both use it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import DSAParams, DSAugment, cutmix
from ..data.types import LabeledImages, normalize
from . import device as device_settings
from ..models import create_eval_model
from ..registry import Registry
from ..seeding import derive_seed

__all__ = ["TrainSchedule", "LR_SCHEDULES", "LRSchedule", "seeded_net", "train_network", "train_stacked",
           "test_accuracy", "forward_fn"]

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (net, x) -> logits


def _forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x)


def _forward_compiled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:  # its own code object: compile's cache
    return net(x)


def forward_fn(compile: bool) -> Forward | None:
    """The evaluation forward: None (call the network, eager) or the ``torch.compile``'d
    ``(net, x) -> net(x)`` (``device.compile_once``: built once per process; a fresh network reuses it;
    one graph per input shape (full batch, last partial batch, test batch) and mode (train / eval,
    grad / no-grad); the backward goes through AOTAutograd)."""
    return device_settings.compile_once(_forward_compiled) if compile else None


@dataclass(frozen=True)
class LRSchedule:
    """An lr schedule: (lr multiplier at ``epoch`` of ``epochs``), and its words for records and cards."""

    factor: Callable[[int, int], float]
    describe: Callable[[int], str]


LR_SCHEDULES: Registry[LRSchedule] = Registry("lr schedule")
LR_SCHEDULES.add("constant", LRSchedule(lambda ep, E: 1.0, lambda E: "constant"))
# the DC/DSA/DM evaluation protocol: x 0.1 from epoch E // 2 on
LR_SCHEDULES.add("step_half", LRSchedule(lambda ep, E: 0.1 if ep >= E // 2 else 1.0,
                                         lambda E: f"x0.1 after epoch {E // 2}"))
# IDC's evaluation (MultiStepLR, milestones 2E/3 and 5E/6, gamma 0.2)
LR_SCHEDULES.add("idc_multistep", LRSchedule(
    lambda ep, E: 0.04 if ep >= 5 * E // 6 else (0.2 if ep >= 2 * E // 3 else 1.0),
    lambda E: f"x0.2 after epoch {2 * E // 3}, x0.04 after epoch {5 * E // 6}"))


@dataclass(frozen=True)
class TrainSchedule:
    """SGD settings of one training: what the caller's protocol says, nothing else."""

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch: int = 256
    epochs: int = 1
    lr_schedule: str = "constant"  # a name in LR_SCHEDULES
    cutmix_p: float = 0.0  # probability that a batch is CutMixed (IDC's evaluation: 0.5)

    def __post_init__(self) -> None:
        LR_SCHEDULES.get(self.lr_schedule)  # an unknown name fails here, listing the valid ones
        if not 0.0 <= self.cutmix_p <= 1.0:
            raise ValueError(f"cutmix_p must be in [0, 1], got {self.cutmix_p}")

    def lr_at(self, epoch: int) -> float:
        return self.lr * LR_SCHEDULES.get(self.lr_schedule).factor(epoch, self.epochs)

    def describe_lr(self) -> str:
        return LR_SCHEDULES.get(self.lr_schedule).describe(self.epochs)

    def draw_cutmix(self, g: torch.Generator) -> bool:
        """Whether this batch is CutMixed: one draw from ``g``, and none at all when CutMix is off
        (so trainings without it draw exactly what they drew before it existed)."""
        return self.cutmix_p > 0 and float(torch.rand((), generator=g)) < self.cutmix_p

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


def seeded_net(model: str, num_classes: int, image_shape: Sequence[int], seed: int, *purpose: object,
               device: torch.device | str | None = None) -> nn.Module:
    """A fresh ``model`` whose initialisation depends only on ``seed`` (and ``purpose``, if given:
    then the seed is ``derive_seed(seed, *purpose)``). The global RNG is forked, never disturbed."""
    c, h, w = image_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, *purpose) if purpose else seed)
        net = create_eval_model(model, num_classes=num_classes, in_chans=c, img_size=(h, w))
    return net.to(device) if device is not None else net


def _run(opt: torch.optim.Optimizer, sched: TrainSchedule, num_images: int, gens: list[torch.Generator],
         batch_loss: Callable[[list[torch.Tensor]], torch.Tensor],
         on_epoch: Callable[[int, torch.Tensor], None] | None = None) -> None:
    """The shared skeleton: per epoch lr + one permutation per model; per batch loss + SGD step.

    ``batch_loss`` gets each model's CPU index slice (b,) and returns the loss to minimise (it draws
    the augmentation from the generators, after the permutations: the protocol's order).
    """
    for ep in range(sched.epochs):
        for group in opt.param_groups:
            group["lr"] = sched.lr_at(ep)
        perms = [torch.randperm(num_images, generator=g) for g in gens]  # one per model
        loss = None
        for s in range(0, num_images, sched.batch):
            loss = batch_loss([p[s : s + sched.batch] for p in perms])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(ep, loss)


def train_network(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    sched: TrainSchedule,
    g: torch.Generator,
    augment: DSAugment,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_epoch: Callable[[int, torch.Tensor], None] | None = None,
    forward: Forward | None = None,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> nn.Module:
    """Train ``net`` on (images (M, C, H, W), labels (M,)) with ``sched``, drawing from ``g``.

    ``prepare`` maps a batch of ``images`` to network input (e.g. uint8 -> normalised on the
    device); without it the images are used as they are (already normalised, on the device).
    ``optimizer`` continues an existing one (its lr is set by the schedule); by default a new one.
    ``forward(net, x)`` replaces ``net(x)`` (e.g. :func:`forward_fn`'s compiled one); draws are unchanged.
    ``criterion(logits (b, K) float32, targets)`` replaces the cross-entropy, for targets that are not
    class ids (soft labels (M, K)); ``labels`` are indexed by row either way. None: cross-entropy.
    """
    loss_fn = F.cross_entropy if criterion is None else criterion
    opt = optimizer if optimizer is not None else sched.optimizer(net.parameters())
    net.train()
    run = net if forward is None else (lambda x: forward(net, x))

    def batch_loss(idx: list[torch.Tensor]) -> torch.Tensor:
        i = idx[0].to(images.device)
        x = images[i]
        if prepare is not None:
            x = prepare(x)
        if augment.enabled:
            x = augment(x, g, shared_family=True)  # one family per batch, values per image
        y = labels[i].to(x.device)
        if sched.draw_cutmix(g):
            x, y_b, ratio = cutmix(x, y, g)
            with autocast():
                logits = run(x).float()
            return loss_fn(logits, y) * ratio + loss_fn(logits, y_b) * (1.0 - ratio)
        with autocast():
            return loss_fn(run(x).float(), y)

    _run(opt, sched, images.shape[0], [g], batch_loss, on_epoch)
    return net


def _cat_params(parts: list[DSAParams]) -> DSAParams:
    return DSAParams(torch.cat([p.family for p in parts]),
                     {k: torch.cat([p.values[k] for p in parts]) for k in parts[0].values})


def train_stacked(stack, images: torch.Tensor, labels: torch.Tensor, sched: TrainSchedule,
                  gens: list[torch.Generator], augment: DSAugment):
    """:func:`train_network` for N stacked models at once (model i draws from ``gens[i]``).

    ``stack`` has ``parameters()``, ``train()`` and ``forward(x (B, N, C, H, W)) -> (N, B, classes)``
    (``vmap_eval.StackedNets``). Each model's batch and DSA parameters are drawn from its own
    generator exactly as the single-network loop would (same calls, same order), then applied to
    all models' images in one call; the loss is the sum over models of each model's mean
    cross-entropy, so each model's gradient is its own.
    """
    opt = sched.optimizer(stack.parameters())
    stack.train()

    def batch_loss(idx: list[torch.Tensor]) -> torch.Tensor:
        i = torch.stack(idx).to(images.device)  # (N, b)
        N, b = i.shape
        x = images[i.flatten()]  # (N*b, C, H, W)
        if augment.enabled:
            h, w = x.shape[-2:]
            params = _cat_params([augment.draw(b, (h, w), g, shared_family=True) for g in gens])
            x = augment.apply(x, torch.arange(N * b, device=x.device), params)
        y = labels[i]  # (N, b)
        mixed = None
        if sched.cutmix_p > 0:  # each model decides and draws its own box from its own generator
            xs, ys_b, ratios = list(x.view(N, b, *x.shape[1:])), [], []
            for n, g in enumerate(gens):
                if sched.draw_cutmix(g):
                    xs[n], y_b, r = cutmix(xs[n], y[n], g)
                else:
                    y_b, r = y[n], 1.0
                ys_b.append(y_b)
                ratios.append(r)
            x = torch.stack(xs).flatten(0, 1)  # (N*b, C, H, W)
            mixed = (torch.stack(ys_b), torch.tensor(ratios, device=x.device))  # (N, b), (N,)
        x = x.view(N, b, *x.shape[1:]).transpose(0, 1).contiguous()  # (b, N, C, H, W): batch-major
        logits = stack.forward(x)  # (N, b, classes)
        per_model = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")  # (N*b,)
        if mixed is None:
            return per_model.view(y.shape).mean(1).sum()  # sum over models of each model's mean
        y_b, ratio = mixed
        per_model_b = F.cross_entropy(logits.flatten(0, 1), y_b.flatten(), reduction="none")  # (N*b,)
        return (per_model.view(y.shape).mean(1) * ratio + per_model_b.view(y.shape).mean(1) * (1 - ratio)).sum()

    _run(opt, sched, images.shape[0], gens, batch_loss)
    return stack


@torch.no_grad()
def test_accuracy(net: nn.Module, test: LabeledImages, mean, std, device, batch: int = 500,
                  forward: Forward | None = None,
                  autocast: Callable[[], ContextManager] = contextlib.nullcontext) -> float:
    """Top-1 accuracy (%) of ``net`` on ``test`` (uint8 images, normalised here batch by batch);
    ``forward(net, x)`` replaces ``net(x)`` when given; the forward runs under ``autocast()``."""
    net.eval()
    run = net if forward is None else (lambda x: forward(net, x))
    correct = 0
    for s in range(0, len(test), batch):
        x = normalize(test.images[s : s + batch], mean, std).to(device)  # (b, C, H, W)
        with autocast():
            pred = run(x).argmax(1)  # (b,)
        correct += int((pred.cpu() == test.labels[s : s + batch]).sum())
    return 100.0 * correct / max(len(test), 1)
