"""Dataclass configs: what to read, how to condense, how to evaluate. Saved inside every artefact.

Every field name is unique across the three sections, so one flat mapping (the CLI options, or a
YAML file with the same keys) fills all of them; ``RunConfig.to_dict()`` writes them nested.

Objective options (design): each objective owns its options as a dataclass
(``objectives/gm.py: GMOptions``, ``objectives/tm.py: TMOptions``, ``objectives/dm.py: DMOptions``),
registered with the objective (``Objective.Options``). ``CondenseConfig`` holds the engine's fields
(``_CondenseCore``) and ``options``: the chosen method's options object, nothing of the other
objectives'; it is recorded nested (``condense: {method: ..., ..., "options": {...}}``, None for a
method without objective options). The flat names users have (``CondenseConfig(method="dc",
outer_loop=2)``, ``--outer-loop``, ``expert_dir:`` in YAML) keep working: every objective's field
names are unique, so the CLI and YAML are generated from all of them (``CondenseConfig.flat_fields``)
and a flat option is put into the method's options, or refused by name when the method does not
have it (``condense_options.py``, which also reads the flat records of earlier versions). An
objective registered later gets its options on the CLI and in YAML without an edit here; nothing
here knows what an objective option means.

Every config checks itself when built (from Python, YAML or the CLI): each value against its
field's type, and the range rules (``config_checks.py``, plus the objectives' ``RULES``); options that
name a registry entry (method, init, contrast, DSA strategies, evaluation backend) are checked
against that registry, so a newly registered name is accepted. A wrong value raises
``ConfigError`` naming the option, what it must be and what it got. YAML is read with a safe
loader only (no Python object tags, duplicate keys refused: ``config_yaml.py``), the flat and
nested forms are mapped by ``config_sections.py``, and unknown keys are refused by name.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from ..errors import ConfigError
from ..objectives import ObjectiveOptions
from .condense_options import OPTIONS_KEY, flat_condense_record, method_options, objective_option_owners as _owners
from .config_checks import Checked as _Checked, check_option, hints as _hints
from .config_sections import Sectioned  # the flat <-> nested mapping, shared with continual.ContinualConfig
from .config_yaml import load_yaml_config  # config files; also importable from here, beside the configs

__all__ = ["DataConfig", "CondenseConfig", "EvalConfig", "RunConfig", "load_yaml_config", "check_option",
           "objective_option_owners", "Sectioned", "CORE_CONDENSE_FIELDS", "check_option_names"]


@dataclass
class DataConfig(_Checked):
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
    image_mode: str | None = None  # declared mode (L or RGB); dominant mode when None
    mixed: str = "convert"  # mixed sizes/modes: "convert" (warn) or "error"
    skip_corrupt: bool = False  # drop undecodable rows instead of failing
    drop_empty_classes: bool = False  # drop classes without train images instead of failing
    max_per_class: int | None = None  # cap train images per class (quick experiments)
    # decoded images: "off" in memory, "on" in a memory-mapped file under $HF_LODC_CACHE/decoded (larger
    # than memory), "auto" maps them when they would take over 10 % of the machine's memory
    decoded_cache: str = "auto"


@dataclass
class _CondenseCore(_Checked):
    """The engine's own condensation settings; ``CondenseConfig`` adds the objectives' options."""

    method: str = "lodm"  # see hf_lodc.METHODS
    ipc: int | None = 1  # pixel budget: images per class a pixel method may store
    rank: int | None = 2  # factor rank (low-rank methods only)
    images_per_class: int | None = None  # set the stored count directly (within the ipc budget unless ipc=None)
    init: str | None = None  # noise | real | svd; method default when None (svd for low-rank)
    iterations: int | None = None  # method default when None (20 000 DM, 1 000 gradient matching)
    batch_real: int = 256  # real images per class per matching step (paper: 256)
    lr: float | None = None  # synthetic-set lr; method default (DM 1.0, gradient matching 0.1)
    momentum: float = 0.5  # SGD momentum on the synthetic set (paper)
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"  # used by methods with DSA
    matching_model: str = "auto"  # matching network; auto = ConvNet-3 (ConvNet-4 for >= 64 px)
    seed: int = 0
    log_every: int = 10  # record loss every N iterations
    checkpoint_every: int = 0  # 0 = no periodic checkpoints
    # no | bf16 | fp16 for the network passes (factors stay fp32); None = the launcher's choice
    # (`accelerate launch --mixed_precision bf16`, accelerate config) or, when that is "no", speed's
    mixed_precision: str | None = None
    # float32 matmuls and convolutions through TF32 tensor cores (CUDA only; off: float32 stays float32,
    # which torch's own default does NOT guarantee for cuDNN convolutions); recorded in results.json
    tf32: bool = False
    # the matching network's passes in channels_last memory format (recorded); None: speed decides
    channels_last: bool | None = None
    contrast: str = "class_std"  # finished matching sets: a CONTRASTS name (class_std: real per-class std; none)


# the engine's own condense fields (the rest of a flat condense mapping is objective options)
CORE_CONDENSE_FIELDS = _CORE = tuple(f.name for f in fields(_CondenseCore))


def objective_option_owners() -> dict[str, tuple[str, Any, Any]]:
    """Flat objective option name -> (objective, type, dataclass field), over the registered objectives."""
    return _owners(_CORE)


objective_option_owners()  # a clash between an objective option and an engine field fails at import


@dataclass(init=False)
class CondenseConfig(_CondenseCore):
    """How to condense: the engine's settings (method, budget, lr, seed, ...) and ``options``, the chosen
    method's objective options object (None when it has none; see the module docstring).

    Built with the options flat (``CondenseConfig(method="dc", outer_loop=2)``) or as ``options=`` (an
    options object of the method's class, or a mapping of its fields); reading ``cfg.outer_loop`` reads
    ``cfg.options.outer_loop``. An option the method does not have is refused by name."""

    options: ObjectiveOptions | None = None

    def __init__(self, options: ObjectiveOptions | Mapping[str, Any] | None = None, **given: Any):
        for f in fields(_CondenseCore):
            value = given.pop(f.name) if f.name in given else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
            object.__setattr__(self, f.name, value)
        self.options = None
        self.__post_init__()  # the engine's fields first: the method must be known to pick its options
        self.options = method_options(self.method, options, given, type(self).__name__)

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any], source: str = "CondenseConfig") -> "CondenseConfig":
        """From flat names (and ``options``, the nested form); errors name ``source`` (e.g. a YAML file)."""
        cfg = cls(**{k: v for k, v in flat.items() if k in _CORE})
        rest = {k: v for k, v in flat.items() if k not in _CORE and k != OPTIONS_KEY}
        cfg.options = method_options(cfg.method, flat.get(OPTIONS_KEY), rest, source)
        return cfg

    def __getattr__(self, name: str) -> Any:  # only called for names that are not attributes
        opts = self.__dict__.get("options")
        if opts is not None and name in {f.name for f in fields(opts)}:
            return getattr(opts, name)
        raise AttributeError(f"{type(self).__name__}: method {self.__dict__.get('method')!r} has no option {name!r}")

    @classmethod
    def flat_fields(cls) -> list[tuple[str, Any, dict]]:
        """(name, type, metadata) of every flat option: the engine's fields, then every registered
        objective's (the CLI and YAML names; each checked against the chosen method when built)."""
        core = [(f.name, _hints(_CondenseCore)[f.name], f.metadata) for f in fields(_CondenseCore)]
        return core + [(n, t, f.metadata) for n, (_, t, f) in objective_option_owners().items()]

    def to_flat(self) -> dict[str, Any]:
        """The engine's fields and the method's options, flat (the CLI / YAML names)."""
        out = {n: getattr(self, n) for n in _CORE}
        if self.options is not None:
            out.update(dataclasses.asdict(self.options))
        return out

    def to_dict(self) -> dict[str, Any]:
        """As recorded: the engine's fields and ``options``: {the method's objective options} (or None)."""
        return dataclasses.asdict(self)


def _help(text: str) -> dict[str, str]:
    """A field's command-line help (engine/cli.py): one text for every recipe that has the option."""
    return {"help": text}


@dataclass
class EvalConfig(_Checked):
    eval_models: list[str] = field(default_factory=lambda: ["convnet"], metadata=_help(
        "comma-separated evaluation models (convnet, convnet_bn, resnet18_bn, any timm name)"))
    eval_runs: int = field(default=5, metadata=_help(
        "independently initialised models per architecture (0: no evaluation)"))
    eval_epochs: int = field(default=1000, metadata=_help("training epochs per model (literature protocol: 1000)"))
    eval_lr: float = 0.01
    eval_momentum: float = field(default=0.9, metadata=_help("SGD momentum of the evaluation training (protocol: 0.9)"))
    eval_weight_decay: float = field(default=5e-4, metadata=_help(
        "weight decay of the evaluation training (protocol: 5e-4)"))
    eval_batch: int = field(default=256, metadata=_help("evaluation training batch size (protocol: 256)"))
    eval_dsa: bool = field(default=True, metadata=_help("DSA on every evaluation training batch (protocol: on)"))
    eval_dsa_strategy: str = field(default="color_crop_cutout_flip_scale_rotate", metadata=_help(
        "DSA families of the evaluation training, or none"))
    eval_seed: int | None = field(default=None, metadata=_help(
        "evaluation seed (default: the condensation's seed, as recorded with a saved set; 0 for a set made "
        "elsewhere)"))
    eval_backend: str = field(default="auto", metadata=_help(
        "auto | sequential | vmap (vmap trains the runs of a model together)"))
    eval_protocol: str = field(default="dc", metadata=_help(
        "dc (the DC/DSA/DM literature's) or idc (IDC's own: batch 64, multistep lr, CutMix); non-default results "
        "are stored as <model>@<protocol>"))
    # The three speed options of evaluation; None: ``speed`` decides (engine/speed.py), which is float32
    # eager unless the run is large enough and the hardware has the units. Each is recorded in every
    # accuracy's protocol when on.
    # torch.compile the evaluation network's forward (training and test pass; sequential backend only):
    # less CPU per epoch after a one-off compile, not bit-identical to eager
    eval_compile: bool | None = field(default=None, metadata=_help(
        "torch.compile each evaluation network's forward (less CPU per epoch after a one-off compile; recorded); "
        "default: the speed choice"))
    # the evaluation networks' passes (training and test) under autocast: "no" (float32, the literature's
    # protocol) or "bf16" (weights, gradients and SGD stay float32); pays on bf16 units (AMX, AVX512-BF16, CUDA)
    eval_mixed_precision: str | None = field(default=None, metadata=_help(
        "evaluation precision: no (float32, the literature's) or bf16 (network passes under bf16 autocast, "
        "weights and SGD in float32; recorded); with --eval-compile --eval-channels-last 3-5x faster per epoch "
        "on CPUs with bf16 units, accuracy within the runs' std; default: the speed choice"))
    # evaluation networks (and their inputs) in channels_last memory format (sequential backend only):
    # with bf16 on a CPU oneDNN's fast convolutions want it
    eval_channels_last: bool | None = field(default=None, metadata=_help(
        "evaluation networks and batches in channels_last memory format (recorded); default: the speed choice"))
    # accuracy against iterations: the set as it was after each of these iterations, evaluated with a
    # short protocol (eval_at_runs x eval_at_epochs, the first eval model) after the condensation;
    # recorded in results.json ("curve") and drawn to curve.png in the output folder
    eval_at: list[int] | None = None
    eval_at_runs: int = 2
    eval_at_epochs: int = 300


@dataclass
class RunConfig(Sectioned, _Checked):
    data: DataConfig = field(default_factory=DataConfig)
    condense: CondenseConfig = field(default_factory=CondenseConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str | None = None
    push_to_hub: str | None = None  # repo id to publish to at the end
    hub_private: bool = False
    hub_config_name: str | None = None  # repo config suffix; default "<method>-ipc<k>-r<r>"
    hub_test_split: bool = True  # publish the real test split as the repo's validation / test splits
    hub_push_models: bool = False  # also push one trained network per eval model as a model repo
    resume: bool = False
    # auto: the fastest path this hardware runs correctly for the options left unset (bf16 on matrix
    # units, channels_last, torch.compile when the run repays it); exact: the literature's float32 eager
    # path, bit for bit (engine/speed.py)
    speed: str | None = field(default=None, metadata={"help": (
        "auto (default; $HF_LODC_SPEED changes the default): for the speed options left unset, the fastest "
        "path this hardware runs correctly (bf16 + channels_last on bf16 matrix units, torch.compile when the "
        "run repays it), logged and recorded in results.json; exact: the literature's float32 eager path, "
        "bit for bit")})

    @classmethod
    def option_owners(cls) -> dict[str, tuple[str, Any]]:
        return _field_owners()

    @classmethod
    def from_record(cls, record: Mapping[str, Any], source: str = "config") -> "RunConfig":
        """A recorded run config (``config.json``'s ``run``) of any version: one written before a config
        held only its method's options lists every objective's, flat; the others' are left out."""
        d = dict(record)
        if isinstance(d.get("condense"), Mapping):
            d["condense"] = flat_condense_record(d["condense"])
        return cls.from_dict(d, source)

    @classmethod
    def from_flat(cls, flat: dict[str, Any], source: str = "config") -> "RunConfig":
        owners = _field_owners()
        unknown = sorted(str(k) for k in flat if k not in owners)
        if unknown:
            raise ConfigError(
                f"{source}: unknown option(s) {unknown}; valid options: {', '.join(sorted(owners))}"
            )
        parts: dict[str, dict[str, Any]] = {s: {} for s in cls.SECTIONS}
        top: dict[str, Any] = {}
        for k, v in flat.items():
            owner, ftype = owners[k]
            v = check_option(k, v, ftype, source)
            (parts[owner] if owner in parts else top)[k] = v
        return cls(
            data=DataConfig(**parts["data"]),
            condense=CondenseConfig.from_flat(parts["condense"], source),
            eval=EvalConfig(**parts["eval"]),
            **top,
        )


def _field_owners() -> dict[str, tuple[str, Any]]:
    owners: dict[str, tuple[str, Any]] = {}
    for section, cls_ in (("data", DataConfig), ("eval", EvalConfig)):
        for f in fields(cls_):
            owners[f.name] = (section, _hints(cls_)[f.name])
    for name, ftype, _ in CondenseConfig.flat_fields():
        owners[name] = ("condense", ftype)
    owners[OPTIONS_KEY] = ("condense", Any)  # the nested form (as recorded); CondenseConfig checks it
    for f in fields(RunConfig):
        if f.name not in RunConfig.SECTIONS:
            owners[f.name] = ("top", _hints(RunConfig)[f.name])
    return owners




def check_option_names(given: Mapping[str, Any], section: type, what: str) -> None:
    """Keyword options of the Python API against ``section``'s names (``CondenseConfig``: its fields and
    every objective's options, flat): each unknown one named, with the closest valid name."""
    flat = getattr(section, "flat_fields", None)
    valid = sorted(n for n, *_ in flat()) if flat is not None else sorted(f.name for f in fields(section))
    unknown = sorted(set(given) - set(valid))
    if unknown:
        close = {k: difflib.get_close_matches(k, valid, n=1) for k in unknown}
        hint = "; ".join(f"{k!r}: did you mean {m[0]!r}?" for k, m in close.items() if m)
        raise ConfigError(f"unknown {what} option(s) {unknown}" + (f" ({hint})" if hint else "")
                          + f"; valid options: {', '.join(valid)}")
