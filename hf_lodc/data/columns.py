"""Which column holds the image, which the label, and how labels become class ids 0..K-1.

* Image column: the one ``datasets.Image`` feature (or the one named by ``image_column``; a named
  binary or string column is cast to ``Image``, so encoded bytes or file paths work too).
* Label column: the one ``ClassLabel`` feature (or the one named by ``label_column``, or a column
  with a usual label name). Int and string labels are accepted: the class list is their sorted
  unique values, and a warning says so. Float, bool and nested labels are refused. Missing labels
  (null, ClassLabel's -1, a negative int) become -1 and the loader drops those rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from ..errors import ColumnError

__all__ = ["detect_columns", "LabelVocabulary", "label_vocabulary", "LABEL_NAME_HINTS"]

LABEL_NAME_HINTS = ("label", "labels", "fine_label", "class", "target", "y")
_CASTABLE_TO_IMAGE = ("binary", "large_binary", "string", "large_string")


def _kind(feature: Any) -> str:
    import datasets

    return feature.dtype if isinstance(feature, datasets.Value) else type(feature).__name__


def _describe(features) -> str:
    """``{'img': Image, 'label': int64}`` style summary for error messages."""
    return "{" + ", ".join(f"{c!r}: {_kind(f)}" for c, f in features.items()) + "}"


def detect_columns(features, dataset: str, image_column: str | None, label_column: str | None) -> tuple[str, str]:
    """Return ``(image_column, label_column)`` or raise ``ColumnError`` naming the columns there are."""
    import datasets

    cols = _describe(features)
    if image_column is not None:
        if image_column not in features:
            raise ColumnError(f"dataset {dataset!r} has no column {image_column!r}; columns: {cols}")
        feat = features[image_column]
        castable = isinstance(feat, datasets.Value) and feat.dtype in _CASTABLE_TO_IMAGE
        if not isinstance(feat, datasets.Image) and not castable:
            raise ColumnError(
                f"dataset {dataset!r}: column {image_column!r} cannot hold images (type {_kind(feat)}); "
                "pass an Image column, or a binary / string (file path) column"
            )
    else:
        cands = [c for c, f in features.items() if isinstance(f, datasets.Image)]
        if not cands:
            raise ColumnError(
                f"dataset {dataset!r} has no image column (no datasets.Image feature); columns: {cols}. "
                "If a binary or string column holds encoded images or file paths, pass image_column=..."
            )
        if len(cands) > 1:
            raise ColumnError(
                f"dataset {dataset!r} has several image columns {cands}; choose one with image_column=..."
            )
        image_column = cands[0]

    if label_column is not None:
        if label_column not in features:
            raise ColumnError(f"dataset {dataset!r} has no column {label_column!r}; columns: {cols}")
        if label_column == image_column:
            raise ColumnError(f"dataset {dataset!r}: image_column and label_column are both {label_column!r}")
        return image_column, label_column
    cands = [c for c, f in features.items() if isinstance(f, datasets.ClassLabel)]
    if len(cands) > 1:
        raise ColumnError(
            f"dataset {dataset!r} has several label columns {cands}; choose one with label_column=..."
        )
    if not cands:
        cands = [c for c in LABEL_NAME_HINTS if c in features and c != image_column]
    if not cands:
        raise ColumnError(
            f"dataset {dataset!r} has no label column (no ClassLabel feature and none named "
            f"{list(LABEL_NAME_HINTS)}); columns: {cols}. Pass label_column=..."
        )
    return image_column, cands[0]


@dataclass
class LabelVocabulary:
    """Class names and how to turn stored label values into class ids."""

    class_names: list[str]
    value_to_id: dict[Any, int] | None  # None: the column is a ClassLabel (values are the ids)
    note: str | None = None

    def encode(self, values) -> list[int]:
        """Stored values -> class ids; missing / unknown values -> -1 (ClassLabel keeps its ids)."""
        if self.value_to_id is None:
            return [-1 if v is None else int(v) for v in values]
        return [self.value_to_id.get(v, -1) for v in values]


def label_vocabulary(features, splits: dict, dataset: str, label_column: str) -> LabelVocabulary:
    """Class list of ``label_column`` over ``splits``; refuses float / bool / nested labels."""
    import datasets

    feat = features[label_column]
    if isinstance(feat, datasets.ClassLabel):
        if not feat.names:
            raise ColumnError(f"dataset {dataset!r}: label column {label_column!r} is a ClassLabel with no names")
        return LabelVocabulary(list(feat.names), None)
    if not isinstance(feat, datasets.Value):
        raise ColumnError(
            f"dataset {dataset!r}: label column {label_column!r} has type {type(feat).__name__} "
            "(multi-label or nested?); expected one ClassLabel, int or string per row"
        )
    dtype = feat.dtype
    is_int = dtype.startswith(("int", "uint"))
    if not (is_int or dtype in ("string", "large_string")):
        raise ColumnError(
            f"dataset {dataset!r}: label column {label_column!r} holds {dtype} values; class labels must "
            "be ClassLabel, int or string (regression targets cannot be condensed per class)"
        )
    values: set = set()
    for ds in splits.values():  # None, and negative ints (the usual -1), mean "no label"
        values.update(v for v in ds.unique(label_column) if v is not None and not (is_int and v < 0))
    if not values:
        raise ColumnError(f"dataset {dataset!r}: label column {label_column!r} has no values")
    ordered = sorted(values)
    names = [str(v) for v in ordered]
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    note = (
        f"label column {label_column!r} is {dtype}, not ClassLabel: built {len(names)} classes from its "
        f"sorted unique values ({shown})"
    )
    warnings.warn(f"dataset {dataset!r}: {note}", stacklevel=3)
    return LabelVocabulary(names, {v: i for i, v in enumerate(ordered)}, note)
