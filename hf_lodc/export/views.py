"""The publishing views: the forms one condensation takes in a Hub repo, and their names.

One registry, iterated by the push (which files and configs), the pull (which view rebuilds the
set), the card (configs, result labels, the "load it" snippet) and the evaluation (which data an
accuracy is measured on, and under which results key)::

    view          order  config name   alias of the default  evaluated as (results key)  rebuilds
    images          0    N             default               uint8 PNG (evaluations_uint8)  -
    pixel_values    1    N-pixel_values pixel_values          float32 (evaluations)          pixel sets
    factors         2    N-factors     factors               -                              low-rank sets
    units           3    N-units       units                 -                              other sets (with shared)
    shared          4    N-shared      shared                -                              (HaBa hallucinators)

``units``/``shared`` are the parameterisation's own export tables (``SyntheticSet.export_tables``,
features from ``export_columns``; ``table`` names which): one row per stored unit with its label
(class-major), and one row per shared module (label -1: no class). They are published for every
parameterisation no other view rebuilds (IDC multi-formation, HaBa; pixel and low-rank sets keep
``pixel_values``/``factors``), and the pull rebuilds such a set with ``load_export_tables``.

Repo layout (``LAYOUT_VERSION`` 1) of condensation ``N``: ``condensations/N/<view>/train-00000-of-00001.parquet``
per view, plus ``condensations/N/preview.png`` and ``condensations/N/hf_lodc.json`` (the record).
The source's real test split (what the accuracies were measured on) is stored once per repo under
``condensations/_test/<key>/<view>/test-00000-of-00001.parquet`` for the views that have an evaluation
split (``images``, ``pixel_values``; not ``factors``); the card's configs point BOTH split names
``validation`` and ``test`` at those files, next to ``train`` = the condensed set.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..data.types import denormalize_to_uint8, normalize
from ..errors import ConfigError
from ..registry import Registry
from .artifact import Artifact
from .preview import to_pil

__all__ = [
    "LAYOUT_VERSION", "ROOT", "META_FILE", "PREVIEW_FILE", "SHARD", "View", "VIEWS", "ordered_views",
    "evaluated_views", "view_datasets", "png_images", "check_config_name", "default_config_name",
    "condensation_of", "reserved_names", "quiet_datasets", "EVAL_SHARD", "EVAL_DIR", "EVAL_SPLITS",
    "eval_split_datasets", "eval_split_folder", "has_exact_view",
]

LAYOUT_VERSION = 1
ROOT = "condensations"
META_FILE = "hf_lodc.json"
PREVIEW_FILE = "preview.png"
SHARD = "train-00000-of-00001.parquet"
EVAL_SHARD = "test-00000-of-00001.parquet"  # the real test split, under condensations/_test/<key>/<view>/
EVAL_DIR = "_test"  # not a possible condensation name (those start with a letter or digit)
EVAL_SPLITS = ("validation", "test")  # both split names point at the same files
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class View:
    name: str  # folder under condensations/N/
    order: int  # position in the repo, the card's configs and the "load it" snippet
    suffix: str  # config name = N + suffix
    alias: str  # config name of the default condensation's view
    build: Callable[[Artifact], Any]  # artefact -> datasets.Dataset, or None when not applicable
    columns: tuple[str, ...]  # the data columns (each view also has "label")
    snippet: tuple[str, str]  # (variable, comment) of the card's `load_dataset` line
    label: str | None = None  # how the card names the data an accuracy was measured on (None: not evaluated)
    results_key: str | None = None  # where the artefact's results keep the accuracies measured on this view
    eval_order: int = 0  # among evaluated views: the card reports lower first
    eval_images: Callable[[Artifact], torch.Tensor] | None = None  # (N, C, H, W) float32 normalised, as trained on
    restores: str | None = None  # the parameterisation this view rebuilds exactly (pull)
    to_state: Callable[[dict], dict[str, torch.Tensor]] | None = None  # columns (numpy) -> synset tensors
    build_eval: Callable[[Any, Artifact], Any] | None = None  # (real test LabeledImages, art) -> Dataset or none
    table: str | None = None  # the export table (``SyntheticSet.export_tables``) this view publishes


VIEWS: Registry[View] = Registry("view")


def ordered_views() -> list[View]:
    return sorted((VIEWS.get(n) for n in VIEWS.names()), key=lambda v: v.order)


def evaluated_views() -> list[View]:
    """The views an accuracy can be measured on, in the order the card reports them."""
    return sorted((v for v in ordered_views() if v.results_key), key=lambda v: v.eval_order)


@contextlib.contextmanager
def quiet_datasets():
    import datasets

    was = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was:
            datasets.enable_progress_bars()


def _class_label(art: Artifact):
    import datasets

    return datasets.ClassLabel(names=list(art.source.class_names))


def _images_view(art: Artifact):
    import datasets

    u8 = denormalize_to_uint8(art.images(), art.mean, art.std)  # (N, C, H, W) uint8, clipped to [0, 1]
    features = datasets.Features({"image": datasets.Image(), "label": _class_label(art)})
    return datasets.Dataset.from_dict(
        {"image": [to_pil(x) for x in u8], "label": art.labels.tolist()}, features=features
    )


def _pixel_values_view(art: Artifact):
    import datasets

    x = art.images().contiguous()  # (N, C, H, W) float32, normalised
    features = datasets.Features({
        "pixel_values": datasets.Array3D(shape=tuple(x.shape[1:]), dtype="float32"),
        "label": _class_label(art),
    })
    return datasets.Dataset.from_dict({"pixel_values": x.numpy(), "label": art.labels.tolist()}, features=features)


def _factors_view(art: Artifact):
    import datasets

    if art.synset.kind != VIEWS.get("factors").restores:  # the view that rebuilds this parameterisation
        return None
    units = art.synset.export_tables()["units"]
    A = units["A"].contiguous()  # (N, C, H, r)
    B = units["B"].contiguous()  # (N, C, r, W)
    features = datasets.Features({
        "A": datasets.Array3D(shape=tuple(A.shape[1:]), dtype="float32"),
        "B": datasets.Array3D(shape=tuple(B.shape[1:]), dtype="float32"),
        "label": _class_label(art),
    })
    return datasets.Dataset.from_dict({"A": A.numpy(), "B": B.numpy(), "label": art.labels.tolist()},
                                      features=features)


def _images_eval(test, art: Artifact):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": _class_label(art)})
    return datasets.Dataset.from_dict(
        {"image": [to_pil(x) for x in test.images], "label": test.labels.tolist()}, features=features
    )  # test.images: (M, C, H, W) uint8, the real images as read


def _pixel_values_eval(test, art: Artifact):
    import datasets

    x = normalize(test.images, art.mean, art.std).contiguous()  # (M, C, H, W) float32, as the set is
    features = datasets.Features({
        "pixel_values": datasets.Array3D(shape=tuple(x.shape[1:]), dtype="float32"),
        "label": _class_label(art),
    })
    return datasets.Dataset.from_dict({"pixel_values": x.numpy(), "label": test.labels.tolist()}, features=features)


def eval_split_folder(source: dict[str, Any], rows: int) -> str:
    """``condensations/_test/<key>``: where the real test split of ``source`` (a SourceInfo record) is
    stored once per repo; the key names the source, its revision, split and row count."""
    import hashlib
    import json as _json

    ident = {k: source.get(k) for k in ("hub_id", "dataset", "config_name", "revision", "revision_sha",
                                        "eval_split", "image_shape", "mean", "std")}
    digest = hashlib.sha256(_json.dumps({**ident, "rows": rows}, sort_keys=True, default=str).encode()).hexdigest()
    return f"{ROOT}/{EVAL_DIR}/{digest[:12]}"


def eval_split_datasets(test, art: Artifact) -> dict[str, Any]:
    """view name -> ``datasets.Dataset`` of the real test split ``test`` (LabeledImages), for the views
    that carry one (``images``: PNG as read, ``pixel_values``: normalised float32 like the set)."""
    with quiet_datasets():
        return {v.name: v.build_eval(test, art) for v in ordered_views() if v.build_eval is not None}


def _feature(shape: tuple[int, ...], dtype: str):
    import datasets

    if len(shape) == 1:
        return datasets.Sequence(datasets.Value(dtype), length=shape[0])
    arrays = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D, 5: datasets.Array5D}
    return arrays[len(shape)](shape=tuple(shape), dtype=dtype)


def has_exact_view(kind: str) -> bool:
    """Whether a view other than the export tables' rebuilds parameterisation ``kind`` (pixel, low-rank)."""
    return any(v.restores == kind for v in ordered_views() if v.table is None)


