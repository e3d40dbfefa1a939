"""Reading a ``.pt`` condensed set (local, or a file in a Hub repo) into a :class:`CondensedSet`.

The layouts it accepts and how their labels are read are listed in ``load``'s docstring; the loading
itself is ``published.layouts.safe_load`` (tensors and plain containers only, nothing executed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DatasetError, DatasetNotFoundError
from .condensed_set import CondensedSet

__all__ = ["IMAGE_KEYS", "LABEL_KEYS", "read_pt", "read_labels_file", "hub_file"]

IMAGE_KEYS = ("images", "image", "x", "data", "imgs", "img", "image_syn", "images_syn", "syn_images", "x_syn",
              "pixel_values", "inputs")
LABEL_KEYS = ("labels", "label", "y", "targets", "target", "label_syn", "labels_syn", "syn_labels", "y_syn")


def _torch_load(path: Path) -> Any:
    from ..published.layouts import safe_load

    return safe_load(path)


def _pick_key(d: dict, keys: Sequence[str], what: str, path: str) -> str:
    lower = {str(k).lower(): k for k in d}
    for k in keys:
        if k in lower and isinstance(d[lower[k]], torch.Tensor):
            return lower[k]
    raise DatasetError(f"{path!r}: dict with keys {sorted(map(str, d))} has no {what} tensor under any of "
                       f"{list(keys)}; save the set as (images, labels) or rename the keys")


def _labels_tensor(y: Any, path: str) -> tuple[torch.Tensor, Any]:
    """(class ids (N,), soft labels or None): soft labels (N, K) float that are not one-hot are kept as
    stored (logits or probabilities) and their argmax stands for the class in counts and checks."""
    from ..published.soft_labels import as_soft_labels

    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    soft = None
    if y.dim() == 2:
        if y.is_floating_point() and not bool(((y == 0) | (y == 1)).all() and (y.sum(1) == 1).all()):
            if not bool(torch.isfinite(y).all()):
                raise DatasetError(f"{path!r}: the soft labels contain NaN or Inf")
            soft = as_soft_labels(y)
        y = y.argmax(1)
    if y.dim() != 1 or y.is_floating_point() and not bool((y == y.round()).all()):
        raise DatasetError(f"{path!r}: labels must be class ids of shape (N,), one-hot or soft labels (N, K), "
                           f"got {tuple(y.shape)} {y.dtype}")
    return y.long(), soft


def _labels_object(labels_file: str) -> Any:
    from ..published.relabel import fkd_dir, is_fkd_batch, refuse_fkd

    if fkd_dir(Path(labels_file)):
        refuse_fkd(labels_file)
    lab = _torch_load(Path(labels_file))
    if is_fkd_batch(lab):
        refuse_fkd(labels_file)
    if isinstance(lab, dict):
        lab = lab[_pick_key(lab, LABEL_KEYS, "label", labels_file)]
    return lab


def read_labels_file(labels_file: str) -> tuple[torch.Tensor, Any]:
    """(class ids (N,), soft labels or None) of a labels-only file (MTT's ``labels_best.pt``)."""
    return _labels_tensor(_labels_object(labels_file), labels_file)


def read_pt(path: Path, labels_file: str | None) -> CondensedSet:
    from ..published.layouts import is_dc_experiments, read_experiments
    from ..published.relabel import is_fkd_batch, refuse_fkd

    obj = _torch_load(path)
    if is_fkd_batch(obj):
        refuse_fkd(path)
    notes: list[str] = []
    if labels_file is None and is_dc_experiments(obj):
        x, y, layout, notes = read_experiments(obj)
    elif isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, torch.Tensor) for t in obj):
        x, y, layout = obj[0], obj[1], f"{type(obj).__name__} (images, labels)"
    elif isinstance(obj, dict):
        kx = _pick_key(obj, IMAGE_KEYS, "image", str(path))
        if labels_file is None:
            ky = _pick_key(obj, LABEL_KEYS, "label", str(path))
            x, y, layout = obj[kx], obj[ky], f"dict {{{kx!r}: images, {ky!r}: labels}}"
            rest = sorted(str(k) for k in obj if k not in (kx, ky))
        else:
            x, y, layout = obj[kx], None, f"dict {{{kx!r}: images}}"
            rest = sorted(str(k) for k in obj if k != kx)
        if rest:
            notes.append(f"ignored keys of the .pt dict: {rest}")
    elif isinstance(obj, torch.Tensor):
        if labels_file is None:
            raise DatasetError(f"{str(path)!r} holds one tensor {tuple(obj.shape)} and no labels; pass the labels "
                               f"file (labels_file= / --labels-file, e.g. MTT's labels_best.pt)")
        x, y, layout = obj, None, "tensor (images)"
    else:
        raise DatasetError(f"{str(path)!r} holds a {type(obj).__name__}; supported .pt layouts: (images, labels) "
                           f"tuple/list, a dict with image and label keys, or an image tensor with labels_file")
    if labels_file is not None:
        y = _labels_object(labels_file)
        layout += f" + labels from {Path(labels_file).name}"
    if x.is_complex() or x.dtype == torch.bool:
        raise DatasetError(f"{str(path)!r}: images of dtype {x.dtype} are not pixel values")
    hard, soft = _labels_tensor(y, str(path))
    return CondensedSet(images=x, labels=hard, kind="pt", layout=layout, soft=soft,
                        stored_dtype=str(x.dtype).replace("torch.", ""), itemsize=x.element_size(), notes=notes)


def hub_file(source: str, revision: str | None) -> Path:
    """``owner/repo/path/file.pt`` (or ``hf://[datasets/]owner/repo/...``) -> a local copy from the Hub."""
    from huggingface_hub import hf_hub_download

    ref = source[len("hf://"):] if source.startswith("hf://") else source
    types = ("dataset", "model")
    if ref.startswith("datasets/"):
        ref, types = ref[len("datasets/"):], ("dataset",)
    owner, repo, filename = ref.split("/", 2)
    errors = []
    for repo_type in types:
        try:
            return Path(hf_hub_download(f"{owner}/{repo}", filename, repo_type=repo_type, revision=revision))
        except Exception as e:  # noqa: BLE001 - not found / unreachable: try the next repo type, then report
            errors.append(f"{repo_type}: {type(e).__name__}")
    raise DatasetNotFoundError(f"condensed set file {filename!r} not found in Hub repo {owner}/{repo} "
                               f"({', '.join(errors)}); check the path, revision and network")
