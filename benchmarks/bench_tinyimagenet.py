"""TinyImageNet-shaped, end to end: the Table-1 YAML condenses and evaluates a generated set of TinyImageNet's
shape, and the full cell's cost on this CPU is estimated from what it measured.

It writes a Hub-layout parquet set of TinyImageNet's shape (``bench_scale.generate``: 200 classes x 500
train images at 64 px, 50 test images per class as in TinyImageNet's validation split; JPEG, a seeded
colour and texture per class), then runs

    recipes/condense.py --config recipes/configs/tinyimagenet-lodm-ipc1.yaml --dataset SET --eval-split test
        --iterations N --eval-runs R --eval-epochs E --output-dir RUN

so the cell's own settings run (LoDM, ConvNet-4, rank 4, IPC 1, batch_real 256 of every class, SVD init,
``speed: auto``); only the split name, the iteration count (20 000 in the paper) and the evaluation's runs
and epochs (20 x 1 000) are cut to what a CPU sitting allows. It records, from the run's ``results.json``,
the seconds per iteration (steady: the iterations after the first, which pays the one-off compile), the
evaluation's seconds per training epoch (its wall time over runs x epochs, the test passes included), the
speed path ``auto`` chose, and the full cell's estimate on this machine: 20 000 x s/iteration +
20 x 1 000 x s/epoch. The accuracy after N iterations and E epochs is recorded as what it is (the generated
classes are colours and textures, not TinyImageNet's images): it shows the road runs, not the paper's number.

    HF_LODC_LOCAL_HUB=/dev/null python benchmarks/bench_tinyimagenet.py --iterations 3 --eval-epochs 10

writes ``benchmarks/results/tinyimagenet_e2e.{json,md}``. The generated set lives under ``--work`` (a
temporary folder by default, deleted at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
YAML = ROOT / "recipes" / "configs" / "tinyimagenet-lodm-ipc1.yaml"
PAPER_ITERATIONS, PAPER_RUNS, PAPER_EPOCHS = 20000, 20, 1000


def run(args) -> dict:
    sys.path.insert(0, str(HERE))
    import torch
    from _machine import machine
    from bench_scale import generate

    torch.set_num_threads(args.threads)  # recorded by machine(): the run gets as many (OMP_NUM_THREADS)

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="hf_lodc_tiny_"))
    ds, out = work / "tinyimagenet_shaped", work / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_CACHE": str(work / "hf_datasets"),
           "OMP_NUM_THREADS": str(args.threads), "TQDM_DISABLE": "1"}
    try:
        t = time.perf_counter()
        if not (ds / "README.md").is_file():
            generate(ds, 200, 500, 64, 50, workers=args.gen_workers)
        generate_s = time.perf_counter() - t
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "recipes/condense.py", "--config", str(YAML), "--dataset", str(ds),
               "--eval-split", "test", "--iterations", str(args.iterations), "--eval-runs", str(args.eval_runs),
               "--eval-epochs", str(args.eval_epochs), "--output-dir", str(out), "--cpu"]
        t = time.perf_counter()
        p = subprocess.run(["nice", "-n", str(args.nice), *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode:
            raise SystemExit(f"the condensation failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
        res = json.loads((out / "results.json").read_text())
        config = json.loads((out / "config.json").read_text())
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    cond = res["condensation"]
    (model, ev), = res["evaluations"].items()
    s_it = cond.get("steady_seconds_per_iteration") or cond["wall_time_s"] / max(1, cond["iterations"])
    s_epoch = ev["wall_time_s"] / (ev["runs"] * ev["epochs"])
    cmd_text = " ".join(c if c not in (str(ds), str(out)) else ("SET" if c == str(ds) else "RUN") for c in cmd)
    return {
        "command": "HF_LODC_LOCAL_HUB=/dev/null python benchmarks/bench_tinyimagenet.py "
                   f"--iterations {args.iterations} --eval-runs {args.eval_runs} --eval-epochs {args.eval_epochs}",
        "recipe_command": cmd_text.replace(sys.executable, "python").replace(str(ROOT) + "/", ""),
        "machine": machine(), "generate_s": round(generate_s, 1), "run_wall_s": round(wall, 1),
        "iterations": cond["iterations"], "condense_wall_s": cond["wall_time_s"],
        "seconds_per_iteration": round(s_it, 2),
        "seconds_per_iteration_is": "steady: after the first" if cond.get("steady_seconds_per_iteration")
        else "mean of all iterations, the first included",
        "device": cond.get("device", {}), "speed": res.get("speed"),
        "condense": {k: config["condense"].get(k) for k in ("method", "ipc", "rank", "batch_real", "init", "iterations")},
        "model": model, "eval_runs": ev["runs"], "eval_epochs": ev["epochs"], "eval_wall_s": ev["wall_time_s"],
        "seconds_per_eval_epoch": round(s_epoch, 2), "accuracy_mean": ev["accuracy_mean"],
        "accuracy_std": ev["accuracy_std"], "images_per_class": config.get("images_per_class"),
        "decoded_per_class": config.get("decoded_per_class"),
        "estimate_full_cell_cpu_h": round((PAPER_ITERATIONS * s_it + PAPER_RUNS * PAPER_EPOCHS * s_epoch) / 3600, 1),
        "estimate_condense_cpu_h": round(PAPER_ITERATIONS * s_it / 3600, 1),
        "estimate_eval_cpu_h": round(PAPER_RUNS * PAPER_EPOCHS * s_epoch / 3600, 1),
        "gpu_estimate": _gpu_estimate(),
    }


def _gpu_estimate() -> dict | None:
    """cell_costs' arithmetic for the same cell on one GPU at its stated assumed rate (not measured)."""
    path = HERE / "results" / "cell_costs.json"
    if not path.is_file():
        return None
    costs = json.loads(path.read_text())
    row = next((r for r in costs["rows"] if r.get("cell") == "tinyimagenet-lodm-ipc1"), None)
    return None if row is None else {"assumed_gpu_tflops": costs.get("assumed_gpu_tflops"),
                                      **{k: v for k, v in row.items() if "gpu" in k.lower()}}


