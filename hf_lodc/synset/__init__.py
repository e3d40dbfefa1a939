"""Synthetic sets: the parameterisation contract (``base``) and one module per parameterisation.

Importing the package imports every module in it, so each parameterisation registers itself in
``PARAMETERISATIONS``: adding one is one new file (plus its row in ``methods.py``).
"""

from ..registry import import_submodules
from .base import PARAMETERISATIONS, ExportColumn, SyntheticSet

import_submodules(__name__, __path__)  # each parameterisation module registers itself: a new one is one file

__all__ = ["PARAMETERISATIONS", "ExportColumn", "SyntheticSet"]
