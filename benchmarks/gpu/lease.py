#!/usr/bin/env python3
"""One GPU lease, one command: speed figures, then full-protocol Table-1 cells until the time is up.

Everything it needs travels in ``.lease/`` (git-ignored), built on a networked machine by
``python benchmarks/gpu/pack.py``. Lease shapes (device-tool ``run`` calls; each call's carry, the
working tree included, must stay under 64 MiB):

  MNIST (one call, ~22 MiB):
    carry:   [".lease/whl", ".lease/mnist", ".lease/state.tar.gz"]
    command: python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade
             --target /tmp/site .lease/whl/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 &&
             python3 benchmarks/gpu/lease.py --budget-s 530 --out $OUT
    timeout_s: 600

  CIFAR-10 (two calls, the second within 30 s of the first, while the machine is warm):
    1) carry: [".lease/cifar10-1"]
       command: python3 benchmarks/gpu/lease.py --unpack-only            timeout_s: 120
    2) carry: [".lease/whl", ".lease/cifar10-2", ".lease/state.tar.gz"]
       command: (the MNIST command above)                                 timeout_s: 600
  CIFAR-100: as CIFAR-10 with .lease/cifar100-1 and .lease/cifar100-2.

  (leave ".lease/state.tar.gz" out of carry when the file does not exist: before the first lease.)

What comes back in $OUT (at most 8 files): ``lease-<UTC time>.json`` (hardware, torch/CUDA, every
command, speed rows, cell results), ``lease.log`` (everything the children printed) and
``state.tar.gz`` (checkpoints of a cut cell and condensed sets awaiting evaluation, which the next
lease resumes). On this machine: ``python benchmarks/gpu/collect.py <files_at folder>`` merges the
JSON into benchmarks/results/gpu_*.json/.md, refreshes docs/results.md, and puts state.tar.gz back into
``.lease/`` for the next lease.

The runner never starts work that cannot end inside ``--budget-s``: speed first (a fixed, small
share), then the cells in priority order (benchmarks/gpu/cells.py). A cell runs as two child
processes, condense (``recipes/condense.py --config <yaml>``, its own evaluation cut to 1 model x 1
epoch) and evaluate
(``recipes/evaluate.py <run> --runs/--epochs/--models`` of the same YAML); a child still running at
the deadline gets SIGTERM, and the condensation saves a checkpoint that the next lease resumes
(``--resume``). ``--smoke`` runs the same code on a CPU with tiny sizes (minutes -> seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from cells import DATASETS, queue  # noqa: E402

LEASE = ROOT / ".lease"
HUB = LEASE / "hub"
RUNS = LEASE / "runs"

SMOKE_OVERRIDES = ["--iterations", "3", "--batch-real", "4", "--max-per-class", "12", "--log-every", "1"]
SMOKE_EVAL = ["--runs", "1", "--epochs", "2", "--eval-max-per-class", "5"]


# ------------------------------------------------------------------------------------- set-up
def unpack() -> list[str]:
    """Merge every carried data part (``.lease/<part>/datasets/...``) into ``.lease/hub``."""
    merged = []
    for part in sorted(LEASE.glob("*/datasets")):
        if part.parent.name in ("hub", "runs"):
            continue
        for f in part.rglob("*"):
            if f.is_file():
                dst = HUB / f.relative_to(part.parent)
                if not dst.exists() or dst.stat().st_size != f.stat().st_size:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, dst)
        merged.append(part.parent.name)
    return merged


def restore_state(path: Path) -> list[str]:
    if not path.is_file():
        return []
    RUNS.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path) as tar:
        tar.extractall(RUNS, filter="data")
    return sorted(p.name for p in RUNS.iterdir() if p.is_dir())


def save_state(out: Path) -> None:
    """Pack every unfinished run (checkpoints, or a condensed set awaiting evaluation) into one file."""
    keep = [p for p in sorted(RUNS.glob("*")) if p.is_dir() and not (p / "lease-done.json").exists()]
    if not keep:
        return
    with tarfile.open(out / "state.tar.gz", "w:gz") as tar:
        for p in keep:
            tar.add(p, arcname=p.name, filter=lambda ti: None if "/logs" in ti.name else ti)


def hardware() -> dict:
    import torch

    hw = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
          "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
          "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "host": platform.node()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        hw.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
        try:
            hw["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                          capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    for mod in ("datasets", "accelerate", "timm", "huggingface_hub", "pyarrow"):
        try:
            hw[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001  (recorded, the run decides later whether it matters)
            hw[mod] = f"unavailable: {type(e).__name__}: {e}"
    return hw


class Clock:
    def __init__(self, budget_s: float):
        self.t0, self.budget = time.monotonic(), budget_s

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.t0)


def _run(cmd: list[str], log, deadline_s: float, env: dict) -> tuple[int, float, str]:
    """Run a child until it ends or ``deadline_s`` passes (then SIGTERM, 60 s grace, SIGKILL)."""
    log(f"$ {' '.join(cmd)}  (deadline {deadline_s:.0f} s)")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    import threading

    def pump():
        for line in proc.stdout:
            log(line.rstrip("\n"), echo=False)
            tail.append(line)
            del tail[:-40]

    th = threading.Thread(target=pump, daemon=True)
    th.start()
    try:
        proc.wait(timeout=max(deadline_s, 1))
    except subprocess.TimeoutExpired:
        log(f"deadline: SIGTERM to {proc.pid}")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    th.join(timeout=5)
    return proc.returncode, time.monotonic() - t0, "".join(tail[-15:])


def prepare(args, log, clock: Clock, env: dict) -> dict:
    """Decode every carried dataset once into hf_lodc's disk cache, so no timed child decodes."""
    took = {}
    for key, hub_id in DATASETS.items():
        if not (HUB / "datasets" / hub_id).is_dir():
            continue
        code = ("import sys; from hf_lodc.engine.config import DataConfig; from hf_lodc.pipeline import load_data; "
                "load_data(DataConfig(dataset=sys.argv[1], max_per_class=sys.argv[2] != 'full' and int(sys.argv[2]) or None))")
        rc, wall, tail = _run([sys.executable, "-c", code, hub_id, "12" if args.smoke else "full"], log,
                              min(300, clock.left() - args.reserve_s), env)
        took[key] = {"exit": rc, "seconds": round(wall, 1)}
    return took


