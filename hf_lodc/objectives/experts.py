"""Expert trajectories for trajectory matching (MTT, Cazenavette et al., CVPR 2022).

An expert is a network trained on the REAL training set; its trajectory is the flat parameter
vector after every epoch (epoch 0 = the initialisation). Trajectory matching then asks the synthetic
set to carry a student from expert epoch t to (near) expert epoch t + M in a few steps.

On disk (``save_dir``)::

    experts.json               what they were trained on and how (model, dataset, classes, shapes,
                               normalisation, epochs, lr, seed, parameter names/shapes, accuracies)
    expert_000.safetensors     "trajectory": (epochs + 1, P) float32
    expert_001.safetensors     ...

Each expert is written as soon as it is trained (atomically), so an interrupted run resumes by
training only the missing ones; under ``accelerate launch`` process r trains experts r, r+P, ...
Training follows the reference buffers: SGD lr 0.01, no momentum, no weight decay, batch 256, DSA
on every batch, no learning-rate decay.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..data.augment import DSAugment
from ..data.types import ImageClassificationData, normalize
from ..errors import ArtifactError, ConfigError
from ..atomic import write_atomically
from ..training.loop import TrainSchedule, seeded_net, test_accuracy, train_network
from ..seeding import generator

__all__ = ["ExpertConfig", "ExpertBuffer", "train_experts", "load_experts", "flat_params", "unflatten"]

FORMAT_VERSION = 1
META_FILE = "experts.json"


@dataclass
class ExpertConfig:
    model: str = "lodc_convnet_d3_w128"
    num_experts: int = 5
    epochs: int = 10  # trajectory length (reference buffers: 50)
    lr: float = 0.01
    batch: int = 256
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"  # "none" to train without DSA
    seed: int = 0

    def check(self) -> None:
        for name in ("num_experts", "epochs", "batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"experts: {name} must be > 0, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"experts: lr must be a positive number, got {self.lr}")


@dataclass
class ExpertBuffer:
    """Loaded trajectories: ``trajectories`` (E, epochs + 1, P) and what they were made from."""

    trajectories: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.meta["param_names"])

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.meta["param_shapes"]]


def flat_params(net: nn.Module) -> torch.Tensor:
    """All parameters of ``net`` as one detached float32 vector (P,), in ``named_parameters`` order."""
    return torch.cat([p.detach().float().reshape(-1) for p in net.parameters()])


def unflatten(flat: torch.Tensor, names: list[str], shapes: list[tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """(P,) -> {name: tensor of its shape}; views into ``flat``, so gradients flow back to it."""
    out, at = {}, 0
    for name, shape in zip(names, shapes):
        n = math.prod(shape)
        out[name] = flat[at : at + n].view(shape)
        at += n
    return out


def _check_net(net: nn.Module, model: str) -> None:
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        raise ConfigError(f"trajectory matching with {model!r}: BatchNorm networks carry running statistics outside "
                          "the parameter trajectory; use an instance-norm ConvNet (the default)")


def _expert_file(root: Path, i: int) -> Path:
    return root / f"expert_{i:03d}.safetensors"


def _meta(data: ImageClassificationData, cfg: ExpertConfig, net: nn.Module) -> dict[str, Any]:
    info = data.info
    return {
        "format_version": FORMAT_VERSION, "kind": "hf_lodc expert trajectories",
        "config": asdict(cfg),
        "dataset": info.dataset, "hub_id": info.hub_id, "revision_sha": info.revision_sha,
        "train_split": info.train_split, "num_train": len(data.train),
        "class_names": list(info.class_names), "image_shape": list(info.image_shape),
        "mean": list(info.mean), "std": list(info.std),
        "param_names": [n for n, _ in net.named_parameters()],
        "param_shapes": [list(p.shape) for _, p in net.named_parameters()],
    }


def _train_one(data: ImageClassificationData, cfg: ExpertConfig, i: int, device, progress: bool) -> tuple[torch.Tensor, float | None]:
    net = seeded_net(cfg.model, data.num_classes, data.image_shape, cfg.seed, "expert-net", i, device=device)
    _check_net(net, cfg.model)
    mean, std = data.mean, data.std
    points = [flat_params(net).cpu()]  # epoch 0
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.epochs, desc=f"expert {i}", disable=not progress, dynamic_ncols=True)

    def snapshot(epoch: int, loss: torch.Tensor) -> None:
        points.append(flat_params(net).cpu())
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        bar.update(1)

    sched = TrainSchedule(lr=cfg.lr, batch=cfg.batch, epochs=cfg.epochs)  # no momentum, no decay (reference)
    train_network(net, data.train.images, data.train.labels, sched, generator(cfg.seed, "expert-data", i),
                  DSAugment(cfg.dsa_strategy), prepare=lambda x: normalize(x, mean, std).to(device),
                  on_epoch=snapshot)
    bar.close()
    acc = test_accuracy(net, data.test, mean, std, device) if data.test is not None and len(data.test) else None
    return torch.stack(points), acc  # (epochs + 1, P)


def train_experts(
    data: ImageClassificationData,
    cfg: ExpertConfig | None = None,
    save_dir: str | os.PathLike | None = None,
    *,
    accelerator=None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ExpertBuffer:
    """Train ``cfg.num_experts`` experts on ``data.train``; with ``save_dir``, write (and reuse) them.

    A directory made for another dataset, model or setting is refused, not mixed in.
    """
    cfg = cfg or ExpertConfig()
    cfg.check()
    log = log or (lambda m: None)
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    probe = seeded_net(cfg.model, data.num_classes, data.image_shape, cfg.seed, "expert-probe")
    _check_net(probe, cfg.model)
    meta = _meta(data, cfg, probe)
    root = Path(save_dir) if save_dir is not None else None
    accs: dict[int, float | None] = {}
    if root is not None:
        _prepare_dir(root, meta, rank == 0)
        if (root / META_FILE).is_file():
            accs = {int(k): v for k, v in json.loads((root / META_FILE).read_text()).get("test_accuracy", {}).items()}
    trajectories: dict[int, torch.Tensor] = {}
    for i in range(rank, cfg.num_experts, world):
        f = _expert_file(root, i) if root is not None else None
        if f is not None and f.is_file():
            log(f"[hf_lodc] expert {i}: reusing {str(f)!r}")
            continue
        traj, acc = _train_one(data, cfg, i, device, progress and rank == 0)
        trajectories[i], accs[i] = traj, acc
        if f is not None:
            write_atomically(f, lambda tmp: save_file({"trajectory": traj.contiguous()}, str(tmp),
                                                      metadata={"test_accuracy": str(acc)}))
        log(f"[hf_lodc] expert {i}: {cfg.epochs} epochs, test accuracy {acc if acc is None else round(acc, 2)} %")
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if root is None:
        return ExpertBuffer(torch.stack([trajectories[i] for i in sorted(trajectories)]), {**meta, "test_accuracy": accs})
    if rank == 0:
        for i in range(cfg.num_experts):  # accuracies of experts trained by other processes
            if i not in accs:
                md = _file_metadata(_expert_file(root, i))
                accs[i] = None if md in (None, "None") else float(md)
        meta["test_accuracy"] = {str(k): accs[k] for k in sorted(accs)}
        text = json.dumps(meta, indent=2) + "\n"
        write_atomically(root / META_FILE, lambda tmp: tmp.write_text(text))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return load_experts(root)


def _file_metadata(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("test_accuracy")


_SAME = ("format_version", "config", "dataset", "class_names", "image_shape", "param_names", "param_shapes")


def _prepare_dir(root: Path, meta: dict[str, Any], main: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ArtifactError(f"{str(root)!r} is a file; expert trajectories need a directory")
    if (root / META_FILE).is_file():
        old = json.loads((root / META_FILE).read_text())
        diff = [k for k in _SAME if json.dumps(old.get(k), sort_keys=True) != json.dumps(meta[k], sort_keys=True)]
        if diff:
            raise ConfigError(f"{str(root)!r} holds experts made with other {', '.join(diff)}; use another directory "
                              "(or delete it) to train these")
    elif root.is_dir() and any(p.name.startswith("expert_") for p in root.iterdir()):
        raise ConfigError(f"{str(root)!r} has expert files but no {META_FILE}; delete them or use another directory")
    if main:
        root.mkdir(parents=True, exist_ok=True)
        if not (root / META_FILE).is_file():
            (root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")  # claims the directory
    else:
        import time

        for _ in range(600):  # the main process creates it
            if root.is_dir():
                break
            time.sleep(0.1)


def load_experts(path: str | os.PathLike) -> ExpertBuffer:
    """Read the trajectories written by :func:`train_experts` (clear errors for anything else)."""
    root = Path(path)
    if not (root / META_FILE).is_file():
        raise ArtifactError(f"{str(root)!r} holds no expert trajectories ({META_FILE} missing); make them with "
                            f"`python recipes/experts.py --dataset ... --output-dir {root}`")
    meta = json.loads((root / META_FILE).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{str(root / META_FILE)!r}: format_version {meta.get('format_version')!r}, this "
                            f"hf_lodc reads {FORMAT_VERSION}")
    n = int(meta["config"]["num_experts"])
    missing = [i for i in range(n) if not _expert_file(root, i).is_file()]
    if missing:
        raise ArtifactError(f"{str(root)!r}: experts {missing} of {n} are missing (an interrupted run?); run the same "
                            "expert command again to train them")
    trajs = []
    for i in range(n):
        try:
            trajs.append(load_file(str(_expert_file(root, i)))["trajectory"])
        except Exception as e:  # a truncated or foreign file
            raise ArtifactError(f"{str(_expert_file(root, i))!r} is unreadable ({type(e).__name__}: {e}); delete it "
                                "and run the expert command again") from None
    return ExpertBuffer(torch.stack(trajs), meta)  # (E, epochs + 1, P)
