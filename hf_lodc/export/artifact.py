"""The local artefact of one condensation: a directory written atomically.

Layout (format version 1)::

    synset.safetensors   the parameters (the parameterisation's state dict: A, B for low-rank; images for
                         pixel; bases + hallucinators for HaBa) + labels
    images.safetensors   reconstructed images (N, C, H, W) float32, normalised, + labels
    config.json          run config, resolved condensation config, budget, source info, versions
    results.json         evaluation records + timing + storage
    history.json         loss curve

plus, when saved with ``repo=`` (``CondensedDataset.save_to_disk``, ``recipes/condense.py --output-dir``),
the Hub repo layout of the set (``README.md`` with the ``configs:``, ``condensations/<name>/...`` and the
real test split; see ``views``), exactly the files a push commits, so ``datasets.load_dataset(dir)``
reads the directory as it reads the pushed repo.

This module is the record (``Artifact``, what ``config.json`` holds, reading it back); writing the
directory is ``save.py``, which sits above the card and the views because it also writes the repo layout.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..data.types import SourceInfo
from ..errors import ArtifactError, IncompatibleArtifactError
from ..synset.budget import Budget
from ..synset.base import PARAMETERISATIONS, SyntheticSet
from ..version import __version__

__all__ = ["Artifact", "build_artifact", "results_record",
           "load_artifact", "artifact_from_record", "FORMAT_VERSION", "environment_info"]

FORMAT_VERSION = 1
REQUIRED_FILES = ("synset.safetensors", "config.json")

# What must match to continue or reuse a set is engine/identity.py's (run_identity / finished_identity).


def environment_info() -> dict[str, Any]:
    import accelerate
    import datasets
    import huggingface_hub
    import timm

    dev = "cpu"
    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    return {
        "hf_lodc": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "python": platform.python_version(),
        "hardware": f"{dev}; {platform.processor() or platform.machine()}; {os.cpu_count()} cpus",
    }


@dataclass
class Artifact:
    synset: SyntheticSet
    source: SourceInfo
    budget: Budget
    method: str
    condense_config: dict[str, Any]
    run_config: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=environment_info)
    # the real train rows a real / SVD initialisation or a coreset picked, in the order of the set's images;
    # known in memory right after condensing (None when loaded, or when the init drew noise): not saved
    init_indices: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def mean(self) -> torch.Tensor:
        return torch.tensor(self.source.mean)

    @property
    def std(self) -> torch.Tensor:
        return torch.tensor(self.source.std)

    def images(self) -> torch.Tensor:
        with torch.no_grad():
            return self.synset().detach().float().clone()  # (N, C, H, W)

    @property
    def labels(self) -> torch.Tensor:
        return self.synset.labels.clone()

    def config_record(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "parameterisation": self.synset.kind,
            "rank": self.synset.rank,
            "param_options": {k: v for k, v in self.synset.options.items() if k != "rank"},
            "num_classes": self.synset.num_classes,
            "images_per_class": self.synset.per_class,
            "decoded_per_class": self.synset.decoded_per_class,
            "shared_numel": self.synset.numel_shared,
            "how_to_decode": self.synset.how_to_decode(),
            "image_shape": list(self.synset.image_shape),
            "budget": self.budget.to_dict(),
            "condense": self.condense_config,
            "run": self.run_config,
            "source": self.source.to_dict(),
            "environment": self.environment,
        }


def results_record(result, records: dict, num_classes: int) -> dict[str, Any]:
    """``results.json`` of a condensation ``result`` (a ``CondenseResult``) with its float32 evaluation
    ``records`` (model -> ``EvalRecord``): accuracies, timing, storage."""
    storage = result.budget.bytes(num_classes)
    return {
        "method": result.method.name,
        "evaluations": {name: r.to_dict() for name, r in records.items()},
        "condensation": {
            "wall_time_s": round(result.wall_time_s, 2),
            "iterations": result.config.iterations,
            "iterations_per_s": round(result.iterations_per_s, 4) if result.iterations_per_s else None,
            "steady_seconds_per_iteration": result.steady_seconds_per_iteration,
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "processes": result.processes,
            "device": result.device_settings,
            **_resume_record(result),
        },
        "storage": {
            **storage,
            "pixel_ipc_budget": result.budget.ipc,
            "images_per_class": result.budget.images_per_class,
            "rank": result.budget.rank,
            "parameterisation": result.budget.parameterisation,
            "param_options": dict(result.budget.options),
            "decoded_per_class": result.budget.decoded_per_class,
            "shared_numel": result.budget.shared_numel,
            "shared_in_budget": result.budget.shared_in_budget,
            "dtype": "float32",
        },
    }


def _resume_record(result) -> dict[str, Any]:
    """How a run continued from a checkpoint was timed: nothing for a run of one sitting."""
    if getattr(result, "resumed_at", None) is None:
        return {}
    rec = {"resumed_at_iteration": result.resumed_at, "sittings": result.sittings}
    if result.untimed_iterations:  # the checkpoint kept no timing: these iterations are not in the times
        rec["untimed_iterations"] = result.untimed_iterations
    return rec


def build_artifact(
    result,
    source: SourceInfo,
    *,
    run_config: dict[str, Any],
    continued_from: "Artifact | None" = None,
    from_iteration: int | None = None,
) -> "Artifact":
    """The artefact of a finished condensation ``result`` (a ``CondenseResult``) of ``source``, not yet
    evaluated. ``continued_from``: the artefact this run continued (at ``from_iteration``); its
    condensation time is added to this one's."""
    results = results_record(result, {}, source.num_classes)
    if continued_from is not None:
        before = (continued_from.results.get("condensation") or {}).get("wall_time_s") or 0.0
        results["condensation"]["wall_time_s"] = round(before + result.wall_time_s, 2)
        results["condensation"]["continued_from_iteration"] = from_iteration
    return Artifact(
        synset=result.synset,
        source=source,
        budget=result.budget,
        method=result.method.name,
        condense_config=result.config.to_dict(),  # the engine's fields + the method's "options"
        run_config=run_config,
        results=results,
        history=result.history,
        init_indices=result.init_indices,
    )


