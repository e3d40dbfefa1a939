"""``speed``: which numeric path a run takes, chosen once from the hardware and the run's size.

``exact`` is the literature's path: float32, contiguous tensors, eager passes, one real pass per
step; it is what every option below means at its own default, bit for bit.

``auto`` (the default) fills each speed option the user left unset (None) with the fastest setting
this hardware runs correctly, per phase (condensation, evaluation):

- ``mixed_precision`` / ``eval_mixed_precision`` = bf16 and ``channels_last`` where the device has
  bfloat16 arithmetic units: AMX tiles or AVX512-BF16 dot products on a CPU (oneDNN's bf16
  convolutions then do twice the fp32 work per cycle or more), a CUDA device that supports bf16.
  Without them bf16 is emulated and slower, so float32 stays; on a CPU bf16 is chosen only for a
  phase that compiles (eager, its casts cost more than it saves).
- ``compile`` / ``eval_compile`` (torch.compile, inductor) where a tiny compile works in this process
  AND the phase is large enough to repay the one-off compile. Compiling the ConvNet-3 passes costs
  25-35 s of wall time on a 2-core CPU; the compiled passes save ~40 % of a CIFAR-10 IPC 1 LoDM
  iteration (~280 GFLOP), so the break-even is ~1 600 GFLOP of work. ``COMPILE_PAYS_GFLOP`` is set
  several times higher, so a run near the line stays eager (a cold compile cache costs more).
- ``real_chunk`` = ``REAL_CHUNK`` with compile: the real half of a distribution-matching step
  embedded in fixed-size chunks, so the compiled graph is one shape whatever the class count.
- ``fused_stem`` with compile on a CPU: the real half's first ConvNet block computed from its input
  without its full-resolution activation (models/convnet_stem.py); ~7 % of a CIFAR-10 IPC 10 step.
- on a CPU, freed large host blocks are kept for reuse (``training.device.keep_freed_host_memory``:
  glibc's mmap/trim thresholds raised) instead of being unmapped and page-faulted in again every
  step; the numbers are untouched (measured in docs/speed.md, "Host memory").

Options the user set (YAML, CLI, API) are never changed. The fast path is measured for
distribution matching and ConvNet evaluation; other objectives and architectures run ``exact`` under
``auto`` too, and the plan says why. The plan is recorded in results.json (``speed``) and every
chosen option is in the run's config and identity, so a checkpoint resumes under the same path or is
refused with the identity diff.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..training import device as device_settings
from .flops import dm_iteration_flops, eval_epoch_flops

__all__ = ["SPEEDS", "SPEED_ENV", "default_speed", "COMPILE_PAYS_GFLOP", "REAL_CHUNK", "Hardware", "PhasePlan", "SpeedPlan", "probe_hardware",
           "compiler_problem", "plan_speed", "convnet_shape"]

SPEEDS = ("auto", "exact")
SPEED_ENV = "HF_LODC_SPEED"  # the default when a config leaves speed unset (the test suite pins exact)
# GFLOP of a phase's work from which compiling pays (break-even measured at ~1 600; see the docstring)
COMPILE_PAYS_GFLOP = {"condense": 10_000.0, "eval": 10_000.0}
REAL_CHUNK = 256  # real images per no-grad chunk on the compiled path


def default_speed() -> str:
    """``$HF_LODC_SPEED`` or auto."""
    value = os.environ.get(SPEED_ENV, "").strip() or "auto"
    if value not in SPEEDS:
        raise ConfigError(f"{SPEED_ENV}={value!r} is not a speed; use one of {', '.join(SPEEDS)} or unset it")
    return value


@dataclass(frozen=True)
class Hardware:
    """What the fast path depends on: bf16 matrix units and a working torch.compile."""

    device: str  # "cpu", "cuda", ...
    bf16_units: bool
    bf16_why: str  # what was found, for the plan's lines


@dataclass
class PhasePlan:
    phase: str  # "condense" | "eval"
    options: dict[str, Any] = field(default_factory=dict)  # option -> value chosen by auto
    kept: dict[str, Any] = field(default_factory=dict)  # options the user set, left as they are
    reasons: list[str] = field(default_factory=list)
    gflop: float | None = None  # the phase's estimated work (None: not estimated)


@dataclass
class SpeedPlan:
    speed: str
    hardware: Hardware
    phases: list[PhasePlan]
    compiler: str = "not probed (no phase repays a compile)"  # or "works", or why it does not
    # keep freed host memory for reuse (process-wide; decided here, done by apply_host_memory)
    keep_host_memory: bool = False
    host_memory: str = "as the C library does by default"  # what was done, for the record

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.phases:
            out.update(p.options)
        return out

    def record(self) -> dict[str, Any]:
        """The plan for results.json."""
        return {"speed": self.speed,
                "hardware": {"device": self.hardware.device, "bf16_units": self.hardware.bf16_units,
                             "bf16": self.hardware.bf16_why, "compiler": self.compiler,
                             "host_memory": self.host_memory},
                **{p.phase: {"chosen": dict(p.options), "set_by_user": dict(p.kept), "why": list(p.reasons),
                             **({"gflop": round(p.gflop, 1)} if p.gflop is not None else {})}
                   for p in self.phases}}

    def lines(self) -> list[str]:
        """One line per phase, for the run's log."""
        out = []
        for p in self.phases:
            chosen = ", ".join(f"{k}={v}" for k, v in p.options.items()) or "float32 eager (exact)"
            why = f" ({'; '.join(p.reasons)})" if p.reasons else ""
            out.append(f"[speed] {self.speed}: {p.phase}: {chosen}{why}")
        if self.keep_host_memory:
            out.append(f"[speed] {self.speed}: host memory: {self.host_memory}")
        return out

    def apply_host_memory(self) -> None:
        """Do the process-wide part of the plan (once a run has chosen it)."""
        if self.keep_host_memory:
            self.host_memory = device_settings.keep_freed_host_memory() or "unchanged (the C library is not glibc)"


