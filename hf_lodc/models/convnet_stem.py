"""A ConvNet's first block without its full-resolution activation, for no-grad passes on a CPU.

The first block of a ConvNet (3x3 conv with Cin = 1 or 3 -> instance norm -> ReLU -> 2x2 average pool)
is the costliest layer of a CPU pass per FLOP: with 27 (or 9) input taps per output oneDNN runs its
conv at ~410 GFLOP/s where the next one runs at ~1 030 (bf16, 2-core EPYC, 256 CIFAR images: 4.4 ms
for 1.8 GFLOP), and the compiled norm -> ReLU -> pool kernel after it takes longer than the conv
(~10-13 ms), reading the 128-channel, full-resolution output several times.

Both costs go when the block is computed from its input, which is tiny:

* the instance norm needs, per image and channel, the mean and variance of the conv output over
  positions. The conv is linear in the image's 3x3 patches ``p``, so with ``mu`` the patches' mean and
  ``C`` their covariance (both per image, K x K with K = 9 Cin), ``mean = w . mu`` (the bias cancels
  in the norm) and ``var = w C w^T``: one small batched matmul instead of a pass over the conv output;
* the pooled output is then one fused kernel per 2 x 2 window: each of its four positions is the conv
  (K multiply-adds, vectorised over the channels), normalised, ReLU'd and averaged; only the pooled,
  quarter-size map is written.

Compiled, the block then takes ~8.5 ms for those 256 images instead of ~15 (the whole embedding 34.9
against 39.4 ms), ~7 % of a CIFAR-10 IPC 10 LoDM step (docs/speed.md).

Under bf16 autocast the image and the weights are rounded to bf16 first, as autocast's convolution
rounds them; the block is then computed in float32, but for the covariance's matmul, which reads the
centred patches in bf16 and accumulates in float32. Its output is rounded to bf16 for the next conv,
as the module path's is. On CIFAR-10 images through ConvNet-3 the embedding is 5.2e-3 (relative) from
the float32 one, where the module path under bf16 is 4.7e-3 from it (tests/test_convnet_stem.py
checks the same on random images). It is not bit-identical to the module's forward; a pass that
needs bits keeps the module path (``speed: exact`` never reaches here). It pays only through
``torch.compile`` (eager, the K x 4 taps are separate kernels), and only where no gradient is needed:
distribution matching's real half (objectives/dm.py, ``fused_stem``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["stem_supported", "embed_fused_stem", "fused_embedding"]


def stem_supported(net: nn.Module, image_shape: tuple[int, ...]) -> str | None:
    """None when ``net``'s first block can be fused (a ConvNet whose first block is a 3x3, padding 1, stride 1
    conv with bias -> one-group-per-channel GroupNorm -> ReLU -> 2x2 average pool, on images of even size);
    otherwise why not, in words."""
    from .convnet import ConvNet

    if not isinstance(net, ConvNet):
        return f"{type(net).__name__} is not a ConvNet"
    block = net.blocks[0]
    conv, norm = block.conv, block.norm
    if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1 \
            or conv.dilation != (1, 1):
        return "its first conv is not a plain 3x3 conv with padding 1"
    if not (isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels and norm.affine):
        return "its first norm is not instance norm"
    if type(block.act) is not nn.ReLU:
        return "its first activation is not ReLU"
    pool = block.pool
    if not (isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2 and pool.stride == 2 and pool.padding == 0):
        return "its first pool is not a 2x2 average pool"
    h, w = image_shape[-2:]
    if h % 2 or w % 2:
        return f"its images are {h}x{w}, not of even size"
    return None


def _first_block(xp: torch.Tensor, xl: torch.Tensor, wt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 eps: float, dtype: torch.dtype | None) -> torch.Tensor:
    """The pooled output of the first block in ``dtype`` (None: float32), (N, C, H/2, W/2) in channels_last.

    xp: (N, Cin, H+2, W+2) the zero-padded images, float32 (already rounded as the conv would), and xl
    the same channels last, (N, H+2, W+2, Cin): the patches are read along rows, the taps along
    channels; wt: (K, C) the conv weight, tap-major (K = Cin * 9, taps ordered as ``F.unfold``'s);
    weight, bias: (C,) the norm's affine."""
    _, hp, wp, cin = xl.shape
    h, w = hp - 2, wp - 2
    patches = F.unfold(xp, 3)  # (N, K, H*W)
    mu = patches.mean(2)  # (N, K)
    mean = mu @ wt  # (N, C) the conv's mean over positions, less its bias (which the norm removes)
    centred = patches - mu[:, :, None]  # (N, K, H*W)
    if dtype is not None:  # a bf16 matmul: 4x faster on CPUs with bf16 units, accumulating in float32
        centred = centred.to(dtype)
    cov = torch.bmm(centred, centred.transpose(1, 2)).float() / (h * w)  # (N, K, K)
    var = ((cov @ wt) * wt).sum(1)  # (N, C)  w C w^T
    scale = weight * torch.rsqrt(var.clamp_min(0) + eps)  # (N, C)
    shift = bias - mean * scale  # (N, C)
    scale, shift = scale[:, None, None, :], shift[:, None, None, :]  # (N, 1, 1, C)
    out = 0
    for a in range(2):  # the four positions of each 2x2 pooling window
        for b in range(2):
            y = 0
            k = 0
            for ci in range(cin):
                for kh in range(3):
                    for kw in range(3):
                        tap = xl[:, a + kh:a + kh + h:2, b + kw:b + kw + w:2, ci:ci + 1]  # (N, H/2, W/2, 1)
                        y = y + tap * wt[k]  # (N, H/2, W/2, C)
                        k += 1
            out = out + torch.relu(y * scale + shift)
    out = out * 0.25  # (N, H/2, W/2, C)
    if dtype is not None:  # the module path's next conv reads the block's output in the autocast dtype
        out = out.to(dtype)
    return out.permute(0, 3, 1, 2)  # (N, C, H/2, W/2), channels_last strides


def fused_embedding(net, xp, xl, wt, weight, bias, eps, dtype):
    with torch.autocast(xl.device.type, enabled=False):  # float32 throughout (module docstring)
        x = _first_block(xp, xl, wt, weight, bias, eps, dtype)
    x = net.blocks[1:](x)  # (N, width, h, w)
    return net.forward_head(x, pre_logits=True)  # (N, D)


def embed_fused_stem(net, x: torch.Tensor, compiled_fn=None) -> torch.Tensor:
    """``net.embed(x)`` with the first block fused (module docstring), under the caller's autocast.
    ``compiled_fn``: ``fused_embedding`` through ``torch.compile`` (what makes it fast); None runs it
    eagerly. x: (N, Cin, H, W); returns (N, D)."""
    conv, norm = net.blocks[0].conv, net.blocks[0].norm
    device_type = x.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    with torch.autocast(device_type, enabled=False):
        x = x.float()
        wt = conv.weight.float().reshape(conv.out_channels, -1).t()  # (K, C)
        if dtype is not None:  # what autocast's convolution would read
            x, wt = x.to(dtype).float(), wt.to(dtype).float()
        xp = F.pad(x, (1, 1, 1, 1)).contiguous()  # (N, Cin, H+2, W+2)
        xl = xp.permute(0, 2, 3, 1).contiguous()  # (N, H+2, W+2, Cin)
        wt = wt.contiguous()  # realised tap-major, so the kernel's weight loads run along the channels
    fn = compiled_fn or fused_embedding
    return fn(net, xp, xl, wt, norm.weight.float(), norm.bias.float(), float(norm.eps), dtype)
