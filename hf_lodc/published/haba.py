"""HaBa's saved layout (Liu et al., NeurIPS 2022, ``distill_fac.py``): bases + hallucinators, read and rendered.

What their public code saves, in one run folder:

* ``images_best.pt`` (and ``images_<it>.pt``): the bases, ``image_syn.flatten(0, 1)``, a float tensor
  (K * ipc, C_in, H, W) in the space the run trained in (its mean/std constants, whitened with
  kornia's ZCA under ``--zca``); class-major: basis i belongs to class ``i // ipc``. C_in is the
  dataset's channels, or 1 with ``--single_channel``.
* ``weights_best.pt`` (and ``styles_<it>.pt``): ``nn.ModuleList([StyleTranslator, ...]).state_dict()``,
  ``n_style`` hallucinators (5 in their scripts), keys ``{m}.enc.weight`` (C, C_in, k, k),
  ``{m}.enc.bias`` (C,), ``{m}.scale`` and ``{m}.shift`` (1, C, H-k+1, W-k+1), ``{m}.dec.weight``
  (C, C, k, k: a ``ConvTranspose2d``'s (in, out, k, k)), ``{m}.dec.bias`` (C,); k = 3 in ``distill_fac``.
  (Their ``StyleTranslator`` sizes scale/shift for ``image_size=32`` and ``distill_fac`` does not pass
  the size, so their code only runs on 32x32 sets; here any H, W whose shapes agree is read.)
* No labels and no learned lr: the labels are ``index // ipc``; the lr their evaluation used
  (``syn_lr``, learned) is not saved, so an ``lr_best.pt`` beside the bases is used when present and
  the report says otherwise.

Hallucinator m maps a basis x: ``dec(scale * enc(x) + shift)`` (``enc`` an unpadded conv, ``dec`` a
transposed conv back to H x W): the same function as ``synset.haba.HaBaSet.hallucinate`` with
``affine="pixel"``, written here on a state dict because their encoder may take one channel in.

How their evaluation (``evaluate_synset(mode='style_translator')``) trains on the set: a dataset of
the K * ipc bases, each item basis i through ONE hallucinator drawn uniformly at random each time it
is read (``StyleTranslatorSharedDataset``), then DSA on the batch, cross-entropy on ``i // ipc``.
:meth:`Hallucinators.batch_renderer` does the same per training batch (before the augmentation), so an
epoch is K * ipc images, as theirs; :meth:`Hallucinators.render_all` (every basis through every
hallucinator, basis-major) is what the normalisation is inferred from and checked on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["Hallucinators", "haba_weights_beside", "haba_run_folder", "read_hallucinators", "class_major_labels"]

_PARTS = ("enc.weight", "enc.bias", "scale", "shift", "dec.weight", "dec.bias")


def haba_weights_beside(path: Path) -> Path | None:
    """HaBa's hallucinator file saved with the bases ``path``: ``weights_best.pt`` beside ``images_best.pt``,
    ``styles_<it>.pt`` beside ``images_<it>.pt``; None when there is none."""
    if path.name == "images_best.pt":
        w = path.with_name("weights_best.pt")
    else:
        m = re.fullmatch(r"images_(\d+)\.pt", path.name)
        w = path.with_name(f"styles_{m.group(1)}.pt") if m else None
    return w if w is not None and w.is_file() else None


def haba_run_folder(source: str) -> Path | None:
    """The bases file of a HaBa run folder given as a directory (``images_best.pt`` beside ``weights_best.pt``),
    else None."""
    p = Path(str(source)).expanduser()
    bases = p / "images_best.pt"
    return bases if p.is_dir() and bases.is_file() and haba_weights_beside(bases) is not None else None


@dataclass
class Hallucinators:
    """HaBa's ``n_style`` hallucinators as stacked tensors (M = number of hallucinators)."""

    enc_weight: torch.Tensor  # (M, C, C_in, k, k)
    enc_bias: torch.Tensor  # (M, C)
    scale: torch.Tensor  # (M, C, H-k+1, W-k+1)
    shift: torch.Tensor  # (M, C, H-k+1, W-k+1)
    dec_weight: torch.Tensor  # (M, C, C, k, k) transposed conv: (in, out, k, k)
    dec_bias: torch.Tensor  # (M, C)

    @property
    def count(self) -> int:
        return int(self.enc_weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.enc_weight.shape[2])

    @property
    def nbytes(self) -> int:
        return sum(int(t.numel()) * t.element_size() for t in self._tensors())

    def _tensors(self) -> list[torch.Tensor]:
        return [self.enc_weight, self.enc_bias, self.scale, self.shift, self.dec_weight, self.dec_bias]

    def to(self, device) -> "Hallucinators":
        return Hallucinators(*(t.to(device) for t in self._tensors()))

    def apply(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Hallucinator ``m`` on bases x (b, C_in, H, W) -> (b, C, H, W) (``StyleTranslator.forward``)."""
        z = F.conv2d(x, self.enc_weight[m], self.enc_bias[m])  # (b, C, H-k+1, W-k+1)
        z = self.scale[m] * z + self.shift[m]
        return F.conv_transpose2d(z, self.dec_weight[m], self.dec_bias[m])  # (b, C, H, W)

    @torch.no_grad()
    def render_all(self, bases: torch.Tensor) -> torch.Tensor:
        """Every basis through every hallucinator: (N, C_in, H, W) -> (N * M, C, H, W), image i * M + m
        is hallucinator m on basis i."""
        x = bases.float()
        out = torch.stack([self.apply(x, m) for m in range(self.count)], dim=1)  # (N, M, C, H, W)
        return out.flatten(0, 1)

    def batch_renderer(self, g: torch.Generator,
                       after: Callable[[torch.Tensor], torch.Tensor] | None = None
                       ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``prepare`` for ``training.loop.train_network``: a batch of bases (b, C_in, H, W) -> each through
        one hallucinator drawn uniformly from ``g`` (b draws per batch), then ``after`` (a change of space).
        No gradient flows into the hallucinators (the optimiser only holds the network)."""
        def render(x: torch.Tensor) -> torch.Tensor:
            pick = torch.randint(self.count, (x.shape[0],), generator=g)  # (b,) one hallucinator per basis
            with torch.no_grad():
                out = torch.empty(x.shape[0], self.enc_weight.shape[1], *x.shape[2:], device=x.device)
                for m in pick.unique().tolist():
                    rows = (pick == m).nonzero().flatten().to(x.device)
                    out[rows] = self.apply(x[rows].float(), m)
            return out if after is None else after(out)

        return render


def read_hallucinators(path: Path, bases_shape: tuple[int, ...], channels: int) -> Hallucinators:
    """HaBa's ``StyleTranslator`` ModuleList state dict at ``path``, checked against the bases
    (N, C_in, H, W) and the dataset's ``channels``; a :class:`~hf_lodc.errors.DatasetError` names what
    does not fit."""
    from ..errors import DatasetError
    from .layouts import safe_load

    state = safe_load(path)
    what = (f"{str(path)!r} sits beside HaBa's bases: this is HaBa's layout (bases + hallucinators), whose weights "
            f"file must be the state dict of nn.ModuleList([StyleTranslator, ...]) (keys '<m>.enc.weight', "
            f"'<m>.enc.bias', '<m>.scale', '<m>.shift', '<m>.dec.weight', '<m>.dec.bias')")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DatasetError(f"{what}; it holds a {type(state).__name__}")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    ids = sorted({int(k.split(".", 1)[0]) for k in state if k.split(".", 1)[0].isdigit()})
    expected = {f"{m}.{p}" for m in ids for p in _PARTS}
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if not ids or missing or extra or ids != list(range(len(ids))):
        raise DatasetError(f"{what}; missing keys {missing[:6]}, unexpected keys {extra[:6]}")
    n, c_in, h, w = bases_shape
    ew0 = state["0.enc.weight"]
    if ew0.dim() != 4 or ew0.shape[2] != ew0.shape[3]:
        raise DatasetError(f"{what}; 0.enc.weight has shape {tuple(ew0.shape)}, not (C, C_in, k, k)")
    c, k = int(ew0.shape[0]), int(ew0.shape[2])
    want = {"enc.weight": (channels, c_in, k, k), "enc.bias": (channels,), "scale": (1, channels, h - k + 1, w - k + 1),
            "shift": (1, channels, h - k + 1, w - k + 1), "dec.weight": (channels, channels, k, k),
            "dec.bias": (channels,)}
    bad = [f"{m}.{p} {tuple(state[f'{m}.{p}'].shape)} (expected {want[p]})" for m in ids for p in _PARTS
           if tuple(state[f"{m}.{p}"].shape) != want[p]]
    if bad:
        raise DatasetError(f"{what}; for bases {tuple(bases_shape)} and a {channels}-channel dataset (HaBa's mid and "
                           f"output channels are the dataset's, its input channels the bases') the shapes do not "
                           f"fit: {'; '.join(bad[:6])}")
    stack = {p: torch.stack([state[f"{m}.{p}"].detach().float() for m in ids]) for p in _PARTS}
    ew = stack["enc.weight"]  # (M, C, C_in, k, k)
    return Hallucinators(enc_weight=ew, enc_bias=stack["enc.bias"], scale=stack["scale"].squeeze(1),
                         shift=stack["shift"].squeeze(1), dec_weight=stack["dec.weight"], dec_bias=stack["dec.bias"])


def class_major_labels(n: int, num_classes: int, source: str) -> torch.Tensor:
    """HaBa's labels for n bases: basis i is class ``i // ipc`` with ipc = n / K (``image_syn.flatten(0, 1)``
    of a (K, ipc, ...) tensor)."""
    from ..errors import DatasetError

    if n % num_classes:
        raise DatasetError(f"{source!r}: {n} HaBa bases do not split into the test dataset's {num_classes} classes "
                           f"(their bases are (K, ipc) flattened class-major); pass the labels file (labels_file=)")
    return torch.arange(num_classes).repeat_interleave(n // num_classes)  # (N,)
