#!/usr/bin/env python
"""LoDM beside the authors' code, on one machine, in one run: accuracy and seconds per iteration.

    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/reference_side_by_side.py \\
        --reference https://github.com/EnnengYang/An-Efficient-Dataset-Condensation-Plugin \\
        --iterations 200 --eval-runs 2 --eval-epochs 1000 --speed-ipc 10 --speed-iterations 30

What runs, in this order, each as a child process with the same thread count:

1. The reference (``main_LoDM.py`` of EnnengYang/An-Efficient-Dataset-Condensation-Plugin), cloned into a
   temporary folder at measurement time and run unmodified but for the command line: ``--Iteration N
   --num_exp 1 --num_eval 0`` (its own evaluation only runs at multiples of 2 000 iterations, so it
   is not used; its saved ``res_DM_CIFAR10_ConvNet_8ipc.pt`` is evaluated below) and ``--data_path``, a
   temporary folder holding CIFAR-10 in torchvision's pickle layout, written from the Hub dataset
   (same pixels, other bytes: a ``sitecustomize.py`` there turns off torchvision's md5 check of the
   original files; nothing else is patched). It seeds nothing, so its result is one draw.
2. hf_lodc's recipe of the same cell (``recipes/configs/cifar10-lodm-ipc1.yaml``) with ``--init noise``
   (the reference's init) and the same iterations, default (``auto``) speed.
3. Both sets evaluated by one evaluator (``recipes/evaluate.py``: ConvNet-3 from scratch, DSA, lr 0.01,
   batch 256, the given runs x epochs, the same seeds, the full CIFAR-10 test split); the reference's
   set in its own normalisation (the DC code's constants), hf_lodc's in its own.
4. Speed only, at ``--speed-ipc`` (IPC 10: the issue's 427-GFLOP cell): each side for a few iterations;
   the reference's s/iteration from its log's timestamps (iterations 10 .. N, one-second resolution),
   hf_lodc's from its steady-state timer (results.json ``condensation.steady_seconds_per_iteration``:
   iterations after the first two, so one-off compile time is excluded from both), on the options
   ``auto`` picks for the paper's 20 000 iterations. Each side runs ``--speed-rounds`` times in the order
   reference, hf_lodc, hf_lodc, reference (A B B A), and the means are compared: on a shared machine the
   speed drifts by several percent within minutes, and that order lets the drift weigh on both alike.

Writes ``benchmarks/results/reference_side_by_side.{json,md}``. Nothing of the reference is kept: the
temporary folder is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "gpu"))

from _machine import machine, machine_line  # noqa: E402
from cells import CELLS  # noqa: E402

OUT = HERE / "results" / "reference_side_by_side"
REFERENCE = "https://github.com/EnnengYang/An-Efficient-Dataset-Condensation-Plugin"
RANK = 2  # the paper's CIFAR-10 rank; the reference's default

# torchvision checks the md5 of the original cifar-10-python.tar.gz members; ours are rewritten from the
# Hub parquet (same pixels, other pickle bytes), so only that check is turned off, for the reference only
SHIM = '''import torchvision.datasets.cifar as _cifar
_cifar.check_integrity = lambda *a, **k: True
_cifar.CIFAR10._check_integrity = lambda self: True
'''
_ITER_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] iter = (\d+), loss = ([0-9.einf+-]+)")


def write_torchvision_cifar10(root: Path) -> None:
    """CIFAR-10 from the (local) Hub in torchvision's ``cifar-10-batches-py`` layout: 5 train batches of
    10 000 images, one test batch, the class names; rows as (N, 3072) uint8 R, G, B planes."""
    from hf_lodc.data.hub import load_image_classification

    data = load_image_classification("uoft-cs/cifar10")
    out = root / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)

    def dump(name: str, split) -> None:
        images = split.images.reshape(len(split), -1).numpy()  # (N, 3*32*32) uint8, channel planes
        with open(out / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": images, "labels": split.labels.tolist(),
                         "filenames": [f"{i}.png" for i in range(len(split))]}, f)

    n = len(data.train)
    for b in range(5):
        lo, hi = b * n // 5, (b + 1) * n // 5
        dump(f"data_batch_{b + 1}", type(data.train)(data.train.images[lo:hi], data.train.labels[lo:hi]))
    dump("test_batch", data.test)
    with open(out / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(data.info.class_names), "num_cases_per_batch": n // 5}, f)


def clone(reference: str, into: Path) -> str:
    subprocess.run(["git", "clone", "--quiet", reference, str(into)], check=True)
    return subprocess.run(["git", "-C", str(into), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def env_for(threads: int, extra_path: list[str] | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(extra_path + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


LOADS: list[dict] = []  # the machine's load average around each child (a shared machine: see it)


def run_logged(cmd: list[str], cwd: Path, env: dict, log: Path) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    before = os.getloadavg()[0]
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    LOADS.append({"child": " ".join(cmd[1:3]), "load_1min_before": before, "load_5min_after": os.getloadavg()[1]})
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"{cmd[1]} failed (exit {proc.returncode}); the end of {log}:\n{tail}")
    return wall


def reference_seconds_per_iteration(log_text: str) -> tuple[float | None, float | None]:
    """s/iteration from the reference's ``[time] iter = 00010, loss = ...`` lines (iteration 10 to the
    last logged one, so data loading and the first iterations are left out), and its last loss."""
    points = [(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"), int(m.group(2)), float(m.group(3)))
              for m in map(_ITER_LINE.match, log_text.splitlines()) if m]
    points = [p for p in points if p[1] >= 10]
    if len(points) < 2:
        return None, None
    (t0, i0, _), (t1, i1, loss) = points[0], points[-1]
    return (t1 - t0).total_seconds() / (i1 - i0), loss


def run_reference(repo: Path, data: Path, save: Path, ipc: int, iterations: int, threads: int,
                  site: list[str], log: Path) -> dict:
    cmd = [sys.executable, "main_LoDM.py", "--dataset", "CIFAR10", "--model", "ConvNet", "--ipc", str(ipc),
           "--rank", str(RANK), "--Iteration", str(iterations), "--num_exp", "1", "--num_eval", "0",
           "--data_path", str(data), "--save_path", str(save) + "/"]
    wall = run_logged(cmd, repo, env_for(threads, site), log)
    s_it, loss = reference_seconds_per_iteration(log.read_text(errors="replace"))
    found = sorted(save.rglob("res_DM_CIFAR10_ConvNet_*ipc.pt"))
    return {"command": " ".join(["python", *cmd[1:]]).replace(str(save.parent), "$TMP"), "wall_s": round(wall, 1),
            "seconds_per_iteration":
            None if s_it is None else round(s_it, 3), "final_loss": loss,
            "set": str(found[-1]) if found else None}


def run_hf_lodc(cell_yaml: str, iterations: int, threads: int, out: Path, log: Path, flags: list[str]) -> dict:
    cmd = [sys.executable, "recipes/condense.py", "--config", f"recipes/configs/{cell_yaml}", "--init", "noise",
           "--iterations", str(iterations), "--eval-runs", "0", *flags, "--output-dir", str(out), "--cpu"]
    wall = run_logged(cmd, ROOT, env_for(threads, [str(ROOT)]), log)
    results = json.loads((out / "results.json").read_text())
    cond = results["condensation"]
    return {"command": " ".join(["python", *cmd[1:]]).replace(str(out), "runs/side-by-side"), "wall_s": round(wall, 1),
            "seconds_per_iteration": cond.get("steady_seconds_per_iteration"),
            "seconds_per_iteration_incl_warmup": round(1 / cond["iterations_per_s"], 3) if cond.get("iterations_per_s")
            else None, "final_loss": cond.get("final_loss"), "speed": results.get("speed"), "set": str(out)}


def evaluate(source: str, extra: list[str], runs: int, epochs: int, threads: int, out_json: Path, log: Path) -> dict:
    cmd = [sys.executable, "recipes/evaluate.py", source, "--models", "convnet", "--runs", str(runs), "--epochs",
           str(epochs), *extra, "--output", str(out_json), "--cpu"]
    wall = run_logged(cmd, ROOT, env_for(threads, [str(ROOT)]), log)
    found = json.loads(out_json.read_text())
    return {"record": _convnet_record(found), "wall_s": round(wall, 1)}


def _convnet_record(found) -> dict | None:
    """The ConvNet accuracy record (mean, std, runs, epochs) in evaluate.py's --output JSON."""
    if isinstance(found, dict):
        if {"accuracy_mean", "accuracy_std"} <= set(found) and "convnet" in str(found.get("model", "convnet")):
            return {k: found[k] for k in ("accuracy_mean", "accuracy_std", "runs", "epochs") if k in found}
        for v in found.values():
            rec = _convnet_record(v)
            if rec:
                return rec
    if isinstance(found, list):
        for v in found:
            rec = _convnet_record(v)
            if rec:
                return rec
    return None


