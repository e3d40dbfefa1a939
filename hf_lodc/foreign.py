"""Evaluate anyone's condensed set under one protocol, with its storage accounted for.

The field publishes condensed sets as ``.pt`` blobs or as Hub datasets, each normalised its own
way, and compares methods at "IPC" without saying what a set costs. :func:`evaluate_condensed_set`
reads such a set, states how its values were interpreted, trains the evaluation networks on it with
the standard protocol (``engine/evaluate.py``: SGD, DSA, last epoch) and tests them on the real test
split of the source dataset. In the same run, with the same protocol and seeds, it trains the same
networks on **random real images of the source train split at the same storage** (as many per class
as fit the set's bytes), so the report carries the improvement over random, the number that lets
sets of different methods and sizes be compared.

Sources
-------
``.pt`` file, local or on the Hub as ``owner/repo/path/file.pt`` (dataset repo, else model repo)
(``torch.load(weights_only=True)``: tensors, lists, tuples, dicts and numpy scalars/arrays only; a
pickle of any other object is refused, nothing in it is executed). Supported layouts:

* a pair ``(images, labels)`` as a tuple or list (IDC, DataDAM, ...);
* a dict with one image key and one label key (case-insensitive), e.g. ``{'images', 'labels'}``,
  ``{'x', 'y'}``, ``{'data', 'targets'}``, ``{'image_syn', 'label_syn'}``; see :data:`IMAGE_KEYS` /
  :data:`LABEL_KEYS` (other keys are ignored and listed in the notes);
* a single image tensor with the labels in a second file (``labels_file=``; MTT writes
  ``images_best.pt`` and ``labels_best.pt``; a learned ``lr_best.pt`` beside it is the evaluation lr);
* DC/DSA/DM results ``{'data': [[images, labels], ...], 'accs_all_exps': ...}`` (the last experiment);
* IDC ``data.pt`` mosaics with ``factor=`` (decoded as IDC decodes; without it the report says so);
* HaBa's bases beside hallucinator weights are refused (``published/layouts.py``).

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

Normalisation (``input_normalization``)
---------------------------------------
What the stored values are, so they can be brought to the source's normalisation (per-channel
mean/std of its train split, what the test images get):

* ``source``: already normalised, ``(pixel - mean) / std`` with the source's statistics (hf_lodc's
  ``pixel_values``, the DC/DM/MTT/IDC code bases), or with ``set_mean``/``set_std`` when the
  file used other statistics (they are undone first);
* ``zero-one``: pixel values in [0, 1];
* ``uint8``: pixel values in [0, 255];
* a preset name (``dc-cifar10``, ``mtt-cifar100``, ``mnist``, ...: ``published/normalization.py``):
  normalised with a code base's fixed constants; the set is trained as stored and the test split and
  the random baseline are normalised with the same constants;
* ``zca``: ZCA-whitened [0, 1] pixels (MTT-family ``--zca``); ZCA is fitted on the train split as
  those code bases fit it (``zca_eps``, default 0.1) and whitens the test split and the baseline;
* ``auto`` (default): uint8 dtype or ``Image`` columns -> ``uint8``; values within [0, 1] ->
  ``zero-one``; values within [0, 255] with a maximum above 1.5 and integer-valued -> ``uint8``;
  whitened statistics (per-channel std below 0.6, neighbouring pixels weakly correlated) -> ``zca``;
  anything else (negative values, a mean near 0) -> ``source``. The report states the choice, the
  statistics it was made from and the space the networks were trained and tested in.

Storage
-------
``storage_bytes`` = stored image elements x the stored element size (float32: 4, float16: 2, uint8
and ``Image`` columns: 1; hard labels are not counted, as in the literature's budgets; soft labels
are, at their stored size). Pass
``storage_bytes=`` for sets whose stored form is smaller than the images (e.g. factorised sets).
The random real baseline holds ``floor(storage_bytes / (K x C x H x W x itemsize))`` images per
class, where ``itemsize`` is the set's element size unless ``real_itemsize`` says otherwise (``1``:
real images priced as the uint8 pixels they are).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .data.types import ImageClassificationData, LabeledImages, normalize
from .engine.config import EvalConfig
from .engine.evaluate import evaluate_synthetic
from .errors import ColumnError, ConfigError, DatasetError, DatasetNotFoundError, SplitError
from .seeding import generator

__all__ = ["IMAGE_KEYS", "LABEL_KEYS", "NORMALIZATIONS", "CondensedSet", "ForeignEvalReport",
           "load_condensed_set", "infer_normalization", "to_source_normalization", "evaluate_condensed_set"]

IMAGE_KEYS = ("images", "image", "x", "data", "imgs", "img", "image_syn", "images_syn", "syn_images", "x_syn",
              "pixel_values", "inputs")
LABEL_KEYS = ("labels", "label", "y", "targets", "target", "label_syn", "labels_syn", "syn_labels", "y_syn")
NORMALIZATIONS = ("auto", "source", "zero-one", "uint8", "zca")  # and the presets of published.normalization
LABEL_MATCHING = ("auto", "by-id", "by-name")


@dataclass
class CondensedSet:
    """A set read from a ``.pt`` file or a dataset, before any normalisation."""

    images: torch.Tensor  # (N, C, H, W), stored dtype
    labels: torch.Tensor  # (N,) int64 class ids of the source dataset
    kind: str  # "pt" | "dataset"
    layout: str  # how it was read, in words
    stored_dtype: str
    itemsize: int  # bytes per stored image element
    class_names: list[str] | None = None  # the set's own names, when it has them
    notes: list[str] = field(default_factory=list)
    soft: Any = None  # published.soft_labels.SoftLabels (N, K) when the labels are soft


@dataclass
class ForeignEvalReport:
    source: str
    dataset: str
    kind: str
    layout: str
    num_images: int
    images_per_class: dict[str, int]
    image_shape: list[int]
    stored_dtype: str
    storage_bytes: int
    input_normalization: str  # the mode used
    normalization_reason: str  # "given" or what it was inferred from
    label_matching: str
    evaluations: dict[str, dict]  # model -> EvalRecord.to_dict()
    baseline: dict[str, Any]  # random real images at the same storage
    relative: dict[str, dict]  # model -> {set, random, improvement_pp, ratio}
    test_data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    normalization: dict[str, Any] = field(default_factory=dict)  # the input space trained and tested in
    labels_kind: str = "hard"
    label_bytes: int = 0  # soft labels' bytes, included in storage_bytes
    eval_lr: dict[str, Any] = field(default_factory=dict)  # {"lr", "from"}
    scores: dict[str, Any] = field(default_factory=dict)  # model -> {baseline -> DD-Ranking ARS and its inputs}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"{self.source} ({self.layout}): {self.num_images} images {tuple(self.image_shape)}, stored as "
            f"{self.stored_dtype}: {self.storage_bytes:,} bytes; values read as {self.input_normalization!r} "
            f"({self.normalization_reason}); labels {self.label_matching}; tested on {self.test_data['rows']} "
            f"real images of {self.dataset!r} split {self.test_data['split']!r}",
        ]
        if self.normalization:
            nm = self.normalization
            detail = {"zca": lambda: f"ZCA whitening, eps {nm['eps']:g}, fitted on {nm['fitted_on']}",
                      "preset": lambda: f"preset {nm['name']!r} mean {nm['mean']} std {nm['std']} ({nm['from']})"}
            lines.append("trained and tested in: " + detail.get(nm.get("kind"), lambda: f"{nm.get('kind')} mean "
                         f"{nm.get('mean')} std {nm.get('std')}")() + f"; labels {self.labels_kind}"
                         + (f"; lr {self.eval_lr['lr']:g} ({self.eval_lr['from']})" if self.eval_lr else ""))
        for m, per in self.scores.items():
            lines.append(f"{m}: DD-Ranking ARS " + "; ".join(
                f"vs random real {name.replace('_', ' ')} ({v['random_images_per_class']}/class) {v['ars']:.4f}"
                for name, v in per.items()))
        b = self.baseline
        if b.get("images_per_class"):
            lines.append(f"random real baseline: {b['images_per_class']} images/class of the train split "
                         f"({b['storage_bytes']:,} bytes at {b['itemsize']} byte(s)/value), same protocol and seeds")
        else:
            lines.append(f"random real baseline: none ({b.get('reason', 'disabled')})")
        for m, rec in self.evaluations.items():
            line = f"{m}: {rec['accuracy_mean']:.2f} +- {rec['accuracy_std']:.2f} % ({rec['runs']} runs x {rec['epochs']} epochs)"
            rel = self.relative.get(m)
            if rel:
                line += (f"; random real at the same storage {rel['random']:.2f} %, improvement "
                         f"{rel['improvement_pp']:+.2f} points")
            lines.append(line)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# reading


def _torch_load(path: Path) -> Any:
    from .published.layouts import safe_load

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
    from .published.soft_labels import as_soft_labels

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


def _read_pt(path: Path, labels_file: str | None) -> CondensedSet:
    from .published.layouts import check_not_haba, is_dc_experiments, read_experiments

    check_not_haba(path)
    obj = _torch_load(path)
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
        lab = _torch_load(Path(labels_file))
        if isinstance(lab, dict):
            lab = lab[_pick_key(lab, LABEL_KEYS, "label", labels_file)]
        y = lab
        layout += f" + labels from {Path(labels_file).name}"
    if x.is_complex() or x.dtype == torch.bool:
        raise DatasetError(f"{str(path)!r}: images of dtype {x.dtype} are not pixel values")
    hard, soft = _labels_tensor(y, str(path))
    return CondensedSet(images=x, labels=hard, kind="pt", layout=layout, soft=soft,
                        stored_dtype=str(x.dtype).replace("torch.", ""), itemsize=x.element_size(), notes=notes)


def _hub_file(source: str, revision: str | None) -> Path:
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


def _load_split(source: str, config_name: str | None, revision: str | None, split: str):
    import datasets

    from .data.sources import resolve_source

    path, _hub_id = resolve_source(source)
    kwargs: dict[str, Any] = {}
    if config_name:
        kwargs["name"] = config_name
    if revision and not Path(path).exists():
        kwargs["revision"] = revision
    try:
        dd = datasets.load_dataset(path, **kwargs)
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"condensed set {source!r} not found ({str(e).splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001 - datasets / hub raise many types
        raise DatasetError(f"condensed set {source!r} could not be loaded ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if split not in dd:
        raise SplitError(f"condensed set {source!r} has no split {split!r} (splits: {list(dd)}); pass split=")
    return dd[split]


def _image_candidates(features) -> list[str]:
    import datasets

    seq = tuple(t for t in (getattr(datasets, n, None) for n in ("Sequence", "List", "LargeList"))
                if isinstance(t, type)) + (list,)
    # Image / ArrayND columns, or nested lists of numbers (a tensor stored as lists)
    return [n for n, f in features.items()
            if isinstance(f, (datasets.Image, datasets.Array3D, datasets.Array2D)) or isinstance(f, seq)]


def _label_candidates(features) -> list[str]:
    import datasets

    return [n for n, f in features.items() if isinstance(f, datasets.ClassLabel)
            or (isinstance(f, datasets.Value) and f.dtype.startswith(("int", "uint")))]


def _only(cands: list[str], what: str, option: str, source: str, columns: list[str]) -> str:
    if len(cands) == 1:
        return cands[0]
    raise ColumnError(f"condensed set {source!r}: {'no' if not cands else 'several'} {what} column candidates "
                      f"{cands} among {columns}; pass {option}")


def _read_dataset(source: str, config_name: str | None, revision: str | None, split: str,
                  image_column: str | None, label_column: str | None, channels: int,
                  soft_label_column: str | None = None) -> CondensedSet:
    import datasets
    import numpy as np

    ds = _load_split(source, config_name, revision, split)
    cols = list(ds.features)
    if soft_label_column is not None and soft_label_column not in ds.features:
        raise ColumnError(f"condensed set {source!r} has no column {soft_label_column!r} (soft_label_column); "
                          f"columns: {cols}")
    img_col = image_column or _only([c for c in _image_candidates(ds.features) if c != soft_label_column], "image",
                                    "image_column / --image-column", source, cols)
    lab_col = label_column or _only(_label_candidates(ds.features), "label", "label_column / --label-column",
                                    source, cols)
    for c, opt in ((img_col, "image_column"), (lab_col, "label_column")):
        if c not in ds.features:
            raise ColumnError(f"condensed set {source!r} has no column {c!r} ({opt}); columns: {cols}")
    feat = ds.features[img_col]
    if isinstance(feat, datasets.Image):
        mode = "L" if channels == 1 else "RGB"
        arrs = [np.asarray(im.convert(mode)) for im in ds.with_format(None)[img_col]]
        x = torch.from_numpy(np.stack(arrs))  # (N, H, W) or (N, H, W, C) uint8
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
        layout, dtype, itemsize = f"columns {img_col!r} (Image, decoded as {mode}) / {lab_col!r}", "uint8 (Image)", 1
    else:
        x = torch.as_tensor(np.asarray(ds.with_format("numpy")[img_col]))
        if x.dtype == torch.float64 and getattr(feat, "dtype", "") != "float64":
            x = x.float()
        layout = f"columns {img_col!r} ({type(feat).__name__} {getattr(feat, 'dtype', '')}) / {lab_col!r}"
        dtype, itemsize = str(x.dtype).replace("torch.", ""), x.element_size()
        if isinstance(feat, datasets.Array3D) and feat.dtype:
            dtype = feat.dtype
            itemsize = np.dtype(feat.dtype).itemsize
    lab_feat = ds.features[lab_col]
    names = list(lab_feat.names) if isinstance(lab_feat, datasets.ClassLabel) else None
    y = torch.as_tensor(np.asarray(ds.with_format(None)[lab_col], dtype=np.int64))
    soft = None
    if soft_label_column is not None:
        from .published.soft_labels import as_soft_labels

        v = torch.as_tensor(np.asarray(ds.with_format("numpy")[soft_label_column]))
        if v.dim() != 2 or not v.is_floating_point() or not bool(torch.isfinite(v).all()):
            raise ColumnError(f"condensed set {source!r}: soft-label column {soft_label_column!r} must hold one finite "
                              f"float vector per row (N, K), got {tuple(v.shape)} {v.dtype}")
        soft = as_soft_labels(v)
        layout += f" + soft labels {soft_label_column!r} ({soft.kind})"
    return CondensedSet(images=x, labels=y, kind="dataset", layout=layout, stored_dtype=dtype, itemsize=itemsize,
                        class_names=names, soft=soft)


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
        p = _hub_file(str(source), revision)
    if p.is_file():
        if p.suffix not in (".pt", ".pth", ".bin", ".tar") and not str(source).endswith(".pt"):
            raise ConfigError(f"{source!r} is a file but not a .pt/.pth torch file; give a .pt file or a dataset folder")
        cs = _read_pt(p, labels_file)
    elif str(source).endswith((".pt", ".pth")):
        raise DatasetNotFoundError(f"condensed set file {source!r} not found (cwd: {Path.cwd()})")
    else:
        cs = _read_dataset(str(source), config_name, revision, split, image_column, label_column,
                           data.image_shape[0], soft_label_column)
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


# ---------------------------------------------------------------------------------------------
# normalisation


def infer_normalization(x: torch.Tensor) -> tuple[str, str]:
    """(mode, reason) from the stored values: see the module docstring."""
    if x.dtype == torch.uint8:
        return "uint8", "uint8 values"
    xf = x.detach().float()
    lo, hi, mean = float(xf.min()), float(xf.max()), float(xf.mean())
    rng = f"values in [{lo:.3g}, {hi:.3g}], mean {mean:.3g}"
    if lo >= 0.0 and hi <= 1.0:
        return "zero-one", f"inferred from {rng}"
    if lo >= 0.0 and hi <= 255.0 and hi > 1.5 and bool((xf == xf.round()).all()):
        return "uint8", f"inferred from {rng} (integer-valued)"
    from .published.zca import looks_whitened

    whitened, st = looks_whitened(xf)
    stats = f"per-channel std {st['channel_std']:.3g}, neighbouring-pixel correlation {st['neighbour_corr']:.3g}"
    if whitened:
        return "zca", (f"inferred from {rng}, {stats}: ZCA-whitened statistics (a set normalised per channel has std "
                       f"near 1 and correlation above 0.8); pass input_normalization to override")
    return "source", f"inferred from {rng}, {stats}"


def to_source_normalization(x: torch.Tensor, mode: str, mean: torch.Tensor, std: torch.Tensor,
                            set_mean: Sequence[float] | None = None,
                            set_std: Sequence[float] | None = None) -> torch.Tensor:
    """Stored values ``x`` (N, C, H, W) -> float32 normalised with the source's ``mean``/``std``."""
    xf = x.detach().float()
    m, s = mean.view(1, -1, 1, 1).float(), std.view(1, -1, 1, 1).float()
    if mode == "uint8":
        return (xf / 255.0 - m) / s
    if mode == "zero-one":
        return (xf - m) / s
    if mode == "source":
        if set_mean is None and set_std is None:
            return xf
        sm = torch.tensor(set_mean if set_mean is not None else mean.tolist()).view(1, -1, 1, 1).float()
        ss = torch.tensor(set_std if set_std is not None else std.tolist()).view(1, -1, 1, 1).float()
        return (xf * ss + sm - m) / s  # undo the set's normalisation, apply the source's
    raise ConfigError(f"input_normalization must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}")


