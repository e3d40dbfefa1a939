#!/usr/bin/env python
"""The field's published layouts side by side on CIFAR-10, under one protocol, with storage and scores.

Each set is built here from real CIFAR-10 train images in the exact structure its code base saves
(so what is measured is the reading, the storage accounting and the protocol, not the methods):

* ``dm``: DC/DSA/DM ``res_DM_CIFAR10_ConvNet_1ipc.pt`` (``{'data': [[images, labels]], 'accs_all_exps'}``),
  one random real image per class normalised with the DC constants (read with ``--input-normalization
  dc-cifar10``);
* ``idc``: IDC ``data.pt`` (``[images, targets]``), one stored image per class holding a factor-2
  mosaic of four random real images (16x16 each), normalised with IDC's constants; decoded to 4/class;
* ``mtt-zca``: MTT ``images_best.pt`` + ``labels_best.pt``, one random real image per class in ZCA space
  (kornia's whitening, eps 0.1, fitted on the train images read), hard labels;
* ``datm-soft``: DATM ``images_best.pt`` + ``labels_best.pt`` (logits (N, 10)) + ``lr_best.pt``: the same
  images as ``mtt-zca``, **one-hot logits** (10 for the class, 0 elsewhere; no teacher is trained) and a
  learned lr of 0.01 (the protocol's);
* ``hf_lodc-lodm``: an hf_lodc LoDM set at the storage of 1 pixel image per class (rank ``--rank``),
  condensed for ``--lodm-iterations`` iterations on the train images read (a short run, not the
  paper's), decoded to images and evaluated at the storage of its factors.

Every set goes through ``hf_lodc.evaluate_condensed_set`` with the same protocol (ConvNet-3, DSA,
``--runs`` x ``--epochs``, last-epoch accuracy, the first ``--eval-max-per-class`` test images per
class), against random real images at the same storage, with DD-Ranking's ARS and LRS. The LRS's
full-data accuracy is ``--real-accuracy`` (default 84.8 %: ConvNet-3 on the whole CIFAR-10 train
set as reported by DC, Zhao et al. 2021, Table 1), not measured here.

The defaults are sized for a CPU: an estimated 15-20 min on 2 idle cores (from the work each training
does; the script has been run at smoke-test size only, on a loaded machine, so the first full run measures it).

    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/bench_published.py
    python benchmarks/bench_published.py --runs 1 --epochs 2 --max-per-class 20 --eval-max-per-class 5 \
        --lodm-iterations 2 --out /tmp/published_tiny      # a smoke test: checks it runs, measures nothing

Writes ``benchmarks/results/published_cifar10.json`` and ``.md`` (the table docs/results.md shows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _machine import machine, machine_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

DATASET = "uoft-cs/cifar10"
LAYOUTS = ("dm", "idc", "mtt-zca", "datm-soft", "hf_lodc-lodm")


def _per_class(labels, k: int, num_classes: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    rows = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    return torch.stack([r[torch.randperm(len(r), generator=g)[:k]] for r in rows])  # (K, k)


def build_sets(data, folder: Path, args) -> dict[str, dict]:
    """layout -> {"source", "options" (evaluate_condensed_set keywords), "built" (what was stored, in words)}."""
    import torch
    import torch.nn.functional as F

    from hf_lodc.published.normalization import NORMALIZATION_PRESETS
    from hf_lodc.published.zca import fit_zca

    k = data.num_classes
    u8, labels = data.train.images, data.train.labels
    one = _per_class(labels, 1, k, args.seed)[:, 0]  # (K,) one real image per class
    y = torch.arange(k)
    sets: dict[str, dict] = {}

    def preset(name, x01):
        p = NORMALIZATION_PRESETS.get(name)
        return (x01 - torch.tensor(p.mean).view(1, -1, 1, 1)) / torch.tensor(p.std).view(1, -1, 1, 1)

    if "dm" in args.layouts:
        x = preset("dc-cifar10", u8[one].float() / 255)  # (K, 3, 32, 32)
        path = folder / "res_DM_CIFAR10_ConvNet_1ipc.pt"
        torch.save({"data": [[x, y.clone()]], "accs_all_exps": {"ConvNet": []}}, path)
        sets["dm"] = {"source": path, "options": {"input_normalization": "dc-cifar10"},
                      "built": "1 random real image/class, DC constants"}
    if "idc" in args.layouts:
        four = _per_class(labels, 4, k, args.seed + 1)  # (K, 4)
        tiles = F.interpolate(u8[four.flatten()].float() / 255, size=(16, 16), mode="bilinear",
                              align_corners=False).view(k, 4, 3, 16, 16)
        mosaic = torch.cat([torch.cat([tiles[:, 0], tiles[:, 1]], 3), torch.cat([tiles[:, 2], tiles[:, 3]], 3)], 2)
        path = folder / "idc" / "data.pt"
        path.parent.mkdir()
        torch.save([preset("idc-cifar10", mosaic), y.clone()], path)
        sets["idc"] = {"source": path, "options": {"input_normalization": "idc-cifar10", "factor": 2},
                       "built": "1 stored image/class: a factor-2 mosaic of 4 random real images, IDC constants"}
    zca_x = None
    if "mtt-zca" in args.layouts or "datm-soft" in args.layouts:
        zca_x = fit_zca(u8, eps=0.1).from_uint8(u8[one])  # (K, 3, 32, 32) in ZCA space
    if "mtt-zca" in args.layouts:
        d = folder / "mtt"
        d.mkdir()
        torch.save(zca_x, d / "images_best.pt")
        torch.save(y.clone(), d / "labels_best.pt")
        sets["mtt-zca"] = {"source": d / "images_best.pt",
                           "options": {"labels_file": str(d / "labels_best.pt"), "input_normalization": "zca"},
                           "built": "1 random real image/class in ZCA space (eps 0.1), hard labels"}
    if "datm-soft" in args.layouts:
        d = folder / "datm"
        d.mkdir()
        torch.save(zca_x, d / "images_best.pt")
        torch.save(F.one_hot(y, k).float() * 10.0, d / "labels_best.pt")  # (K, K) logits
        torch.save(torch.tensor(0.01), d / "lr_best.pt")
        sets["datm-soft"] = {"source": d / "images_best.pt",
                             "options": {"labels_file": str(d / "labels_best.pt"), "input_normalization": "zca"},
                             "built": "the mtt-zca images, one-hot logits (x10, no teacher), lr_best.pt 0.01"}
    if "hf_lodc-lodm" in args.layouts:
        sets["hf_lodc-lodm"] = _lodm_set(data, folder, args)
    return sets


def _lodm_set(data, folder: Path, args) -> dict:
    import torch

    from hf_lodc import pipeline
    from hf_lodc.engine.config import CondenseConfig, DataConfig, RunConfig

    run = RunConfig(data=DataConfig(dataset=DATASET, max_per_class=args.max_per_class),
                    condense=CondenseConfig(method="lodm", ipc=1, rank=args.rank, iterations=args.lodm_iterations,
                                            seed=args.seed))
    t = time.perf_counter()
    art = pipeline.condense(data, run)
    x, y = art.images(), art.labels  # (N, 3, 32, 32) normalised with the train statistics read; (N,)
    nbytes = art.budget.bytes(data.num_classes)["stored_bytes"]
    path = folder / "lodm.pt"
    torch.save((x, y), path)
    return {"source": path, "options": {"input_normalization": "source", "storage_bytes": nbytes},
            "built": f"hf_lodc LoDM, storage of 1 image/class at rank {args.rank} ({len(x) // data.num_classes} "
                     f"decoded/class), {args.lodm_iterations} iterations in {time.perf_counter() - t:.0f} s; "
                     f"storage = its factors"}


def row_of(layout: str, built: str, report, seconds: float) -> dict:
    ev = report.evaluations["convnet"]
    rel = report.relative.get("convnet", {})
    ars = report.scores.get("convnet", {})
    lrs = report.label_robust.get("models", {}).get("convnet", {})
    return {"layout": layout, "built": built, "read_as": report.layout, "num_images": report.num_images,
            "storage_bytes": report.storage_bytes, "labels": report.labels_kind.split(" (")[0].split(" ")[0],
            "labels_detail": report.labels_kind,
            "accuracy_mean": round(ev["accuracy_mean"], 2), "accuracy_std": round(ev["accuracy_std"], 2),
            "random_same_bytes": rel.get("random"), "random_images_per_class": report.baseline.get("images_per_class"),
            "improvement_pp": rel.get("improvement_pp"),
            "ars_same_bytes": ars.get("same_bytes", {}).get("ars"), "ars_same_count": ars.get("same_count", {}).get("ars"),
            "lrs_same_bytes": lrs.get("same_bytes", {}).get("lrs"), "lrs_same_count": lrs.get("same_count", {}).get("lrs"),
            "seconds": round(seconds, 1), "report": report.to_dict()}


def render(result: dict) -> str:
    def f(v, fmt=".2f"):
        return "–" if v is None else format(v, fmt)

    s = result["settings"]
    lines = [f"CIFAR-10, ConvNet-3, {s['runs']} runs x {s['epochs']} epochs (DSA, last epoch), tested on the first "
             f"{s['eval_max_per_class']} test images per class; train images read: {s['max_per_class']}/class; "
             f"LRS with Acc(real, hard) = {s['real_accuracy']} % ({s['real_accuracy_from']}). "
             f"{result['machine']}, {result['wall_s'] / 60:.1f} min.", "",
             "| layout | stored as | images | storage (bytes) | labels | accuracy (%) | random, same bytes (%) "
             "| improvement (pp) | ARS same bytes / count | LRS same bytes / count |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['layout']} | {r['built']} | {r['num_images']} | {r['storage_bytes']:,} | {r['labels']} "
                     f"| {f(r['accuracy_mean'])} ± {f(r['accuracy_std'])} "
                     f"| {f(r['random_same_bytes'])} ({r['random_images_per_class'] or 0}/class) "
                     f"| {f(r['improvement_pp'], '+.2f')} | {f(r['ars_same_bytes'], '.3f')} / {f(r['ars_same_count'], '.3f')} "
                     f"| {f(r['lrs_same_bytes'], '.3f')} / {f(r['lrs_same_count'], '.3f')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-per-class", type=int, default=500,
                   help="train images read per class (statistics, ZCA, baselines, the LoDM condensation)")
    p.add_argument("--eval-max-per-class", type=int, default=100, help="test images per class")
    p.add_argument("--lodm-iterations", type=int, default=50)
    p.add_argument("--rank", type=int, default=4, help="LoDM rank")
    p.add_argument("--real-accuracy", default="84.8",
                   help="Acc(real, hard) for the LRS, percent, or 'train' (trains on the train images read)")
    p.add_argument("--real-accuracy-from", default="ConvNet-3 on the whole CIFAR-10 train set, DC (Zhao et al. 2021) "
                                                   "Table 1")
    p.add_argument("--layouts", type=lambda s: s.split(","), default=list(LAYOUTS),
                   help=f"comma-separated subset of {','.join(LAYOUTS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "published_cifar10"))
    p.add_argument("--render-only", action="store_true", help="rewrite the .md from the existing .json")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.render_only:
        Path(str(out) + ".md").write_text(render(json.loads(Path(str(out) + ".json").read_text())))
        return 0
    unknown = sorted(set(args.layouts) - set(LAYOUTS))
    if unknown:
        p.error(f"unknown layout(s) {unknown}; choose from {', '.join(LAYOUTS)}")
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str((ROOT / ".." / "shared" / "hub").resolve()))
    from hf_lodc import evaluate_condensed_set, load_image_classification

    real_acc = "train" if args.real_accuracy == "train" else float(args.real_accuracy)
    t0 = time.perf_counter()
    data = load_image_classification(DATASET, max_per_class=args.max_per_class)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hf_lodc-published-") as tmp:
        sets = build_sets(data, Path(tmp), args)
        for layout in args.layouts:
            spec = sets[layout]
            t = time.perf_counter()
            report = evaluate_condensed_set(
                str(spec["source"]), data, models=["convnet"], runs=args.runs, epochs=args.epochs,
                eval_max_per_class=args.eval_max_per_class, max_per_class=args.max_per_class, seed=args.seed,
                ars=True, lrs=True, real_accuracy=real_acc,
                real_accuracy_from=None if real_acc == "train" else args.real_accuracy_from, **spec["options"])
            rows.append(row_of(layout, spec["built"], report, time.perf_counter() - t))
            print(f"[bench] {layout}: {rows[-1]['accuracy_mean']} % (random same bytes {rows[-1]['random_same_bytes']}),"
                  f" ARS {rows[-1]['ars_same_bytes']}, LRS {rows[-1]['lrs_same_bytes']} ({rows[-1]['seconds']} s)",
                  flush=True)
    result = {"dataset": DATASET, "settings": {k: v for k, v in vars(args).items() if k not in ("out", "render_only")},
              "machine": machine_line(machine()), "wall_s": round(time.perf_counter() - t0, 1), "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps(result, indent=2, default=str))
    Path(str(out) + ".md").write_text(render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
