"""Dataclass configs: what to read, how to condense, how to evaluate. Saved inside every artefact.

Every field name is unique across the three sections, so one flat mapping (the CLI options, or a
YAML file with the same keys) fills all of them; ``RunConfig.to_dict()`` writes them nested.
YAML is read with ``yaml.safe_load`` only, and unknown keys are refused by name.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["DataConfig", "CondenseConfig", "EvalConfig", "RunConfig", "load_yaml_config"]


@dataclass
class DataConfig:
    dataset: str = "ylecun/mnist"  # Hub id or local repo folder
    config_name: str | None = None  # source config (subset), e.g. "cifar100"
    revision: str | None = None  # branch / tag / commit of the source repo
    train_split: str = "train"
    eval_split: str | None = "test"  # None: no test split
    image_column: str | None = None  # auto-detected (datasets.Image) when None
    label_column: str | None = None  # auto-detected (ClassLabel) when None
    holdout_fraction: float | None = None  # carve a stratified eval split off train when eval_split is missing
    holdout_seed: int = 0
    image_size: int | None = None  # declared size; dominant size when None
    mixed: str = "convert"  # mixed sizes/modes: "convert" (warn) or "error"
    skip_corrupt: bool = False  # drop undecodable rows instead of failing
    max_per_class: int | None = None  # cap train images per class (quick experiments)


@dataclass
class CondenseConfig:
    method: str = "lodm"  # see hf_lodc.METHODS
    ipc: int | None = 1  # pixel budget: images per class a pixel method may store
    rank: int | None = 2  # factor rank (low-rank methods only)
    images_per_class: int | None = None  # set the stored count directly (overrides the budget)
    init: str | None = None  # noise | real | svd; method default when None (svd for low-rank)
    iterations: int | None = None  # method default when None (20 000 DM, 1 000 gradient matching)
    batch_real: int = 256  # real images per class per matching step (paper: 256)
    lr: float | None = None  # synthetic-set lr; method default (DM 1.0, gradient matching 0.1)
    momentum: float = 0.5  # SGD momentum on the synthetic set (paper)
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"  # used by methods with DSA
    matching_model: str = "auto"  # matching network; auto = ConvNet-3 (ConvNet-4 for >= 64 px)
    outer_loop: int | None = None  # gradient matching; by IPC when None (1: 1/1, 10: 10/50, 50: 50/10)
    inner_loop: int | None = None
    lr_net: float = 0.01  # gradient matching: lr of the network's inner training
    batch_train: int = 256  # gradient matching: batch of the inner training
    seed: int = 0
    log_every: int = 10  # record loss every N iterations
    checkpoint_every: int = 0  # 0 = no periodic checkpoints
    mixed_precision: str = "no"  # no | bf16 | fp16 (network passes only; factors stay fp32)


@dataclass
class EvalConfig:
    eval_models: list[str] = field(default_factory=lambda: ["convnet"])
    eval_runs: int = 5  # independently initialised models per architecture
    eval_epochs: int = 1000  # literature protocol
    eval_lr: float = 0.01
    eval_momentum: float = 0.9
    eval_weight_decay: float = 5e-4
    eval_batch: int = 256
    eval_dsa: bool = True  # DSA on every training batch (protocol)
    eval_dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    eval_seed: int | None = None  # condense seed when None
    eval_backend: str = "auto"  # auto | sequential | vmap (train the runs together)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    condense: CondenseConfig = field(default_factory=CondenseConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str | None = None
    push_to_hub: str | None = None  # repo id to publish to at the end
    hub_private: bool = False
    hub_config_name: str | None = None  # repo config suffix; default "<method>-ipc<k>-r<r>"
    resume: bool = False

    SECTIONS: typing.ClassVar[tuple[str, ...]] = ("data", "condense", "eval")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in self.SECTIONS:
            out.update(asdict(getattr(self, s)))
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.SECTIONS})
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "RunConfig":
        """Accepts the nested form (``to_dict``) or the flat form (CLI option names)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a mapping of option names to values, got {type(d).__name__}")
        flat: dict[str, Any] = {}
        for k, v in d.items():
            if k in cls.SECTIONS and isinstance(v, dict):
                flat.update(v)
            else:
                flat[str(k).replace("-", "_")] = v
        return cls.from_flat(flat, source)

    @classmethod
    def from_flat(cls, flat: dict[str, Any], source: str = "config") -> "RunConfig":
        owners = _field_owners()
        unknown = sorted(k for k in flat if k not in owners)
        if unknown:
            raise ConfigError(
                f"{source}: unknown option(s) {unknown}; valid options: {', '.join(sorted(owners))}"
            )
        parts: dict[str, dict[str, Any]] = {s: {} for s in cls.SECTIONS}
        top: dict[str, Any] = {}
        for k, v in flat.items():
            owner, ftype = owners[k]
            v = _coerce(k, v, ftype, source)
            (parts[owner] if owner in parts else top)[k] = v
        return cls(
            data=DataConfig(**parts["data"]),
            condense=CondenseConfig(**parts["condense"]),
            eval=EvalConfig(**parts["eval"]),
            **top,
        )

    def replace(self, **flat: Any) -> "RunConfig":
        merged = self.to_flat()
        merged.update({k: v for k, v in flat.items()})
        return RunConfig.from_flat(merged)


def _field_owners() -> dict[str, tuple[str, Any]]:
    owners: dict[str, tuple[str, Any]] = {}
    hints = {
        "data": typing.get_type_hints(DataConfig),
        "condense": typing.get_type_hints(CondenseConfig),
        "eval": typing.get_type_hints(EvalConfig),
        "top": typing.get_type_hints(RunConfig),
    }
    for section, cls_ in (("data", DataConfig), ("condense", CondenseConfig), ("eval", EvalConfig)):
        for f in fields(cls_):
            owners[f.name] = (section, hints[section][f.name])
    for f in fields(RunConfig):
        if f.name not in RunConfig.SECTIONS:
            owners[f.name] = ("top", hints["top"][f.name])
    return owners


def _coerce(name: str, value: Any, ftype: Any, source: str) -> Any:
    """Check ``value`` against the field type; accept ints for floats and a comma string for lists."""
    origin = typing.get_origin(ftype)
    args = typing.get_args(ftype)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(name, value, a, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: option {name!r} must be a list, got {value!r}")
        return [_coerce(name, v, args[0] if args else str, source) for v in value]
    if ftype is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: option {name!r} must be true/false, got {value!r}")
    if ftype is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: option {name!r} must be an integer, got {value!r}")
    if ftype is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source}: option {name!r} must be a number, got {value!r}")
    if ftype is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: option {name!r} must be a string, got {value!r}")
    return value


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config safely (no Python object tags) into a flat/nested mapping."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(p)!r}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must be a mapping of option names to values")
    return data


