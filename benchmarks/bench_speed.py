#!/usr/bin/env python
"""Speed benchmarks of the scaling features (issue 4), CPU.

Three parts, each written to ``benchmarks/results/speed_<part>.json`` + ``.md``:

* ``condense``: seconds/iteration of LoDM CIFAR-10 IPC 10, rank 2, 256 real images per class per
  step, with 1 process (``python recipes/condense.py --cpu``) and 2 processes
  (``accelerate launch --multi_gpu --num_processes 2 recipes/condense.py --cpu``: gloo, classes
  sharded), a few iterations each. 1 process uses torch's default threads, each of the 2 processes
  one thread (torchrun's default), so both use the same cores.
* ``eval``: the vectorised evaluation backend (``vmap``) against the sequential loop, for N = 5 and
  N = 20 models, on synthetic sets of the LoDM IPC 1 size (MNIST 70 images, CIFAR-10 80 images),
  a few epochs; the ratio is sequential time / vmap time (> 1: vmap faster).
* ``iteration`` (issue 11): s/iteration of LoDM CIFAR-10 IPC 10 (rank 2, batch_real 256, DSA) and MNIST
  IPC 1 with this tree's code against a worktree of an older commit (``--base DIR``), in ONE run,
  the two interleaved A B A B (child processes, ``benchmarks/_time_iterations.py``), so machine
  drift hits both alike; the ratio is base / this (> 1: this tree faster), with the analytic FLOPs
  of one iteration (``hf_lodc.engine.flops``) and the achieved GFLOP/s.
  ``--this-options '{"compile": true}'`` (flat run options) and ``--this-channels-last on|off`` vary
  this tree only; ``--base-extra`` (the same JSON the child reads: ``{"options": {...}, "channels_last":
  true, "keep_host_memory": true}``) and ``--base-precision`` run the base on a path other than its
  float32 default, so one option can be measured alone against the path it joins;
  ``--name`` picks the results file (default ``speed_iteration``).
* ``epoch`` (issue 11): s/epoch of evaluation training (one ConvNet-3, the protocol, the LoDM IPC 1 set size)
  with this tree's ``--this-options`` (EvalConfig fields, e.g. ``eval_mixed_precision``, ``eval_channels_last``,
  ``eval_compile``) against a worktree of an older commit running its default (``--base DIR``), interleaved
  A B A B (child processes, ``benchmarks/_time_eval_epochs.py``); ``--append`` adds variants to one table.
* ``floor`` (issue 11): the convolutions of one LoDM iteration alone, timed in isolation (each
  ConvNet-3 layer's forward and input-gradient convolution at the iteration's shapes, batch 256, scaled
  to the iteration's image counts) in process CPU seconds at ``--threads`` (default 1: no thread
  barriers, so the figure is a per-core lower bound that 2 perfectly scaling threads would also pay),
  per memory format and dtype. It is the least CPU time an iteration can take on this machine while
  its convolutions stay at that precision, so ``base CPU s/it / floor`` bounds the speed-up any
  change to the rest (fusion, chunking, compile) can reach.
* ``bf16``: the effect of ``mixed_precision=bf16`` (network passes in bf16 through Accelerate,
  factors fp32) on a small LoDM MNIST IPC 1 run: seconds/iteration and the accuracy of the result.

    HF_LODC_LOCAL_HUB=../shared/hub nice -n 10 python benchmarks/bench_speed.py condense
    HF_LODC_LOCAL_HUB=../shared/hub nice -n 10 python benchmarks/bench_speed.py eval
    HF_LODC_LOCAL_HUB=../shared/hub nice -n 10 python benchmarks/bench_speed.py bf16
    python benchmarks/bench_speed.py floor --base-cpu-s '{"cifar10-ipc10": 12.5}' --this-cpu-s '{"cifar10-ipc10": 7.37}'
    HF_LODC_LOCAL_HUB=../shared/hub nice -n 10 python benchmarks/bench_speed.py iteration --base /tmp/base-speed
    HF_LODC_LOCAL_HUB=../shared/hub nice -n 10 python benchmarks/bench_speed.py iteration --base /tmp/base-speed \
        --name speed_iteration_compile --this-options '{"compile": true}'

Every JSON records the exact command, the hardware, the niceness and the load average before and
after (the benchmark machine may be shared with other jobs: compare ratios taken in one run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _machine import machine  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

CIFAR = "uoft-cs/cifar10"
MNIST = "ylecun/mnist"



def write(name: str, record: dict, table: list[str]) -> None:
    out = HERE / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {**record, "command": " ".join(["python", *sys.argv]), "hardware_after": {"load_average": os.getloadavg()}}
    Path(str(out) + ".json").write_text(json.dumps(record, indent=2) + "\n")
    Path(str(out) + ".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def _tree_child(cmd: list[str], tree: Path) -> dict:
    """Run ``cmd`` (a timing child) with ``tree``'s hf_lodc on PYTHONPATH; its last stdout line, as JSON."""
    done = subprocess.run(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} (PYTHONPATH={tree}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _merged_rows(name: str, rows: list[dict], key) -> list[dict]:
    """``rows`` added to the stored table ``name`` (``--append``: variants measured in several calls make one
    table); a stored row with the same ``key(row)`` is replaced."""
    mine = {key(r) for r in rows}
    out = HERE / "results" / f"{name}.json"
    return [r for r in json.loads(out.read_text())["rows"] if key(r) not in mine] + rows if out.is_file() else rows


# ------------------------------------------------------------------------------------ condense
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recipe_run(processes: int, args, out: Path) -> dict:
    options = ["--cpu", "--dataset", CIFAR, "--max-per-class", str(args.max_per_class), "--eval-split", "none",
               "--method", "lodm", "--ipc", "10", "--rank", "2", "--batch-real", "256",
               "--iterations", str(args.iterations), "--log-every", "1", "--output-dir", str(out)]
    if processes == 1:
        cmd = [sys.executable, "recipes/condense.py", *options]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "recipes/condense.py", *options]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    res = json.loads((out / "results.json").read_text())["condensation"]
    return {"processes": processes, "command": " ".join(cmd[1:]), "iterations": args.iterations,
            "seconds_per_iteration": round(1.0 / res["iterations_per_s"], 2),
            "condense_wall_s": res["wall_time_s"], "process_wall_s": round(wall, 1)}


