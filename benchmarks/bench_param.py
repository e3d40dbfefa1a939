#!/usr/bin/env python
"""CPU benchmark of the parameterisation methods (issue 13): IDC vs LoIDC, HaBa vs LoHaBa, at equal
storage and equal iterations, beside reference rows, sharing ``bench_core.py``'s machinery
(``run_row``: condense with seed 0, evaluate ``--eval-runs`` ConvNet-3 x ``--eval-epochs`` epochs with
the standard protocol on the full test split, s/iteration from the engine's timer).

The CPU forces a short setting, far from the papers': ``--iterations`` outer iterations; IDC with
``--match-steps`` matching rounds per network (paper 100) and ``--n-data`` real images per network
update (paper 2000); HaBa/LoHaBa with ``--syn-steps`` student steps (paper 50) on ``--experts`` expert(s)
of ``--expert-epochs`` epochs trained here on the same data. The pixel HaBa row at IPC 1 does not
fit its budget with its hallucinators counted (they cost more than the one pixel image per class
leaves), so it runs with ``shared_in_budget=false`` and the table marks it "hallucinators not
counted"; LoHaBa fits and pays for them. ``--max-per-class`` caps the real train images per class
(the rows here all use the same capped data, including the reference rows).

    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/bench_param.py --datasets mnist

Writes ``benchmarks/results/param_cpu.json`` and ``.md`` (rows appended as measured; a rerun with
the same settings skips measured rows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_core  # noqa: E402
from bench_core import DATASETS, hardware  # noqa: E402

from hf_lodc import pipeline  # noqa: E402
from hf_lodc.engine.config import DataConfig  # noqa: E402

ROWS = {  # row name -> (method, init, extra condense options)
    "random": ("random", None, {}),
    "lodm-svd": ("lodm", "svd", {}),
    "idc": ("idc", "real", {}),
    "loidc": ("loidc", "svd", {}),
    "haba*": ("haba", "real", {"shared_in_budget": False}),
    "lohaba": ("lohaba", "svd", {}),
}
PAPER = {("cifar10", "idc"): 50.6, ("cifar10", "loidc"): 57.2, ("cifar10", "haba*"): 48.3, ("cifar10", "lohaba"): 66.1}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist,cifar10")
    p.add_argument("--methods", default=",".join(ROWS))
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--rank", type=int, default=2)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--batch-real", type=int, default=64)
    p.add_argument("--eval-runs", type=int, default=2)
    p.add_argument("--eval-epochs", type=int, default=100)
    p.add_argument("--match-steps", type=int, default=10)
    p.add_argument("--n-data", type=int, default=256)
    p.add_argument("--syn-steps", type=int, default=10)
    p.add_argument("--experts", type=int, default=1)
    p.add_argument("--expert-epochs", type=int, default=2)
    p.add_argument("--max-per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--idc-protocol", action="store_true",
                   help="also evaluate every row with IDC's own evaluation protocol (batch 64, multistep lr, "
                        "CutMix; same seeds) and show it in a second accuracy column")
    p.add_argument("--out", default=str(HERE / "results" / "param_cpu"))
    args = p.parse_args(argv)
    args.extra_protocols = ("idc",) if args.idc_protocol else ()
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str((HERE.parent / ".." / "shared" / "hub").resolve()))
    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    key = {k: v for k, v in vars(args).items() if k not in ("datasets", "methods", "out", "extra_protocols")}
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    if results.get("settings") != key:
        results = {"settings": key, "hardware": hardware(), "command": " ".join(["python"] + sys.argv), "rows": []}
    done = {(r["dataset"], r["row"]) for r in results["rows"]}
    for dataset in args.datasets.split(","):
        data = pipeline.load_data(DataConfig(dataset=DATASETS[dataset], max_per_class=args.max_per_class))
        expert_dir = f"/tmp/hf_lodc-bench-param-experts-{dataset}-{args.max_per_class}-{args.experts}x{args.expert_epochs}"
        for row in args.methods.split(","):
            if (dataset, row) in done:
                continue
            method, init, extra = ROWS[row]
            extra = dict(extra)
            if method in ("idc", "loidc"):
                extra.update(match_steps=args.match_steps, n_data=args.n_data,
                             metric="l1" if dataset == "mnist" else "mse")
            if method in ("haba", "lohaba"):
                from hf_lodc.objectives.experts import ExpertConfig, train_experts

                t0 = time.perf_counter()
                train_experts(data, ExpertConfig(num_experts=args.experts, epochs=args.expert_epochs, seed=args.seed),
                              expert_dir, progress=False)
                print(f"experts ready in {time.perf_counter() - t0:.0f} s", flush=True)
                extra.update(expert_dir=expert_dir, syn_steps=args.syn_steps, expert_epochs=1, max_start_epoch=1)
            bench_core.ROWS[row] = (method, init)
            bench_core.PAPER.update(PAPER)
            r = run_row(data, dataset, row, args, extra)
            print(f"{dataset:8s} {row:8s} {r['accuracy_mean']:6.2f} ± {r['accuracy_std']:.2f} "
                  f"({r['images_per_class']}/class, {r['seconds_per_iteration'] or 0:.2f} s/it)", flush=True)
            results["rows"].append(r)
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(results, indent=2) + "\n")
            out_md.write_text(render(results))
    out_md.write_text(render(results))
    print(render(results))
    return 0


def run_row(data, dataset, row, args, extra):
    """``bench_core.run_row`` with the row's extra condense options (the method's own options)."""
    orig = bench_core.CondenseConfig
    bench_core.CondenseConfig = lambda **kw: orig(**{**kw, **extra})
    try:
        r = bench_core.run_row(data, dataset, row, args)
    finally:
        bench_core.CondenseConfig = orig
    r["options"] = {k: v for k, v in extra.items() if k != "expert_dir"}
    return r


def _idc(r: dict) -> str:
    o = r.get("other_protocols", {}).get("convnet@idc")
    return f"{o['accuracy_mean']:.2f} ± {o['accuracy_std']:.2f}" if o else "not measured"


def render(results: dict) -> str:
    s = results["settings"]
    lines = [
        f"CPU benchmark (`benchmarks/bench_param.py`): IPC {s['ipc']}, rank {s['rank']}, {s['iterations']} iterations, "
        f"batch_real {s['batch_real']}/class, train data capped at {s['max_per_class']}/class; IDC {s['match_steps']} "
        f"matching rounds/iteration, {s['n_data']} real images per network update; HaBa {s['syn_steps']} student "
        f"steps, {s['experts']} expert x {s['expert_epochs']} epochs; eval {s['eval_runs']} ConvNet-3 x "
        f"{s['eval_epochs']} epochs (standard protocol: DSA, last epoch, full test split), seed {s['seed']}. "
        f"Hardware: {results['hardware']}. `haba*`: hallucinators NOT counted in the budget (shared_in_budget=false).",
        "",
        "| dataset | row | units/class | decoded images/class | stored / budget numbers per class (+ shared, all classes) "
        "| accuracy % (mean ± std) | accuracy %, IDC's evaluation protocol | paper, full protocol (Table 4; random: "
        "Table 1) | s/iteration |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        spi = f"{r['seconds_per_iteration']:.2f}" if r["seconds_per_iteration"] else "–"
        paper = f"{r['paper_full_protocol']}" if r.get("paper_full_protocol") else "–"
        shared = f" (+{r['shared_numbers']} shared in total{'' if r.get('shared_in_budget', True) else ', not counted'})" \
            if r.get("shared_numbers") else ""
        lines.append(
            f"| {r['dataset']} | {r['row']} | {r['images_per_class']} | {r.get('decoded_per_class', r['images_per_class'])} "
            f"| {r['stored_numbers_per_class']} / {r['budget_numbers_per_class']}{shared} | "
            f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {_idc(r)} | {paper} | {spi} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
