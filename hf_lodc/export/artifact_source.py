"""The source dataset of a saved artefact: how to read it again, and whether what was read is it.

A set loaded from disk or the Hub is evaluated or continued on its source, so the source must be
found again (the run config it recorded, else the fields of its ``SourceInfo``), an older
artefact's relative local path anchored where it was made, and the source as loaded now checked
against the classes and image size the set was condensed for. ``CondensedDataset`` (``api.py``) is
the caller; these are apart from it because they are about the artefact, not the facade's state.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from ..data.types import ImageClassificationData
from ..engine.config import DataConfig
from ..errors import DatasetError, LocalPathNotFoundError
from .artifact import Artifact

__all__ = ["data_config_of", "anchor_relative_source", "check_same_source"]


def data_config_of(art: Artifact) -> DataConfig:
    rec = (art.run_config or {}).get("data")
    known = {f.name for f in fields(DataConfig)}
    if isinstance(rec, dict) and rec.get("dataset"):
        return DataConfig(**{k: v for k, v in rec.items() if k in known})
    s = art.source
    return DataConfig(dataset=s.hub_id or s.dataset, config_name=s.config_name, revision=s.revision,
                      train_split=s.train_split, eval_split=s.eval_split, image_column=s.image_column,
                      label_column=s.label_column)


def anchor_relative_source(dc: DataConfig, art: Artifact, artefact_dir) -> None:
    """An artefact of an older hf_lodc may record its local source relative to the folder it was made
    in: found from here, or from the artefact's folder or one above it, it is used; else a path error
    (never a Hub lookup) that says so."""
    rel = dc.dataset
    if art.source.hub_id or not isinstance(rel, str) or os.path.isabs(os.path.expanduser(rel)) or Path(rel).exists():
        return
    if not (art.source.resolved_path or "/" in rel or rel.startswith(".")):
        return  # a bare name: a Hub id / cached dataset, looked up as such
    here = Path(os.path.abspath(artefact_dir))
    for base in (here, *here.parents):
        if (base / rel).is_dir():
            dc.dataset = str(base / rel)
            return
    raise LocalPathNotFoundError(
        f"the artefact {str(here)!r} records its source as the relative path {rel!r} (written by an older hf_lodc), "
        f"which exists neither from {os.getcwd()!r} nor above the artefact; run from the folder it was made in, or "
        "set source.dataset in its config.json to the absolute path")


def check_same_source(art: Artifact, data: ImageClassificationData) -> None:
    now, then = tuple(data.image_shape), tuple(art.synset.image_shape)
    if list(data.info.class_names) != list(art.source.class_names) or now != then:
        raise DatasetError(
            f"source {data.info.dataset!r} as loaded now ({data.num_classes} classes, images {now}) does not match "
            f"the condensed set ({art.synset.num_classes} classes, images {then}); pass the source it came from"
        )
