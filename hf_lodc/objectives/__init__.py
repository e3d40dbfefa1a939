"""Matching objectives, looked up by name in ``OBJECTIVES`` (``dm``, ``gm``, ``tm``, ``idc``, ``haba``), each with its
options dataclass (``Objective.Options``: ``GMOptions``, ``TMOptions``; none for ``dm``)."""

from . import dm as _dm  # noqa: F401  (registers "dm")
from . import gm as _gm  # noqa: F401  (registers "gm")
from . import tm as _tm  # noqa: F401  (registers "tm")
from . import idc as _idc  # noqa: F401  (registers "idc")
from . import haba as _haba  # noqa: F401  (registers "haba")
from .base import OBJECTIVES, MatchContext, Objective, ObjectiveOptions, RealSampler, options_for
from .gm import GMOptions
from .tm import TMOptions
from .idc import IDCOptions
from .haba import HaBaOptions

__all__ = ["OBJECTIVES", "MatchContext", "Objective", "ObjectiveOptions", "RealSampler", "options_for",
           "GMOptions", "TMOptions", "IDCOptions", "HaBaOptions"]
