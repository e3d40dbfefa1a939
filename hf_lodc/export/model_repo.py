"""Model repos: one network trained on a condensed set, per evaluation architecture, with its accuracy.

The evaluation (``pipeline.evaluate(keep_state=...)``) hands every trained network of the float32
view to a :class:`TrainedNets`; per architecture the run whose accuracy is closest to the median of
the runs (ties: the lower run index) is kept. Its repo (``<dataset repo>-<model>`` unless named)
holds, in ONE commit (``create_commit``, same retries and failure messages as the dataset push)::

    model.safetensors   the state dict (timm's layout: what ``timm.create_model(arch)`` builds)
    config.json         timm's hub config: architecture, num_classes, label_names, model_args
                        (in_chans, img_size), pretrained_cfg (input_size, mean/std of the source,
                        crop_pct 1.0, interpolation) - what ``timm.create_model("hf-hub:<repo>",
                        pretrained=True)`` reads (after ``import hf_lodc``: the lodc_* names are
                        registered by it)
    README.md           model card: model-index (image-classification, the source's test split,
                        accuracy = the accuracy measured for that run), datasets (the condensed
                        repo and the source), library_name timm, the protocol

Only timm models built at their native size can be published (``lodc_*`` and timm backbones that
take ``img_size``); ``hf:`` transformers models and backbones wrapped in a resize are refused with a
:class:`~hf_lodc.errors.ConfigError`.
"""

from __future__ import annotations

import io
import json
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

from ..errors import ConfigError, HubPushError
from .artifact import Artifact
from .hub_http import GaveUp, refusal, resolve_token, with_retries

__all__ = ["TrainedNets", "KeptNet", "median_run", "model_repo_id", "model_files", "push_model", "push_model_files",
           "ModelPushResult", "timm_config"]


@dataclass
class KeptNet:
    model: str  # the evaluation model name (alias or timm name)
    run: int
    accuracy: float  # percent, as the evaluation measured it
    state: dict[str, torch.Tensor]  # CPU copies
    architecture: str  # timm architecture name
    model_args: dict[str, Any]
    pretrained_cfg: dict[str, Any]
    runs: int = 0
    accuracies: list[float] = field(default_factory=list)


def median_run(accuracies: dict[int, float]) -> int:
    """The run whose accuracy is closest to the median of all runs (ties: the lowest run index)."""
    med = statistics.median(accuracies.values())
    return min(accuracies, key=lambda r: (abs(accuracies[r] - med), r))


def _check_publishable(model: str, net: nn.Module) -> None:
    from ..models.factory import ResizeInput

    if model.strip().lower().startswith("hf:") or not hasattr(net, "pretrained_cfg"):
        raise ConfigError(
            f"push_models: eval model {model!r} is a transformers model; hf_lodc publishes timm models only "
            "(lodc_* and timm backbones). Drop it from the eval models of the push, or push without push_models"
        )
    if isinstance(net, ResizeInput):
        raise ConfigError(
            f"push_models: eval model {model!r} was wrapped to resize its input (it does not run at the source's "
            "image size), so timm could not rebuild it from its name; use a lodc_* model (e.g. 'convnet') or a "
            "backbone that takes img_size"
        )


class TrainedNets:
    """A ``keep_state`` callback for the evaluation: keeps each trained network's weights (CPU), then
    :meth:`chosen` gives, per model, the run closest to the median."""

    def __init__(self, models: list[str] | None = None):
        self.models = models
        self.kept: dict[str, dict[int, KeptNet]] = {}

    def __call__(self, model: str, run: int, accuracy: float, net: nn.Module) -> None:
        if self.models is not None and model not in self.models:
            return
        _check_publishable(model, net)
        cfg = dict(net.pretrained_cfg)
        c, h, w = (int(v) for v in cfg["input_size"])
        self.kept.setdefault(model, {})[run] = KeptNet(
            model=model, run=run, accuracy=float(accuracy),
            state={k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()},
            architecture=str(cfg.get("architecture") or type(net).__name__),
            model_args={"in_chans": c, "img_size": [h, w]}, pretrained_cfg=cfg,
        )

    def gather(self, accelerator=None) -> None:
        """With several processes: every process gets every run's weights (they trained different runs)."""
        if accelerator is None or accelerator.num_processes == 1:
            return
        from accelerate.utils import gather_object

        parts = gather_object([k for runs in self.kept.values() for k in runs.values()])
        self.kept = {}
        for k in parts:
            self.kept.setdefault(k.model, {})[k.run] = k

    def chosen(self) -> dict[str, KeptNet]:
        out = {}
        for model, runs in self.kept.items():
            r = median_run({i: k.accuracy for i, k in runs.items()})
            k = runs[r]
            k.runs, k.accuracies = len(runs), [runs[i].accuracy for i in sorted(runs)]
            out[model] = k
        return out