def bench_condense(args) -> None:
    hw = machine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in (1, 2):
            rows.append(_recipe_run(p, args, Path(tmp) / f"p{p}"))
            print(rows[-1], flush=True)
    speedup = rows[0]["seconds_per_iteration"] / rows[1]["seconds_per_iteration"]
    table = [
        f"LoDM CIFAR-10 IPC 10, rank 2 (80 factor images/class), 256 real images/class/step, {args.iterations} "
        f"iterations, train split capped at {args.max_per_class}/class (sampling only). {hw['cpu']}, "
        f"{hw['cores']} cores, load average {hw['load_average'][0]:.1f} at start.",
        "",
        "| processes | s / iteration | speed-up |",
        "|---|---|---|",
        f"| 1 | {rows[0]['seconds_per_iteration']:.2f} | 1.00 |",
        f"| 2 (gloo, classes sharded) | {rows[1]['seconds_per_iteration']:.2f} | {speedup:.2f} |",
        "",
        "Both use the same cores (1 process x 2 threads vs 2 processes x 1 thread), and each class's work is done "
        "once either way; on a machine loaded by other jobs the scheduler gives 2 processes a larger share than "
        "1, which inflates the speed-up (see load_average in the JSON).",
    ]
    write("speed_condense", {"part": "condense", "hardware": hw, "rows": rows, "speedup_2_over_1": round(speedup, 3),
                             "settings": {"max_per_class": args.max_per_class, "iterations": args.iterations}}, table)


# ---------------------------------------------------------------------------------------- eval
def _eval_time(backend: str, model: str, images, labels, test, data, n: int, epochs: int) -> tuple[float, list]:
    from hf_lodc.engine.config import EvalConfig
    from hf_lodc.engine.evaluate import EVAL_BACKENDS

    cfg = EvalConfig(eval_models=[model], eval_runs=n, eval_epochs=epochs)
    t0 = time.perf_counter()
    accs = EVAL_BACKENDS.get(backend)(model, images, labels, test, data.mean, data.std, data.num_classes, cfg, 0,
                                      torch.device("cpu"), list(range(n)))
    return time.perf_counter() - t0, accs


def bench_eval(args) -> None:
    import hf_lodc.engine  # noqa: F401  (registers the vmap backend)
    from hf_lodc.data.types import LabeledImages, normalize
    from hf_lodc.pipeline import load_data
    from hf_lodc.engine.config import DataConfig

    hw = machine()
    rows = []
    for name, source, per_class in (("mnist", MNIST, 7), ("cifar10", CIFAR, 8)):
        data = load_data(DataConfig(dataset=source, max_per_class=per_class))
        g = torch.Generator().manual_seed(0)
        keep = torch.randperm(len(data.test), generator=g)[: args.test_images]
        test = LabeledImages(data.test.images[keep], data.test.labels[keep])
        images = normalize(data.train.images, data.mean, data.std)  # (K*n, C, H, W): the LoDM IPC 1 size
        for n in args.models:
            t_seq, a_seq = _eval_time("sequential", "convnet", images, data.train.labels, test, data, n, args.epochs)
            t_vec, a_vec = _eval_time("vmap", "convnet", images, data.train.labels, test, data, n, args.epochs)
            rows.append({"dataset": name, "images": len(images), "models": n, "epochs": args.epochs,
                         "sequential_s": round(t_seq, 1), "vmap_s": round(t_vec, 1),
                         "ratio_sequential_over_vmap": round(t_seq / t_vec, 3),
                         "max_abs_accuracy_difference": round(max(abs(a - b) for a, b in zip(a_seq, a_vec)), 3)})
            print(rows[-1], flush=True)
    table = [
        f"Evaluation of N ConvNet-3 on a synthetic set of LoDM IPC 1 size, {args.epochs} epochs, batch 256, DSA, "
        f"tested on {args.test_images} real test images. {hw['cpu']}, {hw['cores']} cores, "
        f"{hw['torch_threads']} threads, load average {hw['load_average'][0]:.1f} at start.",
        "",
        "| dataset | images | N | sequential s | vmap s | sequential / vmap | max accuracy diff (pp) |",
        "|---|---|---|---|---|---|---|",
    ] + [f"| {r['dataset']} | {r['images']} | {r['models']} | {r['sequential_s']} | {r['vmap_s']} | "
         f"{r['ratio_sequential_over_vmap']:.2f} | {r['max_abs_accuracy_difference']} |" for r in rows]
    write("speed_eval", {"part": "eval", "hardware": hw, "rows": rows,
                         "settings": {"epochs": args.epochs, "test_images": args.test_images}}, table)


