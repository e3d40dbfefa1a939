#!/usr/bin/env python
"""What each Table-1 LoDM cell costs: its arithmetic from the FLOP counts, the measured CPU rate, and
what the full cell should cost on this CPU and on one GPU.

    python benchmarks/cell_costs.py            # writes benchmarks/results/cell_costs.{json,md}

Nothing is timed here. Per cell (one YAML of recipes/configs/, unchanged): GFLOP of one condensation
iteration (``hf_lodc.engine.flops.dm_iteration_flops``: the real and synthetic embedding passes and the
synthetic backward) and of one evaluation model-epoch on the condensed set (``eval_epoch_flops``), the
paper's 20 000 iterations and 20 x 1000 evaluation epochs in PFLOP, then:

- CPU: the rate measured on this kind of machine (``cpu_protocol.json`` rows and the side-by-side
  speed row, GFLOP/s = GFLOP per iteration / measured s per iteration), applied to the cell; a cell
  that was not measured takes the rate of the measured cell of the same image size (said in the row);
- GPU: the arithmetic at an ASSUMED sustained 100 TFLOP/s (10-20 % of an H100's dense bf16 peak: these
  are small convolutions), a lower bound that ignores per-iteration overheads. The GPU lease
  (benchmarks/gpu/) replaces it with a measurement when a GPU is lent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "gpu"))

from cells import CELLS  # noqa: E402

OUT = HERE / "results" / "cell_costs"
ITERATIONS, EVAL_MODELS, EVAL_EPOCHS = 20_000, 20, 1000  # the paper's protocol
GPU_TFLOPS = 100.0  # assumed sustained rate, see the docstring
SHAPES = {"mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100),
          "tinyimagenet": ((3, 64, 64), 200)}


def arithmetic(cell) -> dict:
    from hf_lodc.engine.condenser import resolve_config
    from hf_lodc.engine.config import RunConfig
    from hf_lodc.engine.flops import dm_iteration_flops, eval_epoch_flops
    from hf_lodc.engine.speed import convnet_shape

    raw = yaml.safe_load((ROOT / "recipes" / "configs" / cell.config).read_text())
    cfg = RunConfig.from_flat({k: v for k, v in raw.items() if k != "output_dir"})
    shape, k = SHAPES[cell.dataset]
    spec, resolved, budget = resolve_config(cfg.condense, shape, k)
    depth, width = convnet_shape(resolved.matching_model, shape)
    per_class = budget.images_per_class
    it = dm_iteration_flops(shape, k, cfg.condense.batch_real, per_class, width, depth).total / 1e9
    ep = eval_epoch_flops(shape, k * per_class, k, width, depth).total / 1e9
    return {"cell": cell.name, "images_per_class": per_class, "gflop_per_iteration": round(it, 1),
            "gflop_per_eval_epoch": round(ep, 2), "condense_pflop": round(it * ITERATIONS / 1e6, 2),
            "eval_pflop": round(ep * EVAL_MODELS * EVAL_EPOCHS / 1e6, 3), "paper_mean": cell.paper_mean}


def _short(hardware: str) -> str:
    """"AMD EPYC (AVX512-BF16, no AMX), 2 cores, ..., 2 threads, ..." -> "AMD EPYC (AVX512-BF16, no AMX)"."""
    return hardware.split(", ")[0] if "(" not in hardware.split(", ")[0] or ")" in hardware.split(", ")[0] \
        else hardware.split("), ")[0] + ")"


def _path(row: dict) -> str:
    """The numeric path of a cpu_protocol row: its recorded path, or the fast flag."""
    if row.get("path"):
        return row["path"].split(";")[0].replace("condense ", "")
    return "bf16 + channels_last + compile" if row.get("fast") else "fp32"


def measured_rates() -> dict[str, dict]:
    """cell -> {gflops, s_per_it, source} from the CPU measurements in benchmarks/results/."""
    out: dict[str, dict] = {}
    proto = HERE / "results" / "cpu_protocol.json"
    if proto.is_file():
        for r in json.loads(proto.read_text()).get("rows", []):
            if r.get("seconds_per_iteration"):
                out.setdefault(r["cell"], {"s_per_it": r["seconds_per_iteration"], "hardware": r["hardware"],
                                           "source": f"{r['cell']}, {r['iterations']} iterations, "
                                                     f"{_short(r['hardware'])}, {_path(r)}"})
    side = HERE / "results" / "reference_side_by_side.json"
    if side.is_file():
        record = json.loads(side.read_text())
        sp = record.get("speed")
        if sp and sp["hf_lodc"].get("seconds_per_iteration"):
            hardware = (sp.get("measured") or record)["hardware"]  # older records kept it at the top
            precision = "" if "bf16" in sp["flags"] else "fp32 "  # the flags name bf16 when it ran
            out.setdefault(f"cifar10-lodm-ipc{sp['ipc']}", {
                "s_per_it": sp["hf_lodc"]["seconds_per_iteration"], "hardware": hardware,
                "source": f"cifar10-lodm-ipc{sp['ipc']}, side-by-side speed row, {_short(hardware)}, "
                          f"{precision}{' '.join(sp['flags'])}"})
    return out


def rows() -> list[dict]:
    cells = [c for c in CELLS if "-lodm-" in c.name and c.dataset in SHAPES]
    ar = {c.name: arithmetic(c) for c in cells}
    rates = measured_rates()
    for name, m in rates.items():
        if name in ar:
            m["gflops"] = ar[name]["gflop_per_iteration"] / m["s_per_it"]
    out = []
    for c in cells:
        a = dict(ar[c.name])
        m = rates.get(c.name)
        if m is None:  # the rate of a measured cell of the same image size
            same = [n for n in rates if n in ar and SHAPES[next(x for x in cells if x.name == n).dataset][0]
                    == SHAPES[c.dataset][0]]
            if same:
                m = {**rates[same[0]], "source": f"rate of {rates[same[0]]['source']}",
                     "s_per_it": None}
        if m and m.get("gflops"):
            a["cpu_gflops"] = round(m["gflops"], 1)
            a["cpu_s_per_it_measured"] = m.get("s_per_it")
            a["cpu_rate_source"] = m["source"]
            a["cpu_hardware"] = m["hardware"]
            a["cpu_condense_hours"] = round(a["gflop_per_iteration"] * ITERATIONS / m["gflops"] / 3600, 1)
        a["gpu_condense_min"] = round(a["condense_pflop"] * 1e6 / (GPU_TFLOPS * 1e3) / 60, 2)
        a["gpu_eval_min"] = round(a["eval_pflop"] * 1e6 / (GPU_TFLOPS * 1e3) / 60, 2)
        out.append(a)
    return out


def render(rs: list[dict]) -> list[str]:
    lines = [
        f"Arithmetic of each Table-1 LoDM cell at the paper's protocol ({ITERATIONS:,} iterations, batch_real as in "
        f"the YAML; {EVAL_MODELS} ConvNets × {EVAL_EPOCHS} epochs), from `hf_lodc/engine/flops.py`, by "
        "`benchmarks/cell_costs.py`. CPU hours: the cell's GFLOP at the rate measured on the named run "
        "(one or two threads of a 2-core machine); GPU minutes: the arithmetic at an assumed sustained "
        f"{GPU_TFLOPS:.0f} TFLOP/s, a lower bound without per-iteration overheads (not a measurement).",
        "",
        "| cell | stored images/class | GFLOP / iteration | GFLOP / eval epoch | condense PFLOP | eval PFLOP | "
        "CPU s/it measured | CPU GFLOP/s (source) | CPU h, 20 000 it | GPU min condense + eval (assumed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rs:
        rate = f"{r['cpu_gflops']} ({r['cpu_rate_source']})" if r.get("cpu_gflops") else "–"
        lines.append(
            f"| {r['cell']} | {r['images_per_class']} | {r['gflop_per_iteration']} | {r['gflop_per_eval_epoch']} | "
            f"{r['condense_pflop']} | {r['eval_pflop']} | {r.get('cpu_s_per_it_measured') or '–'} | {rate} | "
            f"{r.get('cpu_condense_hours', '–')} | {r['gpu_condense_min']} + {r['gpu_eval_min']} |")
    hw = sorted({r["cpu_hardware"] for r in rs if r.get("cpu_hardware")})
    if hw:
        lines += ["", "CPU rates measured on: " + "; ".join(hw) + "."]
    return lines


def main() -> int:
    rs = rows()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps({"assumed_gpu_tflops": GPU_TFLOPS, "rows": rs}, indent=2) + "\n")
    OUT.with_suffix(".md").write_text("\n".join(render(rs)) + "\n")
    print("\n".join(render(rs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
