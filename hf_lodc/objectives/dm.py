"""Distribution matching (Zhao & Bilen, WACV 2023): match class-mean embeddings of random networks.

Every iteration draws a fresh, untrained ConvNet; for every class c the loss is
||mean phi(real_c) - mean phi(syn_c)||^2, summed over classes. Real and synthetic images of a class
share one DSA draw (siamese).

Speed: the real images stay on the device as uint8, so no image crosses the host-device link per
iteration; the real half needs no gradient, so it can be gathered, normalised, augmented and embedded
in chunks of ``real_chunk`` images (0: one pass; unset, the default: one pass too, unless its
activations would not fit in a quarter of the free memory, then the largest chunk that does, said once;
chunking computes the same sums, and only pays for speed where a chunk's activations then stay in cache). The passes run in channels_last where
``hf_lodc.training.device`` says so (off by default). The synthetic half goes through the network in one
pass, unless its activations would not fit in memory (``syn_chunk``, below). The loss stays a device tensor: the engine reads it when it logs, so the loop does not wait on
the device every iteration.

``classes_per_iteration`` (off by default) matches a random subset of the classes each iteration,
drawn from the iteration's seeded generator: with 1 000 classes x ``batch_real`` 256 one full step
would embed 256 000 real images. Each chosen class's term is the same as in the full loss, so the
per-class gradient scale is unchanged; an unchosen class gets no gradient that iteration (its
factors still move by the optimiser's momentum). The history records ``classes_matched``; its ``loss``
is then the sum over those classes. With several processes each draws from its own classes.

``syn_chunk``: classes per synthetic pass. The loss is a sum over classes and each class's images are
decoded from factors of their own, so passing the classes in groups and backpropagating each group's
term before the next gives the same gradient while holding one group's activations instead of all of
them. Unset, one pass is used whenever its activations (measured once per run on one image, in eval
mode, outside the random streams) fit in half the free memory, and otherwise the largest group that
does, said once in the log: 200 classes x 16 decoded images at 64 px through ConvNet-4 is about 36 GB
of activations in one pass, which a 24 GB machine cannot hold.

``compile`` (off unless ``speed`` turns it on for a large run) runs both embedding passes through ``torch.compile`` (inductor): on the CPU
it fuses the memory-bound norm -> ReLU -> pool passes that dominate after the convolutions. The network
is drawn afresh every iteration; it is an argument of the compiled function, so its parameters are graph
inputs and a new draw of the same shapes reuses the compiled code (compiled once per process and input
shape, ``dynamic=False``). Off, the passes are the eager ones, bit for bit. ``speed=exact`` keeps it off:
the compiled kernels are not bit-identical to eager (so, when on, it joins the run identity), the compile
costs a one-off wait per process and needs a C++ compiler (CPU) or Triton (CUDA), which ``engine/speed.py``
probes first. What it saves is measured in docs/speed.md.

``fused_stem`` (off unless ``speed`` turns it on with ``compile`` on a CPU) computes the real half's
first ConvNet block from its input without its full-resolution activation (models/convnet_stem.py):
on a CPU that block's 3-channel convolution and the norm passes over its output are over a third of a
real pass. It needs no gradient, so the synthetic half keeps the module path; a network whose first
block is not conv -> instance norm -> ReLU -> average pool keeps it too (said once).
"""

from __future__ import annotations

import torch

from dataclasses import dataclass

from ..models.convnet_stem import embed_fused_stem, fused_embedding, stem_supported
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
    """Images per no-grad real chunk; 0 = one pass. Chunking alone saves no CPU time on a CPU (the
    convolutions dominate) and costs wall time when the cores are shared (one thread barrier per chunk),
    so one pass is the default everywhere; the option stays (``real_chunk``) because with ``compile``
    the chunks' activations stay in cache (docs/speed.md)."""
    return 0


@dataclass
class DMOptions(ObjectiveOptions):
    real_chunk: int | None = option(
        None, "distribution matching: real images per no-grad chunk (0: one pass; unset: one pass unless it would not "
        "fit in a quarter of the free memory; bit-identical either way)")

    compile: bool | None = option(
        None, "distribution matching: run the embedding passes through torch.compile (inductor; compiled once "
        "per process, then reused for every freshly drawn network; not bit-identical to eager); unset: speed decides")

    classes_per_iteration: int | None = option(
        None, "distribution matching: match a random subset of this many classes per iteration (drawn from the "
        "iteration's seeded generator; None: every class, as the paper). With 1 000 classes it bounds the step: "
        "the real batch is classes_per_iteration x batch_real images, not num_classes x batch_real")

    syn_chunk: int | None = option(
        None, "distribution matching: classes per synthetic pass, each pass backpropagated before the next (the "
        "same gradient, one group's activations held); 0: one pass; unset: one pass when it fits in memory")

    fused_stem: bool | None = option(
        None, "distribution matching: compute the real half's first ConvNet block from its input, without its "
        "full-resolution activation (equal within rounding, not bit-identical; pays with compile on a CPU); "
        "unset: speed decides (off under exact)")

    RULES = {"real_chunk": (lambda v: v >= 0, ">= 0"), "classes_per_iteration": (lambda v: v > 0, "> 0"),
             "syn_chunk": (lambda v: v >= 0, ">= 0")}