# ---------------------------------------------------------------------------------------- bf16
def bench_bf16(args) -> None:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from hf_lodc import pipeline
    from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, RunConfig
    from hf_lodc.pipeline import load_data

    hw = machine()
    data = load_data(DataConfig(dataset=MNIST))
    cfg = CondenseConfig(method="lodm", ipc=1, rank=2, iterations=args.iterations, batch_real=args.batch_real)
    ev = EvalConfig(eval_runs=args.eval_runs, eval_epochs=args.eval_epochs)
    rows = []
    for mp in ("no", "bf16"):
        AcceleratorState._reset_state(True)  # the precision is fixed per Accelerator state
        acc = Accelerator(cpu=True, mixed_precision=mp)
        engine = []  # the engine's result: unrounded timings for the table
        run = RunConfig(data=DataConfig(dataset=MNIST), eval=ev,
                        condense=CondenseConfig(**{**cfg.__dict__, "mixed_precision": mp}))
        art = pipeline.condense(data, run, accelerator=acc, on_result=engine.append)
        res = engine[0]
        rec = pipeline.evaluate(art, data.test, ev, views=(pipeline.FLOAT32,), seed=0)[pipeline.FLOAT32]["convnet"]
        rows.append({"mixed_precision": mp, "seconds_per_iteration": round(1.0 / res.iterations_per_s, 3),
                     "final_loss": round(res.history[-1]["loss"], 3), "accuracy_mean": round(rec.accuracy_mean, 2),
                     "accuracy_std": round(rec.accuracy_std, 2), "accuracies": [round(a, 2) for a in rec.accuracies],
                     "factor_dtype": str(next(res.synset.parameters()).dtype)})
        print(rows[-1], flush=True)
    fp, bf = rows
    table = [
        f"LoDM MNIST IPC 1 rank 2, {args.iterations} iterations, batch_real {args.batch_real}; evaluation "
        f"{args.eval_runs} ConvNet-3 x {args.eval_epochs} epochs (fp32, DSA), full test split. {hw['cpu']} "
        f"(avx512_bf16: {'avx512_bf16' in Path('/proc/cpuinfo').read_text()}), {hw['cores']} cores, load average "
        f"{hw['load_average'][0]:.1f} at start.",
        "",
        "| mixed precision | s / iteration | final loss | accuracy % | factors |",
        "|---|---|---|---|---|",
    ] + [f"| {r['mixed_precision']} | {r['seconds_per_iteration']} | {r['final_loss']} | "
         f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {r['factor_dtype']} |" for r in rows] + [
        "", f"bf16 / fp32 time per iteration: {bf['seconds_per_iteration'] / fp['seconds_per_iteration']:.2f}; "
            f"accuracy change: {bf['accuracy_mean'] - fp['accuracy_mean']:+.2f} pp."]
    write("speed_bf16", {"part": "bf16", "hardware": hw, "rows": rows,
                         "settings": {"iterations": args.iterations, "batch_real": args.batch_real,
                                      "eval_runs": args.eval_runs, "eval_epochs": args.eval_epochs}}, table)


# ----------------------------------------------------------------------------------- iteration
ITER_CELLS = {"cifar10-ipc10": (CIFAR, 10, 2), "mnist-ipc1": (MNIST, 1, 2), "mnist-ipc10": (MNIST, 10, 8),
              "cifar10-ipc1": (CIFAR, 1, 2)}


def _iteration_child(tree: Path, cell: str, args, mp: str, extra: dict | None = None, processes: int = 1) -> dict:
    dataset, ipc, rank = ITER_CELLS[cell]
    launch = [sys.executable]
    if processes > 1:  # classes sharded over N processes of one thread each (torchrun's default), gloo
        launch += ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_free_port())]
    cmd = launch + [str(HERE / "_time_iterations.py"), dataset, str(ipc), str(rank), str(args.batch_real),
                    str(args.warmup), str(args.iterations), mp] + ([json.dumps(extra)] if extra else [])
    return _tree_child(cmd, tree)


