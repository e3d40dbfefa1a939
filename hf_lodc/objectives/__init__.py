"""Matching objectives, looked up by name in ``OBJECTIVES`` (``dm``, ``gm``, ``tm``)."""

from . import dm as _dm  # noqa: F401  (registers "dm")
from . import gm as _gm  # noqa: F401  (registers "gm")
from . import tm as _tm  # noqa: F401  (registers "tm")
from .base import OBJECTIVES, MatchContext, Objective, RealSampler

__all__ = ["OBJECTIVES", "MatchContext", "Objective", "RealSampler"]