# ------------------------------------------------------------------------------------- speed
def speed(args, log, clock: Clock, env: dict) -> list[dict]:
    """One child per precision (an Accelerator's precision is fixed per process)."""
    rows = []
    have = [k for k in ("mnist", "cifar10") if (HUB / "datasets" / DATASETS[k]).is_dir()]
    if not have:
        log("speed: no MNIST/CIFAR-10 data carried, skipped")
        return rows
    for precision in args.precisions:
        if clock.left() < args.speed_s_each + args.reserve_s:
            log(f"speed: {clock.left():.0f} s left, skipping {precision}")
            break
        tmp = LEASE / f"speed-{precision}.json"
        cmd = [sys.executable, str(HERE / "speed.py"), "--precision", precision, "--datasets", ",".join(have),
               "--out", str(tmp), "--iterations", str(args.speed_iterations)] + (["--smoke"] if args.smoke else [])
        rc, wall, tail = _run(cmd, log, min(args.speed_s_each * 2, clock.left() - args.reserve_s), env)
        if rc == 0 and tmp.is_file():
            got = json.loads(tmp.read_text())
            rows.extend(got)
        else:
            rows.append({"precision": precision, "error": f"exit {rc}", "tail": tail[-2000:]})
    return rows


# ------------------------------------------------------------------------------------- cells
def _yaml(cell) -> dict:
    import yaml

    return yaml.safe_load((ROOT / "recipes" / "configs" / cell.config).read_text())


