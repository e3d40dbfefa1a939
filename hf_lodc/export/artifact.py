"""The local artefact of one condensation: a directory written atomically.

Layout (format version 1)::

    synset.safetensors   the parameters (A, B for low-rank; images for pixel) + labels
    images.safetensors   reconstructed images (N, C, H, W) float32, normalised, + labels
    config.json          run config, resolved condensation config, budget, source info, versions
    results.json         evaluation records + timing + storage
    history.json         loss curve

Writes go to a temporary sibling directory that is renamed into place at the end, so a failure
(read-only directory, disk full) never leaves a half-written artefact.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..data.hub import SourceInfo
from ..errors import ArtifactError, IncompatibleArtifactError
from ..synset.budget import Budget
from ..synset.lowrank import PARAMETERISATIONS, SyntheticSet

__all__ = ["Artifact", "save_artifact", "load_artifact", "FORMAT_VERSION", "environment_info", "atomic_dir"]

FORMAT_VERSION = 1
REQUIRED_FILES = ("synset.safetensors", "config.json")


def environment_info() -> dict[str, Any]:
    import accelerate
    import datasets
    import huggingface_hub
    import timm

    from .. import __version__

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
            "num_classes": self.synset.num_classes,
            "images_per_class": self.synset.per_class,
            "image_shape": list(self.synset.image_shape),
            "budget": self.budget.to_dict(),
            "condense": self.condense_config,
            "run": self.run_config,
            "source": self.source.to_dict(),
            "environment": self.environment,
        }


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = True):
    """Yield a temporary directory next to ``target``; on success it replaces ``target``."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp", dir=parent))
    except OSError as e:
        raise ArtifactError(
            f"cannot write to {str(parent)!r}: {e.strerror or e}. Choose a writable output directory."
        ) from None
    try:
        yield tmp
        if target.exists():
            if not overwrite:
                raise ArtifactError(f"{str(target)!r} exists; pass overwrite=True or another directory")
            old = target.with_name(f".{target.name}.old{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(
            f"writing {str(target)!r} failed ({e.strerror or e}); nothing was left behind"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_artifact(art: Artifact, out_dir: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``art`` to ``out_dir`` atomically; returns the path."""
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        tensors = {k: v.detach().cpu().contiguous() for k, v in art.synset.state_dict().items()}
        save_file(tensors, str(tmp / "synset.safetensors"), metadata={"format_version": str(FORMAT_VERSION)})
        save_file({"images": art.images().contiguous(), "labels": art.labels.contiguous()},
                  str(tmp / "images.safetensors"))
        _json(tmp / "config.json", art.config_record())
        _json(tmp / "results.json", art.results)
        _json(tmp / "history.json", art.history)
    return Path(out_dir)


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
    try:
        cfg = json.loads((p / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise IncompatibleArtifactError(f"{str(p / 'config.json')!r} is unreadable: {e}") from None
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise IncompatibleArtifactError(
            f"{str(p)!r} has format_version {version!r}; this hf_lodc ({_version()}) reads version "
            f"{FORMAT_VERSION}. Upgrade/downgrade hf_lodc or re-create the artefact."
        )
    for key in ("parameterisation", "num_classes", "images_per_class", "image_shape", "budget", "source"):
        if key not in cfg:
            raise IncompatibleArtifactError(f"{str(p / 'config.json')!r} lacks the field {key!r}")
    cls = PARAMETERISATIONS.get(cfg["parameterisation"])
    synset = cls(cfg["num_classes"], cfg["images_per_class"], tuple(cfg["image_shape"]), rank=cfg.get("rank"))
    state = load_file(str(p / "synset.safetensors"))
    try:
        synset.load_state_dict(state)
    except RuntimeError as e:
        raise IncompatibleArtifactError(f"{str(p)!r}: synset tensors do not match config.json ({e})") from None
    b = dict(cfg["budget"])
    b["image_shape"] = tuple(b["image_shape"])
    results = json.loads((p / "results.json").read_text()) if (p / "results.json").is_file() else {}
    history = json.loads((p / "history.json").read_text()) if (p / "history.json").is_file() else []
    return Artifact(
        synset=synset.eval(),
        source=SourceInfo.from_dict(cfg["source"]),
        budget=Budget(**b),
        method=cfg.get("method", "unknown"),
        condense_config=cfg.get("condense", {}),
        run_config=cfg.get("run", {}),
        results=results,
        history=history,
        environment=cfg.get("environment", {}),
    )


def _version() -> str:
    from .. import __version__

    return __version__