def _rerender(name: str) -> None:
    """Recompute every row's medians from its stored pairs and rewrite the markdown (nothing re-measured;
    the record's own command stays)."""
    path = HERE / "results" / f"{name}.json"
    record = json.loads(path.read_text())
    med = statistics.median
    for r in record["rows"]:
        p = r["pairs"]
        r["base_s_per_it"], r["this_s_per_it"] = round(med(x[0] for x in p), 3), round(med(x[1] for x in p), 3)
        r["base_cpu_s_per_it"], r["this_cpu_s_per_it"] = round(med(x[2] for x in p), 3), round(med(x[3] for x in p), 3)
        r["ratio_median"] = round(med(x[0] / x[1] for x in p), 3)
        r["cpu_ratio_median"] = round(med(x[2] / x[3] for x in p), 3)
        r["base_gflops"] = round(r["flops_per_iteration"] / r["base_s_per_it"] / 1e9, 1)
        r["this_gflops"] = round(r["flops_per_iteration"] / r["this_s_per_it"] / 1e9, 1)
    path.write_text(json.dumps(record, indent=2) + "\n")
    table = iteration_table(record)
    path.with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def bench_iteration(args) -> None:
    from hf_lodc.training import device as dev
    from hf_lodc.engine.flops import dm_iteration_flops

    if args.render_only:
        return _rerender(args.name)
    if not args.base:
        raise SystemExit("iteration: --base DIR (a worktree of the commit to compare against) is required")

    hw = machine()
    base, this = Path(args.base).resolve(), ROOT
    extra = {}
    if args.this_options:
        extra["options"] = json.loads(args.this_options)
    if args.this_channels_last is not None:
        extra["channels_last"] = args.this_channels_last == "on"
    if args.this_keep_host_memory:
        extra["keep_host_memory"] = True
    variant = ", ".join(_run_words(extra)
                        + ([f"{args.this_processes} processes x 1 thread"] if args.this_processes > 1 else [])
                        ) or "default"
    base_extra = json.loads(args.base_extra) if args.base_extra else None  # the base's run, if not its default
    rows = []
    for cell in args.cells:
        for mp in args.precisions:
            pairs = []
            for _ in range(args.pairs):  # A B A B: base then this tree, alternately
                a = _iteration_child(base, cell, args, args.base_precision, base_extra)  # the base commit
                b = _iteration_child(this, cell, args, mp, extra, args.this_processes)
                pairs.append((a["seconds_per_iteration"], b["seconds_per_iteration"],
                              a["cpu_seconds_per_iteration"], b["cpu_seconds_per_iteration"],
                              a["first_log_s"], b["first_log_s"], a["first_log_cpu_s"], b["first_log_cpu_s"]))
                print(cell, mp, pairs[-1], flush=True)
            f = dm_iteration_flops(tuple(b["image_shape"]), b["num_classes"], args.batch_real, b["images_per_class"])
            med = statistics.median
            sa, sb = med(p[0] for p in pairs), med(p[1] for p in pairs)
            ratios, cpu_ratios = [p[0] / p[1] for p in pairs], [p[2] / p[3] for p in pairs]
            ca, cb = med(p[2] for p in pairs), med(p[3] for p in pairs)
            first = [med(p[k] for p in pairs) for k in (4, 5, 6, 7)]
            rows.append({"cell": cell, "precision_this": mp, "variant_this": variant, "extra_this": extra, "pairs": pairs,
                         "command": " ".join(["python", *sys.argv]), "load_average_start": hw["load_average"],
                         "base_first_log_s": round(first[0], 2), "this_first_log_s": round(first[1], 2),
                         "base_first_log_cpu_s": round(first[2], 2), "this_first_log_cpu_s": round(first[3], 2), "load_average": os.getloadavg(), "base_s_per_it": round(sa, 3),
                         "this_s_per_it": round(sb, 3), "ratio_median": round(med(ratios), 3),
                         "base_cpu_s_per_it": round(ca, 3), "this_cpu_s_per_it": round(cb, 3),
                         "cpu_ratio_median": round(med(cpu_ratios), 3),
                         "flops_per_iteration": f.total, "base_gflops": round(f.total / sa / 1e9, 1),
                         "this_gflops": round(f.total / sb / 1e9, 1), "final_loss_this": b["final_loss"]})
    if args.append:  # runs split over several calls: one table
        rows = _merged_rows(args.name, rows, lambda r: (r["cell"], r["precision_this"], r.get("variant_this", "default")))
    record = {"part": "iteration", "hardware": hw, "rows": rows, "base": args.base_label,
              "base_run": {"precision": args.base_precision, **(base_extra or {})},
              "device_settings": dev.settings("cpu"),
              "settings": {"iterations": args.iterations, "warmup": args.warmup, "pairs": args.pairs,
                           "batch_real": args.batch_real}}
    write(args.name, record, iteration_table(record))


def _run_words(extra: dict) -> list[str]:
    """What a child's ``extra`` JSON (``_time_iterations.py``'s 8th argument) changes, in words."""
    said = [f"{k}={v}" for k, v in extra.get("options", {}).items()]
    said += [f"channels_last={'on' if extra['channels_last'] else 'off'}"] if "channels_last" in extra else []
    return said + (["freed host memory kept"] if extra.get("keep_host_memory") else [])


