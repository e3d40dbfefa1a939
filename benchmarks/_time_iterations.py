#!/usr/bin/env python
"""Child of ``bench_speed.py iteration``: time LoDM condensation iterations of whatever hf_lodc is on
PYTHONPATH (this tree, or a worktree of an older commit), printing one JSON line.

Uses only APIs every version since the base commit has (RunConfig.from_flat, Condenser(on_log=)),
and times from the first logged iteration after the warm-up to the last one: each log reads the loss
(a device sync), so the window holds whole iterations. ``first_*`` is the time from the start of the run
to the first log (set-up, warm-up iterations and any one-off compile).

An optional 8th argument, a JSON object, varies this tree only: ``{"options": {...}}`` adds flat run
options (e.g. ``{"compile": true}``), ``{"channels_last": true}`` runs the passes in channels_last,
``{"keep_host_memory": true}`` keeps freed host blocks for reuse (``training.device``) before the run.

Started by ``accelerate launch --num_processes N`` (N > 1), the processes shard the classes as
``recipes/condense.py`` does (gloo on a CPU); the main process prints the line, with its own CPU time
(``cpu_seconds_per_iteration``: one process's share) and the wall time every process took.
"""

import contextlib
import os

import json
import sys
import time

import torch


def main() -> int:
    dataset, ipc, rank, batch, warm, timed, mp = sys.argv[1:8]
    extra = json.loads(sys.argv[8]) if len(sys.argv) > 8 else {}
    ipc, rank, batch, warm, timed = int(ipc), int(rank), int(batch), int(warm), int(timed)
    from hf_lodc.engine.condenser import Condenser
    from hf_lodc.engine.config import RunConfig
    from hf_lodc.pipeline import load_data

    flat = {"dataset": dataset, "method": "lodm", "ipc": ipc, "rank": rank, "batch_real": batch,
            "iterations": warm + timed + 1, "log_every": warm, "eval_runs": 0, "max_per_class": max(batch, 300),
            "mixed_precision": mp, **extra.get("options", {})}
    if "channels_last" in extra:  # a run option since the Condenser configures the device itself
        flat["channels_last"] = bool(extra["channels_last"])
    cfg = RunConfig.from_flat(flat)
    if extra.get("keep_host_memory"):
        from hf_lodc.training.device import keep_freed_host_memory

        keep_freed_host_memory()
    data = load_data(cfg.data)
    marks = []
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        from hf_lodc.launch import accelerated

        scope = accelerated("no", cpu=True)
    else:
        scope = contextlib.nullcontext(None)
    with scope as accelerator:
        cond = Condenser(data, cfg.condense, accelerator=accelerator, progress=False,
                         on_log=lambda r: marks.append((r["iteration"], time.perf_counter(), time.process_time())))
        start = (time.perf_counter(), time.process_time())
        cond.run()
    if accelerator is not None and not accelerator.is_main_process:
        return 0
    (i0, t0, c0), (i1, t1, c1) = marks[1], marks[-1]
    # wall time, and this process's CPU time (all threads): on a shared machine the CPU time is the
    # less disturbed figure (waiting for a core costs wall time, not CPU time)
    print(json.dumps({"seconds_per_iteration": (t1 - t0) / (i1 - i0), "timed_iterations": i1 - i0,
                      "cpu_seconds_per_iteration": (c1 - c0) / (i1 - i0),
                      "first_log_s": marks[0][1] - start[0], "first_log_cpu_s": marks[0][2] - start[1],
                      "first_log_iteration": marks[0][0], "extra": extra,
                      "final_loss": cond.history[-1]["loss"], "threads": torch.get_num_threads(),
                      "images_per_class": cond.budget.images_per_class, "image_shape": list(data.image_shape),
                      "num_classes": data.num_classes, "processes": world, "hf_lodc": sys.modules["hf_lodc"].__file__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