def run_cell(cell, args, log, clock: Clock, env: dict) -> dict:
    rec = {"cell": cell.name, "config": f"recipes/configs/{cell.config}", "overrides": list(cell.overrides),
           "paper_mean": cell.paper_mean, "paper_std": cell.paper_std, "status": "started"}
    y = _yaml(cell)
    if cell.needs == "experts" and not (ROOT / str(y.get("expert_dir", ""))).is_dir():
        return {**rec, "status": "skipped", "reason": f"needs expert trajectories in {y.get('expert_dir')!r} "
                                                      "(recipes/experts.py), not carried"}
    if not (HUB / "datasets" / DATASETS[cell.dataset]).is_dir():
        return {**rec, "status": "skipped", "reason": f"dataset {DATASETS[cell.dataset]} not carried"}
    run = RUNS / cell.name
    smoke = SMOKE_OVERRIDES if args.smoke else []
    condensed = (run / "results.json").is_file()
    if not condensed:
        resume = (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir())
        cmd = [sys.executable, "recipes/condense.py", "--config", f"recipes/configs/{cell.config}",
               # the protocol's evaluation runs in its own child below (so a cut there keeps the condensed
               # set); eval_runs must be >= 1 here, so the recipe's own check is one model x 1 epoch
               *cell.overrides, "--output-dir", str(run), "--eval-runs", "1", "--eval-epochs", "1",
               "--checkpoint-every", str(args.checkpoint_every), *smoke] + (["--resume"] if resume else [])
        if args.cpu:
            cmd.insert(2, "--cpu")
        rc, wall, tail = _run(cmd, log, clock.left() - args.reserve_s, env)
        rec.update(condense_command=" ".join(cmd[1:]), condense_exit=rc, condense_wall_s=round(wall, 1),
                   resumed=resume)
        if rc != 0 or not (run / "results.json").is_file():
            cut = rc in (130, -signal.SIGTERM, -signal.SIGKILL)
            return {**rec, "status": "cut in condensation (checkpoint kept)" if cut else "failed",
                    "tail": tail[-2000:]}
        res = json.loads((run / "results.json").read_text())
        c = res.get("condensation", {})
        rec.update(iterations_per_s=c.get("iterations_per_s"), condense_time_s=c.get("wall_time_s"))
    else:
        rec["condensed_in_earlier_lease"] = True
    if clock.left() < args.min_eval_s:
        return {**rec, "status": "condensed, evaluation left for the next lease"}
    models = y.get("eval_models", ["convnet"])
    ev = [sys.executable, "recipes/evaluate.py", str(run), "--models", ",".join(models),
          "--runs", str(y.get("eval_runs", 5)), "--epochs", str(y.get("eval_epochs", 1000)), "--no-uint8",
          "--output", str(run / "lease-eval.json")]
    if args.smoke:
        ev = ev[:3] + ["--models", ",".join(models)] + SMOKE_EVAL + ["--no-uint8", "--output", str(run / "lease-eval.json")]
    if args.cpu:
        ev.insert(2, "--cpu")
    rc, wall, tail = _run(ev, log, clock.left() - args.reserve_s / 2, env)
    rec.update(eval_command=" ".join(ev[1:]), eval_exit=rc, eval_wall_s=round(wall, 1))
    if rc != 0 or not (run / "lease-eval.json").is_file():
        return {**rec, "status": "condensed, evaluation cut or failed (redone next lease)", "tail": tail[-2000:]}
    got = json.loads((run / "lease-eval.json").read_text())
    rec["evaluations"] = _evaluations(got)
    rec["status"] = "done"
    (run / "lease-done.json").write_text(json.dumps(rec, indent=2))
    return rec


def _evaluations(got: dict) -> dict:
    """{model: {accuracy_mean, accuracy_std, runs, epochs, accuracies}} from evaluate.py's JSON."""
    evals = got.get("evaluations", got)
    out = {}
    for name, r in evals.items():
        if isinstance(r, dict) and "accuracy_mean" in r:
            out[name] = {k: r.get(k) for k in ("accuracy_mean", "accuracy_std", "runs", "epochs", "accuracies",
                                               "backend", "wall_time_s") if k in r}
    return out


