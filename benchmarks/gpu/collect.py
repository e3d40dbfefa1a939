#!/usr/bin/env python3
"""Merge what GPU leases returned into benchmarks/results/gpu_*.json + .md and docs/results.md.

    python benchmarks/gpu/collect.py /work/.device/<files_at>      # a lease's returned folder (or JSON files)
    python benchmarks/gpu/collect.py                               # only re-render the tables

* ``gpu_leases.json``: every lease record ever collected (hardware, versions, commands, timings);
* ``gpu_table1.json/.md``: one row per cell of the queue (benchmarks/gpu/cells.py), the latest full
  measurement beside the paper's mean ± std and the gap; cells never measured say so;
* ``gpu_speed.json/.md``: the speed rows of the latest lease that measured speed.

It also puts a returned ``state.tar.gz`` into ``.lease/`` (the next lease resumes from it; a lease
that returned none leaves nothing to resume) and refreshes docs/results.md through
benchmarks/update_readme.py (blocks ``results:gpu_table1`` and ``results:gpu_speed``).
Smoke records (``--smoke`` runs on a CPU) are refused unless ``--include-smoke``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from cells import CELLS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _load_inputs(paths: list[str]) -> tuple[list[dict], Path | None]:
    records, state = [], None
    for p in map(Path, paths):
        files = sorted(p.glob("lease-*.json")) if p.is_dir() else [p]
        for f in files:
            records.append(json.loads(f.read_text()))
        if p.is_dir() and (p / "state.tar.gz").is_file():
            state = p / "state.tar.gz"
    return records, state


def _key(r: dict) -> tuple:
    return r.get("started_utc"), r.get("hardware", {}).get("host")


def merge(history: list[dict], new: list[dict]) -> list[dict]:
    seen = {_key(r) for r in history}
    return history + [r for r in new if _key(r) not in seen]


def table1(history: list[dict]) -> tuple[list[dict], list[str]]:
    latest: dict[str, tuple[dict, dict]] = {}
    status: dict[str, str] = {}
    for lease in history:  # in collection order: later leases win
        for c in lease.get("cells", []):
            if c.get("status") == "done" and c.get("evaluations"):
                latest[c["cell"]] = (c, lease)
            elif c.get("status") and not c["status"].startswith("not started"):
                status[c["cell"]] = c["status"]
    rows, lines = [], [
        "Full protocol (the YAML in recipes/configs/ unchanged), condensed and evaluated on one GPU by "
        "benchmarks/gpu/lease.py; paper: Yang et al. (NeurIPS 2023) Tables 1/4 (mean ± std where given). "
        "Gap = measured mean − paper mean.",
        "",
        "| cell | measured (ConvNet-3) % | paper % | gap (pp) | within paper ± 2 std | GPU | condense s | eval s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in CELLS:
        paper = "–" if cell.paper_mean is None else (
            f"{cell.paper_mean}" + (f" ± {cell.paper_std}" if cell.paper_std is not None else ""))
        if cell.name not in latest:
            why = status.get(cell.name)
            text = "not measured yet" + (f" (last lease: {why})" if why else "")
            lines.append(f"| {cell.name} | {text} | {paper} | – | – | – | – | – |")
            rows.append({"cell": cell.name, "measured": None, "paper_mean": cell.paper_mean,
                         "paper_std": cell.paper_std, "status": why})
            continue
        c, lease = latest[cell.name]
        ev = c["evaluations"].get("convnet") or next(iter(c["evaluations"].values()))
        m, s = ev["accuracy_mean"], ev["accuracy_std"]
        gap = None if cell.paper_mean is None else m - cell.paper_mean
        within = None
        if gap is not None and cell.paper_std is not None:
            within = abs(gap) <= 2 * cell.paper_std or gap > 0
        gpu = lease.get("hardware", {}).get("gpu", "cpu")
        lines.append(
            f"| {cell.name} | {m:.2f} ± {s:.2f} ({ev.get('runs')} × {ev.get('epochs')} ep) | {paper} | "
            f"{'–' if gap is None else f'{gap:+.2f}'} | {'–' if within is None else ('yes' if within else 'no')} | "
            f"{gpu} | {c.get('condense_time_s') or '–'} | {c.get('eval_wall_s', '–')} |")
        rows.append({"cell": cell.name, "measured": ev, "paper_mean": cell.paper_mean, "paper_std": cell.paper_std,
                     "gap": gap, "within_2std_or_better": within, "lease": lease.get("started_utc"), "gpu": gpu,
                     "torch": lease.get("hardware", {}).get("torch"), "condense_command": c.get("condense_command"),
                     "eval_command": c.get("eval_command")})
    if not latest:
        lines += ["", "No GPU lease has run yet: every GPU figure above is still open."]
    return rows, lines


def speed(history: list[dict]) -> tuple[list[dict], list[str]]:
    leases = [r for r in history if r.get("speed")]
    if not leases:
        return [], ["Not measured yet: no GPU lease has run (benchmarks/gpu/lease.py measures s/iteration in fp32, "
                    "TF32 and bf16, and evaluation s/model-epoch, sequential vs vmap)."]
    lease = leases[-1]
    hw = lease.get("hardware", {})
    rows = [r for r in lease["speed"] if "error" not in r]
    lines = [f"{hw.get('gpu', 'cpu')}, torch {hw.get('torch')}, CUDA {hw.get('cuda')}; lease {lease.get('started_utc')}.",
             "", "| LoDM cell | precision | s / iteration | TFLOP/s achieved | 20 000 iterations (projected) |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r.get("part") == "condense":
            lines.append(f"| {r['dataset']} IPC {r['ipc']} r{r['rank']} b{r['batch_real']} | {r['precision']} | "
                         f"{r['seconds_per_iteration']:.4f} | {r['achieved_tflops']:.2f} | "
                         f"{r['projected_20000_iterations_s'] / 60:.1f} min |")
    lines += ["", "| evaluation | precision | backend | s / model-epoch | TFLOP/s |", "|---|---|---|---|---|"]
    for r in rows:
        if r.get("part") == "eval":
            lines.append(f"| {r['dataset']} {r['images']} images × {r['models']} models | {r['precision']} | "
                         f"{r['backend']} | {r['seconds_per_model_epoch']:.5f} | {r['achieved_tflops']:.3f} |")
    errors = [r for r in lease["speed"] if "error" in r]
    if errors:
        lines += ["", "Failed: " + "; ".join(f"{r['precision']} ({r['error']})" for r in errors)]
    return rows, lines


def write(name: str, record, lines: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="folders returned by leases (files_at) or lease-*.json files")
    p.add_argument("--include-smoke", action="store_true")
    p.add_argument("--lease-dir", default=str(ROOT / ".lease"))
    p.add_argument("--no-readme", dest="readme", action="store_false")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    RESULTS = Path(args.results)
    new, state = _load_inputs(args.inputs)
    smoke = [r for r in new if r.get("smoke")]
    if smoke and not args.include_smoke:
        raise SystemExit(f"{len(smoke)} record(s) come from --smoke runs; pass --include-smoke to merge them anyway")
    hist_path = RESULTS / "gpu_leases.json"
    history = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    history = merge(history, new)
    hist_path.parent.mkdir(parents=True, exist_ok=True)
    hist_path.write_text(json.dumps(history, indent=2) + "\n")
    rows, lines = table1(history)
    write("gpu_table1", rows, lines)
    srows, slines = speed(history)
    write("gpu_speed", srows, slines)
    if args.inputs:
        lease = Path(args.lease_dir)
        lease.mkdir(parents=True, exist_ok=True)
        if state is not None:
            shutil.copyfile(state, lease / "state.tar.gz")
            print(f"state for the next lease: {lease / 'state.tar.gz'} (carry it)")
        elif new and (lease / "state.tar.gz").exists():
            (lease / "state.tar.gz").unlink()  # that lease finished what it resumed
    if args.readme:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from update_readme import main as update

        update([])
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
