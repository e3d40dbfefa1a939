#!/usr/bin/env python
"""One real MNIST IPC-1 LoDM condensation, evaluated, pushed to a Hub-compatible server, loaded back.

    nice -n 10 python benchmarks/publish_demo.py                     # CPU-sized defaults (see --help)
    nice -n 10 python benchmarks/publish_demo.py --iterations 5 --eval-epochs 5 --eval-runs 1   # smoke

What it does, end to end, with the real huggingface_hub / datasets clients:

1. starts the test suite's Hub-compatible server (tests/hubserver) on a free 127.0.0.1 port, with an
   empty HF_HOME, and points the clients at it (HF_ENDPOINT, HF_TOKEN) - nothing leaves the machine;
2. ``CondensedDataset("ylecun/mnist").condense(method="lodm", ipc=1, rank=2, ...)`` on the offline
   mirror (``HF_LODC_LOCAL_HUB``, default ``../shared/hub``), then ``.evaluate(...)`` on the full real
   test split: float32 tensors and the uint8 PNG images, same seeds;
3. ``.push_to_hub("alice/mnist-lodm-ipc1", push_models=True)``: the dataset (one commit; ``train`` = the
   condensed set, ``validation``/``test`` = the real test split) and the ConvNet-3 of the median run as
   model repo ``alice/mnist-lodm-ipc1-convnet`` (safetensors + timm config + a model card carrying the
   accuracy), plus the no-matching low-rank baseline (``lorandom``: rank-2 SVD of random real images,
   same budget and evaluation) as a second config;
4. in a fresh process with its own empty HF_HOME, plain ``datasets.load_dataset(repo)`` (hf_lodc not
   imported) and checks rows, features, class names; reads the accuracies back from the card;
5. copies the pushed card, previews and records to ``docs/example_card/`` (same layout as the repo), the
   model card to ``docs/example_card/model_card/README.md``, and writes the numbers to
   ``benchmarks/results/publish_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALICE_TOKEN = "hf_demo_alice_write_token"

_FRESH_LOAD = """
import json, sys
import datasets
repo = sys.argv[1]
d = datasets.load_dataset(repo, split="train")
px = datasets.load_dataset(repo, "pixel_values", split="train")
print("RESULT=" + json.dumps({
    "rows": len(d), "features": sorted(d.features), "class_names": d.features["label"].names,
    "image_mode": d[0]["image"].mode, "image_size": list(d[0]["image"].size),
    "pixel_values_shape": list(px.features["pixel_values"].shape),
    "configs": datasets.get_dataset_config_names(repo),
    "hf_lodc_imported": any(m.startswith("hf_lodc") for m in sys.modules),
}))
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--batch-real", type=int, default=64)
    p.add_argument("--eval-runs", type=int, default=2)
    p.add_argument("--eval-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repo", default="alice/mnist-lodm-ipc1")
    p.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the lorandom baseline")
    p.add_argument("--card-dir", default=str(ROOT / "docs" / "example_card"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "publish_demo.json"))
    return p.parse_args(argv)


def start_hub(home: Path):
    """The fake Hub + this process's environment pointed at it (before huggingface_hub is imported)."""
    from tests.conftest_hub import hub_env
    from tests.hubserver import HubServer

    server = HubServer(tokens={ALICE_TOKEN: "alice"}).start()
    env = hub_env(server.endpoint, ALICE_TOKEN, home / "inproc")
    os.environ.update(env)
    os.environ.setdefault("HF_LODC_LOCAL_HUB", str((ROOT / ".." / "shared" / "hub").resolve()))
    return server, env


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="hf_lodc_demo_"))
    server, env = start_hub(tmp)
    try:
        return run(args, server, env, tmp)
    finally:
        server.stop()


