"""Image-folder sets whose methods train on a teacher's soft labels (SRe2L, CDA, SCDD, RDED): what they save
and what of it can be evaluated here.

* The images: an ``ImageFolder`` (one folder per class, PNG/JPEG files). Their published numbers train a
  student on a teacher's soft labels of every augmented crop, never on the hard folder labels:
  RDED (``validation/main.py``) runs the teacher on each mixed batch; SRe2L's relabel step
  (``relabel/generate_soft_label.py``) stores the teacher's outputs beforehand as FKD files.
  ``teacher=`` (``published/teacher.py``) relabels each augmented batch here; without a teacher or
  soft labels the evaluation is a hard-label one, and :func:`hard_label_warning` says so in the report.
* FKD soft-label files (``<fkd_path>/epoch_<e>/batch_<b>.tar``): ``torch.save([coords, flip_status,
  mix_index, mix_lam, mix_bbox, soft_label])`` per batch: the RandomResizedCrop box of each image
  (B, 4) as fractions (top, left, height, width), the flips (B,), the CutMix/Mixup partner indices,
  lambda and box (None without ``--mix-type``), and the teacher's logits (B, K) (fp16 with
  ``--use-fp16``). Row r of batch b is the image a ``RandomSampler`` seeded with ``fkd_seed`` placed
  there, and ``validate/train_FKD.py`` replays exactly those crops, flips and mixes with its own loop
  (AdamW, cosine schedule, KL at temperature T). The labels describe those crops only; the protocol
  here trains on its own DSA augmentations of whole images, so they cannot be used faithfully and
  :func:`refuse_fkd` says what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["is_image_folder", "hard_label_warning", "teacher_protocol_note", "is_fkd_batch", "fkd_dir", "refuse_fkd"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def is_image_folder(source: str) -> bool:
    """A local directory of class subfolders holding image files (the ImageFolder layout), with no
    table files (parquet / arrow / csv / json) that would make it a ``datasets`` repo."""
    p = Path(str(source)).expanduser()
    if not p.is_dir():
        return False
    files = [f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.parts)]
    if any(f.suffix.lower() in (".parquet", ".arrow", ".csv", ".json", ".jsonl") for f in files):
        return False
    return any(f.suffix.lower() in _IMAGE_SUFFIXES and f.parent != p for f in files)


def hard_label_warning() -> str:
    return ("an image folder (the layout SRe2L, CDA, SCDD and RDED save) trained on its hard folder labels with "
            "cross-entropy: NOT these methods' protocol, whose numbers train on a teacher's soft labels of every "
            "augmented crop (RDED: the teacher on the fly; SRe2L/CDA: FKD batch files); pass teacher= (--teacher, "
            "a checkpoint trained on the source in this input space) for the closest protocol here, and read this "
            "accuracy as a hard-label one")


def teacher_protocol_note() -> str:
    return ("an image folder relabelled by a teacher: the teacher labels this protocol's DSA batches of whole images; "
            "SRe2L's and RDED's own loops label RandomResizedCrop + flip + CutMix batches (RDED also shuffles the "
            "patches of its factor x factor mosaics) and train with AdamW and a cosine schedule: the closest protocol "
            "here, not theirs")


def is_fkd_batch(obj: Any) -> bool:
    """SRe2L's FKD batch file: [coords (B, 4), flip (B,), mix index, mix lambda, mix box, logits (B, K)]."""
    if not isinstance(obj, (list, tuple)) or len(obj) != 6:
        return False
    coords, flips, soft = obj[0], obj[1], obj[5]
    return (all(isinstance(t, torch.Tensor) for t in (coords, flips, soft)) and coords.dim() == 2
            and coords.shape[1] == 4 and soft.dim() == 2 and len(flips) == len(coords) == len(soft))


def fkd_dir(path: Path) -> bool:
    """A folder of FKD soft labels: ``epoch_<e>/batch_<b>.tar`` (or one epoch folder of ``batch_<b>.tar``)."""
    return path.is_dir() and (any(path.glob("epoch_*/batch_*.tar")) or any(path.glob("batch_*.tar")))


def refuse_fkd(path: Path | str) -> None:
    from ..errors import DatasetError

    raise DatasetError(
        f"{str(path)!r} holds FKD soft labels (SRe2L / CDA relabelling: per epoch and batch, [crop boxes (B, 4), "
        f"flips (B,), mix index, mix lambda, mix box, teacher logits (B, K)]). Each row labels one RandomResizedCrop "
        f"+ flip (+ CutMix/Mixup) of an image, in the order of a RandomSampler seeded with fkd_seed over the image "
        f"folder, replayed by SRe2L's train_FKD.py; what is missing here is that replay (the crops, flips and mixes "
        f"of each stored batch, their batch order and their training loop): hf_lodc's protocol trains on its own "
        f"DSA augmentations of whole images, which these labels do not describe, so they are refused rather than "
        f"used unfaithfully. Evaluate the image folder with teacher= (--teacher: the teacher relabels each "
        f"augmented batch, as RDED and SRe2L's on-the-fly relabelling do), or without (hard labels, reported as "
        f"not the method's protocol)")
