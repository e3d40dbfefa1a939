#!/usr/bin/env python
"""CPU benchmark of trajectory matching: MTT vs LoMTT at equal storage (MNIST IPC 1), with experts.

The CPU budget forces a small setting, far below the reference (100 experts x 50 epochs, 5 000
iterations of 50 student steps): the real training set is capped at ``--max-per-class`` images per
class (experts AND condensation use it, so their normalisation agrees), ``--experts`` experts of
``--expert-epochs`` epochs, ``--iterations`` iterations of ``--syn-steps`` student steps. Rows:
random real and low-rank random (the same capped data, no matching) as references, MTT, LoMTT.
Evaluation: the protocol (DSA, last epoch) with ``--eval-runs`` x ``--eval-epochs``, FULL real test split.

    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/bench_mtt.py

Writes ``benchmarks/results/mtt_cpu.json`` and ``.md``; the experts go to ``--expert-dir`` (reused).
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

from _machine import machine, machine_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-per-class", type=int, default=300)
    p.add_argument("--experts", type=int, default=2)
    p.add_argument("--expert-epochs-trained", type=int, default=4)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--syn-steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=100.0)
    p.add_argument("--eval-runs", type=int, default=2)
    p.add_argument("--eval-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--expert-dir", default="/tmp/hf_lodc-bench-mtt-experts")
    p.add_argument("--out", default=str(HERE / "results" / "mtt_cpu"))
    p.add_argument("--render-only", action="store_true", help="rewrite the .md from the existing .json")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.render_only:
        result = json.loads(Path(str(out) + ".json").read_text())
        Path(str(out) + ".md").write_text(render(result))
        return 0
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str((ROOT / ".." / "shared" / "hub").resolve()))
    from hf_lodc import pipeline
    from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, RunConfig
    from hf_lodc.objectives.experts import ExpertConfig, train_experts
    from hf_lodc.pipeline import load_data

    hw = machine()
    dc = DataConfig(dataset="ylecun/mnist", max_per_class=args.max_per_class)
    data = load_data(dc)
    t0 = time.perf_counter()
    reused = (Path(args.expert_dir) / "experts.json").is_file()
    buf = train_experts(data, ExpertConfig(num_experts=args.experts, epochs=args.expert_epochs_trained,
                                           seed=args.seed), args.expert_dir, progress=False)
    experts_s = time.perf_counter() - t0
    ev = EvalConfig(eval_runs=args.eval_runs, eval_epochs=args.eval_epochs, eval_backend="sequential")
    rows = []
    for method in ("random", "lorandom", "mtt", "lomtt"):
        kw = dict(method=method, ipc=1, rank=2, seed=args.seed)
        if method in ("mtt", "lomtt"):
            kw.update(iterations=args.iterations, expert_dir=args.expert_dir, syn_steps=args.syn_steps,
                      expert_epochs=2, max_start_epoch=2, lr=args.lr, lr_lr=1e-5)
        engine = []  # the engine's result: unrounded timings for the table
        run = RunConfig(data=dc, condense=CondenseConfig(**kw), eval=ev)
        t = time.perf_counter()
        art = pipeline.condense(data, run, on_result=engine.append)
        cond_s = time.perf_counter() - t
        res = engine[0]
        rec = pipeline.evaluate(art, data.test, ev, views=(pipeline.FLOAT32,),
                                seed=args.seed)[pipeline.FLOAT32]["convnet"]
        rows.append({"method": method, "images_per_class": res.budget.images_per_class,
                     "stored_numbers_per_class": res.budget.used_numel_per_class,
                     "iterations": res.config.iterations, "condense_s": round(cond_s, 1),
                     "seconds_per_iteration": round(1 / res.iterations_per_s, 2) if res.iterations_per_s else None,
                     "learned_lr": res.history[-1].get("syn_lr") if res.history else None,
                     "accuracy_mean": round(rec.accuracy_mean, 2), "accuracy_std": round(rec.accuracy_std, 2),
                     "accuracies": [round(a, 2) for a in rec.accuracies]})
        print(rows[-1], flush=True)
    accs = [a for a in buf.meta.get("test_accuracy", {}).values() if a is not None]
    result = {"settings": vars(args), "experts_s": round(experts_s, 1), "experts_reused": reused,
              "expert_test_accuracy_mean": round(sum(accs) / len(accs), 2) if accs else None,
              "hardware": hw, "load_average_at_end": os.getloadavg(), "command": " ".join(["python", *sys.argv]),
              "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(str(out) + ".md").write_text(render(result))
    print(render(result))
    return 0


def render(result: dict) -> str:
    a, hw = result["settings"], result["hardware"]
    made = (f"reused from {a['expert_dir']}, trained earlier with these settings" if result.get("experts_reused")
            else f"trained in {result['experts_s']:.0f} s")
    lines = [
        f"MNIST IPC 1 (equal storage: 784 numbers/class), real train capped at {a['max_per_class']}/class; "
        f"{a['experts']} experts x {a['expert_epochs_trained']} epochs (ConvNet-3, SGD 0.01, DSA; mean test accuracy "
        f"{result['expert_test_accuracy_mean']} %; {made}); {a['iterations']} iterations x {a['syn_steps']} student "
        f"steps, 2 expert epochs, start epoch < 2, lr {a['lr']:g}; eval {a['eval_runs']} ConvNet-3 x "
        f"{a['eval_epochs']} epochs (DSA, last epoch), full test split. {machine_line(hw)}. "
        f"Command: `{result['command']}`.",
        "",
        "| method | images/class | iterations | accuracy % (mean ± std) | s/iteration | learned student lr |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        spi = f"{r['seconds_per_iteration']:.2f}" if r["seconds_per_iteration"] else "–"
        lr = f"{r['learned_lr']:.4f}" if r["learned_lr"] else "–"
        lines.append(f"| {r['method']} | {r['images_per_class']} | {r['iterations']} | "
                     f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {spi} | {lr} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