def _base_run(record: dict) -> str:
    """How the base ran, where not its default float32 run (``--base-extra``, ``--base-precision``)."""
    run = record.get("base_run") or {}
    said = _run_words(run) + ([f"precision {run['precision']}"] if run.get("precision", "no") != "no" else [])
    return f", run with {', '.join(said)}" if said else ""


def _pair_ratios(r: dict, a: int, b: int) -> str:
    return ", ".join(f"{p[a] / p[b]:.2f}x" for p in r["pairs"])


def iteration_table(record: dict) -> list[str]:
    """The markdown of an ``iteration`` record (also ``--render-only``: from the JSON, nothing re-measured)."""
    from hf_lodc.training import device as dev

    hw, st, rows = record["hardware"], record["settings"], record["rows"]
    return [
        f"LoDM s/iteration, this tree against the base commit ({record['base']}{_base_run(record)}), "
        f"{st['pairs']} interleaved pairs "
        f"(base, this, base, this ...) of {st['iterations']} timed iterations after {st['warmup']} warm-up, "
        f"batch_real {st['batch_real']}, DSA; medians, and the ratio of every pair. {hw['cpu']}, {hw['cores']} cores, "
        f"shared with other jobs (load average {hw['load_average'][0]:.1f} at start): absolute times are inflated, "
        f"the paired ratio is the figure to read. CPU bf16 units: {dev.cpu_bf16()}; AMX tiles: {dev.cpu_amx()}.",
        "",
        "| cell | this tree's precision | this tree's options | base s/it (wall) | this s/it (wall) | speed-up, wall "
        "(median; each pair) | base CPU s/it | this CPU s/it | speed-up, CPU time (median; each pair) | base GFLOP/s | "
        "this GFLOP/s | to first log, base / this (wall s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ] + [f"| {r['cell']} | {r['precision_this']} | {r.get('variant_this', 'default')} | {r['base_s_per_it']} | "
         f"{r['this_s_per_it']} | {r['ratio_median']:.2f}x ({_pair_ratios(r, 0, 1)}) | {r['base_cpu_s_per_it']} | "
         f"{r['this_cpu_s_per_it']} | {r['cpu_ratio_median']:.2f}x ({_pair_ratios(r, 2, 3)}) | {r['base_gflops']} | "
         f"{r['this_gflops']} | {r.get('base_first_log_s', '-')} / {r.get('this_first_log_s', '-')} |" for r in rows] + [
        "", "CPU s/it is the process's CPU time (both threads) per iteration: waiting for a core on the shared machine "
            "costs wall time but not CPU time, so the CPU-time ratio is the steadier figure (with N processes it is "
            "the main process's share only, so read the wall columns there). GFLOP/s use wall time. "
            "'To first log' is the wall time from the start of the run to the first logged iteration (set-up, the "
            "warm-up iteration and any one-off torch.compile; the inductor cache may already hold kernels from "
            "earlier runs).",
        "", "The JSON's top-level command and the load average above are the last call's (--append merges calls); rows "
            "carry their own command and load averages (load_average_start, and load_average when the row ended) "
            "where recorded."]


# ---------------------------------------------------------------------------------------- epoch
# the LoDM rank-2 set sizes per class: IPC 1 (CIFAR-10 8, MNIST 7) and CIFAR-10 IPC 10 (80)
EPOCH_CELLS = {"cifar10": (CIFAR, 8), "mnist": (MNIST, 7), "cifar10-ipc10": (CIFAR, 80)}


def _epoch_child(tree: Path, cell: str, args, extra: dict | None = None) -> dict:
    dataset, per_class = EPOCH_CELLS[cell]
    cmd = [sys.executable, str(HERE / "_time_eval_epochs.py"), dataset, str(per_class), str(args.epochs)]
    return _tree_child(cmd + ([json.dumps(extra)] if extra else []), tree)


