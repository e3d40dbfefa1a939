"""Class-balanced real batches with one index gather (no Python loop over classes)."""

from __future__ import annotations

import torch

from ..errors import ClassSizeError

__all__ = ["ClassIndex"]


class ClassIndex:
    """Per-class index table over a label vector, for sampling ``b`` images of every class at once.

    ``table`` is (K, max_count) with each row holding the indices of one class, padded with -1.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, class_names: list[str] | None = None):
        labels = labels.long().cpu()
        self.num_classes = num_classes
        self.counts = torch.bincount(labels, minlength=num_classes)  # (K,)
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        order = torch.argsort(labels, stable=True)  # indices grouped by class
        starts = torch.cumsum(self.counts, 0) - self.counts  # (K,)
        width = int(self.counts.max()) if labels.numel() else 0
        rank = torch.arange(labels.numel()) - starts[labels[order]]  # position within its class
        self.table = torch.full((num_classes, max(width, 1)), -1, dtype=torch.long)
        self.table[labels[order], rank] = order

    def check(self, per_class: int, what: str, allow_replacement: bool = False) -> None:
        """Raise ``ClassSizeError`` if some class has fewer than ``per_class`` images."""
        short = torch.nonzero(self.counts < (1 if allow_replacement else per_class)).flatten().tolist()
        if short:
            det = ", ".join(f"{self.class_names[c]!r} ({int(self.counts[c])})" for c in short[:8])
            raise ClassSizeError(
                f"{what} needs {per_class} real images per class but {len(short)} classes have fewer: {det}"
                f"{' ...' if len(short) > 8 else ''}. Lower it, or drop those classes."
            )

    def sample(self, per_class: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``per_class`` distinct images of every class, class-major: (K * per_class,).

        A class with fewer images than ``per_class`` is sampled with replacement.
        """
        K, width = self.table.shape
        keys = torch.rand(K, width, generator=generator)  # (K, width)
        keys[self.table < 0] = 2.0  # padding sorts last
        take = min(per_class, width)
        pos = torch.topk(keys, take, dim=1, largest=False).indices  # (K, take) random positions
        if take < per_class:
            extra = torch.randint(0, 2**31, (K, per_class - take), generator=generator)
            pos = torch.cat([pos, extra], dim=1)
        # a class with c < per_class images: wrap its positions into [0, c)
        pos = pos % self.counts.clamp_min(1).view(K, 1)
        return self.table.gather(1, pos).reshape(-1)  # (K * per_class,)

    def first(self, per_class: int) -> torch.Tensor:
        pos = torch.arange(per_class).view(1, -1) % self.counts.clamp_min(1).view(-1, 1)
        return self.table.gather(1, pos).reshape(-1)
