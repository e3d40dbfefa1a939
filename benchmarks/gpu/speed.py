#!/usr/bin/env python3
"""Speed of one precision, one process: s/iteration of LoDM condensation and s/model-epoch of evaluation.

Run by lease.py once per precision (an Accelerator's precision is fixed for its process):

* condensation: LoDM MNIST IPC 1 and CIFAR-10 IPC 10 (rank 2, batch_real 256, DSA), a few warm-up
  iterations and then ``--iterations`` timed ones (the loop reads the loss once at the end of the
  timed window, which synchronises the device); FLOPs per iteration from hf_lodc.engine.flops, so
  achieved TFLOP/s = FLOPs / (s/iteration);
* evaluation: ``--models`` ConvNet-3 models trained for a few epochs on a set of the LoDM IPC 1 size,
  seconds per model-epoch: fp32 / TF32 with the sequential and the vmap backend; bf16, ``+cl`` and
  ``+compile`` as evaluation options (``eval_mixed_precision``, ``eval_channels_last``, ``eval_compile``)
  through the sequential backend, the only one that runs them.

Precisions: ``fp32`` (TF32 off everywhere), ``tf32`` (TF32 matmul + cuDNN), ``bf16`` (autocast bf16
network passes, TF32 off); ``+cl`` appended: channels_last; ``+compile`` appended: LoDM's embedding passes
through torch.compile (``--compile``; its one-off compile falls in the warm-up iterations). Writes a JSON
list of rows to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

HUB_IDS = {"mnist": "ylecun/mnist", "cifar10": "uoft-cs/cifar10"}
# (dataset, ipc, rank): the two condensation cells the issue times
CELLS = {"mnist": (1, 2), "cifar10": (10, 2)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def condense_speed(key: str, precision: str, iterations: int, smoke: bool, accelerator, compile: bool = False,
                   tf32: bool = False, channels_last: bool = False) -> dict:
    from hf_lodc.engine.condenser import Condenser
    from hf_lodc.engine.config import RunConfig
    from hf_lodc.engine.flops import dm_iteration_flops
    from hf_lodc.pipeline import load_data

    ipc, rank = CELLS[key]
    batch = 8 if smoke else 256
    warm = 1 if smoke else 3
    flat = {"dataset": HUB_IDS[key], "method": "lodm", "ipc": ipc, "rank": rank, "batch_real": batch,
            "iterations": warm + iterations + 1, "log_every": warm, "eval_runs": 0}
    if smoke:
        flat["max_per_class"] = 12
    if compile:
        flat["compile"] = True
    if tf32:
        flat["tf32"] = True
    if channels_last:
        flat["channels_last"] = True
    cfg = RunConfig.from_flat(flat)  # the Condenser configures (and records) TF32 and the memory format
    t_load = time.perf_counter()
    data = load_data(cfg.data)
    t_load = time.perf_counter() - t_load
    marks = []
    cond = Condenser(data, cfg.condense, accelerator=accelerator, progress=False,
                     on_log=lambda rec: marks.append((rec["iteration"], time.perf_counter())))
    # a log at iteration `warm` and one at the end: both read the loss (a device sync)
    cond.cfg.log_every = warm
    t0 = time.perf_counter()
    cond.run()
    total = time.perf_counter() - t0
    (i0, t_a), (i1, t_b) = marks[1], marks[-1]
    s_it = (t_b - t_a) / max(i1 - i0, 1)
    per_class = cond.budget.images_per_class
    f = dm_iteration_flops(data.image_shape, data.num_classes, batch, per_class)
    return {"part": "condense", "dataset": key, "ipc": ipc, "rank": rank, "batch_real": batch,
            "synthetic_per_class": per_class, "precision": precision, "timed_iterations": i1 - i0,
            "seconds_per_iteration": s_it, "flops_per_iteration": f.total, "matmul_flops_per_iteration": f.matmul,
            "achieved_tflops": f.total / s_it / 1e12, "run_wall_s": round(total, 2), "data_load_s": round(t_load, 2),
            "projected_20000_iterations_s": round(20000 * s_it, 1)}


def eval_speed(key: str, precision: str, models: int, epochs: int, smoke: bool, device,
               options: dict | None = None) -> list[dict]:
    """s/model-epoch of evaluation; ``options`` (EvalConfig fields: bf16 autocast, channels_last, compile)
    run through the sequential backend only (torch applies no autocast inside vmap), plain fp32/TF32
    through both backends."""
    import hf_lodc.engine  # noqa: F401  (registers the backends)
    from hf_lodc.data.types import LabeledImages, normalize
    from hf_lodc.engine.config import DataConfig, EvalConfig
    from hf_lodc.engine.evaluate import EVAL_BACKENDS
    from hf_lodc.engine.flops import eval_epoch_flops
    from hf_lodc.pipeline import load_data

    per_class = 7 if key == "mnist" else 8  # the LoDM IPC 1 set size
    # the full data (decoded once, cached on disk), then the first images of each class
    data = load_data(DataConfig(dataset=HUB_IDS[key], max_per_class=12 if smoke else None))
    keep = torch.cat([torch.nonzero(data.train.labels == c).flatten()[:per_class] for c in range(data.num_classes)])
    train = data.train.subset(keep)
    test = LabeledImages(data.test.images[:200 if smoke else 2000], data.test.labels[:200 if smoke else 2000])
    x = normalize(train.images, data.mean, data.std)
    rows = []
    f = eval_epoch_flops(data.image_shape, x.shape[0], data.num_classes)
    options = options or {}
    for backend in ("sequential",) if options else ("sequential", "vmap"):
        cfg = EvalConfig(eval_models=["convnet"], eval_runs=models, eval_epochs=epochs, **options)
        fn = EVAL_BACKENDS.get(backend)
        fn("convnet", x, train.labels, test, data.mean, data.std, data.num_classes,
           EvalConfig(eval_models=["convnet"], eval_runs=1, eval_epochs=1, **options), 0, device, [0])  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        accs = fn("convnet", x, train.labels, test, data.mean, data.std, data.num_classes, cfg, 0, device,
                  list(range(models)))
        _sync(device)
        t = time.perf_counter() - t0
        rows.append({"part": "eval", "dataset": key, "backend": backend, "precision": precision, "models": models,
                     "eval_options": options,
                     "epochs": epochs, "images": int(x.shape[0]), "seconds": round(t, 3),
                     "seconds_per_model_epoch": t / (models * epochs),
                     "achieved_tflops": f.total * models * epochs / t / 1e12,
                     "accuracies": [round(float(a), 2) for a in accs]})
    return rows


def _precision(value: str) -> str:
    base, *extras = value.split("+")
    if base not in ("fp32", "tf32", "bf16") or any(e not in ("cl", "compile") for e in extras):
        raise argparse.ArgumentTypeError(f"{value!r}: fp32 | tf32 | bf16, optionally +cl and/or +compile")
    return value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", required=True, type=_precision,
                   help="fp32 | tf32 | bf16, then optionally '+cl' (the ConvNet passes in channels_last) and/or "
                        "'+compile' (torch.compile of LoDM's embedding passes), e.g. tf32+compile")
    p.add_argument("--datasets", default="mnist,cifar10")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--eval-models", type=int, default=20)
    p.add_argument("--eval-epochs", type=int, default=10)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from hf_lodc.training import device as dev
    from hf_lodc.launch import make_accelerator

    base, *extras = args.precision.split("+")
    cl, compile_ = "cl" in extras, "compile" in extras
    acc = make_accelerator("bf16" if base == "bf16" else "no", cpu=args.smoke)
    settings = dev.configure(acc.device, tf32=(base == "tf32"), channels_last=cl)
    rows = []
    its = 2 if args.smoke else args.iterations
    for key in [k for k in args.datasets.split(",") if k]:
        r = condense_speed(key, args.precision, its, args.smoke, acc, compile=compile_, tf32=(base == "tf32"),
                           channels_last=cl)
        rows.append({**r, "device_settings": settings.__dict__})
        print(json.dumps(r), flush=True)
    if not (args.smoke and compile_):  # evaluation under the same precision and layout (compile: not in smoke runs)
        key = [k for k in args.datasets.split(",") if k][-1]
        options = {k: v for k, v in (("eval_mixed_precision", "bf16" if base == "bf16" else "no"),
                                     ("eval_channels_last", cl), ("eval_compile", compile_)) if v not in ("no", False)}
        for r in eval_speed(key, args.precision, 2 if args.smoke else args.eval_models,
                            1 if args.smoke else args.eval_epochs, args.smoke, acc.device, options):
            rows.append({**r, "device_settings": settings.__dict__})
            print(json.dumps({k: v for k, v in r.items() if k != "accuracies"}), flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
