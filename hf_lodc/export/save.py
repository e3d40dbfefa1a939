"""Write an artefact directory atomically: the hf_lodc files and, when asked, the Hub repo layout.

Layout and guarantees are ``artifact.py``'s docstring; the atomic step (a temporary sibling directory
renamed into place, nothing partial on failure) is ``hf_lodc.atomic.atomic_dir``; the repo files are the ones a
push commits (``repo_files.repo_folder_files``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from ..errors import ArtifactError
from .artifact import FORMAT_VERSION, Artifact
from ..atomic import artefact_path, atomic_dir
from .repo_files import repo_folder_files

__all__ = ["save_artifact", "save_artifact_or_rescue"]


def save_artifact_or_rescue(art: "Artifact", out_dir: str | os.PathLike, **kwargs: Any) -> Path:
    """:func:`save_artifact`; if that fails (disk full at the end of a long run), the finished
    artefact is written to a fresh temporary directory instead and the error says where."""
    try:
        return save_artifact(art, out_dir, **kwargs)
    except ArtifactError as e:
        rescue_root = Path(tempfile.mkdtemp(prefix="hf_lodc-rescue-"))
        try:
            path = save_artifact(art, rescue_root / artefact_path(out_dir).name, **kwargs)
        except ArtifactError:
            shutil.rmtree(rescue_root, ignore_errors=True)
            raise e from None
        raise ArtifactError(
            f"{e} The finished artefact was saved to {str(path)!r} instead; move it where you want it."
        ) from None


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_artifact(art: Artifact, out_dir: str | os.PathLike, overwrite: bool = True, *,
                  repo: dict[str, Any] | None = None, keep: tuple[str, ...] = ()) -> Path:
    """Write ``art`` to ``out_dir`` atomically; returns the path.

    ``repo``: also write, in the same atomic step, the Hub repo layout of the set (``repo_files.repo_folder_files``:
    ``README.md`` + ``condensations/<name>/...`` + the real test split), so that
    ``datasets.load_dataset(out_dir)`` reads it exactly as the pushed repo; keys ``config_name``,
    ``test`` (LabeledImages or None), ``repo_id`` (named in the card; default the folder name).
    ``keep``: entries of the run already in ``out_dir`` that stay (``checkpoints``: a resumable run).
    """
    with atomic_dir(out_dir, overwrite=overwrite, keep=keep) as tmp:
        if repo is not None:
            opts = dict(repo)
            opts.setdefault("repo_id", artefact_path(out_dir).name)
            for rel, data in repo_folder_files(art, **opts).items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
        tensors = {k: v.detach().cpu().contiguous() for k, v in art.synset.state_dict().items()}
        save_file(tensors, str(tmp / "synset.safetensors"), metadata={"format_version": str(FORMAT_VERSION)})
        save_file({"images": art.images().contiguous(), "labels": art.labels.contiguous()},
                  str(tmp / "images.safetensors"))
        _json(tmp / "config.json", art.config_record())
        _json(tmp / "results.json", art.results)
        _json(tmp / "history.json", art.history)
    return Path(out_dir)