def _chosen(r: dict) -> str:
    speed = r.get("speed") or {}
    parts = []
    for what in ("condense", "eval"):
        chosen = (speed.get(what) or {}).get("chosen") or {}
        why = "; ".join((speed.get(what) or {}).get("why") or [])
        parts.append(f"{what}: " + (", ".join(f"{k}={v}" for k, v in chosen.items()) or "the exact path")
                     + (f" ({why})" if why else ""))
    return "; ".join(parts) if speed else "nothing recorded"


def markdown(r: dict) -> str:
    sys.path.insert(0, str(HERE))
    from _machine import machine_line

    m = r["machine"]
    where = f"{machine_line(m)}; load average {m['load_average'][0]:.1f} at the start"
    gpu = r.get("gpu_estimate")
    gpu_text = (f". On one GPU the cell is about {gpu['gpu_condense_min']} + {gpu['gpu_eval_min']} min (cell_costs' "
                f"FLOP count at an assumed {gpu['assumed_gpu_tflops']} TFLOP/s, not measured)" if gpu else "")
    return "\n".join([
        "# TinyImageNet-shaped, end to end: the Table-1 YAML on a generated set",
        "",
        f"`{r['recipe_command']}` on a generated set of TinyImageNet's shape (200 classes x 500 train images at 64 px, "
        f"50 test images per class). {where}. Reproduce: `{r['command']}`.",
        "",
        "| iterations run | s/iteration | eval runs x epochs | s/eval epoch | accuracy (generated classes) | "
        "full cell on this CPU: condense + eval |",
        "|---|---|---|---|---|---|",
        f"| {r['iterations']} of {PAPER_ITERATIONS} | {r['seconds_per_iteration']} ({r['seconds_per_iteration_is']}) | "
        f"{r['eval_runs']} x {r['eval_epochs']} of {PAPER_RUNS} x {PAPER_EPOCHS} | {r['seconds_per_eval_epoch']} | "
        f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {r['estimate_condense_cpu_h']} h + "
        f"{r['estimate_eval_cpu_h']} h = {r['estimate_full_cell_cpu_h']} h |",
        "",
        f"Condensation settings as run: {json.dumps(r['condense'])}, {r['images_per_class']} stored images per class; "
        f"`speed: auto` chose {_chosen(r)}. The accuracy (chance: 0.5 %) is that of {r['iterations']} iterations and "
        f"{r['eval_epochs']} epochs on colours and textures, not a TinyImageNet number{gpu_text}.",
        "",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--eval-runs", type=int, default=1)
    ap.add_argument("--eval-epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen-workers", type=int, default=2)
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--work", default=None, help="folder for the generated set and the run (default: a temp one)")
    ap.add_argument("--out", default=str(HERE / "results" / "tinyimagenet_e2e"))
    ap.add_argument("--table-only", action="store_true", help="rewrite the .md from the .json at --out, run nothing")
    args = ap.parse_args()
    out = Path(args.out)
    if args.table_only:
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())))
        return
    result = run(args)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