def _cuda_bf16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def probe_hardware(device: torch.device | str) -> Hardware:
    """The bf16 units of ``device`` (the compiler is probed only when a plan wants it)."""
    device = torch.device(device)
    if device.type == "cpu":
        units = device_settings.cpu_bf16()  # AMX-BF16 tiles or AVX512-BF16: both outrun fp32 convolutions
        why = ("AMX-BF16 tiles" if device_settings.cpu_amx() else "AVX512-BF16 units" if units
               else "no bf16 units (bf16 would be emulated, slower than float32)")
        return Hardware("cpu", units, why)
    ok = _cuda_bf16(device)
    return Hardware(device.type, ok, "bf16 supported" if ok else f"{device.type} without bf16 support")


@functools.lru_cache(maxsize=None)
def compiler_problem(device_type: str) -> str | None:
    """None when a tiny function compiles and runs with inductor on ``device_type``; else the reason
    (once per process: the probe costs a few seconds of a C++ or Triton build)."""
    try:
        fn = torch.compile(lambda x: torch.relu(x) * 2 + 1, dynamic=False)
        x = torch.linspace(-1, 1, 8, device=device_type)
        y = fn(x)
        if not torch.equal(y, torch.relu(x) * 2 + 1):
            return "torch.compile gave a wrong result on a probe"
    except Exception as e:  # any failure of the toolchain means eager; the plan names it
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"torch.compile does not work here ({type(e).__name__}: {msg[:160]})"
    return None


