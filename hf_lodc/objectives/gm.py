"""Gradient matching (DC: Zhao et al., ICLR 2021; DSA: Zhao & Bilen, ICML 2021).

Per iteration: a fresh network; ``outer_loop`` times, (a) match, for every class, the gradient of
the classification loss w.r.t. the network weights on real vs synthetic data with the layer-wise
distance sum_out (1 - cos), update the synthetic set; (b) train the network ``inner_loop`` epochs
on the (detached) synthetic set. Per-class gradients of all classes come from one
``vmap(grad(loss))`` call instead of a Python loop over classes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ..errors import ConfigError
from ..training.loop import TrainSchedule, train_network
from .base import OBJECTIVES, POSITIVE, Objective, ObjectiveOptions, option

__all__ = ["GradientMatching", "GMOptions", "gradient_distance", "per_class_gradients", "DEFAULT_LOOPS", "default_loops"]

# (outer_loop, inner_loop) by pixel IPC, as in the DC/DSA papers' code
DEFAULT_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def default_loops(ipc: float) -> tuple[int, int]:
    key = min(DEFAULT_LOOPS, key=lambda k: abs(k - ipc))
    return DEFAULT_LOOPS[key]


def gradient_distance(g_real: dict[str, torch.Tensor], g_syn: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over weight tensors and output channels of 1 - cos(g_real, g_syn); biases/norms add 0.

    Inputs map parameter names to per-class gradients (K, *param_shape); the result sums over K.
    """
    total = 0.0
    for name, gr in g_real.items():
        if gr.dim() <= 2:  # (K, out): bias or norm parameter
            continue
        gs = g_syn[name]
        K, out = gr.shape[:2]
        gr = gr.reshape(K, out, -1)  # (K, out, fan_in)
        gs = gs.reshape(K, out, -1)
        cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + 1e-6)  # (K, out)
        total = total + (1.0 - cos).sum()
    return total


def per_class_gradients(net: nn.Module, autocast):
    """``f(params, x (K, m, C, H, W), y (K, m)) -> {name: (K, *param_shape)}``: the gradient of each
    class's cross-entropy w.r.t. ``params`` (a name -> tensor dict of ``net``), all classes in one
    ``vmap(grad)`` call; the forward runs under ``autocast()``, the loss in float32."""

    def class_loss(params, x, y):
        with autocast():
            logits = functional_call(net, params, (x,))
        return F.cross_entropy(logits.float(), y)

    return vmap(grad(class_loss), in_dims=(None, 0, 0))


@dataclass
class GMOptions(ObjectiveOptions):
    outer_loop: int | None = option(
        None, "matching steps per iteration; by IPC when None (1: 1/1, 10: 10/50, 50: 50/10)")
    inner_loop: int | None = option(
        None, "network epochs on the synthetic set between them; by IPC when None")
    lr_net: float = option(
        0.01, "lr of the network's inner training (plain SGD, as the DC/DSA code)")
    batch_train: int = option(
        256, "batch of the inner training")

    RULES = {"outer_loop": POSITIVE, "inner_loop": POSITIVE, "lr_net": POSITIVE, "batch_train": POSITIVE}

    def resolve(self, budget, iterations: int) -> "GMOptions":
        """Loops not given take the DC/DSA papers' values for the nearest pixel IPC of the budget."""
        outer, inner = default_loops(budget.ipc)
        out = copy.copy(self)  # checked when built: a copy, not a rebuild that would check the fields again
        out.outer_loop, out.inner_loop = self.outer_loop or outer, self.inner_loop or inner
        return out


@OBJECTIVES.register("gm")
class GradientMatching(Objective):
    Options = GMOptions

    def __init__(self, ctx):
        super().__init__(ctx)
        o = self.options
        if o.outer_loop is None or o.inner_loop is None:
            raise ConfigError("gradient matching needs resolved options: pass GMOptions.resolve(budget, iterations)")
        self.outer_loop, self.inner_loop = o.outer_loop, o.inner_loop
        self.lr_net, self.batch_train = o.lr_net, o.batch_train
        # the network's training between matching steps: plain SGD at lr_net, no decay (DC/DSA code)
        self.inner_schedule = TrainSchedule(lr=o.lr_net, batch=o.batch_train, epochs=o.inner_loop)

    def _check_net(self, net: nn.Module) -> None:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
            raise ConfigError(
                f"gradient matching with {self.ctx.model!r}: BatchNorm networks are not supported as the "
                "matching network (per-class statistics); use an instance-norm ConvNet (the default)"
            )

    def step(self, iteration, synset, optimizer, generator):
        ctx = self.ctx
        K, n, b = len(ctx.classes), synset.decoded_per_class, ctx.batch_real
        c, h, w = ctx.image_shape
        net = ctx.make_net("gm", iteration)
        self._check_net(net)
        net.train()
        names = [k for k, p in net.named_parameters()]
        classes = ctx.classes.to(ctx.device)
        y_real = classes.view(K, 1).expand(K, b)  # (K, b) global labels
        y_syn = classes.view(K, 1).expand(K, n)  # (K, n)

        per_class_grad = per_class_gradients(net, ctx.autocast)
        net_opt = self.inner_schedule.optimizer(net.parameters())
        losses = []
        for ol in range(self.outer_loop):
            params = {k: p.detach() for k, p in net.named_parameters()}
            x_real = ctx.sampler.sample(b, generator)  # (K*b, C, H, W)
            x_syn = synset()  # (K*n, C, H, W)
            if ctx.augment.enabled:
                p = ctx.augment.draw(K, (h, w), generator)
                x_real = ctx.augment.apply(x_real, torch.arange(K, device=x_real.device).repeat_interleave(b), p)
                x_syn = ctx.augment.apply(x_syn, torch.arange(K, device=x_syn.device).repeat_interleave(n), p)
            with torch.no_grad():
                g_real = per_class_grad(params, x_real.view(K, b, c, h, w), y_real)  # name -> (K, ...)
            g_syn = per_class_grad(params, x_syn.view(K, n, c, h, w), y_syn)
            loss = gradient_distance({k: g_real[k] for k in names}, {k: g_syn[k] for k in names})
            optimizer.zero_grad(set_to_none=True)
            self.backward(loss)
            optimizer.step()
            losses.append(float(loss.detach()))
            if ol == self.outer_loop - 1:
                break
            self._train_net(net, net_opt, synset, generator)
        mean_loss = sum(losses) / len(losses)
        return {"loss": mean_loss, "loss_per_class": mean_loss / K}

    def inner_data(self, synset) -> tuple[torch.Tensor, torch.Tensor]:
        """The set the network trains on between matching steps: the detached synthetic images of
        this process's classes (K*n, C, H, W) and their global labels (K*n,). The class-sharded
        engine (``engine/distributed.py``) overrides it to all-gather every process's classes."""
        with torch.no_grad():
            x_all = synset().detach()  # (K*n, C, H, W)
        return x_all, self.ctx.classes.to(x_all.device)[synset.labels]

    def _train_net(self, net, net_opt, synset, generator):
        """``inner_loop`` epochs of the network on the detached synthetic set (``inner_data``)."""
        x_all, y_all = self.inner_data(synset)
        train_network(net, x_all, y_all, self.inner_schedule, generator, self.ctx.augment, optimizer=net_opt,
                      autocast=self.ctx.autocast)
