"""Train, save and publish the teacher that relabels teacher-label sets (SRe2L, RDED) at evaluation.

``published/teacher.py`` reads a teacher (``load_teacher``: a state dict of an evaluation model) and
relabels every augmented batch with it; this module makes one on the source's real train split:

* :func:`train_teacher`: ``training.loop.train_network`` with the evaluation protocol's own settings
  (``engine.evaluate``'s schedule, DSA, forward and autocast for an ``EvalConfig``; only the epochs are
  the teacher's), on the uint8 train images normalised per batch with the source's train-split mean/std:
  the input space ``evaluate_condensed_set`` trains and tests a per-channel set in, so a teacher made
  here fits ``--teacher`` for any set evaluated against the same source. Tested on the real test split.
* :func:`save_teacher`: ``<name>.pt`` (the state dict, what ``--teacher`` loads) and ``<name>.json``
  (the record: how it was trained, its accuracy, the hf_lodc version), each written atomically.
* :func:`push_teacher`: a timm model repo (``model.safetensors``, ``config.json``, the record and a card
  with the measured accuracy) in one commit, through ``export.model_repo``'s pusher.

Seeds: the network from (seed, "teacher-net", model), the batches and DSA draws from (seed,
"teacher-data", model): never the evaluation's own streams.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.splits import first_per_class
from ..data.types import ImageClassificationData, normalize
from ..engine.config import EvalConfig
from ..errors import ConfigError, SplitError

__all__ = ["TEACHER_EPOCHS", "TrainedTeacher", "train_teacher", "save_teacher", "check_publishable", "teacher_files",
           "push_teacher"]

# The evaluation protocol's 1000 epochs are for a few images per class; on a whole train split tens of
# epochs with the same step schedule (x0.1 at half) train ConvNet-3 close to its plateau.
TEACHER_EPOCHS = 50
FORMAT = "hf_lodc teacher"


@dataclass
class TrainedTeacher:
    model: str  # the evaluation model name, what --teacher-model takes
    state: dict[str, torch.Tensor]  # CPU copies: what --teacher loads
    accuracy: float  # percent on the test rows below, after the last epoch
    record: dict[str, Any]  # config, data, protocol, accuracy, version (the .json)
    pretrained_cfg: dict[str, Any] | None  # timm's, for a model repo (None: not a timm model)


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {v!r}")
    return v


def train_teacher(data: ImageClassificationData, model: str = "convnet", *, epochs: int = TEACHER_EPOCHS,
                  seed: int = 0, eval_config: EvalConfig | None = None, eval_max_per_class: int | None = None,
                  device: torch.device | str = "cpu", progress: bool = False) -> TrainedTeacher:
    """Train ``model`` (an evaluation model name: alias, ``lodc_*`` or timm) on ``data``'s whole train
    split with ``eval_config``'s protocol (default: the DC protocol) for ``epochs``; test it on the test
    split (its first ``eval_max_per_class`` images per class when given)."""
    from ..engine.evaluate import augment_of, autocast_of, forward_of, protocol_of, schedule_of
    from ..preflight import check_eval_models, check_strategy
    from ..seeding import generator
    from ..training import device as device_settings
    from ..training.loop import seeded_net, test_accuracy, train_network
    from ..version import __version__

    _positive_int("epochs", epochs)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    if eval_max_per_class is not None:
        _positive_int("eval_max_per_class", eval_max_per_class)
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model must be an evaluation model name (e.g. 'convnet', 'resnet18_bn'), got {model!r}")
    info = data.info
    if data.test is None or len(data.test) == 0:
        raise SplitError(f"{info.dataset!r} has no test split to measure the teacher on; pass a dataset with one")
    ec = replace(eval_config or EvalConfig(), eval_models=[model], eval_runs=1, eval_epochs=epochs)
    check_strategy(ec.eval_dsa_strategy, "eval_dsa_strategy")
    check_eval_models([model], data.image_shape, data.num_classes, option="model")
    device = torch.device(device)
    device_settings.ensure(device)
    mean, std = data.mean, data.std
    net = seeded_net(model, data.num_classes, data.image_shape, seed, "teacher-net", model, device=device)
    forward, autocast = forward_of(ec), autocast_of(ec, device)
    t0 = time.perf_counter()

    def said(ep: int, loss: torch.Tensor) -> None:
        if progress:
            print(f"[teacher] {model} epoch {ep + 1}/{epochs}: loss {float(loss.detach()):.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)

    # uint8 on the CPU, normalised per batch on the device: a whole train split never sits in float32
    train_network(net, data.train.images, data.train.labels, schedule_of(ec), generator(seed, "teacher-data", model),
                  augment_of(ec), prepare=lambda x: normalize(x, mean, std).to(device), forward=forward,
                  autocast=autocast, on_epoch=said)
    test = data.test
    if eval_max_per_class is not None:
        test = test.subset(first_per_class(test.labels, eval_max_per_class, data.num_classes))
    acc = test_accuracy(net, test, mean, std, device, forward=forward, autocast=autocast)
    per_class = torch.bincount(data.train.labels, minlength=data.num_classes).tolist()
    record = {
        "format": FORMAT,
        "model": model,
        "architecture": str(getattr(net, "pretrained_cfg", {}).get("architecture") or type(net).__name__),
        "dataset": info.dataset, "hub_id": info.hub_id, "config_name": info.config_name,
        "revision_sha": info.revision_sha,
        "class_names": list(info.class_names), "image_shape": list(info.image_shape),
        "input": {"normalization": "source", "mean": list(info.mean), "std": list(info.std),
                  "statistics": f"per-channel mean/std of the {info.train_split!r} split read ({len(data.train)} "
                                "images): evaluate against the same source read the same way (--max-per-class)"},
        "train": {"split": info.train_split, "images": len(data.train), "per_class": [min(per_class), max(per_class)],
                  "labels": "hard, cross-entropy", "epochs": epochs, "seed": seed},
        "protocol": protocol_of(ec),
        "test_split": info.eval_split, "test_rows": len(test), "test_max_per_class": eval_max_per_class,
        "test_accuracy": round(acc, 3),
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "hf_lodc_version": __version__,
    }
    net = net.to(memory_format=torch.contiguous_format)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    return TrainedTeacher(model, state, acc, record, _timm_cfg(net))


def _timm_cfg(net: torch.nn.Module) -> dict[str, Any] | None:
    """timm's pretrained_cfg of a network timm can rebuild from its name at this size; None otherwise
    (a transformers model, a backbone wrapped in a resize)."""
    from ..models.factory import ResizeInput

    pc = None if isinstance(net, ResizeInput) else getattr(net, "pretrained_cfg", None)
    return dict(pc) if isinstance(pc, dict) else None


def check_publishable(model: str, image_shape) -> None:
    """Refuse, before any training, a teacher model that cannot be published as a timm model repo."""
    from ..models import create_eval_model

    c, h, w = image_shape
    if model.strip().lower().startswith("hf:") or _timm_cfg(
            create_eval_model(model, num_classes=2, in_chans=c, img_size=(h, w))) is None:
        raise ConfigError(f"teacher model {model!r} cannot be published as a model repo: hf_lodc publishes timm "
                          f"models built at the source's size ({c}x{h}x{w}) only (lodc_* such as 'convnet', and timm "
                          "backbones that take img_size); train another model, or do not push it (--push-to-hub)")


def save_teacher(teacher: TrainedTeacher, path: str | Path) -> tuple[Path, Path]:
    """``path`` (``.pt``: the state dict) and the record beside it (same name, ``.json``), each atomic."""
    from ..atomic import write_atomically

    p = Path(path).expanduser()
    record_path = p.with_suffix(".json")
    write_atomically(p, lambda tmp: torch.save(teacher.state, tmp))
    text = json.dumps({**teacher.record, "checkpoint": p.name}, indent=2) + "\n"
    write_atomically(record_path, lambda tmp: tmp.write_text(text))
    return p, record_path


def _card(t: TrainedTeacher, repo_id: str, license: str | None) -> str:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    r, p = t.record, t.record["protocol"]
    src = r["hub_id"] or r["dataset"]
    data = ModelCardData(
        library_name="timm", license=license, pipeline_tag="image-classification",
        tags=["image-classification", "timm", "hf_lodc", "dataset-condensation", "teacher"],
        datasets=[r["hub_id"]] if r["hub_id"] else None, model_name=repo_id.split("/")[-1],
        eval_results=[EvalResult(
            task_type="image-classification", task_name="Image Classification", dataset_type=src,
            dataset_name=src, dataset_config=r["config_name"], dataset_split=r["test_split"] or "test",
            dataset_revision=r["revision_sha"], metric_type="accuracy", metric_name="accuracy",
            metric_value=r["test_accuracy"], source_name="hf_lodc teacher training",
            source_url=f"https://huggingface.co/{repo_id}")],
    )
    sub = f"the first {r['test_max_per_class']} images per class of " if r["test_max_per_class"] else ""
    tr = r["train"]
    body = "\n".join([
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A `{r['architecture']}` (hf_lodc evaluation model `{t.model}`) trained on the real `{tr['split']}` split of "
        f"`{src}` ({tr['images']} images, {tr['per_class'][0]}-{tr['per_class'][1]} per class, hard labels): a "
        "teacher that relabels every augmented batch when image-only condensed sets (SRe2L, RDED) and their random "
        "baseline are evaluated.",
        "",
        f"Accuracy on {sub}the real `{r['test_split']}` split ({r['test_rows']} images), after the last epoch: "
        f"**{r['test_accuracy']:.2f} %**.",
        "",
        f"Training: SGD (lr {p['lr']}, momentum {p['momentum']}, weight decay {p['weight_decay']}), batch "
        f"{p['batch_size']}, {tr['epochs']} epochs, lr schedule {p['lr_schedule']}, augmentation {p['augmentation']}, "
        f"seed {tr['seed']}; hf_lodc {r['hf_lodc_version']}. Inputs: {tuple(r['image_shape'])} images normalised "
        f"with mean {r['input']['mean']}, std {r['input']['std']} (in `config.json`). `teacher.json` is the full "
        "record.",
        "",
        "## Use",
        "",
        "```bash",
        f"python recipes/evaluate.py <set> --test-dataset {src} \\",
        f"    --teacher \"$(hf download {repo_id} model.safetensors)\" --teacher-model {t.model}",
        "```",
        "",
    ])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def teacher_files(t: TrainedTeacher, repo_id: str, license: str | None = None) -> dict[str, bytes]:
    """repo path -> bytes of the teacher's model repo."""
    from safetensors.torch import save

    from ..export.model_repo import KeptNet, timm_config

    if t.pretrained_cfg is None:
        raise ConfigError(f"teacher model {t.model!r} cannot be published: hf_lodc publishes timm models built at "
                          "the source's size only (lodc_* and timm backbones that take img_size)")
    c, h, w = t.record["image_shape"]
    k = KeptNet(model=t.model, run=0, accuracy=t.accuracy, state=t.state, architecture=t.record["architecture"],
                model_args={"in_chans": c, "img_size": [h, w]}, pretrained_cfg=t.pretrained_cfg)
    cfg = timm_config(k, t.record["class_names"], t.record["input"]["mean"], t.record["input"]["std"])
    return {
        "model.safetensors": save(t.state, metadata={"format": "pt"}),
        "config.json": (json.dumps(cfg, indent=2) + "\n").encode(),
        "teacher.json": (json.dumps(t.record, indent=2) + "\n").encode(),
        "README.md": _card(t, repo_id, license).encode("utf-8"),
    }


def push_teacher(t: TrainedTeacher, repo_id: str, *, license: str | None = None, private: bool = False,
                 token: str | None = None, max_retries: int = 4, retry_wait: float = 2.0,
                 log: Callable[[str], None] | None = print) -> tuple[str, bool]:
    """Publish the teacher as model repo ``repo_id`` in one commit: (commit sha, whether the head changed)."""
    from ..export.model_repo import push_model_files

    files = teacher_files(t, repo_id, license)
    return push_model_files(repo_id, files, f"hf_lodc: teacher {t.model} trained on {t.record['dataset']}",
                            f"teacher {t.model} ({t.accuracy:.2f} %)", f"pushing teacher {t.model!r}",
                            private=private, token=token, max_retries=max_retries, retry_wait=retry_wait, log=log)