@OBJECTIVES.register("dm")
class DistributionMatching(Objective):
    Options = DMOptions

    def step(self, iteration, synset, optimizer, generator):
        ctx = self.ctx
        K, n, b = len(ctx.classes), synset.decoded_per_class, ctx.batch_real
        chosen = self._chosen_classes(K, generator)  # (k,) local class positions, or None: all
        dev = torch.device(ctx.device)
        cl = device_settings.settings(dev)["channels_last"]
        fmt = torch.channels_last if cl else torch.contiguous_format
        embed = embed_fn(bool(self.options.compile))
        net = ctx.make_net("dm", iteration).to(memory_format=fmt)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        embed_real = self._real_embed(embed, net, ctx.image_shape)
        c, h, w = ctx.image_shape
        idx = ctx.sampler.indices(b, generator, chosen)  # (K*b,) class-major rows of the real batch
        x_syn = synset()  # (K*n, C, H, W)
        if chosen is not None:  # only the chosen classes' synthetic images enter the loss
            K = len(chosen)
            x_syn = x_syn.view(-1, n, c, h, w)[chosen.to(x_syn.device)].reshape(K * n, c, h, w)  # (k*n, C, H, W)
        params = ctx.augment.draw(K, (h, w), generator) if ctx.augment.enabled else None  # one per class
        chunk = self._real_images_per_pass(K * b, net, x_syn, dev)
        y_all = torch.arange(K).repeat_interleave(b)  # (K*b,) on the host: DSA selects there, no sync
        sums = torch.zeros(K, _feat_dim(net, ctx.image_shape), device=dev)  # (K, D)
        with torch.no_grad():
            for s in range(0, K * b, chunk):
                x = ctx.sampler.take(idx[s:s + chunk])  # (m, C, H, W)
                y = y_all[s:s + chunk]
                if params is not None:
                    x = ctx.augment.apply(x, y, params)
                with ctx.autocast():
                    e = embed_real(net, device_settings.as_memory_format(x, cl)).float()  # (m, D)
                sums.index_add_(0, y.to(dev, non_blocking=True), e)
        m_real = sums / b  # (K, D)
        per_pass = self._classes_per_pass(K, n, net, x_syn)  # K: one pass, as the paper's code
        optimizer.zero_grad(set_to_none=True)
        # In groups, each group backpropagates into a detached copy of the decoded images and the decoding
        # graph runs backward once at the end: no graph is kept across groups (a compiled backward
        # frees its buffers and refuses retain_graph), and the factors' gradient is the one-pass one.
        x_in = x_syn if per_pass >= K else x_syn.detach().requires_grad_(True)  # (K*n, C, H, W)
        loss = torch.zeros((), device=dev)
        for k0 in range(0, K, per_pass):
            k1 = min(K, k0 + per_pass)
            xs = x_in[k0 * n:k1 * n]  # (g*n, C, H, W) classes k0..k1-1
            if params is not None:
                xs = ctx.augment.apply(xs, torch.arange(k0, k1).repeat_interleave(n), params)  # host groups
            with ctx.autocast():
                e = embed(net, device_settings.as_memory_format(xs, cl)).float()  # (g*n, D)
            part = ((m_real[k0:k1] - e.view(k1 - k0, n, -1).mean(1)) ** 2).sum()
            self.backward(part)
            loss = loss + part.detach()
        if x_in is not x_syn:
            x_syn.backward(x_in.grad)  # (K*n, C, H, W) image gradients of every group, through the decoding
        optimizer.step()
        loss = loss.detach()
        out = {"loss": loss, "loss_per_class": loss / K}
        if chosen is not None:  # recorded in the run's history: its loss sums over these classes only
            out["classes_matched"] = K
        return out

    def _real_embed(self, embed, net, image_shape):
        """The real half's embedding: ``embed``, or the fused-stem one where ``fused_stem`` is on and the
        matching network allows it (checked once: every iteration draws the same architecture; why not
        is said once)."""
        if not self.options.fused_stem:
            return embed
        if not hasattr(self, "_stem_why_not"):
            self._stem_why_not = stem_supported(net, image_shape)
            if self._stem_why_not:
                print(f"[dm] fused_stem: the real pass keeps the module path ({self._stem_why_not})", flush=True)
        if self._stem_why_not:
            return embed
        compiled = device_settings.compile_once(fused_embedding) if self.options.compile else None
        return lambda net, x: embed_fused_stem(net, x, compiled)

    def _real_images_per_pass(self, total: int, net, x_syn: torch.Tensor, dev: torch.device) -> int:
        """``real_chunk`` if set (0: one pass), else one pass of all ``total`` real images (the default
        chunk, ``real_chunk_default``) unless that pass would not fit in ``REAL_PASS_SHARE`` of the free
        memory; then the largest chunk that does. With 1 000 classes x ``batch_real`` 4 one pass would
        hold some 16 GB at 64 px. A run whose pass fits is unchanged; one that would not, computes the same
        sums in chunks (a chunk's size may pick other kernels, so the last bits may differ)."""
        if self.options.real_chunk is not None:
            chunk = int(self.options.real_chunk)
            return total if chunk <= 0 else max(1, chunk)
        chunk = real_chunk_default(dev)
        chunk = total if chunk <= 0 else chunk
        if getattr(self, "_real_bytes", None) is None:
            with self.ctx.autocast():  # one real image has the synthetic images' shape
                self._real_bytes = _activation_bytes(net, x_syn[:1].detach(), held=False)
            self._told_real = False
        free = _free_memory(dev)
        if free is None or chunk * self._real_bytes <= REAL_PASS_SHARE * free:
            return chunk
        per_pass = max(1, int(REAL_PASS_SHARE * free // self._real_bytes))
        if not self._told_real:
            self._told_real = True
            print(f"[dm] one real pass of {chunk} images would hold about {chunk * self._real_bytes / 2**30:.1f} GiB "
                  f"at once ({free / 2**30:.1f} GiB free): {per_pass} images per pass (real_chunk)",
                  flush=True)
        return per_pass

    def _classes_per_pass(self, K: int, n: int, net, x_syn: torch.Tensor) -> int:
        """``syn_chunk`` if set (0: all), else all ``K`` classes when one pass fits in half the free memory,
        else the largest group that does (at least one class)."""
        if self.options.syn_chunk is not None:
            return K if self.options.syn_chunk == 0 else int(self.options.syn_chunk)
        if getattr(self, "_act_bytes", None) is None:
            with self.ctx.autocast():  # the pass's own precision
                self._act_bytes = _activation_bytes(net, x_syn[:1].detach())
            self._told = False
        free = _free_memory(x_syn.device)
        if free is None or K * n * self._act_bytes <= SYN_PASS_SHARE * free:
            return K
        per_pass = max(1, int(SYN_PASS_SHARE * free // (n * self._act_bytes)))
        if not self._told:
            self._told = True
            print(f"[dm] one synthetic pass of {K} classes x {n} images would hold about "
                  f"{K * n * self._act_bytes / 2**30:.1f} GiB of activations ({free / 2**30:.1f} GiB free): "
                  f"{per_pass} classes per pass (syn_chunk), the same gradient", flush=True)
        return per_pass

    def _chosen_classes(self, K: int, generator: torch.Generator) -> torch.Tensor | None:
        """``classes_per_iteration`` distinct local classes, ascending (class-major order kept), drawn
        first from the iteration's generator; None (every class, and no draw) when the option is off
        or asks for all of them, so the default run draws exactly what it drew before the option."""
        k = self.options.classes_per_iteration
        if k is None or k >= K:
            return None
        return torch.randperm(K, generator=generator)[:k].sort().values  # (k,)


def _feat_dim(net, image_shape) -> int:
    nf = getattr(net, "num_features", None)
    if nf:
        return int(nf)
    with torch.no_grad():
        p = next(net.parameters())
        return int(_embed(net, torch.zeros(1, *image_shape, device=p.device)).shape[1])


SYN_PASS_SHARE = 0.5  # of the free memory, for one synthetic pass's activations (the rest: the real pass, grads)
REAL_PASS_SHARE = 0.25  # of the free memory, for the no-grad real pass (done before the synthetic pass starts)


def _activation_bytes(net, x_one: torch.Tensor, held: bool = True) -> int:
    """Bytes one image's pass keeps for its backward, about: twice the outputs of every leaf module
    (what autograd saves, and the gradients of the same size that the backward makes). ``held=False``:
    what a no-grad pass holds at its peak instead, about one layer's input and output (three times the
    largest leaf output, for the temporaries). Measured in eval mode without gradients: no random draw
    (dropout), no running-statistics update."""
    total, largest = 0, 0

    def count(module, inputs, output):
        nonlocal total, largest
        if isinstance(output, torch.Tensor):
            total += output.numel() * 4  # float32 (autocast halves it: the estimate errs on the safe side)
            largest = max(largest, output.numel() * 4)

    leaves = [m for m in net.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            _embed(net, x_one)
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    return 2 * total if held else 3 * largest


def _free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    from ..preflight import available_memory_bytes

    return available_memory_bytes()
