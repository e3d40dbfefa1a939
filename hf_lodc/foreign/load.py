"""Reading any foreign source into images ``(N, C, H, W)`` and the source's class ids.

Sources
-------
``.pt`` file, local or on the Hub as ``owner/repo/path/file.pt`` (dataset repo, else model repo)
(``torch.load(weights_only=True)``: tensors, lists, tuples, dicts and numpy scalars/arrays only; a
pickle of any other object is refused, nothing in it is executed). Supported layouts:

* a pair ``(images, labels)`` as a tuple or list (IDC, DataDAM, ...);
* a dict with one image key and one label key (case-insensitive), e.g. ``{'images', 'labels'}``,
  ``{'x', 'y'}``, ``{'data', 'targets'}``, ``{'image_syn', 'label_syn'}``; see ``pt_file.IMAGE_KEYS`` /
  ``pt_file.LABEL_KEYS`` (other keys are ignored and listed in the notes);
* a single image tensor with the labels in a second file (``labels_file=``; MTT writes
  ``images_best.pt`` and ``labels_best.pt``; a learned ``lr_best.pt`` beside it is the evaluation lr);
* DC/DSA/DM results ``{'data': [[images, labels], ...], 'accs_all_exps': ...}`` (the last experiment);
* IDC ``data.pt`` mosaics with ``factor=`` (decoded as IDC decodes; without it the report says so);
* FKD soft-label files (SRe2L's ``epoch_<e>/batch_<b>.tar``, as source or labels file) are refused, saying
  what is missing (``published/relabel.py``); an image folder (SRe2L / RDED) evaluated without a teacher
  gets a warning in the report: hard labels are not those methods' protocol.
* HaBa's bases ``images_best.pt`` beside its hallucinators ``weights_best.pt`` (or ``images_<it>.pt`` beside
  ``styles_<it>.pt``): the bases with class-major labels (or ``labels_file``) and the hallucinators,
  rendered during training as HaBa's evaluation renders them (``published/haba.py``).

Images are ``(N, C, H, W)`` (also ``(N, H, W, C)`` or ``(N, H, W)`` for one channel) of any real or
integer dtype; labels are integer class ids ``(N,)``, one-hot ``(N, K)`` or soft ``(N, K)`` (logits or
probabilities, trained with ``soft_loss`` ``sce``/``kl`` at ``temperature``; their bytes are counted;
in a dataset: ``soft_label_column``). ``teacher=`` relabels every augmented batch of an image-only set
and of the random baseline with a teacher checkpoint (SRe2L / RDED style: ``published/teacher.py``).

Hub repo or local folder (any ``datasets``-loadable image-classification set): an ``Image`` column
(decoded to uint8 pixels) or a float ``Array3D`` / nested-list column (``image_column``); labels a
``ClassLabel`` matched to the source's classes by name, or plain integers matched by id
(``labels="by-id"``; ``"auto"`` picks by-name for a ClassLabel whose names are the source's, by-id
for integers).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.types import ImageClassificationData
from ..errors import ConfigError, DatasetError, DatasetNotFoundError
from .condensed_set import CondensedSet
from .dataset_source import read_dataset
from .pt_file import hub_file, read_labels_file, read_pt

__all__ = ["LABEL_MATCHING", "load_condensed_set"]

LABEL_MATCHING = ("auto", "by-id", "by-name")


def _to_nchw(x: torch.Tensor, shape: tuple[int, int, int], source: str) -> tuple[torch.Tensor, str | None]:
    c, h, w = shape
    if x.dim() == 3 and c == 1 and tuple(x.shape[1:]) == (h, w):
        return x.unsqueeze(1), "images (N, H, W) read as one channel"
    if x.dim() == 4 and tuple(x.shape[1:]) == (c, h, w):
        return x, None
    if x.dim() == 4 and tuple(x.shape[1:]) == (h, w, c):
        return x.permute(0, 3, 1, 2), "images stored channels-last (N, H, W, C), read as (N, C, H, W)"
    raise DatasetError(f"{source!r}: images of shape {tuple(x.shape)} do not fit the test dataset's images "
                       f"(C, H, W) = {shape}; the set must have the source's channels and size")


def _read_haba(p: Path, weights: Path, labels_file: str | None, data: ImageClassificationData) -> CondensedSet:
    """HaBa's bases (N, C_in, H, W) and hallucinators; labels class-major unless ``labels_file`` is given."""
    from ..published.haba import class_major_labels, read_hallucinators
    from ..published.layouts import safe_load

    bases = safe_load(p)
    c, h, w = data.image_shape
    if not isinstance(bases, torch.Tensor) or bases.dim() != 4 or not bases.is_floating_point() \
            or tuple(bases.shape[2:]) != (h, w) or bases.shape[1] not in (1, c):
        got = tuple(bases.shape) if isinstance(bases, torch.Tensor) else type(bases).__name__
        raise DatasetError(f"{str(p)!r} sits beside HaBa's hallucinators {weights.name}, so it should hold HaBa's "
                           f"bases, a float tensor (N, C or 1, H, W) = (N, {c} or 1, {h}, {w}); got {got}")
    hal = read_hallucinators(weights, tuple(bases.shape), c)
    soft = None
    if labels_file is not None:
        labels, soft = read_labels_file(labels_file)
        how = f"labels from {Path(labels_file).name}"
    else:
        labels = class_major_labels(len(bases), data.num_classes, str(p))
        how = f"labels class-major (basis i is class i // {len(bases) // data.num_classes}, as HaBa saves them)"
    n, m = len(bases), hal.count
    layout = (f"HaBa bases {p.name} {tuple(bases.shape)} + {m} hallucinators {weights.name}; {how}; each basis "
              f"through one hallucinator drawn at random each time it is read, as HaBa's evaluation trains")
    notes = [f"HaBa: {n} bases x {m} hallucinators render {n * m} distinct images; an epoch is {n} images (each "
             f"basis once, through a random hallucinator), as in HaBa's StyleTranslatorSharedDataset; "
             f"storage_bytes counts the bases ({int(bases.numel()) * bases.element_size():,} bytes) and the "
             f"hallucinators' parameters ({hal.nbytes:,} bytes, float32)"]
    if hal.in_channels != c:
        notes.append(f"HaBa --single_channel: {hal.in_channels}-channel bases, {c}-channel images")
    return CondensedSet(images=bases, labels=labels, kind="pt", layout=layout, soft=soft,
                        stored_dtype=str(bases.dtype).replace("torch.", ""), itemsize=bases.element_size(),
                        notes=notes, hallucinators=hal)