def model_repo_id(dataset_repo: str, model: str) -> str:
    """``<dataset repo>-<model>`` with the model name made repo-safe."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in model.strip()).strip("-.")
    return f"{dataset_repo}-{safe}"


def timm_config(k: KeptNet, class_names: list[str], mean, std) -> dict[str, Any]:
    """timm's hub ``config.json`` of ``k`` (what ``timm.create_model("hf-hub:<repo>", pretrained=True)`` reads)."""
    pc = k.pretrained_cfg
    pretrained = {
        "architecture": k.architecture,
        "input_size": list(pc["input_size"]),
        "fixed_input_size": bool(pc.get("fixed_input_size", True)),
        "interpolation": pc.get("interpolation", "bilinear"),
        "crop_pct": float(pc.get("crop_pct", 1.0)),
        "crop_mode": "center",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "num_classes": len(class_names),
        "pool_size": pc.get("pool_size"),
        "first_conv": pc.get("first_conv"),
        "classifier": pc.get("classifier"),
        "license": pc.get("license"),
    }
    return {
        "architecture": k.architecture,
        "num_classes": len(class_names),
        "num_features": None,
        "label_names": list(class_names),
        "model_args": dict(k.model_args),
        "pretrained_cfg": {a: b for a, b in pretrained.items() if b is not None},
    }


def _card(k: KeptNet, art: Artifact, dataset_repo: str, config_name: str, repo_id: str, record: dict) -> str:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    src = art.source.hub_id or art.source.dataset
    split = art.source.eval_split or "test"
    ev = art.results.get("evaluation_data") or {}
    p = record.get("protocol") or {}
    data = ModelCardData(
        library_name="timm",
        license=art.source.license,
        tags=["image-classification", "timm", "hf_lodc", "dataset-condensation"],
        datasets=[dataset_repo] + ([src] if art.source.hub_id else []),
        pipeline_tag="image-classification",
        model_name=repo_id.split("/")[-1],
        eval_results=[EvalResult(
            task_type="image-classification", task_name="Image Classification",
            dataset_type=src, dataset_name=src, dataset_config=art.source.config_name, dataset_split=split,
            dataset_revision=art.source.revision_sha or art.source.revision,
            metric_type="accuracy", metric_name="accuracy", metric_value=round(k.accuracy, 3),
            source_name="hf_lodc evaluation", source_url=f"https://huggingface.co/datasets/{dataset_repo}",
        )],
    )
    rows = ev.get("rows")
    sub = f"the first {ev['max_per_class']} images per class of " if ev.get("max_per_class") else ""
    body = "\n".join([
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A `{k.architecture}` (hf_lodc evaluation model `{k.model}`) trained from scratch ONLY on the condensed set "
        f"[`{dataset_repo}`](https://huggingface.co/datasets/{dataset_repo}) (condensation `{config_name}`, "
        f"{len(art.synset)} images, method {art.method}), distilled from `{src}`.",
        "",
        f"Accuracy on {sub}the real `{split}` split of `{src}`" + (f" ({rows} images)" if rows else "")
        + f": **{k.accuracy:.2f} %**. This is run {k.run} of the {k.runs} runs of the evaluation (accuracies "
        f"{', '.join(f'{a:.2f}' for a in k.accuracies)}): the run closest to their median.",
        "",
        f"Protocol: SGD (lr {p.get('lr')}, momentum {p.get('momentum')}, weight decay {p.get('weight_decay')}), "
        f"batch {p.get('batch_size')}, {p.get('epochs')} epochs, lr schedule {p.get('lr_schedule')}, "
        f"augmentation {p.get('augmentation')}, accuracy after the last epoch; evaluation seed {p.get('seed')}. "
        f"Inputs: {tuple(art.synset.image_shape)} images normalised with mean {list(art.source.mean)}, "
        f"std {list(art.source.std)} (in `config.json`).",
        "",
        "## Use",
        "",
        "```python",
        "import hf_lodc  # registers the lodc_* architectures in timm (timm has no plugin entry point)",
        "import timm",
        "",
        f'model = timm.create_model("hf-hub:{repo_id}", pretrained=True).eval()',
        "cfg = timm.data.resolve_data_config({}, model=model)  # input size and mean/std of the source",
        "```",
        "",
    ])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def model_files(k: KeptNet, art: Artifact, dataset_repo: str, config_name: str, repo_id: str,
                record: dict) -> dict[str, bytes]:
    """repo path -> bytes of the model repo of ``k``."""
    from safetensors.torch import save

    weights = save(k.state, metadata={"format": "pt"})
    cfg = timm_config(k, list(art.source.class_names), art.source.mean, art.source.std)
    card = _card(k, art, dataset_repo, config_name, repo_id, record)
    return {
        "model.safetensors": weights,
        "config.json": (json.dumps(cfg, indent=2) + "\n").encode(),
        "README.md": card.encode("utf-8"),
    }


@dataclass(frozen=True)
class ModelPushResult:
    repo_id: str
    model: str
    run: int
    accuracy: float
    commit_sha: str
    changed: bool

    def card_entry(self, runs: int) -> dict[str, Any]:
        return {"model": self.model, "repo_id": self.repo_id, "run": self.run, "runs": runs,
                "accuracy": round(self.accuracy, 3)}


