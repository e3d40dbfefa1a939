#!/usr/bin/env python
"""Cross-architecture table on a CPU budget: sets condensed with ConvNet-3, evaluated on other nets.

Rows: LoDM (rank 2, svd init), DM, random real images, and the low-rank random baseline
(truncated SVD of random real images, no matching), on MNIST and CIFAR-10 at IPC 1 (equal storage:
1 pixel image per class, or 7 / 8 rank-2 factor images). Columns (:data:`MODELS`, labelled by
:data:`LABELS`): the literature's small-image cross-architecture set, registered in timm by hf_lodc:
ConvNet-3 (instance norm), ConvNet-BN, AlexNet-BN, VGG11-BN, ResNet18-BN (CIFAR stem); timm's own
``resnet18`` with its ImageNet stem (7x7 stride-2 conv + max-pool: a 28 px image is 7x7 before the
first block, 1x1 after the last), used as-is at the native size and labelled so; and two
transformers networks built from configs sized for the images (hf_lodc/models/hf_transformers.py):
``hf:vit`` (ViT, patch 4, hidden 192, 6 layers) and ``hf:resnet`` (transformers' ResNet-18 with a
3x3 stride-1 stem).

Evaluation defaults to ``--eval-runs`` 2 x ``--eval-epochs`` 150 on the full real test split
(``--test-images 0``; a positive value tests on a class-stratified subset instead): 1 run x 25 epochs
on 500 test images ranked ResNet18-BN at chance on a set where 2 x 150 gives 84 %. Condensation
stays at a CPU budget far below the paper's (20 000 iterations, 256 real images/class): compare rows
with each other, not with the paper. The full table (2 datasets x 4 methods x 8 architectures)
takes hours on 2 CPU cores: ``--estimate`` measured 13.7 CPU-hours of evaluation at the defaults (an
upper bound: each timed epoch also pays for building the network), i.e. roughly 7-14 h wall on an
idle 2-core machine, plus condensation; the largest columns are ResNet18-BN, transformers ResNet-18
and ViT (the full 10 000-image test pass alone is 50-130 CPU-s per run for them). A smoke test:

    HF_LODC_LOCAL_HUB=../shared/hub nice -n 10 python benchmarks/bench_cross_arch.py
    python benchmarks/bench_cross_arch.py --datasets mnist --methods lodm --iterations 2 --eval-runs 1 \
        --eval-epochs 1 --test-images 100 --out /tmp/cross_arch_smoke

Cells are written to ``benchmarks/results/cross_arch_150.json`` (``--out``) as each architecture finishes (a re-run
with the same settings re-makes the row's condensed set, which is deterministic, and measures only the
architectures still missing, so an interrupted table resumes cell by cell; a run with other ``--models``
or ``--methods`` but the same protocol adds its cells to the same table, so the cells that matter most
can go first; several processes, say one per dataset, may fill one table at once: each cell is merged into
the file under a lock) and rendered to
``cross_arch_150.md``, where cells not measured yet say so (``cross_arch.md``: the old 1 run x 25 epochs on
500 test images table, kept for the record of the contrast fix beside ``cross_arch_contrast_none.md``). ``--eval-compile`` compiles each evaluation
network's forward (about a third less CPU per run; recorded in the settings).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from hf_lodc.continual.report import write_json  # noqa: E402
from _machine import machine  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

DATASETS = {"mnist": "ylecun/mnist", "cifar10": "uoft-cs/cifar10"}
METHODS = ("lodm", "dm", "random", "lorandom")
MODELS = ("convnet", "convnet_bn", "alexnet_bn", "vgg11_bn", "resnet18_bn", "resnet18", "hf:vit", "hf:resnet")
# column headers: what each name is, where the name alone would mislead
LABELS = {
    "resnet18": "resnet18 (timm, ImageNet stem)",
    "hf:vit": "ViT (transformers, patch 4)",
    "hf:resnet": "ResNet-18 (transformers, 3x3 stem)",
}


BN_NOTE = (
    "BatchNorm networks are tested with the running statistics they collected on the synthetic set (the "
    "protocol). The matching objectives are blind to the scale of an image (instance norm), so SGD on them only "
    "grows it: without correction the LoDM MNIST images end with pixel std 3.94 where normalised real images have "
    "1.0, BN running statistics misfit real images and BN networks fall to chance "
    "(`cross_arch_contrast_none.md`, measured before the fix: ConvNet-BN 10.0, AlexNet-BN 10.6 on MNIST LoDM). "
    "Condensation now ends with `contrast: class_std` (each image scaled to its class's real per-image std, a "
    "direction the matching loss cannot see), which is what this table measures; `contrast: none` restores the "
    "old behaviour."
)


def hardware() -> dict:
    return {**machine(), "load_average_at_start": os.getloadavg()}


def stratified_test(test, per_class: int, seed: int = 0):
    """``per_class`` random test images of each class; ``per_class <= 0``: the whole split."""
    from hf_lodc.data.types import LabeledImages

    if per_class <= 0:
        return test
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(test.labels).tolist():
        rows = torch.nonzero(test.labels == c).flatten()
        keep.append(rows[torch.randperm(len(rows), generator=g)[:per_class]])
    keep = torch.cat(keep).sort().values
    return LabeledImages(test.images[keep], test.labels[keep])


def condense_row(data, dataset: str, method: str, args):
    """The row's condensed set (seed ``args.seed``: the same set on every resume) and the row's header."""
    from hf_lodc import pipeline
    from hf_lodc.engine.config import CondenseConfig, DataConfig, RunConfig

    engine = []  # the engine's result: its resolved init and the images' spread for the row's header
    run = RunConfig(data=DataConfig(dataset=DATASETS[dataset]),  # each cell's EvalConfig: evaluate_cell
                    condense=CondenseConfig(method=method, ipc=1, rank=2, iterations=args.iterations,
                                            batch_real=args.batch_real, seed=args.seed))
    t0 = time.perf_counter()
    art = pipeline.condense(data, run, on_result=engine.append)
    res = engine[0]
    head = {
        "dataset": dataset, "method": method, "init": res.config.init, "rank": res.budget.rank,
        "images_per_class": res.budget.images_per_class, "iterations": res.config.iterations,
        "condense_s": round(time.perf_counter() - t0, 1),
        "synthetic_std": round(float(res.images().std()), 3),  # normalised real data: 1.0
        "accuracy": {},
    }
    return art, head


def evaluate_cell(art, test, model: str, args) -> tuple[dict, str]:
    """One architecture on the row's set: its accuracy record and the protocol's words. Each
    (model, run) is seeded by itself, so a cell measured alone equals the cell of a whole row."""
    from hf_lodc import pipeline
    from hf_lodc.engine.config import EvalConfig

    ev = EvalConfig(eval_models=[model], eval_runs=args.eval_runs, eval_epochs=args.eval_epochs,
                    eval_compile=args.eval_compile)
    r = pipeline.evaluate(art, test, ev, views=(pipeline.FLOAT32,), seed=args.seed)[pipeline.FLOAT32][model]
    return ({"mean": round(r.accuracy_mean, 2), "std": round(r.accuracy_std, 2),
             "runs": [round(a, 2) for a in r.accuracies], "wall_s": round(r.wall_time_s, 1)}, r.protocol)


def settings(args) -> dict:
    return {"ipc": 1, "rank": 2, "iterations": args.iterations, "batch_real": args.batch_real,
            "eval_runs": args.eval_runs, "eval_epochs": args.eval_epochs, "test_images": args.test_images,
            "models": list(args.models), "seed": args.seed, "matching_model": "ConvNet-3 (lodc_convnet_d3_w128)",
            **({"eval_compile": True} if args.eval_compile else {})}  # in the key only when on: older tables resume


def render(results: dict) -> str:
    s, hw = results["settings"], results["hardware"]
    models = s["models"]
    test_desc = ("the full real test split" if s["test_images"] <= 0
                 else f"{s['test_images']} class-stratified real test images")
    lines = [
        f"Cross-architecture, IPC 1 (equal storage), condensed with ConvNet-3: {s['iterations']} iterations, "
        f"{s['batch_real']} real images/class/step; evaluated with {s['eval_runs']} run(s) x {s['eval_epochs']} epochs "
        f"per architecture (protocol: SGD, DSA, last epoch; mean +- std over runs) on {test_desc}. Condensation is "
        f"at a CPU budget, far below the paper's: compare rows, not with the paper. "
        f"{hw['cpu']}, {hw['cores']} cores, nice {hw['niceness']}. Commands: "
        + ", ".join(f"`{c}`" for c in results["commands"]) + ".",
        "",
        "| dataset | method | images/class | " + " | ".join(LABELS.get(m, m) for m in models) + " | mean |",
        "|---|---|---|" + "---|" * (len(models) + 1),
    ]
    order = {(d, m): i for i, (d, m) in enumerate((d, m) for d in DATASETS for m in METHODS)}
    for r in sorted(results["rows"], key=lambda r: order.get((r["dataset"], r["method"]), len(order))):
        got = [r["accuracy"].get(m) for m in models]
        cells = ["not yet measured" if a is None else f"{a['mean']:.1f} ± {a['std']:.1f}" if s["eval_runs"] > 1
                 else f"{a['mean']:.1f}" for a in got]
        mean = f"{sum(a['mean'] for a in got) / len(got):.1f}" if all(got) else "–"
        lines.append(f"| {r['dataset']} | {r['method']} | {r['images_per_class']} | " + " | ".join(cells) + f" | {mean} |")
    total = sum(r["condense_s"] + sum(v["wall_s"] for v in r["accuracy"].values()) for r in results["rows"])
    lines += ["", f"Total compute time of the rows: {total / 60:.1f} min.", "", BN_NOTE]
    return "\n".join(lines) + "\n"


def estimate(args) -> None:
    """Time each model briefly and print what the table would cost at these settings.

    Per model: 2 training epochs at 1 and at 8 images/class (what the pixel and the rank-2 rows hold)
    and one test pass over up to 1000 images, scaled to the test set used. Both wall time (this
    machine at its current load) and process CPU time (the work; on an idle machine with T threads
    wall is roughly CPU / T) are reported.
    """
    import hf_lodc
    from hf_lodc.data.types import normalize
    from hf_lodc.engine.config import EvalConfig
    from hf_lodc.engine.evaluate import test_accuracy
    from hf_lodc.training.loop import seeded_net

    def timed(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - w0, time.process_time() - c0

    total = [0.0, 0.0]  # wall, cpu
    for dataset in args.datasets.split(","):
        data = hf_lodc.load_image_classification(DATASETS[dataset])
        test = stratified_test(data.test, args.test_images // data.num_classes if args.test_images > 0 else 0,
                               args.seed)
        probe = stratified_test(test, 1000 // data.num_classes, args.seed)
        tiny = stratified_test(data.test, 1, args.seed)
        for model in args.models:
            per_epoch = {}
            for ipc in (1, 8):
                real = stratified_test(data.train, ipc, args.seed)
                x = normalize(real.images, data.mean, data.std)
                ev = EvalConfig(eval_models=[model], eval_runs=1, eval_epochs=2)
                w, c = timed(lambda: hf_lodc.evaluate_synthetic(x, real.labels, tiny, data.mean, data.std,
                                                                data.num_classes, ev, seed=args.seed))
                per_epoch[ipc] = (w / 2, c / 2)  # incl. building the net and one tiny test
            net = seeded_net(model, data.num_classes, data.image_shape, 0, device="cpu")
            w, c = timed(lambda: test_accuracy(net, probe, data.mean, data.std, "cpu"))
            scale = len(test) / len(probe)
            t_test = (w * scale, c * scale)
            # rows: lodm + lorandom at ~8 images/class, dm + random at 1
            cost = [args.eval_runs * (2 * (args.eval_epochs * per_epoch[8][i] + t_test[i])
                                      + 2 * (args.eval_epochs * per_epoch[1][i] + t_test[i])) for i in (0, 1)]
            total = [total[0] + cost[0], total[1] + cost[1]]
            print(f"[estimate] {dataset} {model}: s/epoch (wall/cpu) {per_epoch[1][0]:.2f}/{per_epoch[1][1]:.2f} at "
                  f"1 img/class, {per_epoch[8][0]:.2f}/{per_epoch[8][1]:.2f} at 8; test pass {t_test[0]:.1f}/"
                  f"{t_test[1]:.1f} s ({len(test)} images) -> {cost[0] / 60:.1f} / {cost[1] / 60:.1f} min for 4 rows",
                  flush=True)
    print(f"[estimate] evaluation total: {total[0] / 3600:.2f} h wall at the current load (load average "
          f"{os.getloadavg()[0]:.1f}), {total[1] / 3600:.2f} CPU-hours (torch threads: {torch.get_num_threads()}); "
          f"plus condensation of the LoDM and DM rows ({args.iterations} iterations each)", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist,cifar10")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--models", type=lambda s: tuple(s.split(",")), default=MODELS)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--batch-real", type=int, default=64)
    p.add_argument("--eval-runs", type=int, default=2)
    p.add_argument("--eval-epochs", type=int, default=150)
    p.add_argument("--test-images", type=int, default=0, help="0: the full test split; N: N class-stratified images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-compile", action="store_true",
                   help="torch.compile each evaluation network's forward (about a third less CPU; not bit-identical)")
    p.add_argument("--out", default=str(HERE / "results" / "cross_arch_150"))
    p.add_argument("--estimate", action="store_true", help="only time each model briefly and print the run time")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str((ROOT / ".." / "shared" / "hub").resolve()))
    if args.estimate:
        estimate(args)
        return 0
    from hf_lodc import pipeline
    from hf_lodc.engine.config import DataConfig

    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    command = " ".join(["python", *sys.argv])
    want = settings(args)
    if not same_protocol(results, {"settings": want}):
        results = {"settings": want, "hardware": hardware(), "commands": [], "rows": []}
    else:  # same protocol: a run over other architectures (or an order of priority) adds to the same table
        results["settings"]["models"] = merged_models(results["settings"]["models"], args.models)
    if command not in results.setdefault("commands", []):  # an interrupted or partial table is completed by re-runs
        results["commands"].append(command)
    rows = {(r["dataset"], r["method"]): r for r in results["rows"]}
    for dataset in args.datasets.split(","):
        data = test = None
        for method in args.methods.split(","):
            row = rows.get((dataset, method))
            missing = [m for m in args.models if row is None or m not in row["accuracy"]]
            if not missing:
                continue
            if data is None:
                data = pipeline.load_data(DataConfig(dataset=DATASETS[dataset]))
                test = stratified_test(data.test, args.test_images // data.num_classes if args.test_images > 0
                                       else 0, args.seed)
            art, head = condense_row(data, dataset, method, args)  # deterministic: a resumed row re-makes its set
            if row is None:
                row = rows[(dataset, method)] = head
                results["rows"].append(row)
            for model in missing:  # saved after every cell: an interrupted row resumes at its next architecture
                if measured(out_json, results, dataset, method, model):
                    continue  # another process measured it meanwhile
                record, protocol = evaluate_cell(art, test, model, args)
                print(f"{dataset} {method} {model}: {record['mean']:.1f} ({record['wall_s']:.0f} s)", flush=True)
                results = save_cell(out_json, out_md, results, head, model, record, protocol)
    with _locked(out_json):
        if out_json.is_file():
            results = json.loads(out_json.read_text())
        out_md.write_text(render(results))
    print(render(results))
    return 0


@contextlib.contextmanager
def _locked(out_json: Path):
    """An exclusive lock beside the table: several processes (say, one per dataset) fill one table."""
    out_json.parent.mkdir(parents=True, exist_ok=True)
    with open(out_json.with_suffix(".json.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def same_protocol(a: dict, b: dict) -> bool:
    """Whether two tables were measured with the same settings (the architectures may differ)."""
    return {k: v for k, v in a.get("settings", {}).items() if k != "models"} == \
        {k: v for k, v in b.get("settings", {}).items() if k != "models"}


def merged_models(have, new) -> list:
    """The columns of a table holding ``have`` and ``new``: :data:`MODELS` order first, then others."""
    return [m for m in MODELS if m in have or m in new] + \
        list(dict.fromkeys(m for m in [*have, *new] if m not in MODELS))


def measured(out_json: Path, results: dict, dataset: str, method: str, model: str) -> bool:
    """Whether the table on disk (same protocol) already holds this cell."""
    with _locked(out_json):
        disk = json.loads(out_json.read_text()) if out_json.is_file() else {}
    if not same_protocol(disk, results):
        return False
    return any(r["dataset"] == dataset and r["method"] == method and model in r["accuracy"] for r in disk["rows"])


def save_cell(out_json: Path, out_md: Path, results: dict, head: dict, model: str, record: dict,
              protocol: str) -> dict:
    """Merge one measured cell into the table on disk (re-read under the lock, so cells another process wrote
    meanwhile stay) and write it atomically; returns the merged table."""
    with _locked(out_json):
        disk = json.loads(out_json.read_text()) if out_json.is_file() else None
        if disk is not None and same_protocol(disk, results):
            disk["settings"]["models"] = merged_models(disk["settings"]["models"], results["settings"]["models"])
            disk["commands"] += [c for c in results["commands"] if c not in disk["commands"]]
            results = disk
        rows = {(r["dataset"], r["method"]): r for r in results["rows"]}
        row = rows.get((head["dataset"], head["method"]))
        if row is None:
            row = {**head, "accuracy": {}}
            results["rows"].append(row)
        row["accuracy"][model], row["protocol"] = record, protocol
        results["hardware"]["load_average_at_end"] = os.getloadavg()
        write_json(out_json, results)  # atomic: a temporary sibling, then a rename
        out_md.write_text(render(results))
    return results


if __name__ == "__main__":
    sys.exit(main())
