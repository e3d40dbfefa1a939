"""Scale: memory and speed of condensing a generated Hub-layout set, decoded in memory or through the
memory-mapped decoded cache, with and without class sampling.

For every shape ``CLASSESxPER_CLASSxPX`` it writes a parquet set in the Hub layout (JPEG images, a
seeded colour and texture per class, ``--eval-per-class`` test images per class), then runs one fresh
child process per decoding mode (``off``: in memory, today's path; ``on``: the decoded cache) that

1. loads the set (first load: decodes; for ``on`` it writes the cache, whose size is recorded; the
   child then loads it a second time to time a cache hit),
2. condenses it with LoDM (IPC 1, rank 2, ``--batch-real``) with ``classes_per_iteration`` = ``--cpi``
   for ``--iterations``, then over all classes for ``--iterations-all`` iterations (default
   ``--iterations``: with 1 000 classes one such iteration takes minutes). The sampled run goes first:
   the heap an all-classes step grew is not all handed back to the system, so a run after it would
   show that step's peak instead of its own,

sampling ``/proc/self/status`` every 20 ms for the peak anonymous (``RssAnon``: the process's own
memory) and file-backed (``RssFile``: mapped files, including the libraries) resident memory.

``off`` is not run for a set whose in-memory load would not fit: decoding into memory peaks at about
``IN_MEMORY_PEAK_FACTOR`` x the decoded bytes (5.0x measured on the TinyImageNet shape), and a set
needing more than the machine's ``MemAvailable`` (``--available-gb`` overrides it) gets a row saying so
instead, so a larger-than-memory set never takes the machine (or a neighbour's process) down.

Run from the repo root (small shapes by default; each child is niced)::

    HF_LODC_LOCAL_HUB=/dev/null python benchmarks/bench_scale.py --out benchmarks/results/scale

writes ``scale.json`` and ``scale.md``. The generated sets and the cache live under ``--work``
(a temporary folder by default, deleted at the end); with ``--work`` a set generated there before (its
``generated.json`` records the shape and the time the generation took) is reused, caches are not.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# anon peak of the in-memory load over the decoded bytes: the uint8 array, the float32 copy for the
# mean/std and the decoding buffers (TinyImageNet shape: 5 927 MiB growth for 1 241 MB decoded = 5.0x)
IN_MEMORY_PEAK_FACTOR = 5.0


# ---------------------------------------------------------------------------------------------
# the generator


def _image(rng: np.random.Generator, base: np.ndarray, px: int) -> bytes:
    """A JPEG of a class colour under a smooth random texture and pixel noise (px x px RGB)."""
    from PIL import Image

    coarse = rng.normal(0, 40, (4, 4, 3))  # a low-frequency texture, upsampled
    cell = px // 4 + 1  # blocks of cell x cell pixels, cropped: the values np.kron gave, 5x faster
    tex = coarse.repeat(cell, 0).repeat(cell, 1)[:px, :px]
    img = np.clip(base + tex + rng.normal(0, 12, (px, px, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _write_shard(path: Path, classes: int, rows: range, bases: np.ndarray, px: int, seed, rows_per_group: int) -> None:
    """Write the rows ``rows`` of a split (row i has label i % classes) to one parquet file, streaming row
    groups, so sets larger than memory can be written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("label", pa.int64())])
    srng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, schema) as w:
        for start in range(rows.start, rows.stop, rows_per_group):
            labels = [i % classes for i in range(start, min(rows.stop, start + rows_per_group))]
            imgs = [{"bytes": _image(srng, bases[c], px), "path": None} for c in labels]
            w.write_table(pa.table({"image": imgs, "label": labels}, schema=schema))


