#!/usr/bin/env python3
"""Build what a GPU lease brings along, in ``.lease/`` (git-ignored), each bundle under the carry limit.

    python benchmarks/gpu/pack.py                       # wheels + MNIST + CIFAR-10 + CIFAR-100 parts
    python benchmarks/gpu/pack.py --datasets mnist      # only what the MNIST lease shape needs
    python benchmarks/gpu/pack.py --smoke DIR           # a tiny lease folder for the CPU smoke test

Bundles (``lease.py --help`` says which to carry in which call):

* ``.lease/whl``: cp312 manylinux wheels of what the GPU image lacks (``datasets`` and its missing
  dependencies ``dill`` and ``multiprocess``, at the versions installed here, one version each) and
  a wheel of hf_lodc itself, which the lease installs with ``--no-deps`` over the image's own torch
  (2.11). Fetched with ``pip download --only-binary=:all:`` (needs PyPI), so run it where pip works.
* ``.lease/mnist``: the MNIST parquet files and card (~19 MiB): one call.
* ``.lease/<cifar>-1``, ``.lease/<cifar>-2``: CIFAR-10 / CIFAR-100 (~105 MiB) in two parts of at
  most 60 MiB; part 1 only gets unpacked by the first call, part 2 travels with the run.

Data parts hold ``datasets/<owner>/<name>/...`` as in the hub mirror (``--hub``, default
``$HF_LODC_LOCAL_HUB``), so lease.py merges them into ``.lease/hub`` and points ``HF_LODC_LOCAL_HUB``
there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from cells import DATASETS  # noqa: E402

MIB = 2**20
PART_LIMIT = 60 * MIB
CALL_LIMIT = 64 * MIB
# what the GPU image (KINDS.md's package list) lacks of hf_lodc's runtime needs
MISSING_ON_IMAGE = ("datasets", "dill", "multiprocess")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def tree_size() -> int:
    """Bytes of the working tree that travels with every call (tracked + untracked-not-ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file())


def wheels(out: Path, names=MISSING_ON_IMAGE) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    pins = [f"{n}=={metadata.version(n)}" for n in names]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(out), *[a for p in PLATFORMS for a in ("--platform", p)], *pins]
    subprocess.run(cmd, check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True)
    got = sorted(p.name for p in out.glob("*.whl"))
    stems = [g.split("-")[0].lower() for g in got]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        raise SystemExit(f"two versions of {sorted(dup)} in {out}: keep one (pip install refuses both)")
    return got


def split_dataset(hub: Path, key: str, lease: Path) -> list[Path]:
    """Copy one dataset into parts of <= 60 MiB (whole files; the card goes with the last part)."""
    src = hub / "datasets" / DATASETS[key]
    if not src.is_dir():
        raise SystemExit(f"dataset {DATASETS[key]!r} not in the hub mirror {hub}; pass --hub or set HF_LODC_LOCAL_HUB")
    files = sorted((f for f in src.rglob("*") if f.is_file()), key=lambda f: (f.suffix != ".parquet", f.name))
    parts: list[list[Path]] = [[]]
    for f in files:
        if f.stat().st_size > PART_LIMIT:
            raise SystemExit(f"{f} is {f.stat().st_size / MIB:.1f} MiB, over the {PART_LIMIT // MIB} MiB part limit")
        if sum(g.stat().st_size for g in parts[-1]) + f.stat().st_size > PART_LIMIT:
            parts.append([])
        parts[-1].append(f)
    names = [key] if len(parts) == 1 else [f"{key}-{i + 1}" for i in range(len(parts))]
    made = []
    for name, group in zip(names, parts):
        dst_root = lease / name
        shutil.rmtree(dst_root, ignore_errors=True)
        for f in group:
            dst = dst_root / "datasets" / DATASETS[key] / f.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
        made.append(dst_root)
    return made


def tiny_dataset(hub: Path, key: str, lease: Path, train_rows: int = 300, test_rows: int = 100) -> Path:
    """A few rows of each split (first rows of each parquet file), for the CPU smoke run."""
    import pyarrow.parquet as pq

    src = hub / "datasets" / DATASETS[key]
    dst_root = lease / key
    for f in src.rglob("*"):
        if not f.is_file():
            continue
        dst = dst_root / "datasets" / DATASETS[key] / f.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix == ".parquet":
            rows = test_rows if "test" in f.name else train_rows
            pf = pq.ParquetFile(f)
            table = next(pf.iter_batches(batch_size=rows))
            import pyarrow as pa

            pq.write_table(pa.Table.from_batches([table]), dst)
        else:
            shutil.copyfile(f, dst)
    return dst_root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hub", default=os.environ.get("HF_LODC_LOCAL_HUB", str(ROOT.parent / "shared" / "hub")))
    p.add_argument("--out", default=str(ROOT / ".lease"))
    p.add_argument("--datasets", default="mnist,cifar10,cifar100")
    p.add_argument("--no-wheels", dest="wheels", action="store_false")
    p.add_argument("--smoke", metavar="DIR", help="write a tiny MNIST lease folder to DIR instead (no wheels)")
    args = p.parse_args(argv)
    hub = Path(args.hub)
    if args.smoke:
        made = tiny_dataset(hub, "mnist", Path(args.smoke))
        print(f"smoke lease folder: {made}")
        return 0
    lease = Path(args.out)
    lease.mkdir(parents=True, exist_ok=True)
    manifest = {"bundles": {}}
    if args.wheels:
        manifest["wheels"] = wheels(lease / "whl")
        manifest["bundles"]["whl"] = size(lease / "whl")
    for key in [k for k in args.datasets.split(",") if k]:
        for part in split_dataset(hub, key, lease):
            manifest["bundles"][part.name] = size(part)
    tree = tree_size()
    manifest["working_tree"] = tree
    whl = manifest["bundles"].get("whl", size(lease / "whl") if (lease / "whl").exists() else 0)
    state = size(lease / "state.tar.gz") if (lease / "state.tar.gz").exists() else 0
    print(f"working tree {tree / MIB:.1f} MiB, wheels {whl / MIB:.1f} MiB, state {state / MIB:.1f} MiB")
    for name, b in manifest["bundles"].items():
        if name == "whl":
            continue
        runs_here = not name.endswith("-1")  # the part that travels with the run brings the wheels and state
        total = tree + b + ((whl + state) if runs_here else 0)
        flag = "OK" if total <= CALL_LIMIT else "OVER THE 64 MiB CALL LIMIT"
        print(f"  {name}: {b / MIB:.1f} MiB; its call carries {total / MIB:.1f} MiB in all: {flag}")
        if total > CALL_LIMIT:
            return 1
    (lease / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print("carry lists and commands: python benchmarks/gpu/lease.py --help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