def run(args, server, env, tmp: Path) -> int:
    import subprocess

    import torch

    from hf_lodc import CondensedDataset
    from hf_lodc.export.card import read_card_data

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    timings = {}
    evaluation = dict(models=["convnet"], runs=args.eval_runs, epochs=args.eval_epochs, progress=True)

    t0 = time.perf_counter()
    cd = CondensedDataset("ylecun/mnist")
    cd.condense(method="lodm", ipc=1, rank=2, iterations=args.iterations, batch_real=args.batch_real,
                seed=args.seed, progress=True)
    timings["condense_s"] = round(time.perf_counter() - t0, 1)
    print(f"[demo] {cd!r} in {timings['condense_s']} s", flush=True)
    t0 = time.perf_counter()
    cd.evaluate(**evaluation, keep_models=True)
    timings["evaluate_s"] = round(time.perf_counter() - t0, 1)
    model_repo = f"{args.repo}-convnet"
    pushed = cd.push_to_hub(args.repo, config_name="lodm-ipc1-r2", push_models=True,
                            model_repos={"convnet": model_repo})
    if args.baseline:
        base = CondensedDataset("ylecun/mnist")
        base.condense(method="lorandom", ipc=1, rank=2, seed=args.seed)
        t0 = time.perf_counter()
        base.evaluate(**evaluation, uint8=False)  # the baseline row: float32 only (CPU time)
        timings["baseline_evaluate_s"] = round(time.perf_counter() - t0, 1)
        base.push_to_hub(args.repo, config_name="lorandom-ipc1-r2")

    # a fresh process, empty HF_HOME of its own, no hf_lodc: plain load_dataset
    sub_home = tmp / "subprocess"
    sub_env = {**os.environ, **env, "HF_HOME": str(sub_home), "HF_HUB_CACHE": str(sub_home / "hub"),
               "HF_DATASETS_CACHE": str(sub_home / "datasets"), "HF_ASSETS_CACHE": str(sub_home / "assets"),
               "HF_XET_CACHE": str(sub_home / "xet"), "HF_TOKEN_PATH": str(sub_home / "token")}
    proc = subprocess.run([sys.executable, "-c", _FRESH_LOAD, args.repo], env=sub_env, capture_output=True,
                          text=True, timeout=600, cwd=tmp)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return 1
    loaded = json.loads(proc.stdout.split("RESULT=", 1)[1])
    assert not loaded["hf_lodc_imported"] and loaded["rows"] == len(cd.labels), loaded

    card_text = server.read_file(args.repo, "README.md").decode()
    card_data, _ = read_card_data(card_text)
    card_dir = Path(args.card_dir)  # the card + previews + records, laid out as in the repo (links resolve)
    for path in server.repo_state(args.repo).paths:
        if path == "README.md" or path.endswith(("/preview.png", "/hf_lodc.json")):
            (card_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (card_dir / path).write_bytes(server.read_file(args.repo, path))
    model_card = server.read_file(model_repo, "README.md", repo_type="model").decode()
    (card_dir / "model_card").mkdir(parents=True, exist_ok=True)
    (card_dir / "model_card" / "README.md").write_text(model_card)

    summary = {
        "repo": args.repo,
        "commit": server.repo_state(args.repo).head,
        "first_push": {"config": pushed.config_name, "configs": list(pushed.configs)},
        "model_repo": model_repo,
        "settings": {k: getattr(args, k) for k in ("iterations", "batch_real", "eval_runs", "eval_epochs", "seed")},
        "timings": timings,
        "card_results": card_data.get("results", []),
        "fresh_process_load": loaded,
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(summary, indent=2) + "\n")
    for r in summary["card_results"]:
        print(f"[demo] card: {r['config_name']} {r['model']} on {r['data']}: {r['accuracy_mean']:.2f} +- "
              f"{r['accuracy_std']:.2f} % ({r['runs']} runs x {r['epochs']} epochs)")
    print(f"[demo] fresh process: {loaded['rows']} rows, features {loaded['features']}, classes "
          f"{loaded['class_names']}; wrote {card_dir}/README.md and {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
