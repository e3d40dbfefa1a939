"""Seeds from one place.

All randomness in hf_lodc flows from explicit ``torch.Generator`` objects derived from one user
seed and a purpose string, so two components never share (and perturb) a stream, and adding a
random draw in one place does not change the numbers anywhere else.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *purpose: object) -> int:
    """A 63-bit seed that depends on ``seed`` and the purpose path, stable across runs/platforms."""
    h = hashlib.sha256(repr((int(seed),) + tuple(str(p) for p in purpose)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *purpose: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded from ``derive_seed(seed, *purpose)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *purpose))
    return g


def seed_everything(seed: int) -> None:
    """Seed the global RNGs too (for third-party code that uses them, e.g. timm init)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
