"""The runs of an evaluation that have finished, kept on disk so a stopped evaluation resumes at the run
it stopped in.

The paper's protocol trains 20 networks for 1 000 epochs each; on a CPU one such network can take an
hour, so an evaluation outlives a sitting more often than not. Run r of a model is seeded by (seed,
model, r) alone (``engine.evaluate``), so the runs already finished need not be trained again: their
accuracies are read back and only the others train, and the record equals the uninterrupted one.

A run is reused only under the same key: a hash of everything that decides its accuracy (the
evaluated images and labels, the normalisation, the test set, the evaluation options, the seed and
the device type). Anything else changed, and the journal's runs are ignored (and replaced as the new
runs finish). The file is small JSON, written atomically after each run, and lives beside the run's
checkpoints, so it goes when they go (the artefact written, or a failure that drops them).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from ..atomic import write_atomically
from ..data.types import LabeledImages
from .config import EvalConfig

__all__ = ["JOURNAL_NAME", "EvalJournal", "journal_key"]

JOURNAL_NAME = "eval_journal.json"
_VERSION = 1
_TEST_ROWS_HASHED = 512  # a test split of ImageNet size is hashed by an even sample of its rows


def _update(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


# speed options whose unset value (None) means this one: a run resumed with the option spelled out
# (e.g. --eval-mixed-precision no, to keep a float32 evaluation where `auto` would now pick bf16) finds
# the runs journaled with it unset
_OFF = {"eval_mixed_precision": "no", "eval_channels_last": False, "eval_compile": False}


def journal_key(images: torch.Tensor, labels: torch.Tensor, test: LabeledImages, mean: torch.Tensor,
                std: torch.Tensor, num_classes: int, ec: EvalConfig, seed: int, device: torch.device | str,
                model: str) -> str:
    """What decides run r's accuracy of ``model``, hashed: equal keys, equal accuracies (on one machine)."""
    h = hashlib.sha256()
    for t in (images, labels, mean, std, test.labels):
        _update(h, t)
    n = len(test)
    rows = torch.linspace(0, n - 1, steps=min(n, _TEST_ROWS_HASHED)).long() if n else torch.zeros(0, dtype=torch.long)
    _update(h, test.images[rows])
    # eval_models and eval_runs only choose which runs exist, not what one run gives
    opts = {k: v for k, v in asdict(ec).items() if k not in ("eval_models", "eval_runs")}
    for k, off in _OFF.items():  # unset and set to its "off" value train the same network
        if opts.get(k) == off:
            opts[k] = None
    h.update(json.dumps({"opts": opts, "seed": seed, "classes": num_classes, "device": torch.device(device).type,
                         "model": model}, sort_keys=True, default=str).encode())
    return h.hexdigest()


class EvalJournal:
    """``path``: the JSON file of finished runs, {key: {run: [accuracy %, seconds]}}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.failed: str | None = None  # why the file could not be written, once it could not
        self._entries: dict[str, dict[str, list[float]]] = {}
        try:
            raw = json.loads(self.path.read_text())
            if raw.get("version") == _VERSION:
                self._entries = {str(k): {str(r): [float(a), float(s)] for r, (a, s) in v.items()}
                                 for k, v in raw.get("runs", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._entries = {}  # no journal, or a damaged one: its runs are trained again

    def done(self, key: str) -> dict[int, tuple[float, float]]:
        """The finished runs under ``key``: run -> (accuracy %, seconds it took)."""
        return {int(r): (a, s) for r, (a, s) in self._entries.get(key, {}).items()}

    def record(self, key: str, run: int, accuracy: float, seconds: float) -> None:
        """Add one finished run and write the journal (atomically: a stop mid-write keeps the old file).

        The journal only saves time after a stop: a failed write (a full disk, a folder made read-only)
        is said once and the evaluation goes on."""
        self._entries.setdefault(key, {})[str(run)] = [float(accuracy), float(seconds)]
        if self.failed is not None:
            return
        body = json.dumps({"version": _VERSION, "runs": self._entries}, indent=1, sort_keys=True)
        try:
            write_atomically(self.path, lambda tmp: Path(tmp).write_text(body))
        except OSError as e:
            self.failed = f"{type(e).__name__}: {e}"
            print(f"[eval] warning: cannot write the evaluation journal {str(self.path)!r} ({self.failed}); the "
                  "evaluation goes on, but a stop now would train its finished runs again", file=sys.stderr, flush=True)

    def recorder(self, key: str, then: Callable | None = None) -> Callable:
        """A ``keep_state(model, run, accuracy, net)`` callback that records each run as it finishes
        (with the seconds since the previous one), then calls ``then`` if given."""
        last = time.perf_counter()

        def seen(model: str, run: int, accuracy: float, net) -> None:
            nonlocal last
            now = time.perf_counter()
            self.record(key, run, accuracy, now - last)
            last = now
            if then is not None:
                then(model, run, accuracy, net)

        return seen
