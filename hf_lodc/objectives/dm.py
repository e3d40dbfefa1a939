"""Distribution matching (Zhao & Bilen, WACV 2023): match class-mean embeddings of random networks.

Every iteration draws a fresh, untrained ConvNet; for every class c the loss is
||mean phi(real_c) - mean phi(syn_c)||^2, summed over classes. Real and synthetic images of a class
share one DSA draw (siamese). All classes go through the network in one batched pass and are
reduced per class by reshape.
"""

from __future__ import annotations

import torch

from .base import OBJECTIVES, Objective

__all__ = ["DistributionMatching"]


def _embed(net, x):
    return net.embed(x) if hasattr(net, "embed") else net.forward_head(net.forward_features(x), pre_logits=True)


@OBJECTIVES.register("dm")
class DistributionMatching(Objective):
    def step(self, iteration, synset, optimizer, generator):
        ctx = self.ctx
        K, n, b = len(ctx.classes), synset.decoded_per_class, ctx.batch_real
        net = ctx.make_net("dm", iteration)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        c, h, w = ctx.image_shape
        x_real = ctx.sampler.sample(b, generator)  # (K*b, C, H, W)
        x_syn = synset()  # (K*n, C, H, W), n decoded images per class
        if ctx.augment.enabled:
            params = ctx.augment.draw(K, (h, w), generator)  # one draw per class, shared real/syn
            y_real = torch.arange(K, device=x_real.device).repeat_interleave(b)
            y_syn = torch.arange(K, device=x_syn.device).repeat_interleave(n)
            x_real = ctx.augment.apply(x_real, y_real, params)
            x_syn = ctx.augment.apply(x_syn, y_syn, params)
        with ctx.autocast():
            with torch.no_grad():
                e_real = _embed(net, x_real).float()  # (K*b, D)
            e_syn = _embed(net, x_syn).float()  # (K*n, D)
        m_real = e_real.view(K, b, -1).mean(1)  # (K, D)
        m_syn = e_syn.view(K, n, -1).mean(1)  # (K, D)
        loss = ((m_real - m_syn) ** 2).sum()
        optimizer.zero_grad(set_to_none=True)
        self.backward(loss)
        optimizer.step()
        return {"loss": float(loss.detach()), "loss_per_class": float(loss.detach()) / K}