def bench_epoch(args) -> None:
    """Evaluation training epochs (ConvNet-3, the protocol: batch 256, DSA, SGD) of this tree with
    ``--this-options`` (EvalConfig fields) against the base commit's default, interleaved A B A B."""
    from hf_lodc.engine.flops import eval_epoch_flops

    if not args.base:
        raise SystemExit("epoch: --base DIR (a worktree of the commit to compare against) is required")
    hw, base = machine(), Path(args.base).resolve()
    extra = json.loads(args.this_options) if args.this_options else {}
    variant = ", ".join(f"{k}={v}" for k, v in extra.items()) or "default"
    rows = []
    for cell in args.cells:
        pairs = []
        for _ in range(args.pairs):
            a, b = _epoch_child(base, cell, args), _epoch_child(ROOT, cell, args, extra)
            pairs.append((a["seconds_per_epoch"], b["seconds_per_epoch"],
                          a["cpu_seconds_per_epoch"], b["cpu_seconds_per_epoch"]))
            print(cell, variant, pairs[-1], flush=True)
        med = statistics.median
        f = eval_epoch_flops(tuple(b["image_shape"]), b["images"], b["num_classes"]).total
        sa, sb = med(p[0] for p in pairs), med(p[1] for p in pairs)
        rows.append({"set": cell, "images": b["images"], "variant_this": variant, "extra_this": extra, "pairs": pairs,
                     "command": " ".join(["python", *sys.argv]), "load_average_start": hw["load_average"],
                     "load_average": os.getloadavg(), "base_s_per_epoch": round(sa, 4), "this_s_per_epoch": round(sb, 4),
                     "ratio_median": round(med(p[0] / p[1] for p in pairs), 3),
                     "base_cpu_s_per_epoch": round(med(p[2] for p in pairs), 4),
                     "this_cpu_s_per_epoch": round(med(p[3] for p in pairs), 4),
                     "cpu_ratio_median": round(med(p[2] / p[3] for p in pairs), 3),
                     "flops_per_epoch": f, "base_gflops": round(f / sa / 1e9, 1), "this_gflops": round(f / sb / 1e9, 1)})
    if args.append:  # variants measured in several calls: one table
        rows = _merged_rows(args.name, rows, lambda r: (r["set"], r["variant_this"]))
    record = {"part": "epoch", "hardware": hw, "rows": rows, "base": args.base_label,
              "settings": {"epochs": args.epochs, "pairs": args.pairs}}
    st = record["settings"]
    table = [
        f"Evaluation training epoch (one ConvNet-3, the protocol: batch 256, DSA, SGD; the LoDM IPC 1 rank-2 set "
        f"size) of this tree against the base commit ({args.base_label}, fp32 eager as evaluation ran), "
        f"{st['pairs']} interleaved pairs of {st['epochs']} timed epochs; medians and the ratio of every pair. "
        f"{hw['cpu']} (AMX tiles: {hw.get('cpu_amx')}), {hw['cores']} cores, torch {torch.__version__}, load average "
        f"{hw['load_average'][0]:.1f} at start.",
        "",
        "| set | images | this tree's options | base s/epoch | this s/epoch | speed-up, wall (median; each pair) | "
        "speed-up, CPU time (median; each pair) | base GFLOP/s | this GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ] + [f"| {r['set']} | {r['images']} | {r['variant_this']} | {r['base_s_per_epoch']} | {r['this_s_per_epoch']} | "
         f"{r['ratio_median']:.2f}x ({_pair_ratios(r, 0, 1)}) | {r['cpu_ratio_median']:.2f}x ({_pair_ratios(r, 2, 3)}) | "
         f"{r['base_gflops']} | {r['this_gflops']} |" for r in rows]
    write(args.name, record, table)


# ------------------------------------------------------------------------------------ floor
FLOOR_CELLS = {  # cell -> (image shape, classes, real images/class, synthetic images/class at rank 2)
    "cifar10-ipc10": ((3, 32, 32), 10, 256, 80),
    "mnist-ipc1": ((1, 28, 28), 10, 256, 7),
}
FLOOR_VARIANTS = {  # name -> (memory format, dtype)
    "fp32": (torch.contiguous_format, torch.float32),
    "fp32 channels_last": (torch.channels_last, torch.float32),
    "bf16 channels_last": (torch.channels_last, torch.bfloat16),
}


def _conv_cpu_s(n: int, cin: int, cout: int, hw: int, fmt, dtype, grad_input: bool, reps: int,
                grad_weight: bool = False) -> float:
    """Process CPU seconds of one 3x3 (padding 1) convolution over ``n`` images of (cin, hw, hw): the
    forward, or the input-gradient (``grad_input``) or weight-gradient (``grad_weight``) pass of the backward."""
    import torch.nn.functional as F

    x = torch.randn(n, cin, hw, hw).to(memory_format=fmt, dtype=dtype)  # (n, cin, hw, hw)
    w = torch.randn(cout, cin, 3, 3).to(memory_format=fmt, dtype=dtype)  # (cout, cin, 3, 3)
    gy = torch.randn(n, cout, hw, hw).to(memory_format=fmt, dtype=dtype)  # (n, cout, hw, hw)

    def once():
        if grad_weight:
            return torch.nn.grad.conv2d_weight(x, w.shape, gy, padding=1)
        if grad_input:
            return torch.nn.grad.conv2d_input(x.shape, w, gy, padding=1)
        return F.conv2d(x, w, padding=1)

    with torch.no_grad():
        once()  # warm-up: oneDNN primitive creation, weight reorder
        c0 = time.process_time()
        for _ in range(reps):
            once()
        return (time.process_time() - c0) / reps


EVAL_FLOOR = {"cifar10": ((3, 32, 32), 80), "mnist": ((1, 28, 28), 70)}  # LoDM IPC 1 rank 2 set sizes