def auto_flags_for_full_run(cell_yaml: str) -> list[str]:
    """The condensation options ``speed: auto`` picks on this machine for the cell's own (20 000-iteration)
    run, as flags: a 30-iteration timing run would otherwise be planned eager (too little work to
    repay a compile), which is not what a user's run gets."""
    from hf_lodc.engine.config import RunConfig
    from hf_lodc.pipeline import choose_speed, load_data

    import yaml
    cfg = RunConfig.from_dict({**yaml.safe_load((ROOT / "recipes" / "configs" / cell_yaml).read_text()),
                               "init": "noise", "eval_runs": 0, "speed": "auto"})
    _, plan = choose_speed(cfg, load_data(cfg.data))
    flags = []
    for name, value in plan.options().items():  # the recipe's flags: --name [value], --name / --no-name
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + name.replace("_", "-"))
        elif value not in (None, "no"):
            flags += [flag, str(value)]
    return flags


def measured(part: dict) -> str:
    m = part["measured"]
    return f"Measured on {m['hardware']}, {m['threads']} thread(s) per process, {m['date']}."


def render(r: dict) -> list[str]:
    def acc(e):
        rec = e and e.get("record")
        return "–" if not rec else f"{rec['accuracy_mean']:.2f} ± {rec['accuracy_std']:.2f}"

    def s(v):
        return "–" if v is None else f"{v:.2f}"

    def per_class(loss):  # hf_lodc's loss is the sum over the 10 classes, the reference logs the mean
        return "–" if loss is None else round(loss / 10, 4)

    a, sp = r.get("accuracy"), r.get("speed")
    cell = next(c for c in CELLS if c.name == "cifar10-lodm-ipc1")
    lines = [
        f"LoDM on CIFAR-10, rank {RANK}, batch_real 256, DSA, `init noise` on both sides; the reference is "
        f"[EnnengYang/An-Efficient-Dataset-Condensation-Plugin]({REFERENCE}) `main_LoDM.py` at commit "
        f"`{r['reference_commit'][:10]}`, run unmodified but for its command line (iterations, data folder, no "
        "own evaluation). Measured by `benchmarks/reference_side_by_side.py`, one process of the two at a time; "
        "each part says where and when.",
    ]
    if a:
        lines += [
            "",
            f"### Accuracy at IPC 1 after {a['iterations']} iterations (paper: 20 000)",
            "",
            "Both sets evaluated by the same evaluator (`recipes/evaluate.py`): ConvNet-3 trained from scratch with "
            f"DSA, {a['eval_runs']} runs × {a['eval_epochs']} epochs, the same seeds, full CIFAR-10 test split (10 000). "
            f"Paper Table 1 at 20 000 iterations: {cell.paper_mean} ± {cell.paper_std} %. {measured(a)}",
            "",
            "| implementation | accuracy % | s/iteration (steady) | condensation wall s | final loss per class |",
            "|---|---|---|---|---|",
            f"| reference `main_LoDM.py` | {acc(a['reference_eval'])} | {s(a['reference']['seconds_per_iteration'])} | "
            f"{a['reference']['wall_s']} | {a['reference']['final_loss']} |",
            f"| hf_lodc (`speed: auto`) | {acc(a['hf_lodc_eval'])} | {s(a['hf_lodc']['seconds_per_iteration'])} | "
            f"{a['hf_lodc']['wall_s']} | {per_class(a['hf_lodc']['final_loss'])} |",
        ]
    if sp:
        ratio = (sp["reference"]["seconds_per_iteration"] / sp["hf_lodc"]["seconds_per_iteration"]
                 if sp["reference"]["seconds_per_iteration"] and sp["hf_lodc"]["seconds_per_iteration"] else None)
        lines += [
            "",
            f"### Speed at IPC {sp['ipc']} ({sp['iterations']} iterations each)",
            "",
            measured(sp),
            "",
            "| implementation | s/iteration (steady) | options |",
            "|---|---|---|",
            f"| reference `main_LoDM.py` | {s(sp['reference']['seconds_per_iteration'])} | its own (float32, eager, "
            "one embedding pass per class) |",
            f"| hf_lodc | {s(sp['hf_lodc']['seconds_per_iteration'])} | `{' '.join(sp['flags']) or 'exact'}` "
            "(what `auto` picks for the 20 000-iteration run here) |",
            "",
            f"hf_lodc / reference speed-up: **{ratio:.2f}×**." if ratio else "",
        ]
        if len(sp.get("rounds") or []) > 1:
            lines += ["", f"Each side ran {len(sp['rounds'])} times, in the order {sp['order']} ("
                      "A = reference, B = hf_lodc); s/iteration per round, reference / hf_lodc: "
                      + "; ".join(f"{x['reference']} / {x['hf_lodc']}" for x in sp["rounds"]) + ". The table shows "
                      "the means."]
    for name, part in (("accuracy", a), ("speed", sp)):
        if part and part.get("loads"):
            lines += ["", f"Machine load during the {name} part (1-minute load average before each child; 2 cores): "
                      + ", ".join(f"{x['child'].split()[0]} {x['load_1min_before']:.1f}" for x in part["loads"]) + "."]
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in r["commands"]) + "."]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default=REFERENCE, help="git URL or local clone of the authors' repository")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--eval-runs", type=int, default=2)
    p.add_argument("--eval-epochs", type=int, default=1000)
    p.add_argument("--speed-ipc", type=int, default=10, help="IPC of the speed-only rows (0: none)")
    p.add_argument("--speed-iterations", type=int, default=30)
    p.add_argument("--speed-rounds", type=int, default=2,
                   help="runs of each side in the speed part, in the order A B B A (the means are reported)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--parts", type=lambda v: v.split(","), default=["accuracy", "speed"],
                   help="accuracy, speed or both; a part run alone replaces only its own entry in the JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args(argv)
    if args.render_only:
        r = json.loads(OUT.with_suffix(".json").read_text())
        OUT.with_suffix(".md").write_text("\n".join(render(r)) + "\n")
        return 0

    import torch

    torch.set_num_threads(args.threads)  # so the recorded machine line states the children's thread count
    tmp = Path(tempfile.mkdtemp(prefix="lodm-side-by-side-"))
    print(f"[side-by-side] working in {tmp}", flush=True)
    try:
        repo = tmp / "reference"
        commit = clone(args.reference, repo)
        (tmp / "shim").mkdir()
        (tmp / "shim" / "sitecustomize.py").write_text(SHIM)
        site = [str(tmp / "shim")] + [x for x in os.environ.get("REFERENCE_SITE", "").split(os.pathsep) if x]
        write_torchvision_cifar10(tmp / "data")
        old = json.loads(OUT.with_suffix(".json").read_text()) if OUT.with_suffix(".json").is_file() else {}
        for part in ("accuracy", "speed"):  # a part kept from an earlier run keeps where and when it ran
            if old.get(part) and "measured" not in old[part]:
                old[part]["measured"] = {k: old.get(k) for k in ("date", "hardware", "threads")}
        result = {**old, "reference": args.reference, "reference_commit": commit}
        here = {"date": time.strftime("%Y-%m-%d"), "hardware": machine_line(), "threads": args.threads,
                "machine": machine()}
        if "accuracy" in args.parts:
            result["accuracy"] = {**accuracy_part(args, repo, tmp, site), "measured": here}
        if "speed" in args.parts and args.speed_ipc:
            result["speed"] = {**speed_part(args, repo, tmp, site), "measured": here}
        for k in ("date", "hardware", "threads", "machine"):  # now per part
            result.pop(k, None)
        result["commands"] = [c for part in ("accuracy", "speed") if result.get(part)
                              for c in (result[part]["reference"]["command"], result[part]["hf_lodc"]["command"])]
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        OUT.with_suffix(".md").write_text("\n".join(render(result)) + "\n")
        print("\n".join(render(result)))
    finally:
        if args.keep:
            print(f"[side-by-side] kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def accuracy_part(args, repo: Path, tmp: Path, site: list[str]) -> dict:
    LOADS.clear()
    ref = run_reference(repo, tmp / "data", tmp / "ref-out", 1, args.iterations, args.threads, site,
                        tmp / "reference-ipc1.log")
    ours = run_hf_lodc("cifar10-lodm-ipc1.yaml", args.iterations, args.threads, tmp / "hf-ipc1",
                       tmp / "hf-ipc1.log", [])
    if ref["set"] is None:
        raise SystemExit(f"the reference wrote no res_*.pt under {tmp / 'ref-out'}")
    ref_eval = evaluate(ref["set"], ["--test-dataset", "uoft-cs/cifar10", "--input-normalization", "dc-cifar10",
                                     "--no-baseline"],
                        args.eval_runs, args.eval_epochs, args.threads, tmp / "ref-eval.json", tmp / "ref-eval.log")
    # float32 against float32: the reference's set is a float tensor, so hf_lodc's uint8 PNG view is left out
    hf_eval = evaluate(ours["set"], ["--no-uint8"], args.eval_runs, args.eval_epochs, args.threads,
                       tmp / "hf-eval.json", tmp / "hf-eval.log")
    for r in (ref, ours):
        r["set"] = Path(r["set"]).name
    return {"iterations": args.iterations, "eval_runs": args.eval_runs, "eval_epochs": args.eval_epochs,
            "reference": ref, "hf_lodc": ours, "reference_eval": ref_eval, "hf_lodc_eval": hf_eval,
            "loads": list(LOADS)}


def speed_part(args, repo: Path, tmp: Path, site: list[str]) -> dict:
    """Each side ``--speed-rounds`` times, in the order A B B A (A B B A A B ... for more rounds), so a machine
    that drifts during the part (a shared host does, by several percent in minutes) weighs on both sides
    alike; the table's figures are the means over the rounds, the rounds themselves are kept."""
    LOADS.clear()
    yaml_name = f"cifar10-lodm-ipc{args.speed_ipc}.yaml"
    flags = auto_flags_for_full_run(yaml_name)
    rounds: list[dict] = [{} for _ in range(args.speed_rounds)]
    order = speed_order(args.speed_rounds)
    for r, side in order:
        if side == "reference":
            rounds[r][side] = run_reference(repo, tmp / "data", tmp / f"ref-speed-{r}", args.speed_ipc,
                                            args.speed_iterations, args.threads, site, tmp / f"reference-speed-{r}.log")
        else:
            rounds[r][side] = run_hf_lodc(yaml_name, args.speed_iterations, args.threads, tmp / f"hf-speed-{r}",
                                          tmp / f"hf-speed-{r}.log", flags)
    mean = {side: _mean_run([rd[side] for rd in rounds]) for side in ("reference", "hf_lodc")}
    return {"ipc": args.speed_ipc, "iterations": args.speed_iterations, "flags": flags, **mean,
            "rounds": [{side: rd[side]["seconds_per_iteration"] for side in ("reference", "hf_lodc")}
                       for rd in rounds], "order": " ".join("A" if side == "reference" else "B" for _, side in order),
            "loads": list(LOADS)}


def speed_order(rounds: int) -> list[tuple[int, str]]:
    """(round, side) in the order the speed part runs them: reference, hf_lodc, hf_lodc, reference, ..."""
    return [(slot // 2, ("reference", "hf_lodc")[(slot % 2) ^ ((slot // 2) % 2)]) for slot in range(2 * rounds)]


def _mean_run(runs: list[dict]) -> dict:
    """The first run's record with the mean seconds per iteration over ``runs`` (None if any is missing)."""
    vals = [x["seconds_per_iteration"] for x in runs]
    return {**runs[0], "seconds_per_iteration": None if None in vals else round(sum(vals) / len(vals), 4)}


if __name__ == "__main__":
    raise SystemExit(main())