def push_model(
    k: KeptNet,
    art: Artifact,
    dataset_repo: str,
    config_name: str,
    repo_id: str | None = None,
    *,
    private: bool = False,
    token: str | None = None,
    max_retries: int = 4,
    retry_wait: float = 2.0,
    log: Callable[[str], None] | None = print,
) -> ModelPushResult:
    """Publish ``k`` as model repo ``repo_id`` (default ``<dataset_repo>-<model>``) in one commit."""
    repo_id = repo_id or model_repo_id(dataset_repo, k.model)
    record = (art.results.get("evaluations") or {}).get(k.model) or {}
    files = model_files(k, art, dataset_repo, config_name, repo_id, record)
    oid, changed = push_model_files(
        repo_id, files, f"hf_lodc: {k.model} trained on {dataset_repo}",
        f"model {k.model} (run {k.run}, {k.accuracy:.2f} %)", f"pushing model {k.model!r}", private=private,
        token=token, max_retries=max_retries, retry_wait=retry_wait, log=log)
    return ModelPushResult(repo_id, k.model, k.run, k.accuracy, oid, changed)


def push_model_files(
    repo_id: str,
    files: dict[str, bytes],
    message: str,
    what: str,
    failing: str,
    *,
    private: bool = False,
    token: str | None = None,
    max_retries: int = 4,
    retry_wait: float = 2.0,
    log: Callable[[str], None] | None = print,
) -> tuple[str, bool]:
    """Commit ``files`` (repo path -> bytes) to model repo ``repo_id`` in ONE commit, creating the repo if
    missing; (commit sha, whether the head changed). ``what`` names the network in the log line, ``failing``
    starts the error message. A repo this call created and could not commit to is deleted again."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(token=resolve_token(token))
    say = log or (lambda _m: None)
    state: dict[str, Any] = {"created_here": False, "first_head": None}

    def attempt(_n: int) -> tuple[str, bool]:
        try:
            info = api.repo_info(repo_id, repo_type="model", revision="main")
        except RepositoryNotFoundError:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            state["created_here"] = True
            info = api.repo_info(repo_id, repo_type="model", revision="main")
        head = info.sha
        state["first_head"] = state["first_head"] or head
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=io.BytesIO(b)) for p, b in sorted(files.items())]
        commit = api.create_commit(repo_id, ops, commit_message=message, repo_type="model", parent_commit=head)
        changed = commit.oid != state["first_head"]
        say(f"[hf_lodc] {'pushed' if changed else 'already up to date:'} {what} -> {api.endpoint}/{repo_id} "
            f"({commit.oid[:12]})")
        return commit.oid, changed

    try:
        return with_retries(attempt, max_retries=max_retries, retry_wait=retry_wait, say=say)
    except GaveUp as e:
        f = e.failure
        refused = refusal(f, api, repo_id, "model", "the model repo was not pushed")
        if refused is not None:
            raise refused from None
        where = "the remote repo could not be checked"
        try:
            now = api.repo_info(repo_id, repo_type="model").sha
            where = (f"the remote repo is unchanged (still at {now[:12]})" if now == state["first_head"]
                     else f"the remote head moved to {now[:12]} (another writer)")
            if state["created_here"] and len(api.list_repo_commits(repo_id, repo_type="model")) <= 1:
                api.delete_repo(repo_id, repo_type="model")
                where = "the empty repo created for this push was deleted again"
        except Exception:  # noqa: BLE001 - the Hub may still be unreachable
            pass
        raise HubPushError(
            f"{failing} to {repo_id!r} failed after {e.attempts} attempt(s): "
            f"{f.message if f else 'unknown'}. Nothing was committed: {where}. Push again when the Hub is reachable"
        ) from None


def check_publishable_models(models: list[str], image_shape) -> None:
    """Refuse, before any work, eval models that cannot be published as timm model repos."""
    from ..models import create_eval_model

    c, h, w = image_shape
    for m in models:
        if m.strip().lower().startswith("hf:"):
            _check_publishable(m, nn.Identity())
        _check_publishable(m, create_eval_model(m, num_classes=2, in_chans=c, img_size=(h, w)))


def push_models(
    art: Artifact,
    nets: TrainedNets,
    dataset_repo: str,
    config_name: str,
    *,
    names: dict[str, str] | None = None,
    **push_options: Any,
) -> list[dict[str, Any]]:
    """Push the chosen network of every model kept in ``nets`` (one commit per repo); returns the
    dataset card's entries. ``names``: model -> repo id (default ``<dataset_repo>-<model>``)."""
    chosen = nets.chosen()
    if not chosen:
        raise ConfigError(
            "push_models: no trained network was kept; evaluate with at least one run while keeping the networks "
            "(CondensedDataset.evaluate(..., keep_models=True), or --push-models with --eval-runs > 0)"
        )
    entries = []
    for model, k in chosen.items():
        res = push_model(k, art, dataset_repo, config_name, (names or {}).get(model), **push_options)
        entries.append(res.card_entry(k.runs))
    return entries