def load_condensed_set(source: str, data: ImageClassificationData, *, split: str = "train",
                       config_name: str | None = None, revision: str | None = None,
                       image_column: str | None = None, label_column: str | None = None,
                       labels: str = "auto", labels_file: str | None = None,
                       soft_label_column: str | None = None) -> tuple[CondensedSet, str]:
    """Read ``source`` (``.pt`` file, local folder or Hub repo) with labels mapped to ``data``'s class ids.

    Returns the set (images ``(N, C, H, W)`` in their stored dtype) and the label matching used.
    """
    if labels not in LABEL_MATCHING:
        raise ConfigError(f"labels must be one of {', '.join(LABEL_MATCHING)}, got {labels!r}")
    p = Path(str(source)).expanduser()
    if not p.exists() and str(source).endswith((".pt", ".pth")) and str(source).count("/") >= 2 \
            and not str(source).startswith((".", "/", "~")):
        p = hub_file(str(source), revision)
    if p.is_file():
        if p.suffix not in (".pt", ".pth", ".bin", ".tar") and not str(source).endswith(".pt"):
            raise ConfigError(f"{source!r} is a file but not a .pt/.pth torch file; give a .pt file or a dataset folder")
        from ..published.haba import haba_weights_beside

        weights = haba_weights_beside(p)
        cs = read_pt(p, labels_file) if weights is None else _read_haba(p, weights, labels_file, data)
    elif str(source).endswith((".pt", ".pth")):
        raise DatasetNotFoundError(f"condensed set file {source!r} not found (cwd: {Path.cwd()})")
    else:
        from ..published.relabel import fkd_dir, refuse_fkd

        if fkd_dir(p):
            refuse_fkd(p)
        cs = read_dataset(str(source), config_name, revision, split, image_column, label_column,
                           data.image_shape[0], soft_label_column)
    x = cs.images
    if cs.hallucinators is None:  # HaBa's bases were checked against the data by their reader
        x, note = _to_nchw(cs.images, tuple(data.image_shape), str(source))
        cs.images = x
        if note:
            cs.notes.append(note)
    if len(cs.labels) != len(x):
        raise DatasetError(f"{source!r}: {len(x)} images but {len(cs.labels)} labels")

    names = list(data.info.class_names)
    mode = labels
    if mode == "auto":
        mode = "by-name" if cs.class_names is not None and set(cs.class_names) <= set(names) else "by-id"
        if cs.class_names is not None and mode == "by-id":
            raise ConfigError(
                f"{source!r}: its class names {cs.class_names[:5]}... are not the test dataset's {names[:5]}...; "
                f"pass labels='by-id' (--labels by-id) if its label ids are the test dataset's class ids")
    if mode == "by-name":
        if cs.class_names is None:
            raise ConfigError(f"{source!r}: labels='by-name' needs class names (a ClassLabel column); its labels are "
                              f"plain integers: use labels='by-id'")
        missing = [n for n in cs.class_names if n not in names]
        if missing:
            raise ConfigError(f"{source!r}: class names {missing[:5]} are not in the test dataset's classes "
                              f"{names[:10]}; use labels='by-id' to match by class id")
        lut = torch.tensor([names.index(n) for n in cs.class_names])
        cs.labels = lut[cs.labels]
        if cs.soft is not None and cs.soft.values.shape[1] == len(names) == len(cs.class_names):
            moved = torch.empty_like(cs.soft.values)
            moved[:, lut] = cs.soft.values  # the set's class k is the source's class lut[k]
            cs.soft.values = moved
    if cs.soft is not None and cs.soft.values.shape[1] != len(names):
        raise DatasetError(f"{source!r}: soft labels have {cs.soft.values.shape[1]} columns but the test dataset has "
                           f"{len(names)} classes")
    bad = (cs.labels < 0) | (cs.labels >= len(names))
    if bool(bad.any()):
        raise DatasetError(f"{source!r}: label ids {sorted(set(cs.labels[bad].tolist()))[:5]} are outside the "
                           f"test dataset's {len(names)} classes (0..{len(names) - 1})")
    return cs, mode