def generate(root: Path, classes: int, per_class: int, px: int, eval_per_class: int, seed: int = 0,
             rows_per_group: int = 2048, workers: int = 1) -> Path:
    """Write a Hub-layout parquet set (``data/{train,test}-0000k-of-0000n.parquet`` + README card). Rows
    interleave the classes. The train split is written as ``workers`` shards by as many processes (each
    with a random stream of its own); one worker writes one file with the stream it always had."""
    from concurrent.futures import ProcessPoolExecutor

    import datasets
    import yaml

    names = [f"n{1000000 + 17 * i:08d}" for i in range(classes)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    (root / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = rng.uniform(30, 225, (classes, 3))
    split_meta, jobs = [], []
    for s_i, (split, n_per) in enumerate((("train", per_class), ("test", eval_per_class))):
        n = classes * n_per
        k = max(1, workers) if split == "train" else 1
        bounds = [n * j // k for j in range(k + 1)]
        for j in range(k):
            seed_j = [seed, s_i] if k == 1 else [seed, s_i, j]
            jobs.append((root / "data" / f"{split}-{j:05d}-of-{k:05d}.parquet", classes,
                         range(bounds[j], bounds[j + 1]), bases, px, seed_j, rows_per_group))
        split_meta.append({"name": split, "num_examples": n})
    if workers <= 1:
        for job in jobs:
            _write_shard(*job)
    else:
        with ProcessPoolExecutor(workers) as pool:
            for f in [pool.submit(_write_shard, *job) for job in jobs]:
                f.result()
    meta = {"license": "cc0-1.0",
            "dataset_info": {"features": features._to_yaml_list(), "splits": split_meta},
            "configs": [{"config_name": "default", "default": True,
                         "data_files": [{"split": s["name"], "path": f"data/{s['name']}-*"} for s in split_meta]}]}
    (root / "README.md").write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n"
                                    f"# generated by benchmarks/bench_scale.py: {classes} classes x {per_class} "
                                    f"(+{eval_per_class} test) x {px} px\n")
    return root


def decoded_bytes(classes: int, per_class: int, px: int, eval_per_class: int, channels: int = 3) -> int:
    """Bytes of the decoded uint8 train and test splits of a generated set."""
    return classes * (per_class + eval_per_class) * px * px * channels


def mem_available_bytes() -> int:
    """``MemAvailable`` of /proc/meminfo (what a new process can take without swapping or reclaiming
    another's memory)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def in_memory_skip_reason(decoded: int, available: int, factor: float = IN_MEMORY_PEAK_FACTOR) -> str | None:
    """Why ``off`` (decoding into memory) is not run for a set of ``decoded`` bytes, or None if it fits
    in ``available`` bytes."""
    need = factor * decoded
    if need <= available:
        return None
    return (f"not run: the in-memory path needs >= {need / 1e9:.1f} GB ({factor:g} x {decoded / 1e9:.1f} GB "
            f"decoded), the machine has {available / 1e9:.1f} GB available")


# ---------------------------------------------------------------------------------------------
# the child: one decoding mode, measured


class _Peak:
    """Peak RssAnon / RssFile of this process (kB from /proc/self/status), sampled by a thread."""

    def __init__(self, every_s: float = 0.02):
        self.every_s, self.peak = every_s, {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> dict[str, int]:
        out = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile", "VmHWM"):
                out[k] = int(v.split()[0])
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            cur = self.now()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], cur[k])
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        cur = self.now()
        for k in self.peak:
            self.peak[k] = max(self.peak[k], cur[k])


def child(args) -> dict:
    import torch

    import hf_lodc
    from hf_lodc.data.cache import decoded_cache_dir

    torch.set_num_threads(args.threads)
    base = _Peak.now()  # after the imports: what the interpreter and torch hold before any data
    out: dict = {"mode": args.mode, "baseline_kb": base, "peak_kb": {}}
    with _Peak() as peak:
        t = time.perf_counter()
        data = hf_lodc.load_image_classification(args.dataset, decoded_cache=args.mode, cache=args.mode != "off",
                                                 cache_dir=args.cache)
        out["load_s"] = time.perf_counter() - t
    out["peak_kb"]["load"] = peak.peak
    if args.mode == "on":
        entry = decoded_cache_dir(args.cache)
        out["cache_bytes"] = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
        del data
        t = time.perf_counter()
        data = hf_lodc.load_image_classification(args.dataset, decoded_cache="on", cache_dir=args.cache)
        out["load_cached_s"] = time.perf_counter() - t
    out["after_load_kb"] = _Peak.now()  # what holding the loaded set costs
    out["num_train"], out["image_shape"] = len(data.train), list(data.image_shape)
    out["decoded_bytes"] = int(data.train.images.numel() + (data.test.images.numel() if data.test else 0))
    # bit-identical (real_chunk) or same-gradient (syn_chunk) groupings, set only where asked: they bound
    # the activations of an all-classes step on a set with many classes
    chunks = {k: v for k, v in (("real_chunk", args.real_chunk), ("syn_chunk", args.syn_chunk)) if v is not None}
    for cpi, iterations in ((args.cpi, args.iterations), (None, args.iterations_all or args.iterations)):
        with _Peak() as peak:
            t = time.perf_counter()
            engine = []  # the engine's result: its timings unrounded (the artefact's are rounded to 4 places)
            hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=iterations, batch_real=args.batch_real,
                             classes_per_iteration=cpi, progress=False, on_result=engine.append, **chunks)
            wall = time.perf_counter() - t
        key = f"cpi_{cpi or 'all'}"
        # iterations_per_s counts every timed iteration (one is enough): the set-up before them is not in it
        it_per_s = engine[0].iterations_per_s
        out[f"s_per_it_{key}"] = 1.0 / it_per_s if it_per_s else None
        out[f"iterations_{key}"], out[f"condense_wall_s_{key}"] = iterations, wall
        out["peak_kb"][key] = peak.peak
    return out


# ---------------------------------------------------------------------------------------------
# the parent


def _env(args) -> dict:
    # datasets' own cache (the parquet converted to arrow) beside the generated sets, not in ~/.cache
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_CACHE": str(Path(args.work_dir) / "hf_datasets")}


def _prepare(dataset: Path, args) -> float:
    """Let datasets convert the parquet to its arrow cache once, so both modes' loads start from there."""
    code = f"import datasets; datasets.load_dataset({str(dataset)!r})"
    t = time.perf_counter()
    subprocess.run(["nice", "-n", str(args.nice), sys.executable, "-c", code], check=True, env=_env(args),
                   capture_output=True)
    return time.perf_counter() - t


def _run_child(dataset: Path, mode: str, cache: Path, args) -> dict:
    cmd = ["nice", "-n", str(args.nice), sys.executable, __file__, "--child", "--dataset", str(dataset),
           "--mode", mode, "--cache", str(cache), "--iterations", str(args.iterations),
           "--batch-real", str(args.batch_real), "--cpi", str(args.cpi), "--threads", str(args.threads)]
    for flag, value in (("--iterations-all", args.iterations_all), ("--real-chunk", args.real_chunk),
                        ("--syn-chunk", args.syn_chunk)):
        if value is not None:
            cmd += [flag, str(value)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(args), cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"child {mode} on {dataset} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _mib(kb: float) -> float:
    return round(kb / 1024, 1)


def _its(n: int) -> str:
    return f"{n} iteration{'s' * (n != 1)}"


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown(result: dict) -> str:
    from _machine import machine_line

    measured = [r for r in result["runs"] if "child" in r]
    its_all = result.get("iterations_all") or result["iterations"]
    chunks = "".join(f", {k} {result[k]}" for k in ("real_chunk", "syn_chunk") if result.get(k) is not None)
    lines = [
        "# Scale: the decoded cache (memory map) against decoding into memory",
        "",
        f"Generated Hub-layout parquet sets (JPEG, {result['eval_per_class']} test images per class); one fresh "
        f"process per row; LoDM IPC 1 rank 2, batch_real {result['batch_real']}, {_its(its_all)} over all "
        f"classes after {_its(result['iterations'])} sampling {result['cpi']} classes per iteration{chunks}. Memory from /proc/self/status, sampled every 20 ms: "
        "anonymous (RssAnon: the process's own memory) and file-backed (RssFile: mapped files, the libraries "
        "included); anon figures are growth over the value after importing torch and hf_lodc "
        f"({_mib(measured[0]['child']['baseline_kb']['RssAnon'])} MiB). "
        f"{machine_line(result['machine'])}; load average {result['machine']['load_average'][0]:.1f} at the start "
        "(shared machine: times are wall-clock and noisy).",
        "",
        "| set (classes x per class x px) | decoded MB | mode | first load s | cache hit s | cache MB | "
        "anon peak while loading MiB | anon held after load MiB | file-backed after load MiB | "
        "anon peak condensing, all / sampled MiB | s/it all classes | s/it sampled |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    sampled = f"cpi_{result['cpi']}"
    nan = float("nan")
    for r in result["runs"]:
        if "child" not in r:  # a mode that was not run, and why
            lines.append(f"| {r['shape']} | {r['decoded_bytes_predicted'] / 1e6:.1f} | {r['mode']} | "
                         f"{r['skipped']} |" + " - |" * 8)
            continue
        c = r["child"]
        a0 = c["baseline_kb"]["RssAnon"]
        pk = c["peak_kb"]
        lines.append(
            f"| {r['shape']} | {c['decoded_bytes'] / 1e6:.1f} | {c['mode']} | {c['load_s']:.1f} | "
            f"{c.get('load_cached_s', nan):.2f} | {c['cache_bytes'] / 1e6 if 'cache_bytes' in c else nan:.1f} | "
            f"{_mib(pk['load']['RssAnon'] - a0)} | {_mib(c['after_load_kb']['RssAnon'] - a0)} | "
            f"{_mib(c['after_load_kb']['RssFile'])} | "
            f"{_mib(pk['cpi_all']['RssAnon'] - a0)} / {_mib(pk[sampled]['RssAnon'] - a0)} | "
            f"{_secs(c['s_per_it_cpi_all'])} | {_secs(c['s_per_it_' + sampled])} |")
    lines += ["", "`first load s`: the load from datasets' prepared arrow files (converted beforehand, not timed "
              "here): header scan and decoding (and, for `on`, writing the cache); `cache hit s`: the second load "
              "of the same set, from the cache (its memory is what `anon held after load` shows for `on`). NaN: not "
              "applicable (`off` writes no map). The condensing peak is dominated by the matching network's "
              "activations on the real batch (classes x batch_real images), which class sampling bounds.", ""]
    return "\n".join(lines)


def parent(args) -> None:
    sys.path.insert(0, str(HERE))
    import torch
    from _machine import machine

    torch.set_num_threads(args.threads)  # recorded by machine(): the children run with this many

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="hf_lodc_scale_"))
    args.work_dir = str(work)
    available = int(args.available_gb * 1e9) if args.available_gb else mem_available_bytes()
    result = {"iterations": args.iterations, "iterations_all": args.iterations_all, "batch_real": args.batch_real,
              "cpi": args.cpi, "real_chunk": args.real_chunk, "syn_chunk": args.syn_chunk,
              "eval_per_class": args.eval_per_class, "available_bytes": available, "machine": machine(), "runs": []}
    t_all = time.perf_counter()
    try:
        for shape in args.shapes.split(","):
            classes, per_class, px = (int(v) for v in shape.lower().split("x"))
            ds = work / f"set_{shape}"
            made = ds / "generated.json"  # a set generated by an earlier run (--work kept) is reused
            wanted = {"shape": shape, "eval_per_class": args.eval_per_class}
            if made.is_file() and {k: json.loads(made.read_text()).get(k) for k in wanted} == wanted:
                gen_s = json.loads(made.read_text())["generate_s"]
            else:
                t = time.perf_counter()
                generate(ds, classes, per_class, px, args.eval_per_class, workers=args.gen_workers)
                gen_s = time.perf_counter() - t
                made.write_text(json.dumps({**wanted, "generate_s": gen_s, "workers": args.gen_workers}))
            parquet = sum(p.stat().st_size for p in (ds / "data").iterdir())
            prepare_s = _prepare(ds, args)
            predicted = decoded_bytes(classes, per_class, px, args.eval_per_class)
            for mode in ("off", "on"):
                cache = work / f"cache_{shape}_{mode}"
                r = {"shape": shape, "mode": mode, "generate_s": gen_s, "parquet_bytes": parquet,
                     "arrow_prepare_s": prepare_s, "decoded_bytes_predicted": predicted}
                skip = in_memory_skip_reason(predicted, available) if mode == "off" else None
                if skip:
                    r["skipped"] = skip
                else:
                    r["child"] = _run_child(ds, mode, cache, args)
                result["runs"].append(r)
                print(json.dumps(r), flush=True)
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    result["total_s"] = time.perf_counter() - t_all
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="10x100x32,20x200x32,40x400x32",
                    help="comma-separated CLASSESxPER_CLASSxPX sets to generate (default: three small ones)")
    ap.add_argument("--eval-per-class", type=int, default=5)
    ap.add_argument("--gen-workers", type=int, default=1,
                    help="processes writing the generated train split (one parquet shard each)")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--iterations-all", type=int, default=None,
                    help="iterations of the all-classes run (default: --iterations)")
    ap.add_argument("--real-chunk", type=int, default=None, help="LoDM real_chunk (default: the library's)")
    ap.add_argument("--syn-chunk", type=int, default=None, help="LoDM syn_chunk (default: the library's)")
    ap.add_argument("--available-gb", type=float, default=None,
                    help="memory the in-memory mode may take (default: MemAvailable of /proc/meminfo)")
    ap.add_argument("--batch-real", type=int, default=4)
    ap.add_argument("--cpi", type=int, default=5, help="classes_per_iteration of the sampled runs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--work", default=None, help="folder for the generated sets and caches (default: a temp one)")
    ap.add_argument("--out", default=str(HERE / "results" / "scale"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
    else:
        parent(args)


if __name__ == "__main__":
    main()
