"""Coreset baselines at the same storage: ``random`` real images and ``herding``."""

from __future__ import annotations

import torch

from ..data.types import normalize
from ..registry import Registry
from ..training.loop import seeded_net

__all__ = ["CORESETS", "herding_select"]

CORESETS: Registry = Registry("coreset")


@CORESETS.register("random")
def random_coreset(synset, data, mean, std, generator, model: str) -> None:
    """Already done by the real/svd initialisation: random real images of each class."""


def herding_select(features: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy herding (Welling 2009): indices of ``k`` rows whose running mean tracks the mean.

    features: (n, D). Picks without replacement; returns (min(k, n),) indices.
    """
    n = features.shape[0]
    mu = features.mean(0)  # (D,)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    avail = torch.ones(n, dtype=torch.bool)
    for t in range(min(k, n)):  # k steps per class (k = images per class): not a per-sample loop
        cand = (running * t + features) / (t + 1)  # (n, D) mean if each candidate were added
        dist = (cand - mu).norm(dim=1)
        dist[~avail] = float("inf")
        i = int(torch.argmin(dist))
        chosen.append(i)
        avail[i] = False
        running = cand[i]
    return torch.tensor(chosen, dtype=torch.long)


@CORESETS.register("herding")
def herding_coreset(synset, data, mean, std, generator, model: str) -> None:
    """Herding on the embedding of a randomly initialised ConvNet (seeded), per class."""
    seed = int(torch.randint(0, 2**31, (1,), generator=generator))
    net = seeded_net(model, data.num_classes, data.image_shape, seed, "herding-net").eval()
    labels = data.train.labels
    picks = []
    with torch.no_grad():
        for cls in range(synset.num_classes):  # once per class at set-up, not an iteration loop
            idx = torch.nonzero(labels == cls).flatten()
            feats = torch.cat([net.embed(normalize(data.train.images[b], mean, std)) for b in idx.split(512)])
            sel = herding_select(feats, synset.real_per_class)  # real images the set is fitted to per class
            if len(sel) < synset.real_per_class:  # fewer images than slots: repeat
                sel = sel[torch.arange(synset.real_per_class) % len(sel)]
            picks.append(idx[sel])
    order = torch.cat(picks)
    synset.set_images(normalize(data.train.images[order], mean, std))
