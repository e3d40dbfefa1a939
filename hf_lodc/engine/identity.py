"""Run identity: the settings that change what a condensation computes, defined once.

Whoever asks "may I continue from this state?" compares identities: the checkpoint loader
(``checkpoint.py``, ``--resume``), continuing a finished set (``api.py``) and reusing a task memory
(``continual/memory.py``). Two runs with equal identities draw the same randomness and do the same
steps, so iteration i of one continues the other bit for bit.

In the identity:

* the dataset: a content fingerprint of the real train images and labels the run condenses from
  (so another dataset of the same shape, another ``max_per_class``, another holdout or a changed
  local folder differ even under the same path), plus where it came from (Hub id, config,
  revision sha, train split), its class names, image shape, train size and normalisation;
* the classes condensed (global ids);
* every ``CondenseConfig`` field (method, ipc, rank, images_per_class, init, lr, momentum,
  batch_real, seed, dsa_strategy, matching_model, mixed_precision, ...) and each of the method's
  objective options, flat, except those in ``NOT_IDENTITY``. Identities recorded before a config
  held only its method's options list every objective's; those of other objectives computed nothing
  in the run, so comparisons leave them out (``condense_options.flat_condense_record``) and an old
  identity equals the new one of the same run.

Not in it (``NOT_IDENTITY``): ``iterations`` (a larger count continues the run; a smaller one
than already done is refused by the loader, with its own message), ``log_every`` and
``checkpoint_every`` (bookkeeping), ``contrast`` (applied to the finished set only, after the
loop), ``syn_chunk`` (distribution matching's synthetic pass in groups of classes: the same bits, and
chosen from the free memory when unset) and everything about evaluation. The local path the data was read from is not compared:
the fingerprint already says whether the content is the same, and a moved folder may resume.

Left out at their default (``OMIT_AT_DEFAULT``): options added after identities were first recorded
whose default computes exactly what the code did before them (``compile``, off: the eager passes;
``tf32`` and ``channels_last``, off: float32 contiguous passes, None, not chosen, meaning off;
``classes_per_iteration``, None: every class every iteration; ``fused_stem``, off: the module's
first block in the real pass). At
the default the identity is the one earlier versions recorded, so their checkpoints, finished sets and
task memories still match; any other value is in the identity and differs from those.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any, Mapping

import torch

from ..data.types import ImageClassificationData
from ..errors import ConfigError
from .condense_options import flat_condense_record

__all__ = ["NOT_IDENTITY", "OMIT_AT_DEFAULT", "FINISHED_SET_KEYS", "run_identity", "finished_identity", "identity_diff",
           "check_identity", "dataset_fingerprint"]

NOT_IDENTITY = frozenset({"iterations", "log_every", "checkpoint_every", "contrast", "syn_chunk"})
OMIT_AT_DEFAULT: dict[str, Any] = {"compile": False, "tf32": False, "channels_last": False,
                                   "classes_per_iteration": None, "fused_stem": False}
# A FINISHED set (reused instead of condensed again, e.g. a continual task memory) is also defined by
# how many iterations it ran and the contrast applied after them.
FINISHED_SET_KEYS = ("iterations", "contrast")
_MISSING = "<not recorded>"


def _tensor_digest(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.numpy() if t.numel() else b"")  # the buffer itself: a memory-mapped set is read, never copied


def dataset_fingerprint(data: ImageClassificationData) -> str:
    """A digest of the train images and labels (blake2b, 16 hex digits); one pass over the uint8 bytes,
    cheap next to any condensation, so every resume can afford it."""
    h = hashlib.blake2b(digest_size=8)
    _tensor_digest(h, data.train.images)
    _tensor_digest(h, data.train.labels)
    return h.hexdigest()


def run_identity(cfg: Any, data: ImageClassificationData | None = None, classes: torch.Tensor | None = None,
                 *, fingerprint: str | None = None) -> dict[str, Any]:
    """The identity of condensing ``data`` (its ``classes``, default all) with the RESOLVED ``cfg``.

    Returns a flat JSON-able mapping (``dataset.*`` keys, ``classes`` and the config keys).
    ``fingerprint`` skips hashing when the caller already has it (e.g. from an artefact).
    """
    out: dict[str, Any] = {}
    if data is not None:
        info = data.info
        out.update({
            "dataset.fingerprint": fingerprint or dataset_fingerprint(data),
            "dataset.hub_id": info.hub_id,
            "dataset.config_name": info.config_name,
            "dataset.revision_sha": info.revision_sha,
            "dataset.train_split": info.train_split,
            "dataset.class_names": list(info.class_names),
            "dataset.image_shape": list(info.image_shape),
            "dataset.num_train": len(data.train),
            "dataset.mean": [round(float(v), 6) for v in info.mean],
            "dataset.std": [round(float(v), 6) for v in info.std],
        })
        if classes is None:
            classes = torch.arange(data.num_classes)
    if classes is not None:
        out["classes"] = [int(c) for c in torch.as_tensor(classes).tolist()]
    values = _flat_values(cfg)
    out.update({k: v for k, v in values.items()
                if k not in NOT_IDENTITY and not (k in OMIT_AT_DEFAULT and v in (None, OMIT_AT_DEFAULT[k]))})
    return json.loads(json.dumps(out))  # plain JSON values (tuples -> lists), comparable after a round trip


def finished_identity(cfg: Any, data: ImageClassificationData | None = None, classes: torch.Tensor | None = None,
                      *, fingerprint: str | None = None) -> dict[str, Any]:
    """:func:`run_identity` plus ``FINISHED_SET_KEYS``: equal for two finished sets that are the same set."""
    out = run_identity(cfg, data, classes, fingerprint=fingerprint)
    values = _flat_values(cfg)
    out.update(json.loads(json.dumps({k: values[k] for k in FINISHED_SET_KEYS if k in values})))
    return out


def _flat_values(cfg: Any) -> dict[str, Any]:
    """A config (``CondenseConfig``) or a condense record / identity of any version, flat: the engine's
    fields and the method's objective options, without other objectives' (``flat_condense_record``)."""
    if isinstance(cfg, Mapping):
        return flat_condense_record(cfg)
    return cfg.to_flat() if hasattr(cfg, "to_flat") else {f.name: getattr(cfg, f.name) for f in fields(cfg)}


def identity_diff(ours: Mapping[str, Any], theirs: Mapping[str, Any], *, only_common: bool = False
                  ) -> dict[str, tuple[Any, Any]]:
    """key -> (ours, theirs) for every key whose value differs (a key one side lacks counts as
    different unless ``only_common``, for states recorded before a key existed)."""
    # identities recorded before the options were the method's own hold every objective's: compare the method's
    ours, theirs = flat_condense_record(ours), flat_condense_record(theirs)
    keys = (set(ours) & set(theirs)) if only_common else (set(ours) | set(theirs))
    diff = {}
    for k in sorted(keys):
        a, b = ours.get(k, _MISSING), theirs.get(k, _MISSING)
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            diff[k] = (a, b)
    return diff


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_identity(ours: Mapping[str, Any], theirs: Mapping[str, Any], what: str, fix: str, *,
                   only_common: bool = False) -> None:
    """Raise one ``ConfigError`` listing every differing key of ``what`` with both values."""
    diff = identity_diff(ours, theirs, only_common=only_common)
    if diff:
        theirs_ = ", ".join(f"{k}={_short(b)}" for k, (a, b) in diff.items())
        ours_ = ", ".join(f"{k}={_short(a)}" for k, (a, b) in diff.items())
        raise ConfigError(f"{what} was made with {theirs_}, this run has {ours_}; {fix}")
