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
(``torch.load(weights_only=True)``: tensors, lists, tuples and dicts only; a pickle of
any other object is refused, nothing in it is executed). Supported layouts:

* a pair ``(images, labels)`` as a tuple or list (IDC, DataDAM, ...);
* a dict with one image key and one label key (case-insensitive), e.g. ``{'images', 'labels'}``,
  ``{'x', 'y'}``, ``{'data', 'targets'}``, ``{'image_syn', 'label_syn'}``; see :data:`IMAGE_KEYS` /
  :data:`LABEL_KEYS` (other keys are ignored and listed in the notes);
* a single image tensor with the labels in a second file (``labels_file=``; MTT writes
  ``images_best.pt`` and ``labels_best.pt``).

Images are ``(N, C, H, W)`` (also ``(N, H, W, C)`` or ``(N, H, W)`` for one channel) of any real or
integer dtype; labels are integer class ids ``(N,)`` or one-hot ``(N, K)`` (soft labels need a
distillation protocol and are refused).

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
* ``auto`` (default): uint8 dtype or ``Image`` columns -> ``uint8``; values within [0, 1] ->
  ``zero-one``; values within [0, 255] with a maximum above 1.5 and integer-valued -> ``uint8``;
  anything else (negative values, a mean near 0) -> ``source``. The report states the choice and
  the value range it was made from. Sets stored after ZCA whitening cannot be undone and are not
  supported (this protocol has no ZCA).