# ---------------------------------------------------------------------------------------------
# evaluation


def _random_real(train: LabeledImages, k: int, num_classes: int, seed: int) -> LabeledImages:
    g = generator(seed, "foreign-random-real")
    keep = []
    for c in range(num_classes):
        rows = torch.nonzero(train.labels == c).flatten()
        keep.append(rows[torch.randperm(len(rows), generator=g)[:k]])
    return train.subset(torch.cat(keep))


def _first_per_class(labels: torch.Tensor, k: int, num_classes: int) -> torch.Tensor:
    keep = [torch.nonzero(labels == c).flatten()[:k] for c in range(num_classes)]
    return torch.cat(keep).sort().values


def _resolve_lr(source: str, eval_lr: float | None, lr_file: str | None) -> tuple[float | None, str | None]:
    """(lr, where it came from): ``eval_lr``, else ``lr_file``, else an ``lr_best.pt`` beside an MTT-style
    ``images_best.pt`` (MTT, DATM and their descendants learn the evaluation lr and save it there)."""
    import math

    from .published.layouts import safe_load

    if eval_lr is not None:
        if not (isinstance(eval_lr, (int, float)) and math.isfinite(eval_lr) and eval_lr > 0):
            raise ConfigError(f"eval_lr must be a positive number, got {eval_lr!r}")
        return float(eval_lr), "given"
    p = Path(lr_file) if lr_file else None
    if p is None:
        sib = Path(str(source)).expanduser().with_name("lr_best.pt")
        if Path(str(source)).name == "images_best.pt" and sib.is_file():
            p = sib
    if p is None:
        return None, None
    if not p.is_file():
        raise DatasetNotFoundError(f"lr file {str(p)!r} not found")
    v = safe_load(p)
    try:
        lr = float(v.detach().reshape(-1)[0]) if isinstance(v, torch.Tensor) and v.numel() == 1 else float(v)
    except (TypeError, ValueError, AttributeError):
        raise DatasetError(f"{str(p)!r} should hold one learned lr (a scalar), got {type(v).__name__}") from None
    if not (math.isfinite(lr) and lr > 0):
        raise DatasetError(f"{str(p)!r}: the learned lr {lr} is not a positive number")
    return lr, f"learned, read from {p.name}" + ("" if lr_file else " beside images_best.pt")