def convnet_shape(name: str, image_shape: tuple[int, int, int]) -> tuple[int, int] | None:
    """(depth, width) of a ConvNet evaluation/matching model name, None for other architectures."""
    if name == "convnet":
        return (4 if min(image_shape[1:]) >= 64 else 3), 128
    m = re.fullmatch(r"(?:lodc_)?convnet_d(\d+)_w(\d+)", name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _compile_choice(plan: PhasePlan, hw: Hardware, gflop: float, probe, out: SpeedPlan) -> bool:
    if gflop < COMPILE_PAYS_GFLOP[plan.phase]:
        plan.reasons.append(f"eager: {gflop:,.0f} GFLOP of work is under the {COMPILE_PAYS_GFLOP[plan.phase]:,.0f} "
                            "from which compiling pays")
        return False
    problem = probe(hw.device)
    out.compiler = problem or "works"
    if problem:
        plan.reasons.append(f"eager: {problem}")
        return False
    return True


def _fill(plan: PhasePlan, cfg: Any, name: str, value: Any) -> None:
    current = getattr(cfg, name)
    if current is None:
        plan.options[name] = value
    else:
        plan.kept[name] = current


def _fast_path(plan: PhasePlan, cfg: Any, hw: Hardware, probe, out: SpeedPlan, precision: str, channels_last: str,
               compiled: dict[str, Any]) -> None:
    """Fill one phase's unset options: ``compiled`` when the phase compiles (the plan's choice where
    the compile pays, or the user's), and bf16 + channels_last on
    bf16 units, on a CPU only when the phase compiles: eager, the casts to and from bf16 and the float32
    norms between the convolutions cost more than bf16 saves (a small MNIST run 4.6x slower per
    iteration on an AVX512-BF16 EPYC, evaluation epochs 0.4-0.8x on an AMX Xeon; docs/speed.md)."""
    pays = _compile_choice(plan, hw, plan.gflop, probe, out)
    user_compile = getattr(cfg, next(iter(compiled)))  # ``compiled`` names the phase's compile option first
    will_compile = bool(user_compile) if user_compile is not None else pays
    if will_compile:  # the compile and what goes with it (a compile the user asked for brings them too)
        for name, value in compiled.items():
            _fill(plan, cfg, name, value)
    if not hw.bf16_units:
        plan.reasons.append(f"float32: {hw.bf16_why}")
    elif hw.device == "cpu" and not will_compile:
        plan.reasons.append(f"float32: {hw.bf16_why}, but bf16 pays on a CPU only with compile")
    else:
        _fill(plan, cfg, precision, "bf16")
        _fill(plan, cfg, channels_last, True)


def plan_speed(speed: str, hw: Hardware, *, method_objective: str | None, matching_model: str,
               image_shape: tuple[int, int, int], num_classes: int, batch_real: int, syn_per_class: int,
               iterations: int, condense_cfg: Any, eval_cfg: Any, eval_images: int, eval_backend_vmap: bool,
               probe=compiler_problem, matched_classes: int | None = None) -> SpeedPlan:
    """The options ``speed`` chooses for this run (see the module docstring). ``condense_cfg`` /
    ``eval_cfg`` are read for the options the user set; nothing is modified."""
    if speed not in SPEEDS:  # RunConfig checks its speed; the API's speed= keyword arrives here unchecked
        raise ConfigError(f"speed must be one of {', '.join(SPEEDS)}, got {speed!r}")
    cond, ev = PhasePlan("condense"), PhasePlan("eval")
    out = SpeedPlan(speed, hw, [cond, ev])
    if speed == "exact":
        for p in out.phases:
            p.reasons.append("speed=exact")
        return out
    out.keep_host_memory = hw.device == "cpu"

    # -- condensation -------------------------------------------------------------------------
    shape = convnet_shape(matching_model, image_shape)
    if method_objective != "dm":
        cond.reasons.append("exact: the fast path is measured for distribution matching only")
    elif shape is None:
        cond.reasons.append(f"exact: the fast path is measured for ConvNet matching networks, not {matching_model!r}")
    elif iterations > 0:
        depth, width = shape
        k = matched_classes or num_classes  # classes matched per iteration (class sampling: a subset)
        cond.gflop = dm_iteration_flops(image_shape, k, batch_real, syn_per_class, width, depth).total \
            * iterations / 1e9
        compiled = {"compile": True, "real_chunk": REAL_CHUNK}
        if hw.device == "cpu":  # a GPU's libraries run the 3-channel conv well: the module path stays there
            compiled["fused_stem"] = True
        _fast_path(cond, condense_cfg, hw, probe, out, "mixed_precision", "channels_last", compiled)

    # -- evaluation -----------------------------------------------------------------------------
    shapes = [convnet_shape(m, image_shape) for m in eval_cfg.eval_models]
    if eval_cfg.eval_runs <= 0:
        ev.reasons.append("no evaluation runs")
    elif eval_backend_vmap:
        ev.reasons.append("exact: the runs train together (vmap), which autocast and compile do not reach")
    elif any(s is None for s in shapes):
        ev.reasons.append("exact: the fast path is measured for ConvNet evaluation models only")
    else:
        per_epoch = sum(eval_epoch_flops(image_shape, eval_images, num_classes, w, d).total for d, w in shapes)
        ev.gflop = per_epoch * eval_cfg.eval_epochs * eval_cfg.eval_runs / 1e9
        _fast_path(ev, eval_cfg, hw, probe, out, "eval_mixed_precision", "eval_channels_last", {"eval_compile": True})
    return out

