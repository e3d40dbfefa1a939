"""Matching objectives, looked up by name in ``OBJECTIVES`` (``dm``, ``gm``, ``tm``, ``idc``, ``haba``: every module
here is imported, so each registers itself), each with its
options dataclass (``Objective.Options``: ``GMOptions``, ``TMOptions``; none for ``dm``)."""

from ..registry import import_submodules
from .base import OBJECTIVES, MatchContext, Objective, ObjectiveOptions, RealSampler, options_for
from .gm import GMOptions
from .tm import TMOptions
from .idc import IDCOptions
from .haba import HaBaOptions

import_submodules(__name__, __path__)  # each objective module registers itself: a new one is one file

__all__ = ["OBJECTIVES", "MatchContext", "Objective", "ObjectiveOptions", "RealSampler", "options_for",
           "GMOptions", "TMOptions", "IDCOptions", "HaBaOptions"]
