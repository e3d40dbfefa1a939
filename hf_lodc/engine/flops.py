"""Analytic floating-point work of the ConvNet passes condensation and evaluation run.

Counted from the layer shapes alone (no profiler), so the figure is the same on every device and
achieved TFLOP/s = count / measured seconds shows the gap to the hardware's rate.

Per image, a ConvNet block on a (Cin, H, W) input with ``width`` output channels counts
``2 * 9 * Cin * width * H * W`` for the 3x3 convolution (one multiply-add = 2 FLOPs) and
``elementwise_per_value`` FLOPs for each of the ``width * H * W`` conv outputs (bias, norm, ReLU, pool),
reported apart: the convolutions are what matrix units run, the rest is memory-bound.

A backward pass that needs only the input gradient (the matching network's weights are frozen in DM)
costs one more convolution pass; one that also needs weight gradients (evaluation training) two.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PassFlops", "convnet_forward_flops", "dm_iteration_flops", "eval_epoch_flops"]

# bias 1 + group norm ~5 (mean, var, normalise, affine) + ReLU 1 + avg-pool 1 per conv output value
ELEMENTWISE_PER_VALUE = 8


@dataclass(frozen=True)
class PassFlops:
    """FLOPs of some passes: ``matmul`` (convolutions and the linear layer) and ``elementwise``."""

    matmul: float
    elementwise: float

    @property
    def total(self) -> float:
        return self.matmul + self.elementwise

    def __add__(self, other: "PassFlops") -> "PassFlops":
        return PassFlops(self.matmul + other.matmul, self.elementwise + other.elementwise)

    def __mul__(self, k: float) -> "PassFlops":
        return PassFlops(self.matmul * k, self.elementwise * k)

    __rmul__ = __mul__


def convnet_forward_flops(image_shape: tuple[int, int, int], width: int = 128, depth: int = 3,
                          num_classes: int = 0, pool: int = 2) -> PassFlops:
    """FLOPs of one image's ConvNet-``depth`` forward; ``num_classes=0``: the embedding only."""
    c, h, w = image_shape
    mm = el = 0.0
    for _ in range(depth):
        mm += 2.0 * 9 * c * width * h * w  # (width, h, w) outputs, 9*c multiply-adds each
        el += ELEMENTWISE_PER_VALUE * width * h * w
        c, h, w = width, h // pool, w // pool
    mm += 2.0 * c * h * w * num_classes
    return PassFlops(mm, el)


def dm_iteration_flops(image_shape: tuple[int, int, int], num_classes: int, batch_real: int,
                       syn_per_class: int, width: int = 128, depth: int = 3) -> PassFlops:
    """One distribution-matching iteration: the no-grad real forward of ``num_classes * batch_real``
    images, the synthetic forward of ``num_classes * syn_per_class`` images and its input-gradient
    backward (weights frozen: the same work again)."""
    one = convnet_forward_flops(image_shape, width, depth)
    return one * (num_classes * batch_real) + one * (2 * num_classes * syn_per_class)


def eval_epoch_flops(image_shape: tuple[int, int, int], num_images: int, num_classes: int,
                     width: int = 128, depth: int = 3) -> PassFlops:
    """One training epoch of one evaluation model over ``num_images`` images: forward plus a
    backward with input and weight gradients (twice the forward)."""
    return convnet_forward_flops(image_shape, width, depth, num_classes) * (3 * num_images)
