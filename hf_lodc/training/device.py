"""Numeric settings of the device passes, set explicitly in one place and recorded with every result.

``configure(device)`` decides, once per run: TF32 for float32 matrix products and convolutions on
CUDA (off by default: float32 stays float32 unless asked), ``cudnn.benchmark`` (on: the condensation
and evaluation shapes are fixed, so the autotuned kernels are reused), and the memory format the
ConvNet passes use (channels_last only where asked). The ``Condenser`` configures from its config
(``tf32``, ``channels_last``: ``--tf32``, ``--channels-last``) and records the result in results.json
(``condensation.device``); evaluation configures the defaults when nothing was (``ensure``).
``settings()`` returns what is in force, for results.json and the benchmark JSONs. ``cpu_bf16()`` says whether this CPU has bfloat16
units (AVX512-BF16 or AMX), where bf16 convolutions outrun fp32 ones (measured in docs/speed.md), so
``speed: auto`` picks bf16 there; ``cpu_amx()`` whether they are AMX tiles, the fastest of them.
``autocast(precision, device)`` is the one factory of the autocast context for network passes, for
condensation (``mixed_precision``) and evaluation (``eval_mixed_precision``) alike.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ContextManager

import torch

__all__ = ["DeviceSettings", "configure", "ensure", "settings", "cpu_bf16", "cpu_amx", "cpu_flags", "compile_once",
           "keep_freed_host_memory",
           "autocast", "AUTOCAST_DTYPES", "as_memory_format"]


@dataclass(frozen=True)
class DeviceSettings:
    device: str
    tf32: bool  # float32 matmul/conv through TF32 tensor cores (CUDA only)
    cudnn_benchmark: bool
    channels_last: bool  # ConvNet passes in channels_last memory format
    float32_matmul_precision: str
    cpu_bf16: bool
    torch: str
    cuda: str | None
    cpu_amx: bool = False  # AMX-BF16 tiles, the fastest bf16 units (recorded: timings depend on it)


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_bf16() -> bool:
    """True where the CPU has bfloat16 arithmetic units (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def cpu_amx() -> bool:
    """True where the CPU has AMX-BF16 tiles (Sapphire Rapids and later), the fastest of the bf16 units
    ``cpu_bf16`` counts; recorded with benchmarks so their timings say which units ran."""
    return "amx_bf16" in cpu_flags()


# mixed-precision names (Accelerate's) -> the autocast dtype of the network passes; "no": none
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str | None, device: torch.device | str) -> Callable[[], ContextManager]:
    """A factory of the context the network passes run under at ``precision`` ("no"/None: a null
    context, float32 throughout; "bf16"/"fp16": ``torch.autocast`` on ``device``'s type). Parameters,
    their gradients and the optimiser stay float32 either way."""
    if precision not in (None, *AUTOCAST_DTYPES):
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST_DTYPES)}, got {precision!r}")
    dtype = AUTOCAST_DTYPES.get(precision or "no")
    if dtype is None:
        return contextlib.nullcontext
    device_type = torch.device(device).type
    return lambda: torch.autocast(device_type=device_type, dtype=dtype)


