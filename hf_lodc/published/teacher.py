"""Teacher relabelling on the fly, as SRe2L / RDED / FKD-style methods evaluate their sets.

Those methods ship images only; at evaluation a teacher trained on the real data labels every augmented
batch the student sees, and the student learns the teacher's soft labels. :class:`TeacherLabelled`
wraps a student network so the protocol's own loop (``training.loop.train_network``) does exactly that
without knowing about teachers: in training mode its forward returns the student's logits and the
frozen teacher's logits on the same augmented batch side by side, and :func:`teacher_criterion` applies
a soft loss between the two halves; in eval mode it is the student alone (the test). The teacher is
held outside the module's parameters, so the optimiser never sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .soft_labels import SOFT_LOSSES

__all__ = ["TeacherLabelled", "teacher_criterion", "load_teacher"]


class TeacherLabelled(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        self.student = student
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: no parameters, no state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.student(x)  # (b, K)
        if not self.training:
            return out
        with torch.no_grad():
            t = self._teacher(x).float()  # (b, K) on the same augmented batch
        return torch.cat([out, t.to(out.dtype)], dim=1)  # (b, 2K)


def teacher_criterion(loss: str, temperature: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``criterion((b, 2K) student|teacher logits, ignored targets)``: ``loss`` between the halves at T."""
    from ..errors import ConfigError

    fn = SOFT_LOSSES.get(loss)
    if not temperature > 0:
        raise ConfigError(f"the soft-label temperature must be positive, got {temperature}")
    t = float(temperature)

    def crit(both: torch.Tensor, _targets: torch.Tensor) -> torch.Tensor:
        k = both.shape[1] // 2
        return fn(both[:, :k], F.log_softmax(both[:, k:] / t, dim=1), t)

    return crit


def _safetensors(p: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..errors import DatasetError

    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise DatasetError(f"teacher checkpoint {str(p)!r} is not a readable safetensors file "
                           f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None


def load_teacher(path: str, model: str, num_classes: int, image_shape: Sequence[int],
                 device: torch.device | str) -> nn.Module:
    """A frozen ``model`` (an evaluation model name: hf_lodc alias, ``lodc_*`` or timm) with the state dict
    in ``path`` (a ``.pt`` of tensors, optionally under ``state_dict`` / ``model``, or the
    ``model.safetensors`` of a model repo), in eval mode."""
    from ..errors import DatasetError, DatasetNotFoundError
    from ..models import create_eval_model
    from .layouts import safe_load

    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetNotFoundError(f"teacher checkpoint {path!r} not found")
    state = _safetensors(p) if p.suffix == ".safetensors" else safe_load(p)
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DatasetError(f"teacher checkpoint {path!r} is not a state dict of tensors")
    c, h, w = image_shape
    net = create_eval_model(model, num_classes=num_classes, in_chans=c, img_size=(h, w))
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise DatasetError(f"teacher checkpoint {path!r} does not fit model {model!r} ({num_classes} classes, "
                           f"{c}x{h}x{w}): {str(e).splitlines()[0][:300]}") from None
    net.eval().requires_grad_(False)
    return net.to(device)
