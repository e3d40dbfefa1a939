"""Synthetic sets: the parameterisation contract (``base``) and one module per parameterisation.

Importing the package registers every parameterisation in ``PARAMETERISATIONS``.
"""

from . import haba as _haba  # noqa: F401  (registers "haba")
from . import lowrank as _lowrank  # noqa: F401  (registers "lowrank")
from . import multiformation as _multiformation  # noqa: F401  (registers "multiformation")
from . import pixel as _pixel  # noqa: F401  (registers "pixel")
from .base import PARAMETERISATIONS, ExportColumn, SyntheticSet

__all__ = ["PARAMETERISATIONS", "ExportColumn", "SyntheticSet"]