def _decode_factor(cs: CondensedSet, source: str, factor: int | None) -> str | None:
    """Decode IDC mosaics in place when ``factor`` > 1; return a note (also the plain statement that a file
    that looks like IDC's ``data.pt`` was read undecoded)."""
    from .published.layouts import idc_decode

    looks_idc = (Path(str(source)).name == "data.pt" and cs.layout.startswith("list (images, labels)")
                 and cs.images.is_floating_point() and float(cs.images.min()) >= -0.05
                 and float(cs.images.max()) <= 1.05)
    if factor is None or factor == 1:
        if looks_idc and factor is None:
            return ("this looks like IDC's data.pt ([images in [0, 1], targets]); IDC's runs store factor x factor "
                    "mosaics (factor 2 for CIFAR, SVHN, MNIST): it was evaluated as stored, one image per entry; "
                    "pass factor=2 (--factor 2) to decode it as IDC does")
        return None
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"factor must be a positive integer, got {factor!r}")
    n, _, h, w = cs.images.shape
    if factor > min(h, w):
        raise ConfigError(f"factor {factor} is larger than the {h}x{w} images")
    x = cs.images.float()
    if h % factor and cs.images.dtype != torch.uint8 and not (float(x.min()) >= 0.0 and float(x.max()) <= 1.0):
        raise ConfigError(f"decoding {h}x{w} images with factor {factor} pads them with IDC's mid-grey 0.5, which "
                          f"needs pixels in [0, 1]; these are in [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    u8 = cs.images.dtype == torch.uint8
    cs.images, labels = idc_decode(x / 255.0 if u8 else x, cs.labels, factor)
    if u8:  # keep the stored kind, so the normalisation reads it as it would the stored images
        cs.images = (cs.images * 255.0).round().clamp(0, 255).to(torch.uint8)
    cs.labels = labels
    if cs.soft is not None:
        cs.soft.values = cs.soft.values.repeat(factor * factor, 1)
    return (f"decoded {n} stored images into {len(cs.labels)} with factor {factor} as IDC's decode_zoom does "
            f"(tiles of each stored image upsampled bilinearly to {h}x{w}); storage counts the {n} stored images")


def _input_space(mode: str, cs_images: torch.Tensor, data: ImageClassificationData, zca_eps: float,
                 max_per_class: int | None, notes: list[str]):
    """(images in the evaluation space, the space) for a normalisation mode."""
    from .published.normalization import NORMALIZATION_PRESETS, InputSpace, mean_std_space, preset_space
    from .published.zca import fit_zca

    if mode == "zca":
        if cs_images.dtype == torch.uint8:
            raise ConfigError("uint8 images cannot be ZCA-whitened values; read them as 'uint8'")
        zca = fit_zca(data.train.images, zca_eps)
        if max_per_class is not None:
            notes.append(f"ZCA fitted on {zca.rows} train images (max_per_class={max_per_class}); the code bases fit "
                         f"it on the whole train split")
        return cs_images.float(), InputSpace(
            name="zca", real=zca.from_uint8,
            describe={"kind": "zca", "eps": zca.eps, "fitted_on": f"{zca.rows} real train images of "
                      f"{data.info.dataset!r} as [0, 1] pixels", "method": "kornia ZCAWhitening's transform "
                      "(per-feature mean, unbiased covariance, U diag((S + eps)^-1/2) U^T), as MTT's --zca"})
    if mode in NORMALIZATION_PRESETS:
        if cs_images.dtype == torch.uint8:
            raise ConfigError(f"uint8 images cannot be values normalised with preset {mode!r}; read them as 'uint8'")
        return cs_images.float(), preset_space(mode, int(data.image_shape[0]))
    return None, mean_std_space("source", data.mean, data.std,
                                {"kind": "source statistics", "mean": [round(float(v), 4) for v in data.mean],
                                 "std": [round(float(v), 4) for v in data.std],
                                 "measured_on": f"{len(data.train)} real train images of {data.info.dataset!r}"})


def _ars_scores(x, targets, criterion, test, space, data, ec, records, base, seed, device, progress,
                notes, wrap=None, base_kw=None) -> dict[str, Any]:
    """DD-Ranking's ARS per model against the same-bytes baseline (its augmented accuracies already in
    ``base``) and against random real images as many per class as the set decodes to."""
    from .published.evaluation import evaluate_in_space
    from .published.scores import augmentation_robust_score

    if not base.get("enabled"):
        raise ConfigError("ars needs the random real baseline (baseline=True / no --no-baseline)")
    noaug = EvalConfig(**{**asdict(ec), "eval_dsa": False})
    base_kw = base_kw or {}
    syn_na = evaluate_in_space(x, targets, test, space, data.num_classes, noaug, seed=seed, device=device,
                               criterion=criterion, progress=progress, wrap=wrap)
    per_class = max(1, math.ceil(len(x) / data.num_classes))
    available = int(torch.bincount(data.train.labels, minlength=data.num_classes).min())
    runs: dict[str, tuple[int, dict | None]] = {}
    if base.get("images_per_class"):
        runs["same_bytes"] = (base["images_per_class"], base["evaluations"])
    runs["same_count"] = (min(per_class, available), None)
    out: dict[str, Any] = {m: {} for m in records}
    for name, (k, aug_recs) in runs.items():
        real = _random_real(data.train, k, data.num_classes, seed)
        xr = space.real(real.images)
        if aug_recs is None:
            aug_recs = {m: r.to_dict() for m, r in evaluate_in_space(
                xr, real.labels, test, space, data.num_classes, ec, seed=seed, device=device,
                progress=progress, **base_kw).items()}
        na = evaluate_in_space(xr, real.labels, test, space, data.num_classes, noaug, seed=seed, device=device,
                               progress=progress, **base_kw)
        for m, r in records.items():
            acc = {"syn_aug": r.accuracy_mean / 100, "random_aug": aug_recs[m]["accuracy_mean"] / 100,
                   "syn_noaug": syn_na[m].accuracy_mean / 100, "random_noaug": na[m].accuracy_mean / 100}
            sc = augmentation_robust_score(acc["syn_aug"], acc["random_aug"], acc["syn_noaug"], acc["random_noaug"])
            out[m][name] = {"random_images_per_class": k, **{a: round(v, 5) for a, v in acc.items()},
                            "beta": round(sc["beta"], 5), "ars": round(sc["ars"], 5)}
    notes.append("ARS: DD-Ranking's Augmentation-Robust Score, lambda 0.5, from mean last-epoch accuracies with and "
                 "without DSA (same lr, schedule and seeds); random baselines train on hard labels unless a teacher relabels "
                 "them")
    return out


def evaluate_condensed_set(
    source: str,
    dataset: str | ImageClassificationData,
    *,
    models: Sequence[str] | None = None,
    runs: int | None = None,
    epochs: int | None = None,
    eval_config: EvalConfig | None = None,
    split: str = "train",
    config_name: str | None = None,
    revision: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    labels: str = "auto",
    labels_file: str | None = None,
    input_normalization: str = "auto",
    set_mean: Sequence[float] | None = None,
    set_std: Sequence[float] | None = None,
    storage_bytes: int | None = None,
    real_itemsize: int | None = None,
    baseline: bool = True,
    max_per_class: int | None = None,
    eval_max_per_class: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    zca_eps: float = 0.1,
    factor: int | None = None,
    soft_loss: str = "sce",
    temperature: float = 1.0,
    eval_lr: float | None = None,
    lr_file: str | None = None,
    ars: bool = False,
    soft_label_column: str | None = None,
    teacher: str | None = None,
    teacher_model: str = "convnet",
) -> ForeignEvalReport:
    """Evaluate a condensed set made by anyone against ``dataset``'s real test split.

    Args:
        source: ``.pt`` file, local dataset folder, or Hub dataset repo id (see the module docstring
            for the layouts read).
        dataset: the real dataset the set was condensed from (Hub id / folder, or loaded data): its
            classes, image size and train-split statistics define the normalisation, its test split
            is tested on, and its train split gives the random real baseline.
        models / runs / epochs / eval_config: the protocol (``EvalConfig``; defaults: ConvNet-3,
            5 runs x 1000 epochs).
        split / config_name / revision / image_column / label_column: how to read a dataset source.
        labels: ``auto`` | ``by-id`` | ``by-name``. labels_file: labels of an image-only ``.pt``.
        input_normalization: ``auto`` | ``source`` | ``zero-one`` | ``uint8`` | ``zca`` | a preset name
            (``published.normalization.NORMALIZATION_PRESETS``: ``dc-cifar10``, ``mtt-cifar100``, ...);
            ``set_mean`` / ``set_std``: the statistics a ``source``-normalised file used, when not the
            dataset's. zca_eps: the ZCA regularisation (MTT's 0.1).
        factor: IDC multi-formation factor of the stored images (decoded as IDC decodes; storage counts
            the stored images).
        soft_loss / temperature: how soft labels (N, K) train (``sce`` or ``kl``). soft_label_column: a
            dataset source's column of soft labels (one float vector per row, in its ClassLabel's order).
        eval_lr / lr_file: the evaluation lr, given or read from a file (MTT's ``lr_best.pt``; found
            beside an ``images_best.pt`` source when neither is given).
        ars: also train the set and two random real baselines (same bytes; DD-Ranking's same image
            count per class) without augmentation, and report DD-Ranking's Augmentation-Robust Score
            against each (``published/scores.py``; costs three more trainings per baseline and model).
        teacher / teacher_model: a state-dict ``.pt`` of an evaluation model trained on the source in the
            set's input space; it relabels every augmented batch of the set and of the random baseline
            (SRe2L / RDED style), trained with ``soft_loss`` at ``temperature``.
        storage_bytes: override the computed storage (e.g. a factorised set). real_itemsize: bytes
            per value of the baseline's real images (default: the set's element size).
        baseline: also evaluate random real images at the same storage (the relative score).
        max_per_class: read only this many real train images per class (statistics, baseline).
        eval_max_per_class: test on the first k test images per class.

    Returns:
        A :class:`ForeignEvalReport` (``to_dict()``, ``summary()``).
    """
    from .data.hub import load_image_classification
    from .published.evaluation import evaluate_in_space
    from .published.normalization import NORMALIZATION_PRESETS
    from .published.soft_labels import SOFT_LOSSES, soft_criterion

    # options that need no data, checked before anything is read or fitted
    if ars and not baseline:
        raise ConfigError("ars needs the random real baseline (baseline=True / no --no-baseline)")
    valid = NORMALIZATIONS + tuple(NORMALIZATION_PRESETS)
    if input_normalization not in valid:
        raise ConfigError(f"input_normalization must be one of {', '.join(valid)}, got {input_normalization!r}")
    SOFT_LOSSES.get(soft_loss)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ConfigError(f"the soft-label temperature must be positive, got {temperature!r}")
    data = dataset if isinstance(dataset, ImageClassificationData) else \
        load_image_classification(dataset, max_per_class=max_per_class)
    dataset_name = data.info.dataset
    if data.test is None or len(data.test) == 0:
        raise SplitError(f"{dataset_name!r} has no test split to evaluate on")
    cs, matching = load_condensed_set(source, data, split=split, config_name=config_name, revision=revision,
                                      image_column=image_column, label_column=label_column, labels=labels,
                                      labels_file=labels_file, soft_label_column=soft_label_column)
    if teacher is not None and cs.soft is not None:
        raise ConfigError("the set carries soft labels and a teacher was given: use one or the other")
    c, h, w = data.image_shape
    stored_bytes = int(cs.images.numel()) * cs.itemsize  # before any decoding: what the file stores
    notes = list(cs.notes)
    decoded = _decode_factor(cs, str(source), factor)
    if decoded:
        notes.append(decoded)
    if input_normalization == "auto":
        mode, reason = infer_normalization(cs.images)
    else:
        mode, reason = input_normalization, "given"
    if (set_mean is not None or set_std is not None) and mode != "source":
        raise ConfigError(f"set_mean/set_std describe a 'source'-normalised file, but the values are read as {mode!r}")
    x, space = _input_space(mode, cs.images, data, zca_eps, max_per_class, notes)
    if mode == "source" and input_normalization == "auto" and set_mean is None and set_std is None:
        fits = [n for n in NORMALIZATION_PRESETS if NORMALIZATION_PRESETS.get(n).channels == c]
        notes.append(f"the values were read as normalised with {data.info.dataset!r}'s train statistics; sets saved by "
                     f"the DC/DSA/DM, MTT and IDC code bases use fixed constants instead: pass "
                     f"input_normalization=<preset> (--input-normalization; for {c} channel(s): {', '.join(fits)})")
    if x is None:
        x = to_source_normalization(cs.images, mode, data.mean, data.std, set_mean, set_std)  # (N, C, H, W) float32
    if not bool(torch.isfinite(x).all()):
        raise DatasetError(f"{source!r}: the images contain NaN or Inf")

    lr, lr_from = _resolve_lr(str(source), eval_lr, lr_file)
    ec = eval_config or EvalConfig()
    overrides = {k: v for k, v in {"eval_models": list(models) if models else None, "eval_runs": runs,
                                   "eval_epochs": epochs, "eval_lr": lr}.items() if v is not None}
    ec = EvalConfig(**{**asdict(ec), **overrides})
    if lr_from:
        notes.append(f"evaluation lr {lr:g} ({lr_from}); the random real baseline trains with the same lr")
    test = data.test
    if eval_max_per_class is not None:
        test = test.subset(_first_per_class(test.labels, eval_max_per_class, data.num_classes))
    counts = torch.bincount(cs.labels, minlength=data.num_classes)
    criterion, targets, label_bytes, labels_kind = None, cs.labels, 0, "hard"
    if cs.soft is not None:
        criterion = soft_criterion(soft_loss, temperature)
        targets = cs.soft.log_targets(temperature)  # (N, K)
        label_bytes = cs.soft.nbytes
        labels_kind = f"soft ({cs.soft.kind}; loss {soft_loss}, temperature {temperature:g})"
        notes.append(f"storage_bytes counts the soft labels: {label_bytes:,} bytes ({tuple(cs.soft.values.shape)} "
                     f"{str(cs.soft.values.dtype).replace('torch.', '')}); the random real baseline trains on its "
                     f"hard labels with cross-entropy (no teacher relabels it)")
    elif teacher is None:
        notes.append("labels are not counted in storage_bytes")
    wrap, base_kw = None, {}
    if teacher is not None:
        from .published.teacher import TeacherLabelled, load_teacher, teacher_criterion

        tnet = load_teacher(teacher, teacher_model, data.num_classes, (c, h, w), device)
        criterion = teacher_criterion(soft_loss, temperature)
        wrap = lambda net: TeacherLabelled(net, tnet)  # noqa: E731
        base_kw = {"criterion": criterion, "wrap": wrap}
        labels_kind = (f"teacher {teacher_model} ({Path(teacher).name}) relabels each augmented batch; loss {soft_loss}, "
                       f"temperature {temperature:g}")
        notes.append(f"teacher relabelling: the teacher must have been trained on {data.info.dataset!r} in this input "
                     f"space ({space.name}); the random baseline is relabelled by the same teacher with the same loss; "
                     f"storage_bytes counts the images only (the teacher is not priced)")
    nbytes = int(storage_bytes) if storage_bytes is not None else stored_bytes + label_bytes

    records = evaluate_in_space(x, targets, test, space, data.num_classes, ec, seed=seed, device=device,
                                criterion=criterion, progress=progress, wrap=wrap)
    base_loss = "cross-entropy" if teacher is None else f"teacher {soft_loss} (T={temperature:g})"
    for r in records.values():
        r.protocol = {**r.protocol, "input": space.name, "loss": base_loss if cs.soft is None
                      else f"{soft_loss} (T={temperature:g})"}
    base: dict[str, Any] = {"enabled": bool(baseline)}
    relative: dict[str, dict] = {}
    if baseline:
        itemsize = int(real_itemsize or cs.itemsize)
        k = nbytes // (data.num_classes * c * h * w * itemsize)
        available = int(torch.bincount(data.train.labels, minlength=data.num_classes).min())
        base.update({"itemsize": itemsize, "seed": seed})
        if k < 1:
            base["reason"] = (f"{nbytes:,} bytes hold less than one real image per class "
                              f"({data.num_classes} x {c * h * w * itemsize:,} bytes)")
        else:
            if k > available:
                notes.append(f"the storage fits {k} real images per class but the train split read has {available}; "
                             f"the baseline uses {available}")
                k = available
            real = _random_real(data.train, k, data.num_classes, seed)
            base_records = evaluate_in_space(space.real(real.images), real.labels, test, space, data.num_classes, ec,
                                             seed=seed, device=device, progress=progress, **base_kw)
            for r in base_records.values():
                r.protocol = {**r.protocol, "input": space.name, "loss": base_loss}
            base.update({"images_per_class": k, "storage_bytes": k * data.num_classes * c * h * w * itemsize,
                         "evaluations": {m: r.to_dict() for m, r in base_records.items()}})
            for m, r in records.items():
                rb = base_records[m]
                relative[m] = {"set": round(r.accuracy_mean, 3), "random": round(rb.accuracy_mean, 3),
                               "improvement_pp": round(r.accuracy_mean - rb.accuracy_mean, 3),
                               "ratio": round(r.accuracy_mean / rb.accuracy_mean, 4) if rb.accuracy_mean else None}
    scores: dict[str, Any] = {}
    if ars:
        scores = _ars_scores(x, targets, criterion, test, space, data, ec, records, base, seed, device, progress,
                             notes, wrap, base_kw)
    names = data.info.class_names
    return ForeignEvalReport(
        source=str(source), dataset=dataset_name, kind=cs.kind, layout=cs.layout, num_images=len(cs.labels),
        images_per_class={names[i]: int(n) for i, n in enumerate(counts.tolist())},
        image_shape=[c, h, w], stored_dtype=cs.stored_dtype, storage_bytes=nbytes,
        input_normalization=mode, normalization_reason=reason, label_matching=matching,
        evaluations={m: r.to_dict() for m, r in records.items()}, baseline=base, relative=relative,
        test_data={"dataset": dataset_name, "split": data.info.eval_split, "rows": len(test),
                   "max_per_class": eval_max_per_class},
        notes=notes, normalization=space.describe, labels_kind=labels_kind, label_bytes=label_bytes,
        eval_lr={"lr": ec.eval_lr, "from": lr_from or "protocol default"}, scores=scores,
    )