def as_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` (N, C, H, W) in channels_last strides when ``channels_last``, else contiguous.

    With one channel (MNIST) both layouts describe the same memory, and torch keeps the contiguous
    strides (N*.., H*W, W, 1) for ``.contiguous(memory_format=torch.channels_last)``; a convolution then
    picks oneDNN's contiguous kernel and the compiled graph copies its (N, 128, H, W) output into
    channels_last afterwards (for MNIST's first layer in bf16 on an AMX CPU: a slower kernel plus the copy).
    Here a one-channel tensor gets the channels_last strides (H*W, 1, W, 1) explicitly: the same values
    at the same addresses, no copy."""
    if not channels_last:
        return x.contiguous()
    if x.dim() == 4 and x.shape[1] == 1 and torch.is_autocast_enabled(x.device.type) and x.is_floating_point():
        # cast here, not inside the network: a cast inside a compiled graph makes a new buffer whose
        # (ambiguous) one-channel layout inductor picks, contiguous; the first convolution's input is
        # cast to the autocast dtype either way, so the values are the same
        x = x.to(torch.get_autocast_dtype(x.device.type))
    x = x.contiguous(memory_format=torch.channels_last)
    if x.dim() == 4 and x.shape[1] == 1 and x.stride(1) != 1:
        h, w = x.shape[2], x.shape[3]
        x = x.as_strided(x.shape, (h * w, 1, w, 1))
    return x


def _channels_last_default(device: torch.device) -> bool:
    # off by default: alone (without compile) it saves no CPU time on a CPU, and it changes DM's fp32
    # gradients (oneDNN picks other kernels), so the default path stays bit-identical to eager
    # contiguous; the GPU lease measures it on CUDA
    return False


def configure(device: torch.device | str, tf32: bool = False, cudnn_benchmark: bool = True,
              channels_last: bool | None = None) -> DeviceSettings:
    """Set the precision flags for ``device`` and return them (also via ``settings``)."""
    global _CURRENT
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = cudnn_benchmark
    cl = _channels_last_default(device) if channels_last is None else channels_last
    _CURRENT = _snapshot(device, cl)
    return _CURRENT


def _snapshot(device: torch.device, cl: bool) -> DeviceSettings:
    cuda = device.type == "cuda"
    return DeviceSettings(
        device=str(device),
        tf32=bool(cuda and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32),
        cudnn_benchmark=bool(cuda and torch.backends.cudnn.benchmark),
        channels_last=cl,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        cpu_bf16=cpu_bf16(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cpu_amx=cpu_amx(),
    )


_CURRENT: DeviceSettings | None = None


def ensure(device: torch.device | str) -> DeviceSettings:
    """The settings in force for ``device``, configuring the defaults first when nothing was configured
    for it (so torch's own defaults, e.g. cuDNN convolutions in TF32, never run unrecorded)."""
    device = torch.device(device)
    if _CURRENT is None or _CURRENT.device != str(device):
        return configure(device)
    return _CURRENT


def settings(device: torch.device | str = "cpu") -> dict:
    """What is in force for ``device`` (the last ``configure``'d, else the defaults), as a dict."""
    device = torch.device(device)
    if _CURRENT is not None and _CURRENT.device == str(device):
        return asdict(_CURRENT)
    return asdict(_snapshot(device, _channels_last_default(device)))


_COMPILED: dict[Callable, Callable] = {}


def compile_once(fn: Callable) -> Callable:
    """``torch.compile(fn, dynamic=False)``, built once per process per function. ``fn`` takes the network
    as an ARGUMENT, so a fresh network of the same architecture reuses the compiled code (one graph per
    input shape and mode); give each use its own function (its own code object: torch.compile's cache
    lives on it)."""
    compiled = _COMPILED.get(fn)
    if compiled is None:
        compiled = _COMPILED[fn] = torch.compile(fn, dynamic=False)
    return compiled


# glibc's mallopt parameters (malloc.h) and the value set: blocks up to ~2 GiB come from the heap and
# stay there when freed, instead of a fresh mmap (and a page fault per 4 KiB) for every large tensor
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _KEEP_UP_TO = -1, -3, 2**31 - 1
_host_memory_kept: str | None = None


def keep_freed_host_memory() -> str | None:
    """Let this process reuse freed large host blocks instead of returning them to the kernel.

    glibc serves every allocation above its mmap threshold (at most 32 MiB by default) with a fresh
    mapping and unmaps it on free, so each large activation of a CPU pass (a real batch of 256 images
    at 128 channels is 100 MB; unchunked, 1 GB) is page-faulted in, zero-filled, again every step
    (what that costs a step: docs/speed.md, "Host memory").
    Raising the mmap and trim thresholds keeps freed blocks in the heap for the next step: the numbers
    are untouched, the process's resident memory stays at its peak instead of shrinking between steps.
    Process-wide and idempotent; returns what was done, or None where the C library is not glibc."""
    global _host_memory_kept
    if _host_memory_kept is None:
        import ctypes
        import ctypes.util
        import platform

        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_UP_TO) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO) == 1
        except (OSError, AttributeError):
            ok = False
        if not ok:
            return None
        _host_memory_kept = "glibc keeps freed blocks up to 2 GiB for reuse (mmap/trim thresholds raised)"
    return _host_memory_kept
