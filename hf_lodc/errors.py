"""hf_lodc's own exceptions.

Every failure a user can cause (bad dataset, bad config, bad budget, Hub trouble) ends in one of
these, with a message that names the thing that is wrong and says what to do. Callers can catch
``HfLodcError`` to handle all of them; each subclass also derives from the builtin exception a
Python user would expect (``ValueError``, ``FileNotFoundError``, ...), so generic handlers work too.
"""

from __future__ import annotations

__all__ = [
    "HfLodcError",
    "ConfigError",
    "BudgetError",
    "DatasetError",
    "DatasetNotFoundError",
    "ColumnError",
    "SplitError",
    "ImageDecodeError",
    "ClassSizeError",
    "NonFiniteError",
    "ArtifactError",
    "HubError",
    "HubAuthError",
    "HubPushError",
    "IncompatibleArtifactError",
    "UnknownNameError",
    "MemoryBudgetError",
    "OutputDirLockedError",
    "LocalPathNotFoundError",
    "LocalHubNotFoundError",
    "CacheError",
]


class HfLodcError(Exception):
    """Base class of every error hf_lodc raises on purpose."""


class ConfigError(HfLodcError, ValueError):
    """An option, YAML key or value is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup (method, init, model, objective...) failed; the message lists valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class BudgetError(ConfigError):
    """The storage budget / rank combination cannot be honoured."""


class MemoryBudgetError(ConfigError, MemoryError):
    """The synthetic set (with its optimiser state) and the real data would not fit in memory."""


class DatasetError(HfLodcError, ValueError):
    """The source dataset cannot be used as asked."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset id / path / revision does not exist (or is not reachable)."""


class LocalPathNotFoundError(DatasetNotFoundError):
    """A dataset given as a local path (``./x``, ``/x``, ``~/x``) does not exist: a path problem, not a Hub one."""


class LocalHubNotFoundError(DatasetNotFoundError):
    """``HF_LODC_LOCAL_HUB`` names a folder that does not exist (or has no ``datasets/`` inside)."""


class ColumnError(DatasetError):
    """Image or label column missing, ambiguous or of an unusable type."""


class SplitError(DatasetError):
    """A requested split is missing."""


class ImageDecodeError(DatasetError):
    """An image could not be decoded; the message names split and row."""


class ClassSizeError(DatasetError):
    """A class has too few (or no) real images for what was asked."""


class NonFiniteError(HfLodcError, FloatingPointError):
    """Loss or synthetic data became NaN/Inf during condensation."""


class ArtifactError(HfLodcError, OSError):
    """Writing or reading a local artefact failed (permissions, disk full, missing files)."""


class OutputDirLockedError(ArtifactError):
    """Another run holds the output directory's lock; the message names its pid and command."""


class IncompatibleArtifactError(ArtifactError, ValueError):
    """A directory or Hub repo is not a condensed set this version of hf_lodc can read."""


class HubError(HfLodcError, RuntimeError):
    """A Hub operation failed; the local artefact is untouched."""


class HubAuthError(HubError, PermissionError):
    """Missing/invalid token or no write access to the repo."""


class HubPushError(HubError):
    """A push failed; the remote repo was left as it was."""


class PeerLostError(HfLodcError, RuntimeError):
    """Another process of a multi-process run died or stopped answering; this one stopped too (the
    message says where the last checkpoint is and how to resume)."""


class CacheError(HfLodcError, OSError):
    """The decoded-image cache on disk cannot be written or read back (disk full, read-only folder)."""
