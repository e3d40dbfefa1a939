"""Distribution matching (Zhao & Bilen, WACV 2023): match class-mean embeddings of random networks.

Every iteration draws a fresh, untrained ConvNet; for every class c the loss is
||mean phi(real_c) - mean phi(syn_c)||^2, summed over classes. Real and synthetic images of a class
share one DSA draw (siamese).

Speed (issue 11): the real images stay on the device as uint8; the real half needs no gradient, so
it can be gathered, normalised, augmented and embedded in chunks of ``real_chunk`` images (0, the
default: one pass; chunking is bit-identical). The passes run in channels_last where
``hf_lodc.training.device`` says so (off by default: not measured faster here). The synthetic half goes through the network in one pass.
The loss stays a device tensor: the engine reads it when it logs.

``compile`` (off by default) runs both embedding passes through ``torch.compile`` (inductor): on the CPU
it fuses the memory-bound norm -> ReLU -> pool passes that dominate after the convolutions. The network
is drawn afresh every iteration; it is an argument of the compiled function, so its parameters are graph
inputs and a new draw of the same shapes reuses the compiled code (compiled once per process and input
shape, ``dynamic=False``). Off, the passes are the eager ones, bit for bit. On the 2-core Xeon it cut
the CPU time of a CIFAR-10 IPC 10 iteration by ~43 % and an MNIST IPC 1 one by ~30-40 %, for a one-off
compile of ~20 s wall (``benchmarks/results/speed_iteration_compile.md``); it is off by default because
the compiled kernels are not bit-identical to eager (gradients move by ~1e-4 relative) and the
compile needs a C++ compiler (CPU) or Triton (CUDA, not measured yet).
"""

from __future__ import annotations

import torch

from dataclasses import dataclass

from ..training import device as device_settings
from .base import OBJECTIVES, Objective, ObjectiveOptions, option

__all__ = ["DistributionMatching", "DMOptions", "embed_fn", "real_chunk_default"]


def _embed(net, x):
    return net.embed(x) if hasattr(net, "embed") else net.forward_head(net.forward_features(x), pre_logits=True)


def _embed_compiled(net, x):  # its own code object: torch.compile's cache lives on it, not on _embed
    return _embed(net, x)


def embed_fn(compile: bool):
    """The embedding function of the passes: ``_embed``, or its ``torch.compile``'d twin (built once)."""
    return device_settings.compile_once(_embed_compiled) if compile else _embed


def real_chunk_default(device: torch.device) -> int:
    """Images per no-grad real chunk; 0 = one pass. Chunks of 256 measured CPU-time neutral on the
    2-core Xeon (12.66 vs 12.64 CPU s/it at CIFAR-10 IPC 10) and slower in wall time when the cores
    are shared (many more thread barriers), so one pass is the default everywhere; the option stays
    (``real_chunk``) for machines where the cache effect shows."""
    return 0


@dataclass
class DMOptions(ObjectiveOptions):
    real_chunk: int | None = option(
        None, "distribution matching: real images per no-grad chunk (0 or None: one pass; bit-identical either way)")

    compile: bool = option(
        False, "distribution matching: run the embedding passes through torch.compile (inductor; compiled once "
        "per process, then reused for every freshly drawn network; not bit-identical to eager)")

    RULES = {"real_chunk": (lambda v: v >= 0, ">= 0")}


@OBJECTIVES.register("dm")
class DistributionMatching(Objective):
    Options = DMOptions

    def step(self, iteration, synset, optimizer, generator):
        ctx = self.ctx
        K, n, b = len(ctx.classes), synset.decoded_per_class, ctx.batch_real
        dev = torch.device(ctx.device)
        cl = device_settings.settings(dev)["channels_last"]
        fmt = torch.channels_last if cl else torch.contiguous_format
        embed = embed_fn(bool(self.options.compile))
        net = ctx.make_net("dm", iteration).to(memory_format=fmt)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        c, h, w = ctx.image_shape
        idx = ctx.sampler.indices(b, generator)  # (K*b,) class-major rows of the real batch
        x_syn = synset()  # (K*n, C, H, W)
        params = ctx.augment.draw(K, (h, w), generator) if ctx.augment.enabled else None  # one per class
        chunk = self.options.real_chunk
        chunk = real_chunk_default(dev) if chunk is None else int(chunk)
        chunk = K * b if chunk <= 0 else max(1, chunk)
        y_all = torch.arange(K).repeat_interleave(b)  # (K*b,) on the host: DSA selects there, no sync
        sums = torch.zeros(K, _feat_dim(net, ctx.image_shape), device=dev)  # (K, D)
        with torch.no_grad():
            for s in range(0, K * b, chunk):
                x = ctx.sampler.take(idx[s:s + chunk])  # (m, C, H, W)
                y = y_all[s:s + chunk]
                if params is not None:
                    x = ctx.augment.apply(x, y, params)
                with ctx.autocast():
                    e = embed(net, device_settings.as_memory_format(x, cl)).float()  # (m, D)
                sums.index_add_(0, y.to(dev, non_blocking=True), e)
        m_real = sums / b  # (K, D)
        if params is not None:
            y_syn = torch.arange(K).repeat_interleave(n)  # (K*n,) host
            x_syn = ctx.augment.apply(x_syn, y_syn, params)
        with ctx.autocast():
            e_syn = embed(net, device_settings.as_memory_format(x_syn, cl)).float()  # (K*n, D)
        m_syn = e_syn.view(K, n, -1).mean(1)  # (K, D)
        loss = ((m_real - m_syn) ** 2).sum()
        optimizer.zero_grad(set_to_none=True)
        self.backward(loss)
        optimizer.step()
        loss = loss.detach()
        return {"loss": loss, "loss_per_class": loss / K}


def _feat_dim(net, image_shape) -> int:
    nf = getattr(net, "num_features", None)
    if nf:
        return int(nf)
    with torch.no_grad():
        p = next(net.parameters())
        return int(_embed(net, torch.zeros(1, *image_shape, device=p.device)).shape[1])
