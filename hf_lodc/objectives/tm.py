"""Trajectory matching (MTT: Cazenavette et al., CVPR 2022); with factors, LoMTT (Yang et al. 2023).

Per iteration: pick an expert e and a start epoch t < ``max_start_epoch``; start a student at the
expert's parameters theta_t, train it ``syn_steps`` SGD steps on (DSA-augmented) synthetic
minibatches with a LEARNED learning rate ``syn_lr``, keeping the graph; the loss is

    ||theta_student - theta_{t+M}||^2 / ||theta_t - theta_{t+M}||^2     (M = ``expert_epochs``)

and it is back-propagated through all the student's steps into the synthetic set (pixels or
factors) and into ``syn_lr`` (its own SGD, lr ``lr_lr``, momentum 0.5). The student is a flat
parameter vector run through the network with ``torch.func.functional_call``.

The objective couples all classes (one student sees every class), so it is not sharded across
processes. ``syn_lr`` and its momentum are part of the checkpoint (``state_dict``), so a resumed run
continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..errors import ConfigError
from .base import OBJECTIVES, POSITIVE, Objective, ObjectiveOptions, option
from .experts import flat_params, load_experts, unflatten

__all__ = ["TrajectoryMatching", "TMOptions"]


@dataclass
class TMOptions(ObjectiveOptions):
    expert_dir: str | None = option(
        None, "expert trajectories (recipes/experts.py); required to run iterations")
    syn_steps: int = option(
        20, "student steps on the synthetic set per iteration")
    expert_epochs: int = option(
        2, "target = expert epoch start + expert_epochs")
    max_start_epoch: int = option(
        2, "start epoch drawn from [0, max_start_epoch)")
    lr_teacher: float = option(
        0.01, "initial learned student lr")
    lr_lr: float = option(
        1e-5, "lr of the learned student lr")
    batch_syn: int | None = option(
        None, "student minibatch (None = the whole set)")

    RULES = {"syn_steps": POSITIVE, "expert_epochs": POSITIVE, "max_start_epoch": POSITIVE,
             "lr_teacher": POSITIVE, "lr_lr": POSITIVE, "batch_syn": POSITIVE}
    CHECKED_ON_RESOLVE = {"expert_dir": "set when the run has iterations to do"}

    def resolve(self, budget, iterations: int) -> "TMOptions":
        if iterations > 0:
            self.require_experts()
        return self

    def require_experts(self) -> str:
        """The expert directory (the one place that says how to make one when it is missing)."""
        if not self.expert_dir:
            raise ConfigError("trajectory matching matches expert trajectories: set expert_dir (make them with "
                              "`python recipes/experts.py --dataset ... --output-dir DIR`)")
        return self.expert_dir


@OBJECTIVES.register("tm")
class TrajectoryMatching(Objective):
    Options = TMOptions

    def __init__(self, ctx):
        super().__init__(ctx)
        o = self.options
        expert_dir = o.require_experts()
        self.syn_steps, self.expert_epochs, self.max_start_epoch = o.syn_steps, o.expert_epochs, o.max_start_epoch
        self.batch_syn = o.batch_syn
        self.buffer = load_experts(expert_dir)
        self.net = ctx.make_net("tm")
        self._check(expert_dir)
        self.names = [n for n, _ in self.net.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in self.net.named_parameters()]
        self.trajectories = self.buffer.trajectories  # (E, epochs + 1, P), CPU
        self.syn_lr = torch.tensor(float(o.lr_teacher), device=ctx.device, requires_grad=True)
        self.lr_opt = torch.optim.SGD([self.syn_lr], lr=float(o.lr_lr), momentum=0.5)

    def _check(self, where: str) -> None:
        ctx, meta = self.ctx, self.buffer.meta
        epochs = self.buffer.trajectories.shape[1] - 1
        problems = []
        if list(meta["image_shape"]) != list(ctx.image_shape):
            problems.append(f"image shape {meta['image_shape']} (this data: {list(ctx.image_shape)})")
        if len(meta["class_names"]) != ctx.num_classes or len(ctx.classes) != ctx.num_classes:
            problems.append(f"{len(meta['class_names'])} classes (condensing {len(ctx.classes)} of {ctx.num_classes}; "
                            "experts must be trained on exactly the condensed classes)")
        ours = [[n, list(p.shape)] for n, p in self.net.named_parameters()]
        if [[n, list(s)] for n, s in zip(meta["param_names"], meta["param_shapes"])] != ours:
            problems.append(f"network {meta['config']['model']!r} (matching network here: {ctx.model!r})")
        s = ctx.sampler
        if not (torch.allclose(torch.tensor(meta["mean"]), s.mean.cpu().float(), atol=1e-6)
                and torch.allclose(torch.tensor(meta["std"]), s.std.cpu().float(), atol=1e-6)):
            problems.append(f"normalisation mean {meta['mean']} std {meta['std']} (this data: "
                            f"{s.mean.tolist()} {s.std.tolist()})")
        if problems:
            raise ConfigError(f"expert trajectories in {where!r} do not fit this condensation: " + "; ".join(problems))
        if self.max_start_epoch < 1 or self.expert_epochs < 1 or self.syn_steps < 1:
            raise ConfigError("max_start_epoch, expert_epochs and syn_steps must be >= 1, got "
                              f"{self.max_start_epoch}, {self.expert_epochs}, {self.syn_steps}")
        if self.max_start_epoch - 1 + self.expert_epochs > epochs:
            raise ConfigError(f"the experts in {where!r} have {epochs} epochs, but max_start_epoch "
                              f"{self.max_start_epoch} + expert_epochs {self.expert_epochs} needs "
                              f"{self.max_start_epoch - 1 + self.expert_epochs}; lower them or train longer experts")
        P, ours = self.buffer.trajectories.shape[2], flat_params(self.net).numel()
        if P != ours:
            raise ConfigError(f"expert trajectories in {where!r} have {P} parameters, the network {ours}")

    # -- checkpoint state ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        buf = self.lr_opt.state.get(self.syn_lr, {}).get("momentum_buffer")
        return {"syn_lr": self.syn_lr.detach().cpu().clone(),
                "syn_lr_momentum": None if buf is None else buf.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.syn_lr.copy_(state["syn_lr"])
        if state.get("syn_lr_momentum") is not None:
            self.lr_opt.state[self.syn_lr]["momentum_buffer"] = state["syn_lr_momentum"].to(self.syn_lr).clone()

    # -- one iteration -------------------------------------------------------------------------
    def step(self, iteration, synset, optimizer, generator):
        ctx = self.ctx
        E = self.trajectories.shape[0]
        e = int(torch.randint(E, (1,), generator=generator))
        t = int(torch.randint(self.max_start_epoch, (1,), generator=generator))
        start = self.trajectories[e, t].to(ctx.device)  # (P,)
        target = self.trajectories[e, t + self.expert_epochs].to(ctx.device)  # (P,)
        x_syn = synset()  # (N, C, H, W)
        y_syn = ctx.classes.to(ctx.device)[synset.labels.to(ctx.device)]  # (N,) global labels
        N = x_syn.shape[0]
        bs = min(int(self.batch_syn), N) if self.batch_syn else N
        student = start.clone().requires_grad_(True)  # (P,)
        for _ in range(self.syn_steps):
            idx = torch.randperm(N, generator=generator)[:bs].to(ctx.device)
            x = x_syn[idx]  # (bs, C, H, W)
            if ctx.augment.enabled:
                x = ctx.augment(x, generator, shared_family=True)
            with ctx.autocast():
                logits = functional_call(self.net, unflatten(student, self.names, self.shapes), (x,))
            ce = F.cross_entropy(logits.float(), y_syn[idx])
            (g,) = torch.autograd.grad(ce, student, create_graph=True)  # (P,)
            student = student - self.syn_lr * g
        loss = ((student - target) ** 2).sum() / ((start - target) ** 2).sum()
        optimizer.zero_grad(set_to_none=True)
        self.lr_opt.zero_grad(set_to_none=True)
        self.backward(loss)
        optimizer.step()
        self.lr_opt.step()
        K = len(ctx.classes)
        value = float(loss.detach())
        return {"loss": value, "loss_per_class": value / K, "syn_lr": float(self.syn_lr.detach()),
                "expert": e, "start_epoch": t}
