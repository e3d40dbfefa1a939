"""The Table-1 cells a GPU lease measures, in priority order, with the paper's figures.

Each cell is one YAML file of ``recipes/configs/`` run unchanged (``overrides`` only where no YAML
exists for the cell: DM IPC 10 is the LoDM IPC 10 file with the pixel method), condensed and then
evaluated with the YAML's own evaluation protocol. Paper figures are from /work/shared/PROTOCOL.md
(Yang et al., NeurIPS 2023, Tables 1 and 4); ``None`` where that table gives none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "recipes" / "configs"

__all__ = ["Cell", "CELLS", "DATASETS", "queue"]

# dataset key -> Hub id (the folder under the local hub mirror)
DATASETS = {"mnist": "ylecun/mnist", "cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100",
            "tinyimagenet": "zh-plus/tiny-imagenet"}


@dataclass(frozen=True)
class Cell:
    name: str  # also the run folder and the key in every results file
    config: str  # file in recipes/configs/
    dataset: str  # key of DATASETS
    paper_mean: float | None = None
    paper_std: float | None = None
    overrides: tuple[str, ...] = field(default=())
    needs: str | None = None  # a precondition the runner checks (e.g. expert trajectories)


_PRIORITY = [
    Cell("mnist-lodm-ipc1", "mnist-lodm-ipc1.yaml", "mnist", 91.2, 0.4),
    Cell("cifar10-lodm-ipc1", "cifar10-lodm-ipc1.yaml", "cifar10", 43.8, 0.8),
    Cell("cifar10-lodm-ipc10", "cifar10-lodm-ipc10.yaml", "cifar10", 59.8, 0.4),
    Cell("cifar10-dm-ipc10", "cifar10-lodm-ipc10.yaml", "cifar10", 48.9, None,
         overrides=("--method", "dm", "--rank", "none", "--init", "real")),
    Cell("cifar10-lodc-ipc1", "cifar10-lodc-ipc1.yaml", "cifar10", None, None),
    Cell("mnist-lodm-ipc10", "mnist-lodm-ipc10.yaml", "mnist", 97.7, 0.1),
    Cell("cifar100-lodm-ipc1", "cifar100-lodm-ipc1.yaml", "cifar100", 25.6, 0.5),
    Cell("cifar10-lomtt-ipc1", "cifar10-lomtt-ipc1.yaml", "cifar10", 58.7, None, needs="experts"),
]
_REST_PAPER = {
    "cifar10-lodm-ipc50": (64.6, 0.1), "cifar100-lodm-ipc10": (37.5, 0.8), "mnist-lodm-ipc50": (98.2, 0.1),
    "tinyimagenet-lodm-ipc1": (10.3, 0.2), "tinyimagenet-lodm-ipc10": (18.3, 0.3),
}


def _rest() -> list[Cell]:
    done = {c.config for c in _PRIORITY if not c.overrides}
    cells = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        stem = path.stem
        if path.name in done or stem.endswith("-cpu") or stem.startswith("continual-"):
            continue
        ds = stem.split("-", 1)[0]
        if ds not in DATASETS:
            continue
        mean, std = _REST_PAPER.get(stem, (None, None))
        cells.append(Cell(stem, path.name, ds, mean, std))
    return cells


CELLS: list[Cell] = _PRIORITY + _rest()


def queue(names: list[str] | None = None) -> list[Cell]:
    """The cells in priority order (only ``names`` if given, still in priority order)."""
    if not names:
        return list(CELLS)
    by = {c.name: c for c in CELLS}
    unknown = [n for n in names if n not in by]
    if unknown:
        raise SystemExit(f"unknown cell {unknown[0]!r}; cells: {', '.join(by)}")
    return [c for c in CELLS if c.name in names]
