"""Evaluate anyone's condensed set under one protocol, with its storage accounted for.

The field publishes condensed sets as ``.pt`` blobs or as Hub datasets, each normalised its own
way, and compares methods at "IPC" without saying what a set costs. :func:`evaluate_condensed_set`
reads such a set, states how its values were interpreted, trains the evaluation networks on it with
the standard protocol (``engine/evaluate.py``: SGD, DSA, last epoch) and tests them on the real test
split of the source dataset. In the same run, with the same protocol and seeds, it trains the same
networks on **random real images of the source train split at the same storage** (as many per class
as fit the set's bytes), so the report carries the improvement over random, the number that lets
sets of different methods and sizes be compared.

One module per step, each documenting its part of the contract:

* ``load``: reading a source (``.pt`` layouts in ``pt_file``, ``datasets`` columns in
  ``dataset_source``) into a :class:`CondensedSet` with the source's class ids;
* ``conventions``: what some code bases store beside or inside their sets (MTT's learned lr, IDC's
  mosaics);
* ``input_space``: what the stored values are (``input_normalization``) and the space the networks
  train and test in;
* ``baseline``: storage, and the random real images at the same storage;
* ``ranking``: DD-Ranking's ARS and LRS against those random images;
* ``report``: :class:`ForeignEvalReport` and its summary;
* ``options``: :class:`ForeignEvalOptions`, the entry's options (keyword, flag, help and check in one field);
* ``evaluate``: :func:`evaluate_condensed_set`, the entry that runs them in order.
"""

from .condensed_set import CondensedSet
from .evaluate import evaluate_condensed_set
from .input_space import NORMALIZATIONS, infer_normalization, to_source_normalization
from .load import load_condensed_set
from .options import ForeignEvalOptions
from .pt_file import IMAGE_KEYS, LABEL_KEYS
from .report import ForeignEvalReport

__all__ = ["IMAGE_KEYS", "LABEL_KEYS", "NORMALIZATIONS", "CondensedSet", "ForeignEvalOptions", "ForeignEvalReport",
           "load_condensed_set", "infer_normalization", "to_source_normalization", "evaluate_condensed_set"]
