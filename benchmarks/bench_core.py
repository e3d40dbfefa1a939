#!/usr/bin/env python
"""CPU benchmark of the core methods at equal storage and equal iteration counts.

Rows: random real, low-rank random (truncated SVD of random real images, iteration 0), DM, LoDM
(noise init), LoDM (svd init), DC, LoDC — on MNIST IPC 1 and CIFAR-10 IPC 1, from the offline Hub
mirror. Each row: condense (seed 0), then train ``--eval-runs`` fresh ConvNet-3 for
``--eval-epochs`` epochs with the protocol (DSA, lr x0.1 at half) and test on the FULL real test
split at the last epoch.

    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/bench_core.py            # all rows
    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/bench_core.py --datasets mnist --methods lodm

Results are appended row by row to ``benchmarks/results/core_cpu.json`` (re-running skips rows
already measured with the same settings, so an interrupted run resumes) and rendered to
``benchmarks/results/core_cpu.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _machine import machine_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from hf_lodc import pipeline  # noqa: E402
from hf_lodc.engine.condense_options import flat_option_names  # noqa: E402
from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, RunConfig, objective_option_owners  # noqa: E402

DATASETS = {"mnist": "ylecun/mnist", "cifar10": "uoft-cs/cifar10"}
ROWS = {  # row name -> (method, init)
    "random": ("random", None),
    "lorandom": ("lorandom", "svd"),
    "dm": ("dm", "real"),
    "lodm-noise": ("lodm", "noise"),
    "lodm-svd": ("lodm", "svd"),
    "dc": ("dc", "real"),
    "lodc": ("lodc", "svd"),
}
PAPER = {  # Yang et al. 2023 Table 1 / same-table baselines, ConvNet-3, full protocol (IPC 1)
    ("mnist", "random"): 64.9, ("mnist", "dm"): 89.7, ("mnist", "dc"): 91.7, ("mnist", "lodm-noise"): 91.2,
    ("cifar10", "random"): 14.4, ("cifar10", "dm"): 26.0, ("cifar10", "dc"): 28.3, ("cifar10", "lodm-noise"): 43.8,
}


def hardware() -> str:
    return machine_line()


def run_row(data, dataset: str, row: str, args) -> dict:
    method, init = ROWS[row]
    kw = dict(method=method, ipc=args.ipc, rank=args.rank, iterations=args.iterations, batch_real=args.batch_real,
              seed=args.seed)
    if init:
        kw["init"] = init
    # --options: e.g. {"compile": true} for every row that has it (a row's method has its own objective's options)
    foreign = set(objective_option_owners()) - set(flat_option_names(method))
    kw.update({k: v for k, v in (getattr(args, "options", None) or {}).items() if k not in foreign})
    ev = EvalConfig(eval_runs=args.eval_runs, eval_epochs=args.eval_epochs, eval_backend="sequential")
    run = RunConfig(data=DataConfig(dataset=DATASETS[dataset]), condense=CondenseConfig(**kw), eval=ev)
    engine = []  # the engine's result: unrounded timings for the table
    t0 = time.perf_counter()
    art = pipeline.condense(data, run, on_result=engine.append)
    cond_s = time.perf_counter() - t0
    res = engine[0]
    rec = pipeline.evaluate(art, data.test, ev, views=(pipeline.FLOAT32,), seed=args.seed)[pipeline.FLOAT32]["convnet"]
    other = {}  # further evaluation protocols (e.g. IDC's own), same seeds: convnet@<protocol> -> record
    for name in getattr(args, "extra_protocols", ()):
        ev_p = EvalConfig(**{**ev.__dict__, "eval_protocol": name})
        other.update(pipeline.evaluate(art, data.test, ev_p, views=(pipeline.FLOAT32,), seed=args.seed)[pipeline.FLOAT32])
    variants = {}  # the same set under other evaluation settings (e.g. bf16), same seeds: per-run pairs
    for name, overrides in (getattr(args, "eval_variants", None) or {}).items():
        ev_v = EvalConfig(**{**ev.__dict__, **overrides})
        v = pipeline.evaluate(art, data.test, ev_v, views=(pipeline.FLOAT32,), seed=args.seed)[pipeline.FLOAT32]["convnet"]
        variants[name] = {"options": overrides, "accuracy_mean": round(v.accuracy_mean, 2),
                          "accuracy_std": round(v.accuracy_std, 2), "accuracies": [round(a, 2) for a in v.accuracies],
                          "drift_pp": [round(b - a, 2) for a, b in zip(rec.accuracies, v.accuracies)],
                          "eval_wall_s": round(v.wall_time_s, 1), "protocol": v.protocol}
        print(f"{dataset:8s} {row:11s} eval {name}: {v.accuracy_mean:.2f} ± {v.accuracy_std:.2f} "
              f"(fp32 {rec.accuracy_mean:.2f}; {v.wall_time_s:.0f} s vs {rec.wall_time_s:.0f} s)", flush=True)
    return {
        "dataset": dataset, "row": row, "method": method, "init": res.config.init,
        "ipc": args.ipc, "rank": res.budget.rank, "images_per_class": res.budget.images_per_class,
        "stored_numbers_per_class": res.budget.used_numel_per_class,
        "decoded_per_class": res.budget.decoded_per_class or res.budget.images_per_class,
        "shared_numbers": res.budget.shared_numel, "shared_in_budget": res.budget.shared_in_budget,
        "budget_numbers_per_class": res.budget.budget_numel_per_class,
        "iterations": res.config.iterations, "batch_real": args.batch_real,
        "seconds_per_iteration": (1.0 / res.iterations_per_s) if res.iterations_per_s else None,
        "condense_wall_s": round(cond_s, 1),
        "accuracy_mean": round(rec.accuracy_mean, 2), "accuracy_std": round(rec.accuracy_std, 2),
        "accuracies": [round(a, 2) for a in rec.accuracies],
        "eval_runs": rec.runs, "eval_epochs": rec.epochs, "eval_wall_s": round(rec.wall_time_s, 1),
        "test_images": len(data.test), "protocol": rec.protocol,
        **({"other_protocols": {k: {"accuracy_mean": round(r.accuracy_mean, 2), "accuracy_std": round(r.accuracy_std, 2),
                                    "accuracies": [round(a, 2) for a in r.accuracies], "protocol": r.protocol}
                                for k, r in other.items()}} if other else {}),
        **({"eval_variants": variants} if variants else {}),
        "paper_full_protocol": PAPER.get((dataset, row)),
        "hardware": hardware(), "seed": args.seed,
    }


def settings_key(args) -> dict:
    key = {"ipc": args.ipc, "rank": args.rank, "iterations": args.iterations, "batch_real": args.batch_real,
           "eval_runs": args.eval_runs, "eval_epochs": args.eval_epochs, "seed": args.seed}
    if getattr(args, "options", None):  # only when given: older results files keep matching
        key["options"] = args.options
    if getattr(args, "eval_variants", None):
        key["eval_variants"] = args.eval_variants
    return key


def render(results: dict) -> str:
    s = results["settings"]
    lines = [
        f"CPU benchmark (`benchmarks/bench_core.py`): IPC {s['ipc']}, rank {s['rank']}, {s['iterations']} iterations, "
        f"batch_real {s['batch_real']}/class, eval {s['eval_runs']} ConvNet-3 x {s['eval_epochs']} epochs "
        f"(DSA, last epoch, full test split), seed {s['seed']}"
        + (f", condense options {json.dumps(s['options'])}" if s.get("options") else "")
        + f". Hardware: {results['hardware']}.",
        "",
        "| dataset | row | images/class | stored / budget numbers per class | accuracy % (mean ± std) | paper (full protocol) | s/iteration |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        spi = f"{r['seconds_per_iteration']:.2f}" if r["seconds_per_iteration"] else "–"
        paper = f"{r['paper_full_protocol']}" if r.get("paper_full_protocol") else "–"
        lines.append(
            f"| {r['dataset']} | {r['row']} | {r['images_per_class']} | {r['stored_numbers_per_class']} / "
            f"{r['budget_numbers_per_class']} | {r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {paper} | {spi} |"
        )
    variants = [(r, name, v) for r in results["rows"] for name, v in r.get("eval_variants", {}).items()]
    if variants:
        lines += ["", "The same condensed sets evaluated again under other evaluation settings, same seeds (run i of "
                      "each column starts from the same network and draws the same batches and DSA): per-run "
                      "differences are the variant's drift; wall times are for all runs, on the machine as shared.", "",
                  "| dataset | row | evaluation | options | accuracy % (fp32 eager) | accuracy % (variant) | drift per run (pp) "
                  "| mean drift (pp) | eval wall s, fp32 / variant |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r, name, v in variants:
            drift = sum(v["drift_pp"]) / len(v["drift_pp"])
            lines.append(f"| {r['dataset']} | {r['row']} | {name} | {json.dumps(v['options'])} | "
                         f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {v['accuracy_mean']:.2f} ± "
                         f"{v['accuracy_std']:.2f} | {', '.join(f'{d:+.2f}' for d in v['drift_pp'])} | {drift:+.2f} | "
                         f"{r['eval_wall_s']} / {v['eval_wall_s']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist,cifar10")
    p.add_argument("--methods", default=",".join(ROWS))
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--rank", type=int, default=2)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--batch-real", type=int, default=64)
    p.add_argument("--eval-runs", type=int, default=2)
    p.add_argument("--eval-epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", type=json.loads, default={},
                   help="extra condense options for every row, as JSON (e.g. '{\"compile\": true}'); recorded")
    p.add_argument("--eval-variants", type=json.loads, default={},
                   help="evaluate each set again under other EvalConfig settings, same seeds, as JSON "
                        "name -> options (e.g. '{\"bf16\": {\"eval_mixed_precision\": \"bf16\"}}'); recorded")
    p.add_argument("--out", default=str(HERE / "results" / "core_cpu"))
    args = p.parse_args(argv)
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str((ROOT / ".." / "shared" / "hub").resolve()))
    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    key = settings_key(args)
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    if results.get("settings") != key:
        results = {"settings": key, "hardware": hardware(), "command": " ".join(["python"] + sys.argv),
                   "rows": []}
    done = {(r["dataset"], r["row"]) for r in results["rows"]}
    for dataset in args.datasets.split(","):
        data = pipeline.load_data(DataConfig(dataset=DATASETS[dataset]))
        for row in args.methods.split(","):
            if (dataset, row) in done:
                continue
            r = run_row(data, dataset, row, args)
            print(f"{dataset:8s} {row:11s} {r['accuracy_mean']:6.2f} ± {r['accuracy_std']:.2f}  "
                  f"({r['images_per_class']}/class, {r['seconds_per_iteration'] or 0:.2f} s/it)", flush=True)
            results["rows"].append(r)
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(results, indent=2) + "\n")
            out_md.write_text(render(results))
    out_md.write_text(render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