def _table_view(table: str):
    def build(art: Artifact):
        import datasets

        if has_exact_view(art.synset.kind):
            return None
        tables = art.synset.export_tables()
        if table not in tables:
            return None
        cols = {c.name: c for c in art.synset.export_columns() if c.table == table}
        data = {k: v.detach().float().cpu().contiguous().numpy() for k, v in tables[table].items()}
        rows = len(next(iter(data.values())))
        if table == "units":  # class-major, per_class rows per class
            labels = torch.arange(art.synset.num_classes).repeat_interleave(art.synset.per_class).tolist()
            label_feature = _class_label(art)
        else:  # shared modules belong to no class
            labels, label_feature = [-1] * rows, datasets.Value("int64")
        features = datasets.Features({**{k: _feature(cols[k].shape, cols[k].dtype) for k in data},
                                      "label": label_feature})
        return datasets.Dataset.from_dict({**data, "label": labels}, features=features)

    return build


def png_images(art: Artifact) -> torch.Tensor:
    """The published ``image`` column, PNG-encoded then decoded again: (N, C, H, W) uint8."""
    import numpy as np

    with quiet_datasets():
        ds = VIEWS.get("images").build(art)
    arrays = [np.asarray(im) for im in ds["image"]]  # decoded PIL images, (H, W) or (H, W, C)
    x = torch.from_numpy(np.stack(arrays))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def _columns(batch: dict, *names: str) -> dict[str, torch.Tensor]:
    import numpy as np

    return {n: torch.from_numpy(np.asarray(batch[n], dtype=np.float32)) for n in names}  # (N, ...)


