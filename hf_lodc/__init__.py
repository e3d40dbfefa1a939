"""hf_lodc: low-rank dataset condensation on the Hugging Face stack.

    >>> import hf_lodc
    >>> data = hf_lodc.load_image_classification("ylecun/mnist")
    >>> art = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=200)
    >>> records = hf_lodc.evaluate_synthetic(art.images(), art.labels, data.test,
    ...                                      data.mean, data.std, data.num_classes)

``condense`` is the one road from data to a condensed set: it returns the artefact (the set, its run
config, ``results["condensation"]`` with the timings), which ``hf_lodc.pipeline.evaluate`` evaluates
into its records and ``CondensedDataset`` (which delegates to both) saves and publishes.
``evaluate_synthetic`` trains fresh networks on any in-memory images (tensors in, records out).
"""

from . import models  # noqa: F401  registers the lodc_* models in timm
from .api import CondensedDataset
from .data.types import ImageClassificationData, LabeledImages, SourceInfo
from .data.hub import load_image_classification
from .engine import CondenseConfig, DataConfig, EvalConfig, EvalRecord, RunConfig, evaluate_synthetic
from .errors import *  # noqa: F401,F403
from .foreign import evaluate_condensed_set
from .leaderboard import leaderboard_rows, push_to_leaderboard
from .errors import __all__ as _errors_all
from .methods import METHODS, MethodSpec
from .run_condense import condense
from .synset.budget import Budget, plan_budget
from .synset.haba import HaBaSet
from .synset.lowrank import LowRankSet, PixelSet, SyntheticSet
from .synset.multiformation import MultiFormationSet
from .version import __version__

__all__ = [
    "CondensedDataset",
    "load_image_classification", "ImageClassificationData", "LabeledImages", "SourceInfo",
    "condense", "CondenseConfig", "DataConfig", "EvalConfig", "EvalRecord", "RunConfig",
    "evaluate_synthetic", "evaluate_condensed_set", "leaderboard_rows", "push_to_leaderboard",
    "METHODS", "MethodSpec", "Budget", "plan_budget",
    "LowRankSet", "PixelSet", "SyntheticSet", "MultiFormationSet", "HaBaSet", "__version__", *_errors_all,
]