# --------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-s", type=float, default=530, help="wall time this command may take (default 530)")
    p.add_argument("--out", default=os.environ.get("OUT", str(LEASE / "out")), help="where results go ($OUT)")
    p.add_argument("--unpack-only", action="store_true", help="first call of a two-part dataset: unpack, exit")
    p.add_argument("--cells", type=lambda s: [c for c in s.split(",") if c], default=None,
                   help="only these cells (default: the whole priority queue)")
    p.add_argument("--no-speed", dest="speed", action="store_false", help="skip the speed part")
    p.add_argument("--precisions", type=lambda s: s.split(","), default=["fp32", "tf32", "bf16", "bf16+cl"],
                   help="speed variants, one child each (fp32 | tf32 | bf16, '+cl' = channels_last, "
                        "'+compile' = torch.compile of LoDM's passes, e.g. tf32+compile)")
    p.add_argument("--speed-iterations", type=int, default=20)
    p.add_argument("--speed-s-each", type=float, default=45, help="time allowed for one precision's speed child")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--reserve-s", type=float, default=40, help="kept free at the end (packing the results)")
    p.add_argument("--min-eval-s", type=float, default=60, help="no evaluation is started with less left")
    p.add_argument("--min-cell-s", type=float, default=90, help="no cell is started with less left")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on a CPU: proves the script works end to end")
    p.add_argument("--cpu", action="store_true", help="run the children on the CPU (implied by --smoke)")
    p.add_argument("--state", default=None, help="state from the last lease to resume (default: <lease-dir>/state.tar.gz)")
    p.add_argument("--lease-dir", default=str(LEASE), help="the folder pack.py filled (default: .lease)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.cpu = args.cpu or args.smoke
    if args.smoke:  # a shared CPU: the tiny speed children may take minutes of wall time
        args.speed_s_each = max(args.speed_s_each, 300)
    global LEASE, HUB, RUNS
    LEASE = Path(args.lease_dir).resolve()
    HUB, RUNS = LEASE / "hub", LEASE / "runs"
    args.state = args.state or str(LEASE / "state.tar.gz")
    clock = Clock(args.budget_s)
    merged = unpack()
    if args.unpack_only:
        print(f"unpacked {merged} into {HUB}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "lease.log", "a")

    def log(msg: str, echo: bool = True) -> None:
        logf.write(msg + "\n")
        logf.flush()
        if echo:
            print(msg, flush=True)

    env = {**os.environ, "HF_LODC_LOCAL_HUB": str(HUB), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TQDM_MININTERVAL": "30"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT)) if p)
    if args.smoke:
        env["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.update({k: env[k] for k in ("HF_LODC_LOCAL_HUB", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")})
    started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    record = {"started_utc": started, "smoke": args.smoke, "budget_s": args.budget_s,
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "unpacked": merged,
              "resumed_runs": restore_state(Path(args.state)), "hardware": hardware(), "speed": [], "cells": []}
    path = out / f"lease-{started}.json"

    def dump():
        record["elapsed_s"] = round(args.budget_s - clock.left(), 1)
        path.write_text(json.dumps(record, indent=2) + "\n")

    dump()
    try:
        record["prepare"] = prepare(args, log, clock, env)  # decode the carried data once (disk cache)
        dump()
        if args.speed:
            record["speed"] = speed(args, log, clock, env)
            dump()
        for cell in queue(args.cells):
            if clock.left() < args.min_cell_s:
                record["cells"].append({"cell": cell.name, "status": "not started: too little time left"})
                continue
            log(f"== {cell.name} ({clock.left():.0f} s left)")
            rec = run_cell(cell, args, log, clock, env)
            log(f"== {cell.name}: {rec['status']}")
            record["cells"].append(rec)
            dump()
    finally:
        save_state(out)
        dump()
        logf.close()
    done = [c for c in record["cells"] if c.get("status") == "done"]
    print(f"lease done in {record['elapsed_s']} s: {len(done)} cells measured -> {path}")
    for c in record["cells"]:
        accs = "; ".join(f"{m} {e['accuracy_mean']:.2f} +- {e['accuracy_std']:.2f}"
                         for m, e in c.get("evaluations", {}).items())
        print(f"  {c['cell']}: {c['status']} {accs}")
    for r in record["speed"]:
        if "seconds_per_iteration" in r:
            print(f"  speed {r['dataset']} ipc{r['ipc']} {r['precision']}: {r['seconds_per_iteration']:.4f} s/it, "
                  f"{r['achieved_tflops']:.2f} TFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
