"""The hardware a benchmark ran on, recorded the same way by every benchmark script."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine() -> dict:
    """CPU model, cores, torch build/threads, niceness, load average, accelerator (if any)."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    from hf_lodc.training.device import cpu_amx, cpu_bf16

    return {"cpu": cpu, "cpu_bf16": cpu_bf16(), "cpu_amx": cpu_amx(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "niceness": os.nice(0), "load_average": os.getloadavg(), "device": device,
            "note": "shared machine: other jobs may run at the same time; see load_average"}


def machine_line(hw: dict | None = None) -> str:
    hw = hw or machine()
    amx = " (AMX)" if hw.get("cpu_amx") else (" (AVX512-BF16, no AMX)" if hw.get("cpu_bf16") else "")
    return (f"{hw['cpu']}{amx}, {hw['cores']} cores, torch {hw['torch']}, {hw['torch_threads']} threads, "
            f"{hw['device']}, nice {hw['niceness']}")
