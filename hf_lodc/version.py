"""The package version, in a module of its own so that code recording it (artefacts, cards) does not
import the package's ``__init__``, which imports everything above it."""

__version__ = "0.1.0"
