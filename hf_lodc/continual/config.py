"""The continual-learning run config: the core sections plus the class-incremental settings.

Flat option names are those of :class:`hf_lodc.engine.config.RunConfig`'s sections (data, condense,
eval) plus the fields below; ``method``, ``ipc``, ``images_per_class`` and ``seed`` are set per
memory type / task by the recipe, so giving them is an error that names the option to use.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..engine.condense_options import OPTIONS_KEY, flat_option_names, objective_option_owners
from ..engine.config import CORE_CONDENSE_FIELDS, CondenseConfig, DataConfig, EvalConfig, RunConfig, check_option
from ..engine.config_sections import Sectioned
from ..errors import ConfigError
from ..methods import METHODS
from ..seeding import derive_seed

__all__ = ["ContinualConfig", "OWNED_OPTIONS"]

# core options the continual recipe sets itself -> the option that controls them
OWNED_OPTIONS = {
    "method": "methods",
    "ipc": "memory_ipc",
    "images_per_class": "memory_ipc",
    "seed": "seeds / first_seed",
}

_AT_LEAST_ONE = ("tasks", "memory_ipc", "seeds", "test_per_class")


@dataclass
class ContinualConfig(Sectioned):
    data: DataConfig = field(default_factory=DataConfig)
    condense: CondenseConfig = field(default_factory=CondenseConfig)  # shared by all memory types (rank, iterations)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(eval_runs=3))  # GDumb learner; 3 models/step (paper)
    tasks: int = 5  # class-incremental steps (paper: 5 for CIFAR-10/100, 10 for CIFAR-100)
    memory_ipc: int = 10  # memory budget in pixel images per class (paper: 10 CIFAR-10, 20 CIFAR-100)
    methods: list[str] = field(default_factory=lambda: ["random", "herding", "dm", "lodm"])  # memory types
    seeds: int = 5  # class orders (and condensations): seeds first_seed .. first_seed + seeds - 1
    first_seed: int = 0
    test_per_class: int | None = None  # first n test images per class (CPU-sized runs); None = the whole split
    output_dir: str | None = None  # memories, per-step evaluations, continual.{json,md,png}
    # the memory types' objective options (flat names: real_chunk, outer_loop, expert_dir, ...): each reaches
    # the memory types whose method has it (the condense section's own options are its method's only);
    # recorded under condense.options, given flat like any other option
    objective_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def option_owners(cls) -> dict[str, tuple[str, Any]]:
        """The core sections' options (those set per memory type / task included, so that they are
        refused with the option to use) and this config's own, at the top level."""
        hints = typing.get_type_hints(cls)
        own = {f.name: ("top", hints[f.name]) for f in fields(cls)
               if f.name not in cls.SECTIONS and f.name != "objective_options"}
        core = {k: v for k, v in RunConfig.option_owners().items() if v[0] in cls.SECTIONS}
        return {**core, **own}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            if f.name in self.SECTIONS or f.name == "objective_options":
                continue
            value = check_option(f.name, getattr(self, f.name), hints[f.name], "ContinualConfig")
            if f.name in _AT_LEAST_ONE and value is not None and value < 1:
                raise ConfigError(f"ContinualConfig: option {f.name!r} must be >= 1, got {value!r}")
            setattr(self, f.name, value)
        if not self.methods:
            raise ConfigError("ContinualConfig: option 'methods' is empty; give memory types, e.g. random,dm,lodm")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"ContinualConfig: option 'methods' lists a memory type twice: {self.methods}")
        self.objective_options = self._memory_options()

    def _memory_options(self) -> dict[str, Any]:
        """The objective options in force: the condense section's (those a memory type has) and, over them,
        ``objective_options``, each checked and refused by name when no memory type has it."""
        owners = objective_option_owners()
        known = [m for m in self.methods if m in METHODS.names()]  # an unknown one is refused by the run's checks
        had = {n for m in known for n in flat_option_names(m)}
        out = {k: v for k, v in (asdict(self.condense.options) if self.condense.options else {}).items() if k in had}
        for k, v in dict(self.objective_options).items():
            if k not in owners:
                raise ConfigError(f"ContinualConfig: unknown objective option {k!r}")
            if k not in had and v == owners[k][2].default:
                continue  # at its default (e.g. carried over from another list of memory types): nothing set
            if k not in had:
                having = [m for m in METHODS.names() if k in flat_option_names(m)]
                raise ConfigError(f"ContinualConfig: no memory type of {self.methods} has option {k!r} (methods "
                                  f"that have it: {', '.join(having) or 'none'}); drop it or add one of them")
            out[k] = check_option(k, v, owners[k][1], "ContinualConfig")
        return out

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def task_condense_config(self, method: str, seed: int, task: int) -> CondenseConfig:
        """The condensation of ``task`` for memory type ``method`` under class order ``seed``."""
        # the shared section's options reach the memory types that have them (dm and lodm share DM's)
        own = set(flat_option_names(method))
        return CondenseConfig(**{
            **{k: getattr(self.condense, k) for k in CORE_CONDENSE_FIELDS},
            **{k: v for k, v in self.objective_options.items() if k in own},
            "method": method,
            "ipc": self.memory_ipc,
            "images_per_class": None,
            # every memory type of one (seed, task) shares the seed: same real init images, same networks
            "seed": derive_seed(seed, "continual", "task", task) % (2**31),
        })

    def to_dict(self) -> dict[str, Any]:
        """Nested form; the condense options set per memory type / task are left out."""
        d = asdict(self)
        for k in OWNED_OPTIONS:
            d["condense"].pop(k, None)
        d["condense"][OPTIONS_KEY] = d.pop("objective_options")  # every memory type's, by flat name
        return d

    def to_flat(self) -> dict[str, Any]:
        """Flat form; the condense options set per memory type / task are left out."""
        out = super().to_flat()
        for k in [*OWNED_OPTIONS, *objective_option_owners(), "objective_options"]:
            out.pop(k, None)
        return {**out, **self.objective_options}

    @classmethod
    def from_flat(cls, flat: dict[str, Any], source: str = "config") -> "ContinualConfig":
        owned = sorted(k for k in flat if k in OWNED_OPTIONS)
        if owned:
            raise ConfigError(
                f"{source}: {', '.join(repr(k) for k in owned)} cannot be set in a continual run (it is set per "
                f"memory type and task); use {', '.join(repr(OWNED_OPTIONS[k]) for k in owned)} instead"
            )
        owners = cls.option_owners()
        valid = set(owners) - set(OWNED_OPTIONS)
        unknown = sorted(str(k) for k in flat if k not in valid)
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {unknown}; valid options: {', '.join(sorted(valid))}")
        top = {k: check_option(k, v, owners[k][1], source) for k, v in flat.items() if owners[k][0] == "top"}
        # objective options go to the memory types that have them, not to the condense section's method
        objective = set(objective_option_owners())
        memory = dict(flat.get(OPTIONS_KEY) or {})
        for k, v in flat.items():
            if k in objective:
                if k in memory:
                    raise ConfigError(f"{source}: option {k!r} is given twice")
                memory[k] = check_option(k, v, owners[k][1], source)
        top["objective_options"] = memory
        rest = {k: v for k, v in flat.items() if owners[k][0] != "top" and k not in objective and k != OPTIONS_KEY}
        rest.setdefault("eval_runs", cls().eval.eval_runs)
        run = RunConfig.from_flat(rest, source)
        return cls(data=run.data, condense=run.condense, eval=run.eval, **top)