def _eval_epoch_floor(key: str, args) -> dict:
    """Convolutions of one evaluation training epoch timed alone, against the real step (eager, compiled)."""
    import torch.nn.functional as F

    from hf_lodc.training.loop import forward_fn, seeded_net

    (c, h, w), n = EVAL_FLOOR[key]
    fmt, f32 = torch.contiguous_format, torch.float32
    floor, gflop, cin, hw = 0.0, 0.0, c, h
    for block in range(3):
        floor += _conv_cpu_s(n, cin, 128, hw, fmt, f32, False, args.reps)  # forward
        floor += _conv_cpu_s(n, cin, 128, hw, fmt, f32, False, args.reps, grad_weight=True)
        gflop += 2 * 2.0 * 9 * cin * 128 * hw * hw * n / 1e9
        if block:  # the first block's input is the data: no input gradient
            floor += _conv_cpu_s(n, cin, 128, hw, fmt, f32, True, args.reps)
            gflop += 2.0 * 9 * cin * 128 * hw * hw * n / 1e9
        cin, hw = 128, hw // 2
    x, y = torch.randn(n, c, h, w), torch.randint(0, 10, (n,))  # (n, C, H, W), (n,)

    def step_cpu_s(compile: bool) -> float:
        net = seeded_net("convnet", 10, (c, h, w), 0, device="cpu")
        fwd = forward_fn(compile) or (lambda m, v: m(v))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

        def step():
            loss = F.cross_entropy(fwd(net, x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(3):  # warm-up (and the one-off compile)
            step()
        c0 = time.process_time()
        for _ in range(args.eval_steps):
            step()
        return (time.process_time() - c0) / args.eval_steps

    row = {"set": key, "images": n, "conv_gflop": round(gflop, 1), "floor_cpu_s": round(floor, 4),
           "eager_cpu_s": round(step_cpu_s(False), 4), "compiled_cpu_s": round(step_cpu_s(True), 4)}
    print(json.dumps(row), flush=True)
    return row


def bench_floor(args) -> None:
    from hf_lodc.engine import flops

    torch.set_num_threads(args.threads)
    rows = []
    for cell in args.cells:
        (c, h, _w), k, real, syn = FLOOR_CELLS[cell]
        layers, cin, hw = [], c, h
        for _ in range(3):  # ConvNet-3, width 128, avg-pool 2 after each block
            layers.append((cin, 128, hw))
            cin, hw = 128, hw // 2
        count = flops.dm_iteration_flops((c, h, _w), k, real, syn)
        for variant in args.variants:
            fmt, dtype = FLOOR_VARIANTS[variant]
            per_image_fwd = per_image_bwd = 0.0
            for cin_, cout, hw_ in layers:
                per_image_fwd += _conv_cpu_s(args.batch, cin_, cout, hw_, fmt, dtype, False, args.reps) / args.batch
                per_image_bwd += _conv_cpu_s(args.batch, cin_, cout, hw_, fmt, dtype, True, args.reps) / args.batch
            floor = k * real * per_image_fwd + k * syn * (per_image_fwd + per_image_bwd)
            row = {"cell": cell, "variant": variant, "threads": args.threads,
                   "conv_tflop": round(count.matmul / 1e12, 4), "floor_cpu_s": round(floor, 3),
                   "gflop_per_cpu_s": round(count.matmul / floor / 1e9, 1)}
            if args.base_cpu_s.get(cell):
                row["base_cpu_s"] = args.base_cpu_s[cell]
                row["max_speedup"] = round(args.base_cpu_s[cell] / floor, 2)
            if args.this_cpu_s.get(cell):
                row["this_cpu_s"] = args.this_cpu_s[cell]
            rows.append(row)
            print(json.dumps(row), flush=True)
    eval_rows = [_eval_epoch_floor(key, args) for key in args.eval_cells]
    hw = {**machine(), "load_average": os.getloadavg()}
    table = [
        f"Convolution floor of one LoDM iteration (batch_real 256, ConvNet-3 width 128; real forward + synthetic "
        f"forward and input-gradient backward): each layer's convolutions timed alone at batch {args.batch}, "
        f"{args.reps} repetitions, {args.threads} thread(s), in process CPU seconds, scaled to the iteration's "
        f"image counts. {hw['cpu']} (AMX tiles: {hw.get('cpu_amx')}), {hw['cores']} cores, torch {torch.__version__}, load average "
        f"{hw['load_average'][0]:.1f} at the end (other jobs beside it compete for cache and memory bandwidth). "
        "`max speed-up` = base CPU s/it / floor: no change that keeps the convolutions at that precision can go "
        "faster on this CPU.",
        "",
        "| cell | convolutions | conv TFLOP/it | floor, CPU s/it | GFLOP per CPU-s | base CPU s/it | best measured "
        "CPU s/it | max speed-up over base |",
        "|---|---|---|---|---|---|---|---|",
    ] + [f"| {r['cell']} | {r['variant']} | {r['conv_tflop']} | {r['floor_cpu_s']} | {r['gflop_per_cpu_s']} | "
         f"{r.get('base_cpu_s', '–')} | {r.get('this_cpu_s', '–')} | "
         f"{str(r['max_speedup']) + 'x' if 'max_speedup' in r else '–'} |" for r in rows]
    if eval_rows:
        table += [
            "", "One evaluation training epoch (ConvNet-3 on the synthetic set as one batch: forward, input gradients "
                "of blocks 2-3, weight gradients of all, SGD step; no DSA), fp32 contiguous as evaluation runs, same "
                "thread count: the convolutions alone against the measured step, eager and with `--eval-compile`.",
            "",
            "| set | images | conv GFLOP/epoch | convolutions alone, CPU s | eager step, CPU s | compiled step, CPU s | "
            "compiled / floor |",
            "|---|---|---|---|---|---|---|",
        ] + [f"| {r['set']} | {r['images']} | {r['conv_gflop']} | {r['floor_cpu_s']} | {r['eager_cpu_s']} | "
             f"{r['compiled_cpu_s']} | {r['compiled_cpu_s'] / r['floor_cpu_s']:.2f} |" for r in eval_rows]
    write(args.name, {"part": "floor", "hardware": hw, "rows": rows, "eval_rows": eval_rows,
                      "settings": {"batch": args.batch, "reps": args.reps, "threads": args.threads}}, table)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    c = sub.add_parser("condense")
    c.add_argument("--iterations", type=int, default=3)
    c.add_argument("--max-per-class", type=int, default=300)
    e = sub.add_parser("eval")
    e.add_argument("--models", type=lambda s: [int(v) for v in s.split(",")], default=[5, 20])
    e.add_argument("--epochs", type=int, default=3)
    e.add_argument("--test-images", type=int, default=500)
    b = sub.add_parser("bf16")
    b.add_argument("--iterations", type=int, default=40)
    b.add_argument("--batch-real", type=int, default=32)
    b.add_argument("--eval-runs", type=int, default=2)
    b.add_argument("--eval-epochs", type=int, default=50)
    i = sub.add_parser("iteration")
    i.add_argument("--base", help="a worktree (or git archive) of the commit to compare against")
    i.add_argument("--render-only", action="store_true",
                   help="rewrite results/<name>.md from its JSON (medians recomputed from the stored pairs)")
    i.add_argument("--base-label", default="37f64cd")
    i.add_argument("--cells", type=lambda s: s.split(","), default=["cifar10-ipc10", "mnist-ipc1"])
    i.add_argument("--precisions", type=lambda s: s.split(","), default=["no"])
    i.add_argument("--batch-real", type=int, default=256)
    i.add_argument("--warmup", type=int, default=1)
    i.add_argument("--iterations", type=int, default=2)
    i.add_argument("--pairs", type=int, default=2)
    i.add_argument("--append", action="store_true", help="merge into the existing speed_iteration table")
    i.add_argument("--name", default="speed_iteration", help="results file stem under benchmarks/results/")
    i.add_argument("--this-options", default=None,
                   help='JSON object of flat run options for this tree only, e.g. \'{"compile": true}\'')
    i.add_argument("--base-extra", default=None,
                   help='how the base runs, as the child reads it: {"options": {...}, "channels_last": true, '
                        '"keep_host_memory": true} (default: the base commit as it ran, float32)')
    i.add_argument("--base-precision", default="no", help="the base's mixed_precision (default no)")
    i.add_argument("--this-processes", type=int, default=1,
                   help="run this tree under accelerate launch with N processes (classes sharded, 1 thread each)")
    i.add_argument("--this-channels-last", choices=("on", "off"), default=None,
                   help="configure this tree's ConvNet passes in channels_last (on) or not (off) before the run")
    i.add_argument("--this-keep-host-memory", action="store_true",
                   help="this tree keeps freed host blocks for reuse (what speed=auto does on a CPU)")
    ep = sub.add_parser("epoch")
    ep.add_argument("--base", help="a worktree (or git archive) of the commit to compare against")
    ep.add_argument("--base-label", default="cc32760")
    ep.add_argument("--cells", type=lambda s: s.split(","), default=list(EPOCH_CELLS))
    ep.add_argument("--epochs", type=int, default=30)
    ep.add_argument("--pairs", type=int, default=2)
    ep.add_argument("--this-options", default=None, help='EvalConfig fields for this tree, e.g. '
                    '\'{"eval_mixed_precision": "bf16", "eval_channels_last": true}\'')
    ep.add_argument("--append", action="store_true", help="merge into the existing table")
    ep.add_argument("--name", default="speed_epoch", help="results file stem under benchmarks/results/")
    f = sub.add_parser("floor")
    f.add_argument("--cells", type=lambda s: s.split(","), default=list(FLOOR_CELLS))
    f.add_argument("--variants", type=lambda s: s.split(","), default=list(FLOOR_VARIANTS))
    f.add_argument("--batch", type=int, default=256)
    f.add_argument("--reps", type=int, default=3)
    f.add_argument("--threads", type=int, default=1)
    f.add_argument("--base-cpu-s", type=json.loads, default={},
                   help='measured CPU s/it of the base per cell, e.g. \'{"cifar10-ipc10": 12.5}\'')
    f.add_argument("--this-cpu-s", type=json.loads, default={}, help="the best measured CPU s/it per cell")
    f.add_argument("--eval-cells", type=lambda s: [v for v in s.split(",") if v], default=list(EVAL_FLOOR),
                   help="evaluation-epoch rows (empty: none)")
    f.add_argument("--eval-steps", type=int, default=20)
    f.add_argument("--name", default="speed_floor")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str((ROOT / ".." / "shared" / "hub").resolve()))
    {"condense": bench_condense, "eval": bench_eval, "bf16": bench_bf16, "iteration": bench_iteration,
     "epoch": bench_epoch, "floor": bench_floor}[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
