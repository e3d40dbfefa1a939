#!/usr/bin/env python
"""A Table-1 cell's recipe on a CPU with only the condensation shortened: the closest to the paper's
protocol a CPU session reaches. The YAML of ``recipes/configs/`` runs unchanged (batch_real 256, the
evaluation's 20 ConvNet-3 x 1000 epochs on the full test split) but
for ``--iterations`` (the paper: 20 000) and, with ``--fast``, the fastest measured CPU path (bf16 on
CPUs with AMX: docs/speed.md).

    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/cpu_protocol.py --cell mnist-lodm-ipc1 --iterations 3000 --fast
    python benchmarks/cpu_protocol.py --cell mnist-lodm-ipc1 --iterations 3000 --fast --from-run runs/x  # record a run
    python benchmarks/cpu_protocol.py --render-only

It runs ``recipes/condense.py --config <the cell's YAML> --iterations N [fast flags] --output-dir DIR --cpu``
as a child (or, with ``--from-run DIR``, reads a run made by exactly that command, after checking its
config), then writes one row per (cell, iterations, fast) into ``benchmarks/results/cpu_protocol.json`` +
``.md`` beside the paper's mean +- std (benchmarks/gpu/cells.py). GPU leases measure the full protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "gpu"))

from _machine import machine_line  # noqa: E402
from cells import CELLS  # noqa: E402
from hf_lodc.engine.config import RunConfig  # noqa: E402
from hf_lodc.engine.config_checks import check_option  # noqa: E402
from hf_lodc.errors import HfLodcError  # noqa: E402

OUT = HERE / "results" / "cpu_protocol"
FAST = ["--compile", "--real-chunk", "256", "--channels-last", "--mixed-precision", "bf16",
        "--eval-compile", "--eval-channels-last", "--eval-mixed-precision", "bf16"]
# what FAST must have put into the run's config (checked on --from-run)
FAST_CONFIG = {"compile": True, "real_chunk": 256, "channels_last": True, "mixed_precision": "bf16",
               "eval_compile": True, "eval_channels_last": True, "eval_mixed_precision": "bf16"}


def command(cell, iterations: int, fast: bool, out_dir: str, flags: list[str] | None = None) -> list[str]:
    return (["python", "recipes/condense.py", "--config", f"recipes/configs/{cell.config}", *cell.overrides,
             "--iterations", str(iterations)] + (FAST if fast else []) + list(flags or [])
            + ["--output-dir", out_dir, "--cpu"])


def path_of(cfg: dict) -> str:
    """The numeric path a run took, from its config: precision, memory format, compile, per phase."""
    def phase(mp, cl, comp):
        parts = [f"{mp} autocast" if mp and mp != "no" else "fp32"]
        parts += ["channels_last"] if cl else []
        parts += ["compile"] if comp else []
        return " + ".join(parts)
    return (f"condense {phase(cfg.get('mixed_precision'), cfg.get('channels_last'), cfg.get('compile'))}; "
            f"eval {phase(cfg.get('eval_mixed_precision'), cfg.get('eval_channels_last'), cfg.get('eval_compile'))}")


def flag_options(flags: list[str]) -> dict:
    """``--init noise --compile`` -> {"init": "noise", "compile": True}: what extra flags set in a config."""
    out, i = {}, 0
    while i < len(flags):
        key = flags[i].lstrip("-").replace("-", "_")
        if i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            out[key] = yaml.safe_load(flags[i + 1])
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def check_run(run: Path, cell, iterations: int, fast: bool, flags: list[str] | None = None) -> dict:
    """The run's results, after checking that its config is the cell's YAML with these changes only."""
    cfg = RunConfig.from_record(json.loads((run / "config.json").read_text())["run"], str(run)).to_flat()
    want = {**yaml.safe_load((ROOT / "recipes" / "configs" / cell.config).read_text()), "iterations": iterations,
            **(FAST_CONFIG if fast else {}), **flag_options(list(flags or []))}
    want.pop("output_dir", None)
    owners = RunConfig.option_owners()
    for k, v in want.items():  # flag strings as the recipe reads them ("500,1000" is a list of iterations)
        if k in owners and isinstance(v, str):
            try:
                want[k] = check_option(k, v, owners[k][1], "flags")
            except HfLodcError:
                pass  # compared as given: a mismatch is reported below
    wrong = {k: (cfg.get(k), v) for k, v in want.items() if k in cfg and cfg[k] != v}
    if wrong:
        raise SystemExit(f"{run}: not made by this command; config differs (run, expected): {wrong}")
    return json.loads((run / "results.json").read_text())


def row_of(cell, iterations: int, fast: bool, results: dict, cmd: list[str], path: str | None = None,
           note: str | None = None) -> dict:
    paper_its = yaml.safe_load((ROOT / "recipes" / "configs" / cell.config).read_text()).get("iterations")
    views = {k: v.get("convnet") for k, v in results.items() if k.startswith("evaluations") and v.get("convnet")}
    f32 = views.get("evaluations")
    cond = results["condensation"]
    return {
        "cell": cell.name, "iterations": iterations, "paper_iterations": paper_its, "fast": fast,
        "float32": f32, "uint8": views.get("evaluations_uint8"),
        "paper_mean": cell.paper_mean, "paper_std": cell.paper_std,
        "gap": None if cell.paper_mean is None or f32 is None else round(f32["accuracy_mean"] - cell.paper_mean, 2),
        "seconds_per_iteration": round(1.0 / cond["iterations_per_s"], 4) if cond.get("iterations_per_s") else None,
        "condense_wall_s": cond.get("wall_time_s"), "eval_wall_s": round(sum(v["wall_time_s"] for v in views.values()), 1),
        "device": cond.get("device"), "hardware": machine_line(), "command": " ".join(cmd),
        **({"path": path} if path else {}), **({"note": note} if note else {}),
    }


def render(rows: list[dict]) -> list[str]:
    lines = [
        "A Table-1 cell's YAML (recipes/configs/) run on a CPU by `benchmarks/cpu_protocol.py`, unchanged but for a "
        "shortened condensation (the iterations column; the paper runs 20 000) and, where `fast`, the fastest "
        "measured CPU path (bf16 autocast + channels_last + compile for condensation and evaluation). The "
        "evaluation is the YAML's: ConvNet-3 trained from scratch, runs × epochs as given, full real test split, "
        "on the float32 tensors (and the published uint8 PNGs where the run evaluated them, else –). Paper: Yang et al. (NeurIPS 2023) Table 1; gap = float32 "
        "mean − paper mean.",
        "",
        "| cell | iterations (paper) | fast path | float32 % | uint8 PNG % | paper % | gap (pp) | s/iteration | "
        "condense min | eval min | hardware |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        def acc(v):
            return "–" if not v else f"{v['accuracy_mean']:.2f} ± {v['accuracy_std']:.2f} ({v['runs']} × {v['epochs']} ep)"
        gap = "–" if r["gap"] is None else f"{r['gap']:+.2f}"
        paper = "–" if r["paper_mean"] is None else f"{r['paper_mean']}" + (
            f" ± {r['paper_std']}" if r["paper_std"] is not None else "")
        lines.append(
            f"| {r['cell']}{' (init noise)' if r.get('init') == 'noise' else ''} | {r['iterations']} ({r['paper_iterations']}) | {'yes' if r['fast'] else 'no'} | "
            f"{acc(r['float32'])} | {acc(r['uint8'])} | {paper} | {gap} | "
            f"{r['seconds_per_iteration'] or '–'} | "  # –: the recorded run only evaluated (condensed earlier)
            f"{'–' if r['seconds_per_iteration'] is None else format(r['condense_wall_s'] / 60, '.1f')} | "
            f"{r['eval_wall_s'] / 60:.1f} | "
            f"{r['hardware']} |")
    lines += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in rows) + "."]
    paths = [f"{r['cell']} at {r['iterations']}: {r['path']}" + (f" ({r['note']})" if r.get("note") else "")
             for r in rows if r.get("path")]
    if paths:
        lines += ["", "Numeric path and notes: " + "; ".join(paths) + "."]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", choices=[c.name for c in CELLS], default="mnist-lodm-ipc1")
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--fast", action="store_true", help="the fastest measured CPU path (bf16 needs AMX to pay)")
    p.add_argument("--output-dir", help="the run's folder (default runs/cpu-protocol/<cell>-<iterations>)")
    p.add_argument("--from-run", help="record this run folder, made by the same command, instead of running it")
    p.add_argument("--flags", default="", help="extra speed flags the run used (recorded in the command), e.g. "
                   "'--compile --real-chunk 256'; the path it took is read from its config either way")
    p.add_argument("--note", help="a note for the row (e.g. how the run was interrupted and resumed)")
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args(argv)
    record = json.loads(OUT.with_suffix(".json").read_text()) if OUT.with_suffix(".json").is_file() else {"rows": []}
    if not args.render_only:
        cell = next(c for c in CELLS if c.name == args.cell)
        run = Path(args.from_run or args.output_dir or f"runs/cpu-protocol/{cell.name}-{args.iterations}")
        cmd = command(cell, args.iterations, args.fast, str(run), args.flags.split())
        if not args.from_run:
            env = {**os.environ, "HF_LODC_LOCAL_HUB": os.environ.get(
                "HF_LODC_LOCAL_HUB", str((ROOT / ".." / "shared" / "hub").resolve()))}
            if subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, env=env).returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed")
        results = check_run(ROOT / run, cell, args.iterations, args.fast, args.flags.split())
        cfg = RunConfig.from_record(json.loads((ROOT / run / "config.json").read_text())["run"], str(run)).to_flat()
        row = row_of(cell, args.iterations, args.fast, results, cmd, path_of(cfg), args.note)
        row["init"] = cfg.get("init")  # svd (hf_lodc's default) or the paper's noise: two rows of one cell
        key = (row["cell"], row["iterations"], row["fast"], row["init"])
        record["rows"] = [r for r in record["rows"]
                          if (r["cell"], r["iterations"], r["fast"], r.get("init")) != key] + [row]
    lines = render(record["rows"])
    OUT.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