Storage
-------
``storage_bytes`` = stored image elements x the stored element size (float32: 4, float16: 2, uint8
and ``Image`` columns: 1; labels are not counted, as in the literature's budgets). Pass
``storage_bytes=`` for sets whose stored form is smaller than the images (e.g. factorised sets).
The random real baseline holds ``floor(storage_bytes / (K x C x H x W x itemsize))`` images per
class, where ``itemsize`` is the set's element size unless ``real_itemsize`` says otherwise (``1``:
real images priced as the uint8 pixels they are).
"""

from __future__ import annotations

import pickle
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
NORMALIZATIONS = ("auto", "source", "zero-one", "uint8")
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"{self.source} ({self.layout}): {self.num_images} images {tuple(self.image_shape)}, stored as "
            f"{self.stored_dtype}: {self.storage_bytes:,} bytes; values read as {self.input_normalization!r} "
            f"({self.normalization_reason}); labels {self.label_matching}; tested on {self.test_data['rows']} "
            f"real images of {self.dataset!r} split {self.test_data['split']!r}",
        ]
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
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise DatasetError(
            f"{str(path)!r} holds Python objects other than tensors, lists, tuples and dicts, which are refused "
            f"(unpickling them could run code; {str(e).splitlines()[0][:200]}). Re-save the set as "
            f"torch.save((images, labels), path) or a dict of tensors"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise DatasetError(f"{str(path)!r} is not a readable torch file ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _pick_key(d: dict, keys: Sequence[str], what: str, path: str) -> str:
    lower = {str(k).lower(): k for k in d}
    for k in keys:
        if k in lower and isinstance(d[lower[k]], torch.Tensor):
            return lower[k]
    raise DatasetError(f"{path!r}: dict with keys {sorted(map(str, d))} has no {what} tensor under any of "
                       f"{list(keys)}; save the set as (images, labels) or rename the keys")


def _labels_tensor(y: Any, path: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    if y.dim() == 2:
        if y.is_floating_point() and not bool(((y == 0) | (y == 1)).all() and (y.sum(1) == 1).all()):
            raise DatasetError(f"{path!r}: labels are soft ({tuple(y.shape)} float, not one-hot); soft labels need a "
                               f"distillation protocol that this evaluation does not run; give hard class ids")
        y = y.argmax(1)
    if y.dim() != 1 or y.is_floating_point() and not bool((y == y.round()).all()):
        raise DatasetError(f"{path!r}: labels must be class ids of shape (N,) (or one-hot (N, K)), "
                           f"got {tuple(y.shape)} {y.dtype}")
    return y.long()


def _read_pt(path: Path, labels_file: str | None) -> CondensedSet:
    obj = _torch_load(path)
    notes: list[str] = []
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, torch.Tensor) for t in obj):
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
    return CondensedSet(images=x, labels=_labels_tensor(y, str(path)), kind="pt", layout=layout,
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

    from .data.hub import resolve_source

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
                  image_column: str | None, label_column: str | None, channels: int) -> CondensedSet:
    import datasets
    import numpy as np

    ds = _load_split(source, config_name, revision, split)
    cols = list(ds.features)
    img_col = image_column or _only(_image_candidates(ds.features), "image", "image_column / --image-column",
                                    source, cols)
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
    return CondensedSet(images=x, labels=y, kind="dataset", layout=layout, stored_dtype=dtype, itemsize=itemsize,
                        class_names=names)


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
                       labels: str = "auto", labels_file: str | None = None) -> tuple[CondensedSet, str]:
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
                           data.image_shape[0])
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
    return "source", f"inferred from {rng}"


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
        input_normalization: ``auto`` | ``source`` | ``zero-one`` | ``uint8``; ``set_mean`` /
            ``set_std``: the statistics a ``source``-normalised file used, when not the dataset's.
        storage_bytes: override the computed storage (e.g. a factorised set). real_itemsize: bytes
            per value of the baseline's real images (default: the set's element size).
        baseline: also evaluate random real images at the same storage (the relative score).
        max_per_class: read only this many real train images per class (statistics, baseline).
        eval_max_per_class: test on the first k test images per class.

    Returns:
        A :class:`ForeignEvalReport` (``to_dict()``, ``summary()``).
    """
    from .data.hub import load_image_classification

    data = dataset if isinstance(dataset, ImageClassificationData) else \
        load_image_classification(dataset, max_per_class=max_per_class)
    dataset_name = data.info.dataset
    if data.test is None or len(data.test) == 0:
        raise SplitError(f"{dataset_name!r} has no test split to evaluate on")
    cs, matching = load_condensed_set(source, data, split=split, config_name=config_name, revision=revision,
                                      image_column=image_column, label_column=label_column, labels=labels,
                                      labels_file=labels_file)
    if input_normalization not in NORMALIZATIONS:
        raise ConfigError(f"input_normalization must be one of {', '.join(NORMALIZATIONS)}, got {input_normalization!r}")
    if input_normalization == "auto":
        mode, reason = infer_normalization(cs.images)
    else:
        mode, reason = input_normalization, "given"
    if (set_mean is not None or set_std is not None) and mode != "source":
        raise ConfigError(f"set_mean/set_std describe a 'source'-normalised file, but the values are read as {mode!r}")
    x = to_source_normalization(cs.images, mode, data.mean, data.std, set_mean, set_std)  # (N, C, H, W) float32
    if not bool(torch.isfinite(x).all()):
        raise DatasetError(f"{source!r}: the images contain NaN or Inf")

    ec = eval_config or EvalConfig()
    overrides = {k: v for k, v in {"eval_models": list(models) if models else None, "eval_runs": runs,
                                   "eval_epochs": epochs}.items() if v is not None}
    ec = EvalConfig(**{**asdict(ec), **overrides})
    test = data.test
    if eval_max_per_class is not None:
        test = test.subset(_first_per_class(test.labels, eval_max_per_class, data.num_classes))
    c, h, w = data.image_shape
    nbytes = int(storage_bytes) if storage_bytes is not None else int(cs.images.numel()) * cs.itemsize
    counts = torch.bincount(cs.labels, minlength=data.num_classes)
    notes = list(cs.notes)
    notes.append("labels are not counted in storage_bytes")

    records = evaluate_synthetic(x, cs.labels, test, data.mean, data.std, data.num_classes, ec, seed=seed,
                                 device=device, progress=progress)
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
            base_records = evaluate_synthetic(normalize(real.images, data.mean, data.std), real.labels, test,
                                              data.mean, data.std, data.num_classes, ec, seed=seed, device=device,
                                              progress=progress)
            base.update({"images_per_class": k, "storage_bytes": k * data.num_classes * c * h * w * itemsize,
                         "evaluations": {m: r.to_dict() for m, r in base_records.items()}})
            for m, r in records.items():
                rb = base_records[m]
                relative[m] = {"set": round(r.accuracy_mean, 3), "random": round(rb.accuracy_mean, 3),
                               "improvement_pp": round(r.accuracy_mean - rb.accuracy_mean, 3),
                               "ratio": round(r.accuracy_mean / rb.accuracy_mean, 4) if rb.accuracy_mean else None}
    names = data.info.class_names
    return ForeignEvalReport(
        source=str(source), dataset=dataset_name, kind=cs.kind, layout=cs.layout, num_images=len(cs.labels),
        images_per_class={names[i]: int(n) for i, n in enumerate(counts.tolist())},
        image_shape=[c, h, w], stored_dtype=cs.stored_dtype, storage_bytes=nbytes,
        input_normalization=mode, normalization_reason=reason, label_matching=matching,
        evaluations={m: r.to_dict() for m, r in records.items()}, baseline=base, relative=relative,
        test_data={"dataset": dataset_name, "split": data.info.eval_split, "rows": len(test),
                   "max_per_class": eval_max_per_class},
        notes=notes,
    )
