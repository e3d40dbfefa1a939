"""IDC gradient matching (Kim et al., ICML 2022, "Dataset Condensation via Efficient Synthetic-Data
Parameterization"), on the DECODED images of any parameterisation (IDC: multi-formation; LoIDC:
multi-formation of low-rank units; IDC-I: pixels, i.e. factor 1).

One ``step`` is one IDC outer iteration (their ``fix_iter = 1``):

1. a fresh matching network (``ctx.make_net("idc", iteration)``) and its SGD optimiser
   (lr ``lr_net`` 0.01, momentum 0.9, weight decay 5e-4: their ``--lr/--momentum/--wd``);
2. ``match_steps`` rounds (their ``--inner_loop``, 100) of
   a. for every class, the gradient of the classification loss w.r.t. the network's weights on a
      real batch of ``ctx.batch_real`` images (theirs: 64) vs on the class's decoded synthetic
      images (at most ``batch_syn_max`` = 128 of them, a random subset when there are more), both
      under ONE augmentation draw per class (siamese, their ``aug_type`` "color_crop_cutout");
      loss = sum over classes and over the matched weight tensors of dist(g_real, g_syn);
      one optimiser step on the synthetic set (IDC steps class by class; the per-class losses
      touch disjoint synthetic parameters, so one step on their sum is the same update);
   b. when ``net_update`` (their ``n_data > 0``): the network is trained on REAL data, ``n_data``
      images (theirs: 500; 2000 on CIFAR) in real batches of ``ctx.batch_real``, each with its own
      DSA draw and, with probability ``cutmix_p`` (0.5), CutMix (beta(1, 1) area, a random partner
      per image), as their ``train_epoch(..., mixup="cut")``.

Distances (their ``--metric``; ``match_bias=False`` and ``match_fc=False`` as their defaults, so
only convolution weights are matched): "mse" = sum (g_real - g_syn)^2 (their CIFAR/SVHN
reproduction setting), "l1" = sum |g_real - g_syn| (their default, and their MNIST/ImageNet setting),
"cos" = DC's layer-wise sum over output channels of 1 - cos (``gm.gradient_distance``). We default
to "mse" because the Table-4 rows (CIFAR-10/100) used it; MNIST configs should set "l1".

Deviations, on purpose: IDC works in [0, 1] pixel space and clamps the synthetic images to [0, 1]
before every outer iteration; here images are normalised and factors cannot be clamped, so no
clamp (the engine's ``contrast`` step rescales a finished set instead). IDC's learning rate for the
images is given in that [0, 1] space (5e-3 x ipc/10); set ``lr`` per config.

IDC-I in the IDC paper and code is IDC WITHOUT multi-formation (``-f 1``), i.e. this objective on a
pixel set; ``net_update=False`` is a separate ablation (a network that never learns, as DC's
inner loop with zero epochs), not IDC-I.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import cutmix
from ..errors import ConfigError
from .base import OBJECTIVES, POSITIVE, Objective, ObjectiveOptions, option
from .gm import gradient_distance, per_class_gradients

__all__ = ["IDCOptions", "IDCGradientMatching", "idc_distance", "METRICS"]

METRICS = ("mse", "l1", "cos")


@dataclass
class IDCOptions(ObjectiveOptions):
    """IDC's options (their command-line names in the help). ``factor`` is the multi-formation factor
    of the parameterisation (``PARAM_OPTIONS``: passed to the budget and the synthetic set; None =
    the method's, 2 for idc/loidc); the others drive the matching."""

    PARAM_OPTIONS: ClassVar[tuple[str, ...]] = ("factor",)

    factor: int | None = option(None, "IDC multi-formation factor f (f*f tiles per stored image); None = the method's (2)")
    match_steps: int = option(100, "IDC matching rounds per fresh network (IDC --inner_loop)")
    net_update: bool = option(True, "train the IDC network on real data between rounds (IDC n_data > 0)")
    n_data: int = option(500, "real images per IDC network update (IDC --n_data; 2000 in their CIFAR runs)")
    idc_lr_net: float = option(0.01, "lr of the IDC network updates (IDC --lr)")
    momentum_net: float = option(0.9, "momentum of the IDC network updates (IDC --momentum)")
    weight_decay_net: float = option(5e-4, "weight decay of the IDC network updates (IDC --weight-decay)")
    metric: str = option("mse", "IDC gradient distance: mse | l1 | cos (mse on CIFAR, l1 on MNIST)")
    match_bias: bool = option(False, "IDC: also match bias/norm gradients (IDC --bias)")
    match_fc: bool = option(False, "IDC: also match the classifier's gradients (IDC --fc)")
    batch_syn_max: int = option(128, "IDC: decoded synthetic images per class per round (IDC --batch_syn_max)")
    cutmix_p: float = option(0.5, "IDC: CutMix probability in the network updates (IDC --mix_p)")

    RULES = {"factor": POSITIVE, "match_steps": POSITIVE, "batch_syn_max": POSITIVE, "idc_lr_net": POSITIVE,
             "metric": (lambda v: v in METRICS, "one of " + ", ".join(METRICS)),
             "cutmix_p": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"), "n_data": POSITIVE}


def idc_distance(g_real: dict[str, torch.Tensor], g_syn: dict[str, torch.Tensor], metric: str) -> torch.Tensor:
    """Sum over classes and the given weight tensors of the per-class distance; inputs name -> (K, ...)."""
    if metric == "cos":
        return gradient_distance(g_real, g_syn)
    total = 0.0
    for name, gr in g_real.items():
        d = gr - g_syn[name]
        total = total + (d.pow(2).sum() if metric == "mse" else d.abs().sum())
    return total


@OBJECTIVES.register("idc")
class IDCGradientMatching(Objective):
    Options = IDCOptions

    def __init__(self, ctx):
        super().__init__(ctx)
        self.opt = self.options

    def _check_net(self, net: nn.Module) -> None:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
            raise ConfigError(f"idc with {self.ctx.model!r}: per-class gradients through BatchNorm mix the batch; "
                              "use an instance-norm ConvNet (the default)")

    def matched_names(self, net: nn.Module) -> list[str]:
        out = []
        for name, p in net.named_parameters():
            if p.dim() == 1 and not self.opt.match_bias:
                continue  # bias or norm parameter
            if p.dim() == 2 and not self.opt.match_fc:
                continue  # the classifier
            out.append(name)
        return out

    def step(self, iteration, synset, optimizer, generator):
        ctx, o = self.ctx, self.opt
        K, b = len(ctx.classes), ctx.batch_real
        c, h, w = ctx.image_shape
        net = ctx.make_net("idc", iteration)
        self._check_net(net)
        net.train()
        names = self.matched_names(net)
        net_opt = torch.optim.SGD(net.parameters(), lr=o.idc_lr_net, momentum=o.momentum_net,
                                  weight_decay=o.weight_decay_net)
        classes = ctx.classes.to(ctx.device)
        d = synset.decoded_per_class
        m = min(d, o.batch_syn_max)
        y_real = classes.view(K, 1).expand(K, b)  # (K, b) global labels
        y_syn = classes.view(K, 1).expand(K, m)  # (K, m)

        per_class_grad = per_class_gradients(net, ctx.autocast)
        losses = []
        for r in range(o.match_steps):
            params = {k: p.detach() for k, p in net.named_parameters()}
            x_real = ctx.sampler.sample(b, generator)  # (K*b, C, H, W)
            x_syn = synset().view(K, d, c, h, w)  # (K, d, C, H, W) decoded, class-major
            if m < d:
                pick = torch.stack([torch.randperm(d, generator=generator)[:m] for _ in range(K)]).to(x_syn.device)
                x_syn = torch.gather(x_syn, 1, pick.view(K, m, 1, 1, 1).expand(K, m, c, h, w))  # (K, m, C, H, W)
            x_syn = x_syn.reshape(K * m, c, h, w)
            if ctx.augment.enabled:
                p = ctx.augment.draw(K, (h, w), generator)  # one draw per class, shared real/syn
                x_real = ctx.augment.apply(x_real, torch.arange(K, device=x_real.device).repeat_interleave(b), p)
                x_syn = ctx.augment.apply(x_syn, torch.arange(K, device=x_syn.device).repeat_interleave(m), p)
            with torch.no_grad():
                g_real = per_class_grad(params, x_real.view(K, b, c, h, w), y_real)  # name -> (K, ...)
            g_syn = per_class_grad(params, x_syn.view(K, m, c, h, w), y_syn)
            loss = idc_distance({k: g_real[k] for k in names}, {k: g_syn[k] for k in names}, o.metric)
            optimizer.zero_grad(set_to_none=True)
            self.backward(loss)
            optimizer.step()
            losses.append(float(loss.detach()))
            if o.net_update and r < o.match_steps - 1:
                self._train_net_on_real(net, net_opt, generator)
        mean_loss = sum(losses) / len(losses)
        return {"loss": mean_loss, "loss_per_class": mean_loss / K}

    def _train_net_on_real(self, net, net_opt, generator) -> None:
        """IDC's network update: ``n_data`` real images of the condensed classes, batches of
        ``batch_real``, DSA per image, CutMix with probability ``cutmix_p``."""
        ctx, o = self.ctx, self.opt
        K = len(ctx.classes)
        per_class = max(1, -(-ctx.batch_real // K))  # class-balanced real batches of about batch_real
        seen = 0
        classes = ctx.classes.to(ctx.device)
        while seen < o.n_data:
            x = ctx.sampler.sample(per_class, generator)  # (K*pc, C, H, W)
            y = classes.repeat_interleave(per_class)  # (K*pc,)
            if ctx.augment.enabled:
                x = ctx.augment(x, generator, shared_family=True)
            with ctx.autocast():
                if float(torch.rand((), generator=generator)) < o.cutmix_p:
                    x, y_b, ratio = cutmix(x, y, generator)
                    logits = net(x).float()
                    loss = F.cross_entropy(logits, y) * ratio + F.cross_entropy(logits, y_b) * (1.0 - ratio)
                else:
                    loss = F.cross_entropy(net(x).float(), y)
            net_opt.zero_grad(set_to_none=True)
            loss.backward()
            net_opt.step()
            seen += x.shape[0]
