"""Class-balanced real batches with one index gather (no Python loop over classes).

A class with fewer images than asked for is sampled with replacement, and a warning (once per
index and request size) names those classes and their counts: in a real batch the repeats only
re-weight the class mean, but in an initialisation or a coreset they are duplicate images that
waste storage.
"""

from __future__ import annotations

import warnings

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
        self._has_empty = bool((self.counts == 0).any())
        self._warned: set[int] = set()  # request sizes already warned about

    def _short(self, per_class: int) -> list[int]:
        return torch.nonzero(self.counts < per_class).flatten().tolist()

    def _describe(self, classes: list[int]) -> str:
        det = ", ".join(f"{self.class_names[c]!r} ({int(self.counts[c])})" for c in classes[:8])
        return det + (" ..." if len(classes) > 8 else "")

    def check(self, per_class: int, what: str, allow_replacement: bool = False) -> None:
        """Raise ``ClassSizeError`` if some class has fewer than ``per_class`` images."""
        short = self._short(1 if allow_replacement else per_class)
        if short:
            raise ClassSizeError(
                f"{what} needs {per_class} real images per class but {len(short)} classes have fewer: "
                f"{self._describe(short)}. Lower it, or drop those classes."
            )

    def sample(self, per_class: int, generator: torch.Generator, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Indices of ``per_class`` distinct images of every class, class-major: (K * per_class,).

        ``classes`` (k,): draw for these classes only, in this order: (k * per_class,); the index
        table is read for those rows only, so a step over a few of 1 000 classes costs a few.
        A class with fewer images than ``per_class`` is sampled with replacement (warned once).
        A class with no image at all raises ``ClassSizeError``.
        """
        if self._has_empty:  # its row is all padding: a gather would return index -1
            self.check(1, f"sampling {per_class} images per class")
        if per_class not in self._warned and bool((self.counts < per_class).any()):
            self._warned.add(per_class)
            short = self._short(per_class)
            warnings.warn(
                f"{len(short)} of {self.num_classes} classes have fewer than {per_class} real images: "
                f"{self._describe(short)}. Their {per_class} draws repeat images (sampled with replacement); "
                "lower batch_real / ipc if that is not what you want.",
                stacklevel=2,
            )
        if classes is not None:
            return self._sample_rows(self.table[classes], self.counts[classes], per_class, generator)
        return self._sample_rows(self.table, self.counts, per_class, generator)

    @staticmethod
    def _sample_rows(table: torch.Tensor, counts: torch.Tensor, per_class: int,
                     generator: torch.Generator) -> torch.Tensor:
        K, width = table.shape
        keys = torch.rand(K, width, generator=generator)  # (K, width)
        keys[table < 0] = 2.0  # padding sorts last
        take = min(per_class, width)
        pos = torch.topk(keys, take, dim=1, largest=False).indices  # (K, take) random positions
        if take < per_class:
            extra = torch.randint(0, 2**31, (K, per_class - take), generator=generator)
            pos = torch.cat([pos, extra], dim=1)
        # a class with c < per_class images: wrap its positions into [0, c)
        pos = pos % counts.clamp_min(1).view(K, 1)
        return table.gather(1, pos).reshape(-1)  # (K * per_class,)

    def first(self, per_class: int) -> torch.Tensor:
        pos = torch.arange(per_class).view(1, -1) % self.counts.clamp_min(1).view(-1, 1)
        return self.table.gather(1, pos).reshape(-1)
