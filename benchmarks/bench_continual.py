#!/usr/bin/env python
"""CPU benchmark: class-incremental MNIST (5 tasks of 2 classes), GDumb on a memory of k pixel images/class.

Compares memory types at equal storage: random real images, herding, rank-r SVD of random real
images with no matching (``lorandom``, the low-rank baseline), DM and LoDM. CPU-sized: few condensation
iterations, one GDumb model of E epochs per step, a capped test set. Writes
``benchmarks/results/continual-mnist-k<k>.{json,md,png}``; task memories and per-step evaluations go
to ``--work-dir`` so an interrupted benchmark resumes where it stopped.

    nice -n 10 python benchmarks/bench_continual.py --memory-ipc 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from _machine import machine_line  # benchmarks/ is on sys.path when run as a script
from hf_lodc.continual import ContinualConfig, markdown_table, run_continual
from hf_lodc.continual.report import write_report

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--memory-ipc", type=int, default=1)
    p.add_argument("--rank", type=int, default=2, help="LoDM rank (2 at k=1: 7 images/class as in the paper)")
    p.add_argument("--methods", default="random,herding,lorandom,dm,lodm")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--batch-real", type=int, default=64)
    p.add_argument("--eval-runs", type=int, default=1)
    p.add_argument("--eval-epochs", type=int, default=100)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--max-per-class", type=int, default=1000, help="train images per class (herding embeds them all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a busy 2-core machine)")
    p.add_argument("--work-dir", default=None, help="memories + steps (default /tmp/hf_lodc-bench-continual-k<k>)")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str(Path(__file__).resolve().parents[2] / "shared" / "hub"))
    torch.set_num_threads(a.threads)
    work = a.work_dir or f"/tmp/hf_lodc-bench-continual-k{a.memory_ipc}"
    cfg = ContinualConfig.from_flat({
        "dataset": "ylecun/mnist", "max_per_class": a.max_per_class, "tasks": 5, "memory_ipc": a.memory_ipc,
        "methods": a.methods, "rank": a.rank, "seeds": a.seeds, "iterations": a.iterations,
        "batch_real": a.batch_real, "eval_runs": a.eval_runs, "eval_epochs": a.eval_epochs,
        "test_per_class": a.test_per_class, "output_dir": work,
    }, source="bench_continual")
    t0 = time.perf_counter()
    result = run_continual(cfg)
    methods = result.summary["methods"].values()
    result.summary["benchmark"] = {
        # condensation + GDumb seconds read from the stored records: unchanged when the run is resumed
        "compute_s": round(sum(e["condense_s"] + e["gdumb_s"] for e in methods), 1),
        "wall_time_s": round(time.perf_counter() - t0, 1),  # this invocation only (reused tasks take ~0 s)
        "torch_threads": a.threads,
        "machine": machine_line(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "command": "nice -n 10 python benchmarks/bench_continual.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
    }
    paths = write_report(result, a.out, stem=f"continual-mnist-k{a.memory_ipc}")
    print(markdown_table(result.summary))
    print("wrote", ", ".join(str(v) for v in paths.values()))


if __name__ == "__main__":
    main()