def load_artifact(path: str | os.PathLike) -> Artifact:
    """Read an artefact written by :func:`save_artifact` (any hf_lodc with the same format version)."""
    p = Path(path)
    if not p.is_dir():
        raise ArtifactError(f"{str(p)!r} is not a directory containing a condensed set")
    missing = [f for f in REQUIRED_FILES if not (p / f).is_file()]
    if missing:
        raise IncompatibleArtifactError(
            f"{str(p)!r} is not an hf_lodc artefact: missing {missing} (expected {list(REQUIRED_FILES)})"
        )
    cfg = _read_json(p / "config.json", dict, "an object")
    results = _read_json(p / "results.json", dict, "an object") if (p / "results.json").is_file() else {}
    history = _read_json(p / "history.json", list, "a list") if (p / "history.json").is_file() else []
    try:
        state = load_file(str(p / "synset.safetensors"))
    except (SafetensorError, OSError, ValueError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise IncompatibleArtifactError(
            f"{str(p / 'synset.safetensors')!r} is damaged or not a safetensors file ({why}); re-create the "
            "artefact or copy it again"
        ) from None
    return artifact_from_record(cfg, state, results, history, where=str(p))


def _read_json(path: Path, kind: type, what: str) -> Any:
    """One JSON file of an artefact: unreadable / malformed / of the wrong type -> IncompatibleArtifactError."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise IncompatibleArtifactError(f"{str(path)!r} is unreadable: {e}; restore the file or re-create the "
                                        "artefact") from None
    if not isinstance(obj, kind):
        raise IncompatibleArtifactError(f"{str(path)!r} holds {type(obj).__name__}, expected {what}; restore the "
                                        "file or re-create the artefact")
    return obj


def _bad(where: str, field: str, value: Any, expected: str) -> IncompatibleArtifactError:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return IncompatibleArtifactError(f"{where!r}: config field {field!r} is {text}, expected {expected}; the "
                                     "artefact is damaged or not written by hf_lodc. Re-create it")


def _pos_int(cfg: dict, key: str, where: str, allow_none: bool = False) -> int | None:
    v = cfg.get(key)
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise _bad(where, key, v, "a positive integer" + (" or null" if allow_none else ""))
    return v


def _check_record(cfg: dict, where: str) -> None:
    """Types and ranges of the fields the reader uses (a foreign or hand-edited record fails here)."""
    if not isinstance(cfg.get("parameterisation"), str):
        raise _bad(where, "parameterisation", cfg.get("parameterisation"), "a string")
    _pos_int(cfg, "num_classes", where)
    _pos_int(cfg, "images_per_class", where)
    _pos_int(cfg, "rank", where, allow_none=True)
    shape = cfg.get("image_shape")
    if (not isinstance(shape, list) or len(shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in shape)):
        raise _bad(where, "image_shape", shape, "[C, H, W] of positive integers")
    for key in ("budget", "source"):
        if not isinstance(cfg.get(key), dict):
            raise _bad(where, key, cfg.get(key), "an object")
    for key in ("condense", "run", "environment"):
        if key in cfg and not isinstance(cfg[key], dict):
            raise _bad(where, key, cfg[key], "an object")
    src = cfg["source"]
    c = shape[0]
    for key in ("mean", "std"):
        v = src.get(key)
        if (not isinstance(v, list) or len(v) != c
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v)):
            raise _bad(where, f"source.{key}", v, f"a list of {c} numbers (one per channel)")
        if key == "std" and any(not (x > 0) for x in v):
            raise _bad(where, "source.std", v, "positive numbers")
    names = src.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != cfg["num_classes"]):
        raise _bad(where, "source.class_names", names, f"a list of {cfg['num_classes']} names")


def _check_tensors(synset: SyntheticSet, where: str) -> None:
    """Finite parameters and labels in [0, num_classes)."""
    labels = synset.labels
    if labels.numel() and (labels.min() < 0 or labels.max() >= synset.num_classes):
        raise IncompatibleArtifactError(
            f"{where!r}: synset labels range over [{int(labels.min())}, {int(labels.max())}], outside the "
            f"{synset.num_classes} classes of the config record; the artefact is damaged. Re-create it")
    for name, t in synset.named_parameters():
        if not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise IncompatibleArtifactError(
                f"{where!r}: synset tensor {name!r} holds {bad} NaN/Inf value(s); the condensation diverged or "
                "the file is damaged. Re-create the artefact (e.g. with a lower --lr)")


def _check_state_matches(synset: SyntheticSet, state: dict[str, torch.Tensor], where: str, tensors_file: str,
                         record_file: str) -> None:
    """Every tensor the config record's parameterisation needs, of the shape it needs, and no other: named
    by file, tensor and both shapes (torch's own ``load_state_dict`` text names neither file nor remedy)."""
    want = synset.state_dict()
    problems = [f"{k!r} is missing" for k in want if k not in state]
    problems += [f"{k!r} is not part of it" for k in state if k not in want]
    problems += [f"{k!r} has shape {list(state[k].shape)}, the record needs {list(v.shape)}"
                 for k, v in want.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    # a class id stored as a float (0.5) would be truncated to another class by load_state_dict's copy
    problems += [f"{k!r} holds {str(state[k].dtype).removeprefix('torch.')} values, the record needs "
                 f"{str(v.dtype).removeprefix('torch.')} (class ids)" for k, v in want.items()
                 if k in state and not v.is_floating_point() and state[k].is_floating_point()]
    if problems:
        raise IncompatibleArtifactError(
            f"{where!r}: {tensors_file} does not match {record_file} ({_synset_desc(synset)}): {'; '.join(problems[:4])}. "
            "The artefact is damaged or its files come from different runs; re-create it or copy it again")


def _synset_desc(synset: SyntheticSet) -> str:
    rank = getattr(synset, "rank", None)
    return (f"{type(synset).__name__}, {synset.num_classes} classes x {synset.per_class} per class"
            + (f", rank {rank}" if rank else ""))


def artifact_from_record(
    cfg: dict[str, Any],
    state: dict[str, torch.Tensor],
    results: dict[str, Any] | None = None,
    history: list | None = None,
    *,
    where: str,
    tensors_file: str = "synset.safetensors",
    record_file: str = "config.json",
) -> Artifact:
    """Rebuild an artefact from its config record (``Artifact.config_record()``) and synset tensors.

    Shared by :func:`load_artifact` (local directory) and the Hub reader; ``where`` names the
    directory or repo in error messages.
    """
    if not isinstance(cfg, dict):
        raise IncompatibleArtifactError(f"{where!r}: the config record is {type(cfg).__name__}, expected an object; "
                                        "the artefact is damaged or not written by hf_lodc. Re-create it")
    if results is not None and not isinstance(results, dict):
        raise IncompatibleArtifactError(f"{where!r}: results.json holds {type(results).__name__}, expected an object")
    if history is not None and not isinstance(history, list):
        raise IncompatibleArtifactError(f"{where!r}: history.json holds {type(history).__name__}, expected a list")
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise IncompatibleArtifactError(
            f"{where!r} has format_version {version!r}; this hf_lodc ({__version__}) reads version "
            f"{FORMAT_VERSION}. Upgrade/downgrade hf_lodc or re-create the artefact."
        )
    for key in ("parameterisation", "num_classes", "images_per_class", "image_shape", "budget", "source"):
        if key not in cfg:
            raise IncompatibleArtifactError(f"{where!r}: the config record lacks the field {key!r}")
    _check_record(cfg, where)
    cls = PARAMETERISATIONS.get(cfg["parameterisation"])
    try:
        synset = cls(cfg["num_classes"], cfg["images_per_class"], tuple(cfg["image_shape"]), rank=cfg.get("rank"),
                     **(cfg.get("param_options") or {}))
    except (TypeError, ValueError) as e:
        raise IncompatibleArtifactError(f"{where!r}: the config record's param_options {cfg.get('param_options')!r} "
                                        f"do not build parameterisation {cfg['parameterisation']!r} ({e})") from None
    _check_state_matches(synset, state, where, tensors_file, record_file)
    synset.load_state_dict(state)
    _check_tensors(synset, where)
    try:
        b = dict(cfg["budget"])
        b["image_shape"] = tuple(b["image_shape"])
        budget, source = Budget(**b), SourceInfo.from_dict(cfg["source"])
    except (KeyError, TypeError, ValueError) as e:
        raise IncompatibleArtifactError(
            f"{where!r}: the config record's 'budget' or 'source' is incomplete or malformed ({type(e).__name__}: {e})"
        ) from None
    return Artifact(
        synset=synset.eval(),
        source=source,
        budget=budget,
        method=cfg.get("method", "unknown"),
        condense_config=cfg.get("condense", {}),
        run_config=cfg.get("run", {}),
        results=results or {},
        history=history or [],
        environment=cfg.get("environment", {}),
    )
