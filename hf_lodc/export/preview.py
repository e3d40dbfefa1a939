"""A preview grid of the synthetic images: one row per class, its images left to right, as PNG bytes.

The card shows it, so a reader sees what the condensed set looks like before downloading it.
"""

from __future__ import annotations

import io

import torch

__all__ = ["preview_grid", "to_pil"]

_PAD = 2  # pixels between tiles
_LABEL_WIDTH = 64  # left margin for the class name


def to_pil(image_u8: torch.Tensor):
    """(C, H, W) uint8 -> a PIL image ("L" for one channel, "RGB" for three)."""
    from PIL import Image

    c = image_u8.shape[0]
    if c == 1:
        return Image.fromarray(image_u8[0].numpy(), "L")
    if c == 3:
        return Image.fromarray(image_u8.permute(1, 2, 0).contiguous().numpy(), "RGB")  # (H, W, C)
    raise ValueError(f"images must have 1 or 3 channels to be shown, got {c}")


def preview_grid(
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    *,
    max_per_class: int = 10,
    max_classes: int = 100,
    min_tile: int = 48,
) -> bytes:
    """Render up to ``max_per_class`` images of each of the first ``max_classes`` classes.

    ``images_u8``: (N, C, H, W) uint8; ``labels``: (N,). Small images are upscaled (nearest) to at
    least ``min_tile`` pixels so 28x28 digits stay legible. Returns PNG bytes (deterministic).
    """
    from PIL import Image, ImageDraw

    n, c, h, w = images_u8.shape
    scale = max(1, -(-min_tile // max(h, w)))  # ceil(min_tile / size)
    th, tw = h * scale, w * scale
    classes = list(range(min(len(class_names), max_classes)))
    cols = max(1, min(max_per_class, max((int((labels == k).sum()) for k in classes), default=1)))
    width = _LABEL_WIDTH + cols * (tw + _PAD) + _PAD
    height = len(classes) * (th + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row, k in enumerate(classes):
        y = _PAD + row * (th + _PAD)
        draw.text((4, y + th // 2 - 5), str(class_names[k])[:10], fill=(0, 0, 0))
        idx = torch.nonzero(labels == k).flatten()[:cols].tolist()
        for col, i in enumerate(idx):
            tile = to_pil(images_u8[i]).convert("RGB").resize((tw, th), Image.NEAREST)
            canvas.paste(tile, (_LABEL_WIDTH + _PAD + col * (tw + _PAD), y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