VIEWS.add("images", View(
    "images", 0, "", "default", _images_view, ("image",), ("ds", "image (uint8 PNG) + label"),
    label="uint8 PNG `image`", results_key="evaluations_uint8", eval_order=1,
    eval_images=lambda art: normalize(png_images(art), art.mean, art.std), build_eval=_images_eval,
))
VIEWS.add("pixel_values", View(
    "pixel_values", 1, "-pixel_values", "pixel_values", _pixel_values_view, ("pixel_values",),
    ("px", "exact float32 normalised tensors"),
    label="float32 `pixel_values`", results_key="evaluations", eval_order=0, eval_images=lambda art: art.images(),
    restores="pixel", to_state=lambda batch: {"images": _columns(batch, "pixel_values")["pixel_values"]},
    build_eval=_pixel_values_eval,
))
VIEWS.add("factors", View(
    "factors", 2, "-factors", "factors", _factors_view, ("A", "B"), ("fa", "low-rank factors A, B + label"),
    restores="lowrank", to_state=lambda batch: _columns(batch, "A", "B"),
))
VIEWS.add("units", View(
    "units", 3, "-units", "units", _table_view("units"), (), ("un", "stored units (the parameterisation's columns) + label"),
    restores="*", table="units",
))
VIEWS.add("shared", View(
    "shared", 4, "-shared", "shared", _table_view("shared"), (), ("sh", "shared modules, e.g. HaBa hallucinators"),
    restores="*", table="shared",
))


def view_datasets(art: Artifact) -> dict[str, Any]:
    """view name -> ``datasets.Dataset`` for every view that applies to ``art``, in view order."""
    with quiet_datasets():
        out = {v.name: v.build(art) for v in ordered_views()}
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------------------------
# names


def reserved_names() -> list[str]:
    return sorted(v.alias for v in ordered_views())


def check_config_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"config name {name!r} is not usable: use letters, digits, '-', '_' or '.', starting with a letter "
            "or digit, at most 96 characters (e.g. 'lodm-ipc1-r2')"
        )
    suffixes = [v.suffix for v in ordered_views() if v.suffix]
    if name in reserved_names() or name.endswith(tuple(suffixes)):
        raise ConfigError(
            f"config name {name!r} is reserved: {reserved_names()} are the aliases of the default condensation and "
            f"the suffixes {' / '.join(repr(s) for s in suffixes)} name its other views; choose e.g. 'lodm-ipc1-r2'"
        )
    return name


def default_config_name(method: str, ipc, rank) -> str:
    """``<method>-ipc<k>[-r<r>]``: the name a condensation gets when none is given."""
    ipc_s = f"{ipc:g}" if isinstance(ipc, float) else str(ipc)
    return f"{method}-ipc{ipc_s}" + (f"-r{rank}" if rank else "")


def condensation_of(config_name: str, names: list[str]) -> str | None:
    """The condensation (of ``names``) a config name selects: itself, or the one whose view it names."""
    for v in ordered_views():
        if v.suffix and config_name.endswith(v.suffix) and config_name[: -len(v.suffix)] in names:
            return config_name[: -len(v.suffix)]
    return config_name if config_name in names else None
