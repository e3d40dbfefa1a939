#!/usr/bin/env python
"""Fault catalogue: 100+ bad inputs and faults through the CLI and the Python API, classified automatically.

    HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/fault_catalogue.py            # all cases
    python benchmarks/fault_catalogue.py --only resume-other-dataset,api-condense-str-path
    python benchmarks/fault_catalogue.py --list

Every case is something a user can do wrong (or a fault the machine can throw at a run) and expects
one outcome, almost always a *clean error*: exit code 2 and one ``error: ...`` line from a recipe,
or an :class:`~hf_lodc.errors.HfLodcError` from the API. What actually happened is classified from
the exit code, stderr, the exception and the files left on disk:

* ``clean_error`` / ``ok``: the expected outcome (an ``ok`` case must succeed and leave a right result);
* ``traceback``: a Python traceback on stderr, an unexpected exit code, or a non-hf_lodc exception;
* ``lost_work``: the run condensed or evaluated, then failed without leaving its result on disk;
* ``silent_wrong``: exit 0 / a return value where it should have refused, or a result that
  contradicts its inputs (a NaN set evaluated to a number, a resume that ignored settings, ...);
* ``misleading``: a one-line error that blames the wrong thing, or a documented value refused;
* ``debris``: partial files left behind (``.tmp-iter_*`` checkpoints, a literal ``~`` folder);
* ``hang``: the case ran past its timeout.

The ``hub`` cases start the loopback Hub-compatible server of the tests (``tests/hubserver``) inside
the case's child and inject its faults (5xx, 429 with Retry-After, a connection dropped mid-upload or
mid-download, a commit applied whose reply is lost, another writer's commit between read and commit,
two processes pushing to one repo at once): a push or pull must end with the right content or one clear
error, never a card entry lost.

Tiny sizes throughout (3 classes of 8x8 images written by ``tests/datasets_factory.py``, one or two
iterations, one evaluation epoch), so the whole catalogue runs in a few minutes on 2 cores. It writes
``benchmarks/results/fault_catalogue.{json,md}`` and exits non-zero only if the catalogue itself crashes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CLASSES = ("clean_error", "ok", "traceback", "lost_work", "silent_wrong", "misleading", "debris", "hang")
PASSING = ("clean_error", "ok")
# severity order: the first flag a case raises is its class
SEVERITY = ("hang", "lost_work", "silent_wrong", "traceback", "debris", "misleading")
WORK_MARKERS = ("[hf_lodc] condensed in", "[eval] ")  # printed once condensation / an evaluation finished
PY = sys.executable


# ---------------------------------------------------------------------------------------------
# cases


@dataclass
class Case:
    id: str
    group: str  # the issue's class (resume, late, signal, two-runs, artefact, message, api, disk) or own
    description: str
    argv: list[str] | None = None  # CLI: script + arguments, "{name}" filled from the fixtures / case dir
    api: Callable[[dict], Any] | None = None  # API: fn(fixtures) -> value (raise = error)
    expect: str = "clean_error"  # or "ok"
    mention: str | None = None  # regex the error message must match (else: misleading)
    forbid: str | None = None  # regex it must not match
    out: str | None = None  # output dir the run works in ("{case}/out" ...): checked for lost work
    setup: Callable[[dict, Path], None] | None = None  # prepare the case dir (copies, mounts, a rival run)
    check: Callable[[dict, Path, Outcome], list[str]] | None = None  # extra flags from the result
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float = 120.0
    signal_after: tuple[str, int, float] | None = None  # (output regex, signal, delay s): send once seen
    fsize_limit: int | None = None  # RLIMIT_FSIZE in bytes for the subprocess
    teardown: Callable[[dict, Path], list[str]] | None = None  # runs last; may add flags

    @property
    def kind(self) -> str:
        return "cli" if self.argv is not None else "api"


@dataclass
class Outcome:
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    # API
    raised: str | None = None  # exception type name
    hf_error: bool = False
    message: str = ""
    returned: str | None = None  # repr of a return value (API), or a verdict string from the case

    def error_line(self) -> str:
        if self.raised is not None or self.returned is not None:
            return self.message
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith(("error:", "interrupted:")) or ": error:" in ln]
        return errs[-1] if errs else (lines[-1] if lines else "")


def _fmt(s: str, fx: dict, case_dir: Path) -> str:
    return s.replace("{case}", str(case_dir)).format(**fx) if "{" in s else s


# ---------------------------------------------------------------------------------------------
# fixtures


def build_fixtures(ws: Path) -> dict[str, str]:
    """Tiny datasets, a good artefact, a checkpoint, in ``ws``. Returns name -> path."""
    import datasets  # noqa: F401

    from tests.datasets_factory import OddRow, make_dataset, png_bytes, write_dataset

    d = ws / "data"
    fx: dict[str, str] = {"ws": str(ws), "py": PY, "repo": str(REPO)}

    def mk(name, **kw):
        fx[name] = str(make_dataset(d / name, **{"per_class": {"train": 6, "test": 2}, **kw}))

    mk("D")
    mk("D_other", seed=7)  # same shape and classes, other pixels
    mk("D4", num_classes=4)
    mk("D_grey", mode="L")
    mk("D16", size=(16, 16))
    mk("D_corrupt", odd={"train": {2: OddRow(corrupt="garbage")}})
    mk("D_float", label_type="float")
    mk("D_empty_class", num_classes=3, per_class={"train": [6, 6, 0], "test": 2})
    mk("D_notest", per_class={"train": 6})
    fx["D_unicode"] = str(make_dataset(d / "données ü 数据", per_class={"train": 6, "test": 2}))
    fx["D_spaces"] = str(make_dataset(d / "with spaces", per_class={"train": 6, "test": 2}))
    mk("D_badcard")
    _source_faults(d, fx, mk)
    _untrusted_pt(ws, fx)
    Path(fx["D_badcard"], "README.md").write_text("---\nlicense: [mit\n---\n")
    import datasets as hfds

    feats = hfds.Features({"image": hfds.Image(), "caption": hfds.Value("string")})
    fx["D_nolabel"] = str(write_dataset(d / "D_nolabel", {"train": {"image": [png_bytes("RGB", (8, 8), i)
                                                                            for i in range(4)],
                                                                  "caption": ["a", "b", "c", "d"]}}, feats))
    (d / "empty").mkdir(parents=True, exist_ok=True)
    fx["empty_dir"] = str(d / "empty")
    fx["a_file"] = str(d / "a_file.txt")
    Path(fx["a_file"]).write_text("not a dataset\n")
    # a home with a dataset in it (for ~ expansion)
    home = ws / "home"
    shutil.copytree(fx["D"], home / "tinydata")
    fx["home"] = str(home)
    # YAML configs
    y = ws / "yaml"
    y.mkdir()
    base = f"dataset: {fx['D']}\niterations: 1\nbatch_real: 4\neval_runs: 1\neval_epochs: 1\n"
    for name, text in {
        "ok": base,
        "syntax": base + "ipc: [1\n",
        "unknown": base + "ipcc: 2\n",
        "pytag": base + "ipc: !!python/object/apply:os.system ['true']\n",
        "list": "- dataset\n- ylecun/mnist\n",
        "dup": base + "iterations: 2\n",
        "wrongtype": base + "ipc: one\n",
        "section": "condense:\n  dataset: x\n",
        "nan_lr": base + "lr: .nan\n",
    }.items():
        (y / f"{name}.yaml").write_text(text)
    (y / "latin1.yaml").write_bytes(b"dataset: caf\xe9\n")
    fx.update({f"yaml_{p.stem}": str(p) for p in y.iterdir()})
    return fx


def _source_faults(d: Path, fx: dict, mk) -> None:
    """Datasets whose files are damaged in the ways a download or a hand-made shard can be."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.datasets_factory import OddRow

    def train_file(name: str) -> Path:
        return Path(fx[name]) / "data" / "train-00000-of-00001.parquet"

    mk("D_trunc_shard")
    b = train_file("D_trunc_shard").read_bytes()
    train_file("D_trunc_shard").write_bytes(b[: len(b) // 2])
    mk("D_odd_size", odd={"train": {5: OddRow(size=(16, 16))}})
    mk("D_odd_mode", odd={"train": {5: OddRow(mode="L")}})
    mk("D_label_range")  # a ClassLabel of 3 names holding the id 7 in row 4
    t = pq.read_table(train_file("D_label_range"))
    labels = t.column("label").to_pylist()
    labels[4] = 7
    i = t.schema.get_field_index("label")
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(labels, t.schema.field(i).type)),
                   train_file("D_label_range"))
    mk("D_shards_disagree")  # train split in two files, the second with the image column renamed
    f = train_file("D_shards_disagree")
    t = pq.read_table(f)
    half = t.num_rows // 2
    pq.write_table(t.slice(0, half), f.with_name("train-00000-of-00002.parquet"))
    pq.write_table(t.slice(half).rename_columns(["img" if c == "image" else c for c in t.column_names]),
                   f.with_name("train-00001-of-00002.parquet"))
    f.unlink()
    mk("D_trunc_png", odd={"train": {3: OddRow(corrupt="truncated")}})  # a PNG cut mid-data: header decodes
    mk("D_empty_png", odd={"train": {3: OddRow(corrupt="empty")}})
    mk("D_unlabelled", odd={"train": {4: OddRow(unlabelled=True)}})  # label -1 in a ClassLabel column
    mk("D_test_odd_size", odd={"test": {1: OddRow(size=(16, 16))}})  # the odd image is in the test split
    mk("D_shards_dtype")  # train split in two files, the second with the labels as strings
    f = train_file("D_shards_dtype")
    t = pq.read_table(f)
    half = t.num_rows // 2
    pq.write_table(t.slice(0, half), f.with_name("train-00000-of-00002.parquet"))
    rest = t.slice(half)
    i = rest.schema.get_field_index("label")
    pq.write_table(rest.set_column(i, "label", pa.array([str(v) for v in rest.column("label").to_pylist()])),
                   f.with_name("train-00001-of-00002.parquet"), )
    f.unlink()
    mk("D_empty_shard")  # a second train shard with the right schema and no rows: valid, 18 rows in all
    f = train_file("D_empty_shard")
    t = pq.read_table(f)
    pq.write_table(t, f.with_name("train-00000-of-00002.parquet"))
    pq.write_table(t.slice(0, 0), f.with_name("train-00001-of-00002.parquet"))
    f.unlink()
    mk("D_garbage_shard")  # the only train shard is not parquet at all
    train_file("D_garbage_shard").write_bytes(b"PAR1 this is not a parquet file, just text\n" * 8)


class _RunsCode:
    """Unpickling this runs ``touch <marker>``: a .pt set must never be read that way."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _untrusted_pt(ws: Path, fx: dict) -> None:
    import torch

    root = ws / "untrusted_pt"
    root.mkdir()
    fx["PT_marker"] = str(root / "code-ran")
    torch.save({"images": torch.zeros(6, 3, 8, 8), "labels": torch.arange(3).repeat(2),
                "extra": _RunsCode(fx["PT_marker"])}, root / "runs_code.pt")
    fx["PT_runs_code"] = str(root / "runs_code.pt")
    # safe pickles (no code) whose content is not the set: a string next to the tensors, and images as lists
    torch.save({"images": torch.zeros(6, 3, 8, 8), "labels": torch.arange(3).repeat(2), "note": "hello"},
               root / "extra_str.pt")
    fx["PT_extra_str"] = str(root / "extra_str.pt")
    torch.save({"images": [[0.0] * 8] * 6, "labels": [0, 1, 2, 0, 1, 2]}, root / "lists.pt")
    fx["PT_lists"] = str(root / "lists.pt")
    torch.save([torch.zeros(6, 3, 8, 8)], root / "a_list.pt")
    fx["PT_a_list"] = str(root / "a_list.pt")


def no_code_ran(fx, case_dir, o):
    return ["silent_wrong"] if Path(fx["PT_marker"]).exists() else []


def _untrusted_repos(ws: Path, fx: dict) -> None:
    """Copies of the good artefact (a repo folder) that try to make a read leave the folder."""
    root = ws / "untrusted"
    root.mkdir()
    secret = root / "secret.txt"
    secret.write_text("private\n")
    link = root / "link_out"
    shutil.copytree(fx["ART"], link)
    (link / "condensations" / "notes.txt").symlink_to(secret)
    fx["REPO_link_out"] = str(link)
    for name, path in [("dotdot", "../secret/train-*.parquet"), ("absolute", "/etc/passwd")]:
        dst = root / f"card_{name}"
        shutil.copytree(fx["ART"], dst)
        text = (dst / "README.md").read_text()
        text = text.replace("configs:\n", f"configs:\n- config_name: evil\n  data_files:\n  - split: train\n"
                                          f"    path: {path}\n", 1)
        (dst / "README.md").write_text(text)
        fx[f"REPO_card_{name}"] = str(dst)
    # a linked folder (not a file) that leads out of the repo folder
    link_dir = root / "link_dir"
    shutil.copytree(fx["ART"], link_dir)
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_text("private\n")
    (link_dir / "condensations" / "more").symlink_to(root / "outside", target_is_directory=True)
    fx["REPO_link_dir"] = str(link_dir)
    name = next(p.parent.name for p in Path(fx["ART"]).glob("condensations/*/hf_lodc.json"))
    # huge files (sparse: no disk used): a data file far larger than the set, and a 17 MiB card
    for key, rel, size in [("huge_data", f"condensations/{name}/images/train-00000-of-00001.parquet", 3 << 30),
                           ("huge_card", "README.md", 17 << 20),
                           ("huge_record", f"condensations/{name}/hf_lodc.json", 17 << 20)]:
        dst = root / key
        shutil.copytree(fx["ART"], dst)
        with open(dst / rel, "r+b") as fh:
            fh.truncate(size)
        fx[f"REPO_{key}"] = str(dst)
    # a card whose data_files use a Windows drive / a home path
    for key, path in [("drive", "C:/Windows/win.ini"), ("home", "~/.ssh/id_rsa")]:
        dst = root / f"card_{key}"
        shutil.copytree(fx["ART"], dst)
        text = (dst / "README.md").read_text()
        (dst / "README.md").write_text(text.replace("configs:\n", "configs:\n- config_name: evil\n  data_files:\n"
                                                                 f"  - split: train\n    path: {path}\n", 1))
        fx[f"REPO_card_{key}"] = str(dst)


_API_NEEDS_RUNS = {"api-pull-link-dir", "api-pull-huge-data", "api-pull-huge-card", "api-pull-huge-record",
                   "api-pull-card-drive", "api-pull-card-home", "hub-push-500-retried", "hub-push-502-gives-up",
                   "hub-push-429-retry-after", "hub-push-drop-upload", "hub-push-commit-landed-reply-lost",
                   "hub-push-revision-moved", "hub-push-two-writer-processes", "hub-pull-drop-download",
                   "hub-pull-truncated-download", "hub-pull-500-download", "hub-push-bad-token",
                   "hub-push-other-namespace", "hub-push-network-down", "hub-push-card-bad-yaml",
                   "hub-pull-card-dotdot", "hub-push-twice-unchanged", "hub-pull-no-revision",
                   "hub-pull-missing-repo", "hub-push-preupload-503", "hub-pull-tree-moved",
                   "api-pull-link-out", "api-pull-card-dotdot", "api-pull-card-absolute", "api-cd-from-disk-truncated", "api-cd-from-disk-results", "api-cd-nan-from-disk-eval"}


def needs_runs(cases: list[Case]) -> bool:
    """Whether any case uses the artefact / checkpoint fixtures (they take a CLI run each to make)."""
    for c in cases:
        if (c.id in _API_NEEDS_RUNS or c.setup in (copy_ckpt, copy_ckpt_truncated_rng, copy_art)
                or c.id == "signal-term-eval-existing-artefact"):
            return True
        if c.argv and any("{ART" in a or "{CKPT" in a for a in c.argv):
            return True
    return False


def build_runs(ws: Path, fx: dict, env: dict) -> None:
    """A good artefact (CLI) and a checkpoint at iteration 2 of 3 (the CLI's own Condenser)."""
    art = ws / "art" / "good"
    art_run = subprocess.Popen([PY, "recipes/condense.py", "--dataset", fx["D"], "--iterations", "2", "--batch-real",
                                "4", "--eval-runs", "1", "--eval-epochs", "1", "--output-dir", str(art), "--cpu"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code = (
        "import sys\n"
        "from hf_lodc.engine.config import RunConfig\n"
        "from hf_lodc.pipeline import load_data\n"
        "from hf_lodc.engine.condenser import Condenser\n"
        "from hf_lodc.launch import make_accelerator\n"
        "cfg = RunConfig.from_flat({'dataset': sys.argv[1], 'iterations': 3, 'batch_real': 4, 'checkpoint_every': 1})\n"
        "acc = make_accelerator(None, cpu=True)\n"
        "c = Condenser(load_data(cfg.data), cfg.condense, accelerator=acc, checkpoint_dir=sys.argv[2], progress=False)\n"
        "c.run()\n"
    )
    ck = ws / "ck" / "checkpoints"
    p = subprocess.run([PY, "-c", code, fx["D"], str(ck)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0 or not any(ck.glob("iter_*")):
        raise RuntimeError(f"fixture checkpoint failed:\n{p.stderr[-3000:]}")
    fx["CKPT"] = str(ck)
    _, err = art_run.communicate(timeout=300)  # the two fixture runs overlap
    if art_run.returncode != 0:
        raise RuntimeError(f"fixture artefact failed:\n{err[-3000:]}")
    fx["ART"] = str(art)
    # damaged / foreign artefacts
    _damaged_artefacts(ws, fx)
    _untrusted_repos(ws, fx)


def _damaged_artefacts(ws: Path, fx: dict) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    good = Path(fx["ART"])
    root = ws / "bad"
    root.mkdir()

    def variant(name: str, fn: Callable[[Path], None]) -> None:
        dst = root / name
        shutil.copytree(good, dst)
        fn(dst)
        fx[f"ART_{name}"] = str(dst)

    def truncate(p: Path):
        b = (p / "synset.safetensors").read_bytes()
        (p / "synset.safetensors").write_bytes(b[: len(b) // 2])

    def cfg_edit(fn):
        def apply(p: Path):
            c = json.loads((p / "config.json").read_text())
            fn(c)
            (p / "config.json").write_text(json.dumps(c))
        return apply

    def tensors(fn):
        def apply(p: Path):
            t = load_file(str(p / "synset.safetensors"))
            fn(t)
            save_file(t, str(p / "synset.safetensors"), metadata={"format_version": "1"})
        return apply

    def nan_first(t):
        k = next(k for k in t if k != "labels" and t[k].is_floating_point())
        t[k][0].fill_(float("nan"))

    def inf_all(t):
        k = next(k for k in t if k != "labels" and t[k].is_floating_point())
        t[k].fill_(float("inf"))

    def bad_labels(t):
        t["labels"] = torch.full_like(t["labels"], 7)

    def short_labels(t):
        t["labels"] = t["labels"][:-1].clone()

    variant("truncated", truncate)
    variant("empty_synset", lambda p: (p / "synset.safetensors").write_bytes(b""))
    variant("corrupt_results", lambda p: (p / "results.json").write_text("{not json"))
    variant("corrupt_history", lambda p: (p / "history.json").write_text("[1, 2"))
    variant("config_not_json", lambda p: (p / "config.json").write_text("{\"format_version\": 1, "))
    variant("config_list", lambda p: (p / "config.json").write_text("[1, 2, 3]"))
    variant("config_str_classes", cfg_edit(lambda c: c.update(num_classes="three")))
    variant("config_short_shape", cfg_edit(lambda c: c.update(image_shape=[3, 8])))
    variant("config_neg_ipc", cfg_edit(lambda c: c.update(images_per_class=-2)))
    variant("config_no_source", cfg_edit(lambda c: c.pop("source")))
    variant("config_source_str", cfg_edit(lambda c: c.update(source="uoft-cs/cifar10")))
    variant("config_version99", cfg_edit(lambda c: c.update(format_version=99)))
    variant("config_bad_param", cfg_edit(lambda c: c.update(parameterisation="wavelet")))
    variant("config_mean_short", cfg_edit(lambda c: c["source"].update(mean=[0.5])))
    variant("nan_factors", tensors(nan_first))
    variant("inf_factors", tensors(inf_all))
    variant("labels_out_of_range", tensors(bad_labels))
    variant("labels_short", tensors(short_labels))
    variant("no_synset", lambda p: (p / "synset.safetensors").unlink())

    def narrower(t):  # one factor of another shape than the record (a file from another run, a bad copy)
        k = next(k for k in t if k != "labels" and t[k].is_floating_point())
        t[k] = t[k][..., :-1].contiguous()

    variant("shape_mismatch", tensors(narrower))
    variant("config_empty", lambda p: (p / "config.json").write_bytes(b""))
    variant("synset_garbage", lambda p: (p / "synset.safetensors").write_bytes(os.urandom(4096)))
    variant("labels_float", tensors(lambda t: t.update(labels=t["labels"].float() + 0.5)))  # 0.5, 1.5: no class
    variant("labels_2d", tensors(lambda t: t.update(labels=t["labels"].reshape(-1, 1).contiguous())))
    variant("results_list", lambda p: (p / "results.json").write_text("[]"))
    variant("history_object", lambda p: (p / "history.json").write_text("{\"loss\": \"high\"}"))
    variant("config_ipc_mismatch", cfg_edit(lambda c: c.update(images_per_class=3)))
    variant("config_classes_mismatch", cfg_edit(lambda c: c.update(num_classes=5)))
    variant("config_null_shape", cfg_edit(lambda c: c.update(image_shape=None)))
    variant("no_config", lambda p: (p / "config.json").unlink())
    # an artefact whose source folder was moved away after it was made
    moved_src = ws / "data" / "D_moving"
    shutil.copytree(fx["D"], moved_src)
    variant("moved_source", cfg_edit(lambda c: (c["source"].update(dataset=str(moved_src),
                                                                    resolved_path=str(moved_src)),
                                                c["run"]["data"].update(dataset=str(moved_src)))))
    shutil.move(str(moved_src), str(ws / "data" / "D_moved_elsewhere"))
    # an artefact that recorded a relative dataset path (made from the data folder's parent)
    variant("relative_source", cfg_edit(lambda c: (c["source"].update(dataset="data/D", resolved_path=None),
                                                   c["run"]["data"].update(dataset="data/D"))))


# ---------------------------------------------------------------------------------------------
# case helpers

CONDENSE = ["recipes/condense.py", "--cpu"]
TINY = ["--iterations", "1", "--batch-real", "4", "--eval-runs", "1", "--eval-epochs", "1"]


def cond(*args: str, dataset: str = "{D}") -> list[str]:
    return [*CONDENSE, "--dataset", dataset, *TINY, *args]


def evaluate(src: str, *args: str) -> list[str]:
    return ["recipes/evaluate.py", src, "--cpu", "--runs", "1", "--epochs", "1", "--no-uint8", *args]


def copy_ckpt(fx: dict, case_dir: Path) -> None:
    shutil.copytree(fx["CKPT"], case_dir / "out" / "checkpoints")


def resume(*args: str, dataset: str = "{D}", iterations: str = "3") -> list[str]:
    return [*CONDENSE, "--dataset", dataset, "--iterations", iterations, "--batch-real", "4", "--eval-runs", "1",
            "--eval-epochs", "1", "--checkpoint-every", "1", "--output-dir", "{case}/out", "--resume", *args]


def copy_ckpt_truncated_rng(fx: dict, case_dir: Path) -> None:
    copy_ckpt(fx, case_dir)
    for f in (case_dir / "out" / "checkpoints").rglob("random_states_*.pkl"):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def copy_art(fx: dict, case_dir: Path) -> None:
    shutil.copytree(fx["ART"], case_dir / "out")


def finished_kept(fx, case_dir, o: Outcome) -> list[str]:
    """The finished artefact (2 iterations) must still be there, unchanged."""
    cfg = case_dir / "out" / "config.json"
    if not cfg.is_file():
        return ["lost_work"]
    same = (case_dir / "out" / "synset.safetensors").read_bytes() == (Path(fx["ART"]) / "synset.safetensors").read_bytes()
    return [] if same else ["lost_work"]


def resumed_anyway(fx, case_dir, o: Outcome) -> list[str]:
    return ["silent_wrong"] if o.rc == 0 and "resumed from" in o.stdout else []


def artefact_iterations_match(expected: int):
    def check(fx, case_dir, o):
        cfg = case_dir / "out" / "config.json"
        if o.rc != 0:
            return []
        if not cfg.is_file():
            return ["lost_work"]
        its = json.loads(cfg.read_text())["condense"].get("iterations")
        return [] if its == expected else ["silent_wrong"]
    return check


def no_debris(pattern: str, where: str = "{case}"):
    def check(fx, case_dir, o):
        root = Path(_fmt(where, fx, case_dir))
        return ["debris"] if root.exists() and list(root.rglob(pattern)) else []
    return check


def needs_artefact(fx, case_dir, o: Outcome) -> list[str]:
    """After work, the result must be on disk (the output dir, or a rescue dir the message names)."""
    out = case_dir / "out"
    if (out / "config.json").is_file() or "saved to" in o.stderr or "saved in" in o.stderr:
        return []
    return ["lost_work"]


def saved_ok(fx, case_dir, o: Outcome) -> list[str]:
    if o.rc == 0 and not (case_dir / "out" / "config.json").is_file():
        return ["silent_wrong"]
    return []


def mount_tmpfs(size: str, ro: bool = False):
    def setup(fx, case_dir: Path):
        m = case_dir / "mnt"
        m.mkdir(parents=True)
        opts = ("ro," if ro else "") + f"size={size}"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(m)], capture_output=True, text=True)
        if r.returncode != 0:  # no root: a read-only dir by permissions, or a file-size limit (see fsize cases)
            m.chmod(0o555)
    return setup


def umount(fx, case_dir: Path) -> list[str]:
    m = case_dir / "mnt"
    if os.path.ismount(m):
        subprocess.run(["umount", "-l", str(m)], capture_output=True)
    return []


def write_file(rel: str, text: str):
    def setup(fx, case_dir):
        p = case_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return setup


def foreign_dir(fx, case_dir):
    (case_dir / "out").mkdir(parents=True)
    (case_dir / "out" / "holiday.jpg").write_bytes(b"precious")


def keeps_foreign(fx, case_dir, o):
    f = case_dir / "out" / "holiday.jpg"
    return [] if f.is_file() and f.read_bytes() == b"precious" else ["lost_work"]


# a rival run for the two-runs-one-dir case
_RIVALS: dict[str, subprocess.Popen] = {}


def start_rival(fx, case_dir: Path):
    env = fx["_env"]
    log = open(case_dir / "rival.log", "w")
    argv = [PY, *CONDENSE, "--dataset", fx["D"], "--iterations", "60", "--batch-real", "4", "--eval-runs", "1",
            "--eval-epochs", "1", "--checkpoint-every", "5", "--output-dir", str(case_dir / "out")]
    p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    _RIVALS[str(case_dir)] = p
    t0 = time.time()
    while time.time() - t0 < 90:  # until the rival has started condensing
        if "method lodm" in (case_dir / "rival.log").read_text() or p.poll() is not None:
            break
        time.sleep(0.3)


def finish_rival(fx, case_dir: Path) -> list[str]:
    p = _RIVALS.pop(str(case_dir), None)
    if p is None:
        return []
    try:
        rc = p.wait(timeout=180)
    except subprocess.TimeoutExpired:
        p.kill()
        return ["hang"]
    text = (case_dir / "rival.log").read_text()
    if rc != 0 or not (case_dir / "out" / "config.json").is_file():
        return ["lost_work"]  # the first run was broken by the second
    cfg = json.loads((case_dir / "out" / "config.json").read_text())
    if cfg["condense"].get("iterations") != 60 and "Traceback" not in text:
        return ["silent_wrong"]  # the artefact on disk is the second run's, not the first one's
    return []


def killed_in_eval(fx, case_dir: Path) -> None:
    """A first run SIGKILLed during its (long) evaluation, leaving what it left."""
    argv = [PY, *CONDENSE, "--dataset", fx["D"], "--iterations", "3", "--batch-real", "4", "--eval-runs", "1",
            "--eval-epochs", "100000", "--output-dir", str(case_dir / "out")]
    log = case_dir / "first.log"
    with open(log, "w") as f:
        p = subprocess.Popen(argv, cwd=REPO, env=fx["_env"], stdout=f, stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 90 and p.poll() is None and "condensed in" not in log.read_text():
        time.sleep(0.2)
    time.sleep(1.0)
    p.kill()
    p.wait()


def resumed_into_evaluation(fx, case_dir, o: Outcome) -> list[str]:
    """The resume found the finished loop's checkpoint: no iteration ran again, the artefact is there."""
    if o.rc != 0:
        return []
    if "at iteration 3/3" not in o.stdout or "condensed in" in o.stdout:
        return ["lost_work"]  # the iterations were run again
    return [] if (case_dir / "out" / "config.json").is_file() else ["lost_work"]


def tilde_check(fx, case_dir, o):
    flags = []
    home = Path(fx["home"])
    if o.rc == 0 and not (home / "runs" / "tilde" / "config.json").is_file():
        flags.append("silent_wrong")
    if (case_dir / "~").exists():
        flags.append("debris")
    return flags


def no_output_written(fx, case_dir, o):
    return ["silent_wrong"] if o.rc == 0 else []


def eval_results_check(fx, case_dir, o):
    """A NaN / Inf set must not evaluate to a number."""
    return ["silent_wrong"] if o.rc == 0 and re.search(r"\d+\.\d+ \+- ", o.stdout) else []


def _tmp_left(fx, case_dir, o):
    return ["debris"] if list((case_dir).rglob(".tmp-iter_*")) else []


# ---------------------------------------------------------------------------------------------
# API case bodies (run in a forked child of the API worker; ``fx`` holds paths and loaded data)


def _data(fx):
    return fx["_data"]


def _ev_args(fx, **over):
    import torch

    d = _data(fx)
    x = torch.randn(6, *d.image_shape)  # (N, C, H, W): 2 images of each of 3 classes
    y = torch.arange(3).repeat(2)
    import hf_lodc

    args = dict(images=x, labels=y, test=d.test, mean=d.mean, std=d.std, num_classes=d.num_classes,
                cfg=hf_lodc.EvalConfig(eval_runs=1, eval_epochs=1))
    args.update(over)
    return args


def _ev(fx, **over):
    import hf_lodc

    a = _ev_args(fx, **over)
    return hf_lodc.evaluate_synthetic(a["images"], a["labels"], a["test"], a["mean"], a["std"], a["num_classes"],
                                      a["cfg"])


def _condense(fx, *args, **kw):
    import hf_lodc

    kw.setdefault("progress", False)
    base = {"method": "lodm", "ipc": 1, "rank": 2, "iterations": 1, "batch_real": 4}
    return hf_lodc.condense(*(args or (_data(fx),)), **{**base, **kw})


def _load(fx, *args, **kw):
    import hf_lodc

    return hf_lodc.load_image_classification(*(args or (fx["D"],)), **kw)


def _ok_load(fx, src):
    d = _load(fx, src)
    return "ok" if len(d.train) == 18 else f"bad: {len(d.train)} train rows"


def _same_as_tensors(fx, arg):
    a = _ev_args(fx)
    ref = _ev(fx, images=a["images"], labels=a["labels"])
    got = _ev(fx, **{"images": a["images"], "labels": a["labels"], arg: a[arg].numpy()})
    same = {m: r.accuracies for m, r in ref.items()} == {m: r.accuracies for m, r in got.items()}
    return "ok" if same else f"bad: numpy {arg} gave {got} vs {ref}"


def _nan_eval(fx):
    import torch

    recs = _ev(fx, images=torch.full((6, *_data(fx).image_shape), float("nan")))
    return f"silent: evaluated a NaN set to {[r.accuracy_mean for r in recs.values()]}"


def _cd(fx, **kw):
    import hf_lodc

    return hf_lodc.CondensedDataset(fx["D"], **kw)


def _cd_condensed(fx):
    cd = _cd(fx)
    cd.condense(method="lodm", ipc=1, rank=2, iterations=1, batch_real=4)
    return cd


def _api_cases() -> list[Case]:
    import numpy as np  # noqa: F401

    A = []

    def api(id_, desc, fn, expect="clean_error", mention=None, forbid=None, group="api"):
        A.append(Case(id=id_, group=group, description=desc, api=fn, expect=expect, mention=mention, forbid=forbid,
                      timeout=90))

    import torch

    api("api-condense-str-path", "condense('a/path', ...) instead of loaded data", lambda fx: _condense(fx, "a/path"),
        mention="data")
    api("api-condense-none", "condense(None)", lambda fx: _condense(fx, None), mention="data")
    api("api-condense-dict", "condense({'train': ...}) (a dict, not ImageClassificationData)",
        lambda fx: _condense(fx, {"train": _data(fx).train}))
    api("api-condense-unknown-method", "condense(method='lodmm')", lambda fx: _condense(fx, method="lodmm"),
        mention="lodmm")
    api("api-condense-ipc-str", "condense(ipc='1')", lambda fx: _condense(fx, ipc="1"), mention="ipc")
    api("api-condense-ipc-zero", "condense(ipc=0)", lambda fx: _condense(fx, ipc=0), mention="ipc")
    api("api-condense-ipc-bool", "condense(ipc=True)", lambda fx: _condense(fx, ipc=True), mention="ipc")
    api("api-condense-iter-neg", "condense(iterations=-1)", lambda fx: _condense(fx, iterations=-1),
        mention="iterations")
    api("api-condense-lr-nan", "condense(lr=nan)", lambda fx: _condense(fx, lr=float("nan")), mention="lr")
    api("api-condense-lr-neg", "condense(lr=-1.0)", lambda fx: _condense(fx, lr=-1.0), mention="lr")
    api("api-condense-momentum", "condense(momentum=1.5)", lambda fx: _condense(fx, momentum=1.5), mention="momentum")
    api("api-condense-rank-huge", "condense(rank=100) on 8x8 images", lambda fx: _condense(fx, rank=100),
        mention="rank")
    api("api-condense-rank-zero", "condense(rank=0)", lambda fx: _condense(fx, rank=0), mention="rank")
    api("api-condense-batch-zero", "condense(batch_real=0)", lambda fx: _condense(fx, batch_real=0),
        mention="batch_real")
    api("api-condense-init", "condense(init='gaussian')", lambda fx: _condense(fx, init="gaussian"),
        mention="gaussian")
    api("api-condense-mp", "condense(mixed_precision='fp8')", lambda fx: _condense(fx, mixed_precision="fp8"),
        mention="mixed_precision")
    api("api-condense-unknown-kw", "condense(itertions=5) (typo keyword)", lambda fx: _condense(fx, itertions=5),
        mention="itertions")
    api("api-condense-mtt-no-experts", "condense(method='lomtt') without expert_dir",
        lambda fx: _condense(fx, method="lomtt"), mention="expert")
    api("api-condense-dsa-typo", "condense(method='lodsa', dsa_strategy='color_crop_cutoutt')",
        lambda fx: _condense(fx, method="lodsa", dsa_strategy="color_crop_cutoutt"), mention="cutoutt")
    api("api-condense-float-images", "condense on data whose images are float, not uint8",
        lambda fx: _condense(fx, _float_data(fx)), mention="uint8|images")
    api("api-condense-labels-range", "condense on data with a label outside the class list",
        lambda fx: _condense(fx, _bad_label_data(fx)), mention="label")
    api("api-eval-label-count", "evaluate_synthetic with 5 labels for 6 images",
        lambda fx: _ev(fx, labels=torch.arange(3).repeat(2)[:5]), mention="labels")
    api("api-eval-num-classes", "evaluate_synthetic with num_classes=2 but labels 0..2",
        lambda fx: _ev(fx, num_classes=2), mention="num_classes")
    api("api-eval-num-classes-big", "evaluate_synthetic with num_classes=5 for a 3-class test set",
        lambda fx: _ev(fx, num_classes=5), mention="num_classes")
    # numpy arrays are accepted (converted; the same records as the tensors give)
    api("api-eval-numpy-images", "evaluate_synthetic with numpy images (accepted)",
        lambda fx: _same_as_tensors(fx, "images"), expect="ok")
    api("api-eval-numpy-labels", "evaluate_synthetic with numpy labels (accepted)",
        lambda fx: _same_as_tensors(fx, "labels"), expect="ok")
    api("api-eval-3d-images", "evaluate_synthetic with (N, H, W) images",
        lambda fx: _ev(fx, images=torch.randn(6, 8, 8)), mention="images")
    api("api-eval-channels", "evaluate_synthetic with 1-channel images for an RGB test set",
        lambda fx: _ev(fx, images=torch.randn(6, 1, 8, 8)), mention="channel|shape")
    api("api-eval-size", "evaluate_synthetic with 16x16 images for an 8x8 test set",
        lambda fx: _ev(fx, images=torch.randn(6, 3, 16, 16)), mention="size|shape")
    api("api-eval-nan", "evaluate_synthetic on a NaN set", _nan_eval, mention="NaN|finite")
    api("api-eval-empty", "evaluate_synthetic on an empty set",
        lambda fx: _ev(fx, images=torch.randn(0, 3, 8, 8), labels=torch.zeros(0, dtype=torch.long)),
        mention="empty|no images")
    api("api-eval-test-tuple", "evaluate_synthetic with test=(images, labels) tuple",
        lambda fx: _ev(fx, test=(_data(fx).test.images, _data(fx).test.labels)), mention="test")
    api("api-eval-test-none", "evaluate_synthetic with test=None", lambda fx: _ev(fx, test=None), mention="test")
    api("api-eval-mean-list", "evaluate_synthetic with mean/std as lists of the wrong length",
        lambda fx: _ev(fx, mean=[0.5], std=[0.5, 0.5]), mention="mean|std")
    api("api-eval-float-labels", "evaluate_synthetic with float labels",
        lambda fx: _ev(fx, labels=torch.arange(3).repeat(2).float()), mention="labels")
    api("api-eval-bad-model", "EvalConfig(eval_models=['nosuchnet'])",
        lambda fx: _ev(fx, cfg=__import__("hf_lodc").EvalConfig(eval_models=["nosuchnet"], eval_runs=1,
                                                                 eval_epochs=1)), mention="nosuchnet")
    api("api-eval-vit-8px", "evaluate_synthetic with vit_tiny_patch16_224 on 8x8 images",
        lambda fx: _ev(fx, cfg=__import__("hf_lodc").EvalConfig(eval_models=["vit_tiny_patch16_224"], eval_runs=1,
                                                                 eval_epochs=1)), mention="vit_tiny")
    api("api-eval-dsa-typo", "EvalConfig(eval_dsa_strategy='colr')",
        lambda fx: _ev(fx, cfg=__import__("hf_lodc").EvalConfig(eval_dsa_strategy="colr", eval_runs=1,
                                                                 eval_epochs=1)), mention="colr")
    api("api-load-int", "load_image_classification(123)", lambda fx: _load(fx, 123), mention="dataset")
    api("api-load-pathlib", "load_image_classification(pathlib.Path(folder)) works",
        lambda fx: _ok_load(fx, Path(fx["D"])), expect="ok")
    api("api-load-missing-dot", "load_image_classification('./nope')", lambda fx: _load(fx, "./nope"),
        mention="nope", forbid="cannot reach|on the Hub|offline")
    api("api-load-missing-bare", "load_image_classification('nope') (no such folder, no slash)",
        lambda fx: _load(fx, "nope_dir_xyz"), mention="nope_dir_xyz")
    api("api-load-max-zero", "load_image_classification(max_per_class=0)", lambda fx: _load(fx, max_per_class=0),
        mention="max_per_class")
    api("api-load-size-neg", "load_image_classification(image_size=-3)", lambda fx: _load(fx, image_size=-3),
        mention="image_size")
    api("api-load-split", "load_image_classification(train_split='training')",
        lambda fx: _load(fx, train_split="training"), mention="training")
    api("api-load-image-col", "load_image_classification(image_column='photo')",
        lambda fx: _load(fx, image_column="photo"), mention="photo")
    api("api-load-label-col", "load_image_classification(label_column='target')",
        lambda fx: _load(fx, label_column="target"), mention="target")
    api("api-load-corrupt", "load_image_classification on a dataset with a corrupt image",
        lambda fx: _load(fx, fx["D_corrupt"]), mention="row 2")
    api("api-load-holdout", "load_image_classification(holdout_fraction=1.5)",
        lambda fx: _load(fx, holdout_fraction=1.5), mention="holdout_fraction")
    api("api-load-tilde", "load_image_classification('~/tinydata') with HOME holding it",
        lambda fx: _ok_load(fx, "~/tinydata"), expect="ok")
    api("api-load-source-abs", "SourceInfo of a relative path records the absolute folder",
        lambda fx: _relative_source(fx), expect="ok")
    api("api-cd-int", "CondensedDataset(123)", lambda fx: __import__("hf_lodc").CondensedDataset(123),
        mention="source|dataset")
    api("api-cd-unknown-option", "CondensedDataset(folder, bogus=1)", lambda fx: _cd(fx, bogus=1), mention="bogus")
    api("api-cd-evaluate-first", "CondensedDataset(folder).evaluate() before condensing",
        lambda fx: _cd(fx).evaluate(runs=1, epochs=1), mention="condense")
    api("api-cd-from-disk-missing", "CondensedDataset.from_disk('nope')",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_disk(fx["ws"] + "/nope"), mention="nope")
    api("api-cd-from-disk-file", "CondensedDataset.from_disk(a file)",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_disk(fx["a_file"]), mention="a_file")
    api("api-cd-from-disk-truncated", "CondensedDataset.from_disk(truncated safetensors)",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_disk(fx["ART_truncated"]), mention="synset")
    api("api-cd-from-hub-nested", "CondensedDataset.from_hub('no/such/deep') (a path, not a repo id)",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_hub("no/such/deep"), mention="no/such/deep",
        forbid="Repo id|cannot reach")
    api("api-cd-from-hub-bare", "CondensedDataset.from_hub('nosuch_xyz') with no such folder",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_hub("nosuch_xyz"), mention="no such directory",
        forbid="cannot reach|connection")
    api("api-cd-from-disk-results", "CondensedDataset.from_disk(corrupt results.json)",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_disk(fx["ART_corrupt_results"]), mention="results")
    api("api-cd-eval-bad-model", "cd.evaluate(models=['nosuchnet']) after condensing",
        lambda fx: _cd_condensed(fx).evaluate(models=["nosuchnet"], runs=1, epochs=1), mention="nosuchnet")
    api("api-cd-eval-runs-neg", "cd.evaluate(runs=-1)", lambda fx: _cd_condensed(fx).evaluate(runs=-1, epochs=1),
        mention="runs")
    api("api-cd-condense-unknown", "cd.condense(itertions=1)", lambda fx: _cd(fx).condense(itertions=1),
        mention="itertions")
    api("api-cd-nan-from-disk-eval", "CondensedDataset.from_disk(NaN factors).evaluate()", lambda fx: _cd_nan(fx),
        mention="NaN|finite")
    api("api-pull-link-out", "from_hub(a repo folder holding a link to a file outside it)",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_hub(fx["REPO_link_out"]), mention="outside",
        group="untrusted")
    api("api-pull-card-dotdot", "from_hub(a repo folder whose card's data_files start with ../)",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_hub(fx["REPO_card_dotdot"]),
        mention=r"\.\./secret.*outside", group="untrusted")
    api("api-pull-card-absolute", "from_hub(a repo folder whose card's data_files name /etc/passwd)",
        lambda fx: __import__("hf_lodc").CondensedDataset.from_hub(fx["REPO_card_absolute"]),
        mention=r"/etc/passwd.*outside", group="untrusted")
    api("api-budget-types", "plan_budget('1', ...) wrong types", lambda fx: _plan_budget_bad(fx), mention="ipc")
    api("api-config-bool-ipc", "CondenseConfig(ipc=True)", lambda fx: __import__("hf_lodc").CondenseConfig(ipc=True),
        mention="ipc")
    return A + _more_api_cases() + _hub_cases()


# ---------------------------------------------------------------------------------------------
# the Hub failing (a loopback Hub-compatible server, tests/hubserver, started inside the case's child)

HUB_REPO = "alice/faulty"


def _hub(fx):
    """Start the loopback Hub in this (forked, thrown away) child and point huggingface_hub / datasets at it.
    Returns the server; the good artefact's set is ``_hub_set(fx)``."""
    import pytest

    from tests.conftest_hub import _UNSET, ALICE_TOKEN, BOB_TOKEN, _patch_clients, _reset_client_state, hub_env
    from tests.hubserver import HubServer

    server = HubServer(tokens={ALICE_TOKEN: "alice", BOB_TOKEN: "bob"}).start()
    home = Path(tempfile.mkdtemp(prefix="hub-home-", dir=fx["ws"]))
    for name in (*_UNSET, "HF_LODC_LOCAL_HUB"):
        os.environ.pop(name, None)
    os.environ.update(hub_env(server.endpoint, ALICE_TOKEN, home))
    _patch_clients(pytest.MonkeyPatch(), server.endpoint, home)  # never undone: the child exits after the case
    _reset_client_state()
    return server


def _hub_set(fx):
    import hf_lodc

    return hf_lodc.CondensedDataset.from_disk(fx["ART"])


def _push(cd, name="a", **kw):
    return cd.push_to_hub(HUB_REPO, config_name=name, **{"retry_wait": 0.01, "log": None, **kw})


def _card_names(server) -> set:
    import yaml

    text = server.read_file(HUB_REPO, "README.md").decode()
    front = yaml.safe_load(text.split("---\n")[1])
    return {c.get("config_name") for c in front.get("condensation") or []}


def _landed(server, *names) -> str:
    files = server.repo_state(HUB_REPO).files
    missing = [n for n in names if f"condensations/{n}/hf_lodc.json" not in files or n not in _card_names(server)]
    return f"bad: {missing} not in the repo and its card" if missing else "ok"


def _hub_retried(kind, n, **fault):
    """``n`` faults on ``kind``, then the push must land once, whole."""
    def fn(fx):
        server = _hub(fx)
        cd = _hub_set(fx)
        server.fail_next(kind, times=n, **fault)
        res = _push(cd)
        if res.commit_sha != server.repo_state(HUB_REPO).head:
            return "bad: the push returned another head than the repo's"
        if len(server.commits(HUB_REPO)) != 2:  # the repo's initial commit + exactly one push
            return f"bad: {len(server.commits(HUB_REPO)) - 1} commits for one push"
        return _landed(server, "a")
    return fn


def _hub_gives_up(fx):
    server = _hub(fx)
    cd = _hub_set(fx)
    _push(cd)
    before = server.repo_state(HUB_REPO).head
    server.fail_next("commit", status=502, times=20)
    try:
        _push(cd, "b", max_retries=2)
    finally:
        if server.repo_state(HUB_REPO).head != before:
            raise AssertionError("the repo moved although the push failed")


def _hub_revision_moved(fx):
    from huggingface_hub import HfApi

    server = _hub(fx)
    cd = _hub_set(fx)
    _push(cd)
    real, moved = HfApi.create_commit, []

    def racing(self, *a, **kw):
        if not moved:  # another writer's commit lands between the push's read of the head and its commit
            moved.append(server.put_files(HUB_REPO, {"notes/rival.txt": b"the other writer"}, message="rival"))
        return real(self, *a, **kw)

    HfApi.create_commit = racing
    _push(cd, "b")
    if "notes/rival.txt" not in server.repo_state(HUB_REPO).files:
        return "bad: the other writer's file was overwritten"
    if 412 not in [r.status for r in server.requests("commit")]:
        return "bad: the stale commit was not refused (no parent_commit check)"
    return _landed(server, "a", "b")


_WRITER = """
import sys, time
from pathlib import Path
import hf_lodc
ipc, go, ready = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
cd = hf_lodc.CondensedDataset(sys.argv[4])
cd.condense(method="lodm", ipc=ipc, rank=2, iterations=1, batch_real=4, progress=False)
ready.write_text("ready")
while not go.exists():
    time.sleep(0.05)
res = cd.push_to_hub(sys.argv[5], retry_wait=0.05, log=print)
print("PUSHED", res.config_name, res.commit_sha)
"""


def _hub_two_writers(fx):
    """Two processes condense the same source with ipc 1 and ipc 2 and push to one repo at the same moment:
    both condensations must end up in the repo and its card (the stale commit refused by parent_commit and
    re-planned on the other's), or one push fails naming the other writer - never one card entry lost."""
    server = _hub(fx)
    _push(_hub_set(fx), "first")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    d = Path(tempfile.mkdtemp(prefix="writers-", dir=fx["ws"]))
    procs = []
    for ipc in (1, 2):
        log = open(d / f"w{ipc}.log", "w")
        procs.append(subprocess.Popen([PY, "-c", _WRITER, str(ipc), str(d / "go"), str(d / f"ready{ipc}"), fx["D"],
                                       HUB_REPO], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=fx["ws"]))
    t0 = time.time()
    while not all((d / f"ready{i}").exists() for i in (1, 2)):
        if time.time() - t0 > 150 or any(p.poll() is not None for p in procs):
            break
        time.sleep(0.1)
    server.fail_next("commit", mode="delay", delay=2.0, times=2)  # both read the same head before either lands
    (d / "go").write_text("go")
    rcs = [p.wait(timeout=150) for p in procs]
    logs = [(d / f"w{i}.log").read_text() for i in (1, 2)]
    statuses = [r.status for r in server.requests("commit")]
    if rcs != [0, 0]:
        failed = [log for rc, log in zip(rcs, logs) if rc != 0]
        if any("another writer" in log for log in failed) and _landed(server, "first") == "ok":
            return "ok"  # a clean refusal naming the other writer is the other acceptable outcome
        return f"bad: writers exited {rcs}: {[log[-400:] for log in failed]}"
    names = [ln.split()[1] for log in logs for ln in log.splitlines() if ln.startswith("PUSHED")]
    if 412 not in statuses:
        return f"bad: no stale commit was refused, the pushes did not race (commit statuses {statuses})"
    return _landed(server, "first", *names)


def _hub_pull_fault(kind, **fault):
    """A download failing once: the right set (retried) or one clear error naming the repo."""
    def fn(fx):
        import hf_lodc
        import torch

        server = _hub(fx)
        cd = _hub_set(fx)
        _push(cd)
        server.fail_next(kind, times=1, **fault)
        back = hf_lodc.CondensedDataset.from_hub(HUB_REPO)
        return "ok" if torch.equal(back.images(), cd.images()) else "bad: the set read back differs"
    return fn


def _hub_bad_token(fx):
    _hub(fx)
    os.environ["HF_TOKEN"] = "hf_not_a_token"
    _push(_hub_set(fx))


def _hub_other_namespace(fx):
    _hub(fx)
    _hub_set(fx).push_to_hub("bob/not-yours", config_name="a", retry_wait=0.01, log=None)


def _hub_network_down(fx):
    server = _hub(fx)
    cd = _hub_set(fx)
    server.stop()
    _push(cd, max_retries=1)


def _hub_card_bad_yaml(fx):
    server = _hub(fx)
    server.create_repo(HUB_REPO)
    server.put_files(HUB_REPO, {"README.md": b"---\nlicense: [mit\n---\nhand written\n"})
    _push(_hub_set(fx))


def _hub_pull_card_dotdot(fx):
    import hf_lodc

    server = _hub(fx)
    _push(_hub_set(fx))
    text = server.read_file(HUB_REPO, "README.md").decode()
    evil = text.replace("configs:\n", "configs:\n- config_name: evil\n  data_files:\n  - split: train\n"
                                      "    path: ../../secret/*.parquet\n", 1)
    server.put_files(HUB_REPO, {"README.md": evil.encode()}, message="evil card")
    hf_lodc.CondensedDataset.from_hub(HUB_REPO)


def _hub_twice(fx):
    server = _hub(fx)
    cd = _hub_set(fx)
    first = _push(cd)
    second = _push(cd)
    if second.changed or second.commit_sha != first.commit_sha:
        return "bad: re-pushing the same set made a commit"
    return _landed(server, "a")


def _hub_no_revision(fx):
    import hf_lodc

    _hub(fx)
    _push(_hub_set(fx))
    hf_lodc.CondensedDataset.from_hub(HUB_REPO, revision="no-such-branch")


def _hub_missing_repo(fx):
    import hf_lodc

    _hub(fx)
    hf_lodc.CondensedDataset.from_hub("alice/never-pushed")


def _hub_read_moved(fx):
    """The repo moves (another push) between a reader's listing and its downloads: the reader reads the
    commit it listed (pinned sha), not a mix of two commits."""
    import hf_lodc
    import torch
    from huggingface_hub import HfApi

    server = _hub(fx)
    cd = _hub_set(fx)
    _push(cd)
    real, moved = HfApi.repo_info, []

    def moving(self, *a, **kw):
        info = real(self, *a, **kw)
        if not moved:
            moved.append(server.put_files(HUB_REPO, {"README.md": b"---\nlicense: mit\n---\nrewritten\n"},
                                          message="card rewritten by someone else"))
        return info

    HfApi.repo_info = moving
    back = hf_lodc.CondensedDataset.from_hub(HUB_REPO)
    return "ok" if torch.equal(back.images(), cd.images()) else "bad: read a mix of two commits"


def _hub_cases() -> list[Case]:
    H = []

    def hub(id_, desc, fn, expect="clean_error", mention=None, forbid=None, timeout=120):
        H.append(Case(id=id_, group="hub", description=desc, api=fn, expect=expect, mention=mention, forbid=forbid,
                      timeout=timeout))

    hub("hub-push-500-retried", "push: the commit answers 500 twice, then lands once (retried, said)",
        _hub_retried("commit", 2, status=500), expect="ok")
    hub("hub-push-502-gives-up", "push: the commit answers 502 every time: one error after bounded retries, "
        "the repo unchanged", _hub_gives_up, mention=r"failed after 3 attempt.*unchanged")
    hub("hub-push-429-retry-after", "push: 429 Too Many Requests with Retry-After: 1 on the commit, then lands",
        _hub_retried("commit", 1, status=429, headers={"Retry-After": "1"}), expect="ok")
    hub("hub-push-drop-upload", "push: the connection drops half-way through the LFS upload, then lands",
        _hub_retried("lfs_upload", 1, mode="drop"), expect="ok")
    hub("hub-push-commit-landed-reply-lost", "push: the commit is applied but its reply times out (dropped): "
        "the retry finds it there, no second commit", _hub_retried("commit", 1, mode="drop", when="after"),
        expect="ok")
    hub("hub-push-preupload-503", "push: the preupload call answers 503 once, then lands",
        _hub_retried("preupload", 1, status=503), expect="ok")
    hub("hub-push-revision-moved", "push: another commit lands between the push's read of the head and its "
        "commit: refused as stale (parent_commit), re-planned, both kept", _hub_revision_moved, expect="ok")
    hub("hub-push-two-writer-processes", "two processes push ipc 1 and ipc 2 condensations of one source to one "
        "repo at once: both in the repo and the card", _hub_two_writers, expect="ok", timeout=300)
    hub("hub-push-twice-unchanged", "push the same set twice: the second finds nothing to change, no commit",
        _hub_twice, expect="ok")
    hub("hub-push-bad-token", "push with an invalid token (401)", _hub_bad_token, mention="token")
    hub("hub-push-other-namespace", "push to another user's namespace (403)", _hub_other_namespace,
        mention=r"bob/not-yours.*(write|access)")
    hub("hub-push-network-down", "push while the Hub is unreachable", _hub_network_down,
        mention=r"failed after .*attempt")
    hub("hub-push-card-bad-yaml", "push into a repo whose hand-written README has broken YAML",
        _hub_card_bad_yaml, mention=r"README\.md.*YAML")
    hub("hub-pull-drop-download", "from_hub: the connection drops on one file download (retried)",
        _hub_pull_fault("resolve", mode="drop", method="GET"), expect="ok")
    hub("hub-pull-truncated-download", "from_hub: one download cut short mid-body (retried)",
        _hub_pull_fault("resolve", mode="truncate", method="GET"), expect="ok")
    hub("hub-pull-500-download", "from_hub: one download answers 500 (retried)",
        _hub_pull_fault("resolve", status=500, method="GET"), expect="ok")
    hub("hub-pull-tree-moved", "from_hub: the repo moves between the listing and the downloads: the listed "
        "commit is read", _hub_read_moved, expect="ok")
    hub("hub-pull-card-dotdot", "from_hub: a remote card whose data_files leave the repo (../)",
        _hub_pull_card_dotdot, mention=r"\.\./\.\./secret.*outside")
    hub("hub-pull-no-revision", "from_hub(revision='no-such-branch')", _hub_no_revision, mention="no-such-branch")
    hub("hub-pull-missing-repo", "from_hub('alice/never-pushed')", _hub_missing_repo, mention="alice/never-pushed")
    return H


def _more_api_cases() -> list[Case]:
    """Source-data faults through the API, and more untrusted repo folders."""
    import hf_lodc

    A = []

    def api(id_, desc, fn, expect="clean_error", mention=None, forbid=None, group="api"):
        A.append(Case(id=id_, group=group, description=desc, api=fn, expect=expect, mention=mention, forbid=forbid,
                      timeout=90))

    pull = hf_lodc.CondensedDataset.from_hub
    for id_, key, mention in [
        ("api-pull-link-dir", "REPO_link_dir", r"more.*outside"),
        ("api-pull-huge-data", "REPO_huge_data", r"bytes.*refusing"),
        ("api-pull-huge-card", "REPO_huge_card", r"README\.md.*bytes"),
        ("api-pull-huge-record", "REPO_huge_record", r"hf_lodc\.json.*bytes"),
        ("api-pull-card-drive", "REPO_card_drive", r"C:/Windows.*outside"),
        ("api-pull-card-home", "REPO_card_home", r"~/\.ssh.*outside"),
    ]:
        api(id_, f"from_hub(a repo folder: {id_[9:].replace('-', ' ')})", lambda fx, k=key: pull(fx[k]),
            mention=mention, group="untrusted")
    for id_, key, kw, mention in [
        ("api-load-truncated-shard", "D_trunc_shard", {}, r"train-00000-of-00001\.parquet.*(damaged|truncated)"),
        ("api-load-garbage-shard", "D_garbage_shard", {}, r"train-00000-of-00001\.parquet"),
        ("api-load-odd-size-error", "D_odd_size", {"mixed": "error"}, r"row 5 \(RGB 16x16\)"),
        ("api-load-label-out-of-range", "D_label_range", {}, r"row 4: 7"),
        ("api-load-shards-disagree", "D_shards_disagree", {}, r"train-0000[01]-of-00002\.parquet.*img"),
        ("api-load-truncated-png", "D_trunc_png", {}, r"row 3"),
        ("api-load-empty-shard", "D_empty_shard", {}, r"train-00001-of-00002\.parquet.*no rows"),
    ]:
        api(id_, f"load_image_classification: {id_[9:].replace('-', ' ')}",
            lambda fx, k=key, kw=kw: _load(fx, fx[k], **kw), mention=mention, group="data")
    api("api-load-unlabelled", "load_image_classification: a row labelled -1 is dropped, and noted",
        lambda fx: _counts(_load(fx, fx["D_unlabelled"]), None, "without a label"), expect="ok", group="data")
    api("api-load-shards-dtype", "load_image_classification: the second train shard has digit-string labels",
        lambda fx: _counts(_load(fx, fx["D_shards_dtype"]), [6, 6, 6]), expect="ok", group="data")
    return A


def _counts(d, want, note=None):
    """'ok' if the train labels count ``want`` per class (None: 17 rows in all) and the notes say ``note``."""
    import torch

    got = torch.bincount(d.train.labels, minlength=d.num_classes).tolist()
    if (want is not None and got != want) or (want is None and sum(got) != 17):
        return f"bad: train labels per class {got}"
    notes = " ".join(d.info.notes or [])
    return "ok" if note is None or note in notes else f"bad: notes {notes!r} do not say {note!r}"


def _float_data(fx):
    import hf_lodc

    d = _data(fx)
    return hf_lodc.ImageClassificationData(hf_lodc.LabeledImages(d.train.images.float() / 255, d.train.labels),
                                           d.test, d.info)


def _bad_label_data(fx):
    import hf_lodc

    d = _data(fx)
    lab = d.train.labels.clone()
    lab[0] = 9
    return hf_lodc.ImageClassificationData(hf_lodc.LabeledImages(d.train.images, lab), d.test, d.info)


def _relative_source(fx):
    os.chdir(fx["ws"])
    d = _load(fx, "data/D")
    p, given = d.info.resolved_path, d.info.dataset
    if not (p and os.path.isabs(p) and os.path.isabs(given)):
        return f"bad: source recorded as dataset={given!r}, resolved_path={p!r} (not absolute)"
    return "ok"


def _cd_nan(fx):
    import hf_lodc

    cd = hf_lodc.CondensedDataset.from_disk(fx["ART_nan_factors"])
    recs = cd.evaluate(runs=1, epochs=1, uint8=False)
    return f"silent: evaluated a NaN set to {[r.accuracy_mean for r in recs.values()]}"


def _plan_budget_bad(fx):
    import hf_lodc

    return hf_lodc.plan_budget("1", (3, 8, 8), rank=2)


def cli_cases() -> list[Case]:
    C: list[Case] = []

    def cli(id_, group, desc, argv, **kw):
        C.append(Case(id=id_, group=group, description=desc, argv=argv, **kw))

    # 1. resume with other settings / another dataset (a checkpoint at iteration 2 of 3)
    R = "resume"
    cli("resume-same-settings", R, "resume with the checkpoint's own settings (control)", resume(), expect="ok",
        setup=copy_ckpt, check=artefact_iterations_match(3), out="{case}/out")
    cli("resume-more-iterations", R, "resume with a larger --iterations (allowed)", resume(iterations="4"),
        expect="ok", setup=copy_ckpt, check=artefact_iterations_match(4), out="{case}/out")
    cli("resume-other-eval", R, "resume with other evaluation settings (allowed)", resume("--eval-lr", "0.02"),
        expect="ok", setup=copy_ckpt, check=artefact_iterations_match(3), out="{case}/out")
    # contrast is applied to the finished set after the loop (engine/identity.py NOT_IDENTITY): a resume with
    # another contrast computes exactly what a fresh run with it computes, so it is allowed (and recorded)
    cli("resume-other-contrast", R, "resume with --contrast none (allowed: applied after the loop)",
        resume("--contrast", "none"), expect="ok", setup=copy_ckpt, check=artefact_iterations_match(3),
        out="{case}/out")
    for id_, desc, argv in [
        ("resume-other-dataset", "resume with another dataset of the same shape", resume(dataset="{D_other}")),
        ("resume-other-max-per-class", "resume with another --max-per-class", resume("--max-per-class", "3")),
        ("resume-other-momentum", "resume with another --momentum", resume("--momentum", "0.9")),
        ("resume-fewer-iterations", "resume with fewer --iterations than the checkpoint ran",
         resume(iterations="1")),
        ("resume-other-dsa", "resume with another --dsa-strategy", resume("--dsa-strategy", "color_crop")),
        ("resume-other-classes", "resume with a dataset of 4 classes", resume(dataset="{D4}")),
        ("resume-other-image-size", "resume with --image-size 10", resume("--image-size", "10")),
        ("resume-other-seed", "resume with another --seed", resume("--seed", "3")),
        ("resume-other-lr", "resume with another --lr", resume("--lr", "0.5")),
        ("resume-other-method", "resume with --method dm", resume("--method", "dm", "--rank", "none")),
        ("resume-other-rank", "resume with --rank 1", resume("--rank", "1")),
        ("resume-other-init", "resume with --init noise", resume("--init", "noise")),
        ("resume-grey-dataset", "resume with a greyscale dataset", resume(dataset="{D_grey}")),
    ]:
        cli(id_, R, desc, argv, setup=copy_ckpt, check=resumed_anyway, out="{case}/out",
            mention="checkpoint|resum")  # refused for the checkpoint, not for another reason
    cli("resume-corrupt-checkpoint", R, "resume from a checkpoint whose state file is garbage", resume(),
        setup=lambda fx, cd: (copy_ckpt(fx, cd), [p.write_bytes(b"garbage") for p in
                                                 (cd / "out" / "checkpoints").rglob("*.pt")]),
        mention="checkpoint", out="{case}/out")
    cli("resume-truncated-rng", R, "resume from a checkpoint whose random_states_0.pkl is truncated",
        resume(), setup=copy_ckpt_truncated_rng, check=resumed_anyway, mention="random_states_0.pkl",
        out="{case}/out")
    cli("resume-finished-artefact", R, "--resume into a folder holding a finished artefact and no checkpoint",
        resume(iterations="2"), setup=copy_art, check=finished_kept, mention="finished|nothing to resume")
    cli("resume-no-output-dir", R, "--resume without --output-dir (nothing to resume from)", cond("--resume"),
        check=no_output_written, mention="output.dir")
    cli("checkpoint-no-output-dir", R, "--checkpoint-every without --output-dir",
        cond("--checkpoint-every", "1", "--iterations", "2"), check=no_output_written, mention="output.dir")

    # 2. errors knowable before the work starts
    L = "late"
    cli("late-eval-dsa-typo", L, "typo in --eval-dsa-strategy", cond("--eval-dsa-strategy", "color_crop_cutoutt",
                                                                     "--output-dir", "{case}/out"),
        mention="cutoutt", check=needs_artefact_if_work, out="{case}/out")
    cli("late-dsa-typo", L, "typo in --dsa-strategy (lodsa)", cond("--method", "lodsa", "--dsa-strategy", "colr",
                                                                  "--output-dir", "{case}/out"),
        mention="colr", out="{case}/out")
    cli("late-vit-small-images", L, "--eval-models vit_tiny_patch16_224 on 8x8 images",
        cond("--eval-models", "vit_tiny_patch16_224", "--output-dir", "{case}/out"), mention="vit_tiny",
        out="{case}/out")
    cli("late-unknown-eval-model", L, "--eval-models nosuchnet", cond("--eval-models", "nosuchnet"),
        mention="nosuchnet")
    cli("late-bad-repo-id", L, "--push-to-hub with an invalid repo id", cond("--push-to-hub", "not a repo!!",
                                                                            "--output-dir", "{case}/out"),
        mention="repo id", out="{case}/out")
    cli("late-push-no-token-no-dir", L, "--push-to-hub without a token and without --output-dir",
        cond("--push-to-hub", "alice/tiny"), mention="token")
    cli("late-push-no-token", L, "--push-to-hub without a token (with --output-dir)",
        cond("--push-to-hub", "alice/tiny", "--output-dir", "{case}/out"), mention="token", out="{case}/out")
    cli("late-output-dir-empty", L, "--output-dir '' (exits 0, saves nothing)", cond("--output-dir", ""),
        check=no_output_written, mention="output")
    cli("late-output-dir-tilde", L, "--output-dir ~/runs/tilde with checkpoints (HOME=ws/home)",
        cond("--output-dir", "~/runs/tilde", "--checkpoint-every", "1", "--iterations", "2"), expect="ok",
        check=tilde_check, cwd="{case}")
    cli("late-ipc-huge", L, "--ipc 100000000 (memory)", cond("--ipc", "100000000", "--method", "dm", "--rank",
                                                             "none"), mention="memory|ipc", timeout=90)
    cli("late-output-dir-file", L, "--output-dir names an existing file", cond("--output-dir", "{a_file}"),
        mention="a_file")
    cli("late-output-dir-foreign", L, "--output-dir is a folder of the user's own files",
        cond("--output-dir", "{case}/out"), setup=foreign_dir, check=keeps_foreign, mention="not an hf_lodc")
    cli("late-output-parent-file", L, "--output-dir under a file", cond("--output-dir", "{a_file}/sub"),
        mention="a_file")
    cli("late-log-with-unknown", L, "--log-with nosuchtracker", cond("--log-with", "nosuchtracker", "--output-dir",
                                                                     "{case}/out"), mention="nosuchtracker")
    cli("late-eval-backend", L, "--eval-backend nosuch", cond("--eval-backend", "nosuch"), mention="nosuch")
    cli("late-matching-model", L, "--matching-model nosuchnet", cond("--matching-model", "nosuchnet"),
        mention="nosuchnet")
    cli("late-hub-config-name", L, "--hub-config-name with a slash, pushing",
        cond("--push-to-hub", "alice/tiny", "--hub-config-name", "a/b", "--output-dir", "{case}/out"),
        mention="config", out="{case}/out")
    cli("late-update-card-local", L, "evaluate.py --update-card on a local set (refused after evaluating)",
        evaluate("{ART}", "--update-card"), mention="update-card", check=no_eval_before_refusal)
    cli("late-output-json-dir", L, "evaluate.py --output naming a directory", evaluate("{ART}", "--output", "{ws}"),
        mention="output", check=no_eval_before_refusal)

    # 3. signals
    S = "signal"
    long_eval = cond("--eval-epochs", "3000", "--output-dir", "{case}/out")
    cli("signal-term-during-eval", S, "SIGTERM during evaluation", long_eval, expect="clean_error",
        signal_after=(r"condensed in", signal.SIGTERM, 1.0), check=interrupted_saved, out="{case}/out", timeout=180)
    cli("signal-int-during-eval", S, "SIGINT (Ctrl-C) during evaluation", long_eval,
        signal_after=(r"condensed in", signal.SIGINT, 1.0), check=interrupted_saved, out="{case}/out", timeout=180)
    cli("signal-term-eval-existing-artefact", S, "SIGTERM during evaluation into an existing artefact directory",
        cond("--eval-epochs", "3000", "--iterations", "3", "--checkpoint-every", "1", "--output-dir", "{case}/out"),
        setup=lambda fx, cd: shutil.copytree(fx["ART"], cd / "out"),
        signal_after=(r"condensed in", signal.SIGTERM, 1.0), check=interrupted_no_stale, out="{case}/out",
        timeout=180)
    cli("signal-kill-during-eval-resume", S, "SIGKILL during a long evaluation, then --resume: straight to the "
        "evaluation from the finished loop's checkpoint", resume(iterations="3"), setup=killed_in_eval,
        expect="ok", check=resumed_into_evaluation, out="{case}/out", timeout=180)
    cli("signal-term-evaluate-saved-set", S, "SIGTERM to evaluate.py on a saved set after its first finished run",
        evaluate("{case}/out", "--runs", "2", "--epochs", "3000"), setup=copy_art,
        signal_after=(r"run 1/2", signal.SIGTERM, 0.5), expect="clean_error", check=interrupted_eval_kept,
        out="{case}/out", timeout=180)
    cli("signal-term-long-step", S, "SIGTERM inside a condensation step that takes minutes (IDC, 3000 rounds)",
        cond("--method", "idc", "--match-steps", "3000", "--n-data", "4", "--iterations", "3", "--eval-runs", "0",
             "--output-dir", "{case}/out"),
        signal_after=(r"method idc", signal.SIGTERM, 2.0), check=interrupted_checkpoint, out="{case}/out",
        timeout=60)
    cli("signal-term-during-condense", S, "SIGTERM during condensation (checkpoint expected)",
        cond("--iterations", "400", "--output-dir", "{case}/out"),
        signal_after=(r"method lodm", signal.SIGTERM, 3.0), check=interrupted_checkpoint, out="{case}/out",
        timeout=180)

    # 4. two runs into one output dir
    cli("two-runs-one-dir", "two-runs", "a second run into the output dir of a running one",
        cond("--output-dir", "{case}/out"), setup=start_rival, teardown=finish_rival,
        mention="another|lock|in use|pid", forbid="space", timeout=200)

    # 5. damaged / foreign artefacts for recipes/evaluate.py
    E = "artefact"
    for name, mention in [("truncated", "synset"), ("empty_synset", "synset"), ("corrupt_results", "results"),
                          ("corrupt_history", "history"), ("config_not_json", "config"), ("config_list", "config"),
                          ("config_str_classes", "num_classes"), ("config_short_shape", "image_shape"),
                          ("config_neg_ipc", "images_per_class"), ("config_no_source", "source"),
                          ("config_source_str", "source"), ("config_version99", "format_version"),
                          ("config_bad_param", "wavelet|parameterisation"), ("config_mean_short", "mean"),
                          ("labels_out_of_range", "label"), ("labels_short", "label"), ("no_synset", "synset"),
                          ("config_empty", "config"), ("synset_garbage", "synset"), ("labels_float", "label"),
                          ("labels_2d", "label"), ("results_list", "results"), ("history_object", "history"),
                          ("config_ipc_mismatch", "images_per_class|shape"),
                          ("config_classes_mismatch", "class_names|num_classes"), ("config_null_shape", "image_shape"),
                          ("no_config", "config")]:
        cli(f"artefact-{name.replace('_', '-')}", E, f"evaluate.py on an artefact: {name.replace('_', ' ')}",
            evaluate("{ART_" + name + "}"), mention=mention, check=eval_results_check)
    cli("artefact-nan-factors", E, "evaluate.py on an artefact with NaN factors", evaluate("{ART_nan_factors}"),
        mention="NaN|finite", check=eval_results_check)
    cli("artefact-inf-factors", E, "evaluate.py on an artefact with Inf factors", evaluate("{ART_inf_factors}"),
        mention="Inf|finite", check=eval_results_check)
    cli("artefact-missing-dot-path", E, "evaluate.py ./no/such/run (taken for a Hub id)",
        evaluate("./no/such/run"), mention="no/such/run", forbid="cannot reach|on the Hub|offline|HF_ENDPOINT")
    cli("artefact-missing-bare-name", E, "evaluate.py nosuch_run_xyz (one part: no such folder, not a Hub failure)",
        evaluate("nosuch_run_xyz"), mention="nosuch_run_xyz.*(no such|not found)",
        forbid="cannot reach|connection|on the Hub|offline|HF_ENDPOINT")
    cli("artefact-missing-nested", E, "evaluate.py no/such/deep/run (several parts: no Hub id validator traceback)",
        evaluate("no/such/deep/run"), mention="no/such/deep/run.*(no such|not found)",
        forbid="Repo id|HFValidation|cannot reach|on the Hub")
    cli("artefact-missing-trailing-slash", E, "evaluate.py nosuch_run_xyz/ (a folder, by its slash)",
        evaluate("nosuch_run_xyz/"), mention="nosuch_run_xyz.*(no such|not found)",
        forbid="Repo id|HFValidation|cannot reach|on the Hub")
    cli("artefact-shape-mismatch", E, "evaluate.py on an artefact whose factor has another shape than its config",
        evaluate("{ART_shape_mismatch}"), mention=r"synset\.safetensors.*shape", forbid="size mismatch|copying a param",
        check=eval_results_check)
    cli("artefact-pt-runs-code", "untrusted", "evaluate.py on a .pt whose pickle would run a command",
        evaluate("{PT_runs_code}", "--test-dataset", "{D}"), mention="other than tensors|could run code",
        check=no_code_ran)
    cli("artefact-empty-dir", E, "evaluate.py on an empty folder", evaluate("{empty_dir}"), mention="empty")
    cli("artefact-a-file", E, "evaluate.py on a file", evaluate("{a_file}"), mention="a_file")
    cli("artefact-moved-source", E, "evaluate.py on an artefact whose source folder was moved",
        evaluate("{ART_moved_source}"), mention="D_moving", forbid="cannot reach|on the Hub|offline|HF_ENDPOINT")
    cli("artefact-relative-source", E, "evaluate.py on an artefact recording a relative dataset path, from "
        "another directory", evaluate("{ART_relative_source}"), expect="ok", cwd="{case}")
    cli("artefact-models-unknown", E, "evaluate.py --models nosuchnet", evaluate("{ART}", "--models", "nosuchnet"),
        mention="nosuchnet")
    cli("artefact-runs-negative", E, "evaluate.py --runs -1", evaluate("{ART}", "--runs", "-1"), mention="runs")
    cli("artefact-epochs-zero", E, "evaluate.py --epochs 0", evaluate("{ART}", "--epochs", "0"), mention="epochs")
    cli("artefact-eval-max-zero", E, "evaluate.py --eval-max-per-class 0", evaluate("{ART}", "--eval-max-per-class",
                                                                                    "0"), mention="max.per.class")
    cli("artefact-foreign-mismatch", E, "evaluate.py on a foreign set with --test-dataset of other classes",
        evaluate("{D4}", "--test-dataset", "{D}"), mention="class")
    cli("artefact-foreign-no-test", E, "evaluate.py on a non-hf_lodc folder without --test-dataset",
        evaluate("{D}"), mention="test-dataset|not an hf_lodc")

    # 6. misleading messages / documented values refused
    M = "message"
    cli("msg-missing-dot-path", M, "--dataset ./nope (a path, not a Hub id)", cond(dataset="./nope"),
        mention="nope", forbid="cannot reach|on the Hub|offline|HF_ENDPOINT")
    cli("msg-missing-abs-path", M, "--dataset /no/such/folder", cond(dataset="/no/such/folder"),
        mention="/no/such/folder", forbid="cannot reach|on the Hub|offline|HF_ENDPOINT")
    cli("msg-local-hub-missing", M, "HF_LODC_LOCAL_HUB names a folder that does not exist",
        cond(dataset="ylecun/mnist"), env={"HF_LODC_LOCAL_HUB": "/no/such/hub"}, mention="/no/such/hub")
    cli("msg-local-hub-file", M, "HF_LODC_LOCAL_HUB names a file, not a folder", cond(dataset="ylecun/mnist"),
        env={"HF_LODC_LOCAL_HUB": "{a_file}"}, mention="is a file", forbid="does not exist")
    cli("msg-cli-spelling-empty-class", M, "a class without images, on the CLI: the remedy is spelled as a flag",
        cond(dataset="{D_empty_class}"), mention="--drop-empty-classes")
    cli("msg-cli-spelling-corrupt", M, "a corrupt image, on the CLI: the remedy is spelled as a flag",
        cond(dataset="{D_corrupt}"), mention="--skip-corrupt")
    cli("msg-hub-id-missing", M, "--dataset owner/missing with the mirror set and offline",
        cond(dataset="owner/missing-xyz"), mention="owner/missing-xyz")
    cli("msg-contrast-none", M, "--contrast none (a documented value)", cond("--contrast", "none",
                                                                            "--output-dir", "{case}/out"),
        expect="ok", check=saved_ok)
    cli("msg-dsa-none", M, "--dsa-strategy none (a documented value)", cond("--dsa-strategy", "none",
                                                                           "--output-dir", "{case}/out"),
        expect="ok", check=saved_ok)
    cli("msg-eval-dsa-none", M, "--eval-dsa-strategy none (a documented value)",
        cond("--eval-dsa-strategy", "none", "--output-dir", "{case}/out"), expect="ok", check=saved_ok)
    cli("msg-eval-runs-zero", M, "--eval-runs 0 (no evaluation; the config allows it)",
        cond("--eval-runs", "0", "--output-dir", "{case}/out"), expect="ok", check=saved_ok)
    cli("msg-rank-pixel-method", M, "--rank 3 with the pixel method dm (silently ignored)",
        cond("--method", "dm", "--rank", "3"), check=no_output_written, mention="rank")
    cli("msg-dataset-tilde", M, "--dataset ~/tinydata (HOME holds it)", cond("--output-dir", "{case}/out",
                                                                             dataset="~/tinydata"),
        expect="ok", check=saved_ok)
    cli("msg-dataset-unicode", M, "--dataset with a non-ASCII path", cond("--output-dir", "{case}/out",
                                                                          dataset="{D_unicode}"),
        expect="ok", check=saved_ok)
    cli("msg-dataset-spaces", M, "--dataset with spaces in the path", cond("--output-dir", "{case}/out",
                                                                           dataset="{D_spaces}"),
        expect="ok", check=saved_ok)
    cli("msg-dataset-empty", M, "--dataset ''", cond(dataset=""), mention="dataset")
    cli("msg-dataset-nested", M, "--dataset a/b/c (neither a folder nor a Hub id)", cond(dataset="a/b/c"),
        mention="a/b/c")
    cli("msg-output-dir-relative", M, "--output-dir rel/out from another cwd, with checkpoints",
        cond("--output-dir", "rel/out", "--checkpoint-every", "1", "--iterations", "2"), expect="ok", cwd="{case}",
        check=lambda fx, cd, o: [] if o.rc != 0 or (cd / "rel" / "out" / "config.json").is_file()
        else ["silent_wrong"])

    # 8. disk full / read-only while writing
    Dk = "disk"
    cli("disk-full-checkpoint", Dk, "checkpoint into a 16 KB tmpfs (disk full while writing it)",
        cond("--iterations", "2", "--checkpoint-every", "1", "--output-dir", "{case}/mnt/out"),
        setup=mount_tmpfs("16k"), teardown=umount, check=_tmp_left, mention="space|checkpoint")
    cli("disk-full-checkpoint-named", Dk, "checkpoint into a full 16 KB tmpfs: the message says the disk is full",
        cond("--iterations", "2", "--checkpoint-every", "1", "--output-dir", "{case}/mnt/out"),
        setup=mount_tmpfs("16k"), teardown=umount, check=_tmp_left, mention="no space left on device",
        forbid="unexpected pos")
    cli("disk-fsize-checkpoint", Dk, "checkpoint under RLIMIT_FSIZE 4 KB (file too large)",
        cond("--iterations", "2", "--checkpoint-every", "1", "--output-dir", "{case}/out"), fsize_limit=4096,
        check=_tmp_left, mention="checkpoint|large|space")
    cli("disk-read-only", Dk, "--output-dir on a read-only file system",
        cond("--output-dir", "{case}/mnt/out"), setup=mount_tmpfs("64k", ro=True), teardown=umount,
        mention="not writable")
    cli("disk-full-artefact", Dk, "artefact into an 8 KB tmpfs (rescued elsewhere)",
        cond("--output-dir", "{case}/mnt/out"), setup=mount_tmpfs("8k"), teardown=umount,
        mention="saved to")  # the finished set must be rescued, not only the full disk named
    cli("disk-full-logs", Dk, "--log-with tensorboard into a full tmpfs", cond("--log-with", "tensorboard",
                                                                               "--output-dir", "{case}/mnt/out"),
        setup=mount_tmpfs("16k"), teardown=umount, mention="space|tensorboard|not installed")

    # own: YAML / config files
    Y = "config"
    for name, mention in [("syntax", "line"), ("unknown", "ipcc"), ("pytag", "python"), ("list", "mapping"),
                          ("dup", "duplicate"), ("wrongtype", "ipc"), ("section", "dataset"), ("latin1", "UTF-8"),
                          ("nan_lr", "lr")]:
        cli(f"yaml-{name.replace('_', '-')}", Y, f"--config: {name.replace('_', ' ')}",
            [*CONDENSE, "--config", "{yaml_" + name + "}"], mention=mention)
    cli("yaml-missing", Y, "--config names a missing file", [*CONDENSE, "--config", "{ws}/nope.yaml"],
        mention="nope.yaml")
    cli("yaml-directory", Y, "--config names a directory", [*CONDENSE, "--config", "{ws}"], mention="config")
    for id_, args, mention in [
        ("opt-lr-nan", ["--lr", "nan"], "lr"), ("opt-lr-neg", ["--lr", "-1"], "lr"),
        ("opt-momentum-one", ["--momentum", "1"], "momentum"), ("opt-ipc-neg", ["--ipc", "-1"], "ipc"),
        ("opt-iterations-neg", ["--iterations", "-5"], "iterations"), ("opt-method", ["--method", "lodmm"], "lodmm"),
        ("opt-init", ["--init", "gaussian"], "gaussian"), ("opt-mixed-precision", ["--mixed-precision", "fp8"], "fp8"),
        ("opt-ipc-text", ["--ipc", "one"], "ipc"), ("opt-image-mode", ["--image-mode", "CMYK"], "image_mode"),
        ("opt-image-size-zero", ["--image-size", "0"], "image_size"),
        ("opt-holdout", ["--holdout-fraction", "2"], "holdout"), ("opt-eval-epochs", ["--eval-epochs", "0"], "epochs"),
        ("opt-batch-real", ["--batch-real", "0"], "batch_real"), ("opt-max-per-class", ["--max-per-class", "0"],
                                                                  "max_per_class"),
        ("opt-mixed", ["--mixed", "nope"], "mixed"), ("opt-unknown-flag", ["--bogus"], "bogus"),
        ("opt-eval-models-empty", ["--eval-models", ","], "eval_models"),
        ("opt-rank-huge", ["--rank", "100"], "rank"), ("opt-eval-lr-inf", ["--eval-lr", "inf"], "eval_lr"),
    ]:
        cli(id_, Y, f"option {' '.join(args)}", cond(*args), mention=mention)

    # own: data problems through the CLI
    Da = "data"
    for id_, ds, args, mention in [
        ("data-corrupt-image", "{D_corrupt}", [], "row 2"),
        ("data-no-label-column", "{D_nolabel}", ["--eval-split", "none"], "label"),
        ("data-float-labels", "{D_float}", [], "float"),
        ("data-empty-class", "{D_empty_class}", [], "no images"),
        ("data-no-test-split", "{D_notest}", [], "test"),
        ("data-train-split", "{D}", ["--train-split", "training"], "training"),
        ("data-image-column", "{D}", ["--image-column", "photo"], "photo"),
        ("data-label-column", "{D}", ["--label-column", "target"], "target"),
        ("data-bad-card", "{D_badcard}", [], "YAML"),
        ("data-empty-folder", "{empty_dir}", [], "no data files"),
        ("data-is-file", "{a_file}", [], "file"),
        ("data-eval-split-train", "{D}", ["--eval-split", "train"], "eval_split"),
        ("data-config-name", "{D}", ["--config-name", "nope"], "nope"),
        ("data-truncated-shard", "{D_trunc_shard}", [], r"train-00000-of-00001\.parquet.*(damaged|truncated)"),
        ("data-odd-size-refused", "{D_odd_size}", ["--mixed", "error"], r"row 5 \(RGB 16x16\)"),
        ("data-odd-mode-refused", "{D_odd_mode}", ["--mixed", "error"], r"row 5 \(L 8x8\)"),
        ("data-label-out-of-range", "{D_label_range}", [], r"row 4: 7"),
        ("data-shards-disagree", "{D_shards_disagree}", [], r"train-0000[01]-of-00002\.parquet.*img"),
    ]:
        cli(id_, Da, f"--dataset problem: {id_[5:].replace('-', ' ')}", cond(*args, dataset=ds), mention=mention)

    def noted(pattern: str):
        def check(fx, case_dir, o):  # accepted, and the artefact's source notes say what was done to which rows
            cfg = case_dir / "out" / "config.json"
            if o.rc != 0:
                return []
            notes = " ".join(json.loads(cfg.read_text())["source"].get("notes") or []) if cfg.is_file() else ""
            return [] if re.search(pattern, notes) else ["silent_wrong"]
        return check

    cli("data-odd-size-converted", Da, "an image of another size mid-split, default --mixed convert: converted, "
        "and the artefact notes the count", cond("--output-dir", "{case}/out", dataset="{D_odd_size}"), expect="ok",
        check=noted(r"converted 1 of 24 images to RGB 8x8"), out="{case}/out")
    cli("data-corrupt-skipped", Da, "a corrupt image with --skip-corrupt: skipped, and the artefact notes the count "
        "and row", cond("--skip-corrupt", "--output-dir", "{case}/out", dataset="{D_corrupt}"), expect="ok",
        check=noted(r"skipped 1 corrupt rows \(rows \[2\]"), out="{case}/out")

    cli("artefact-pt-extra-str", "untrusted", "evaluate.py on a .pt holding a string next to its tensors (a safe "
        "pickle: the note is ignored, the set evaluated)", evaluate("{PT_extra_str}", "--test-dataset", "{D}"),
        expect="ok")
    for id_, key, mention in [("artefact-pt-lists", "PT_lists", "images|tensor"),
                              ("artefact-pt-a-list", "PT_a_list", "images|dict|mapping")]:
        cli(id_, "untrusted", f"evaluate.py on a .pt holding {id_[12:].replace('-', ' ')} (a safe pickle, not a set)",
            evaluate("{" + key + "}", "--test-dataset", "{D}"), mention=mention, check=eval_results_check)

    for id_, ds, args, mention in [
        ("data-truncated-png", "{D_trunc_png}", [], r"row 3"),
        ("data-empty-png", "{D_empty_png}", [], r"row 3"),
        ("data-garbage-shard", "{D_garbage_shard}", [], r"train-00000-of-00001\.parquet"),
        ("data-test-odd-size-refused", "{D_test_odd_size}", ["--mixed", "error"], r"row 1 \(RGB 16x16\)"),
    ]:
        cli(id_, Da, f"--dataset problem: {id_[5:].replace('-', ' ')}", cond(*args, dataset=ds), mention=mention)
    cli("data-unlabelled-row", Da, "a row labelled -1 (no label) in a ClassLabel column: dropped, and the artefact "
        "notes it", cond("--output-dir", "{case}/out", dataset="{D_unlabelled}"), expect="ok",
        check=noted(r"dropped 1 rows without a label"), out="{case}/out")
    cli("data-shards-dtype", Da, "the second train shard stores the labels as digit strings: read as the same "
        "classes", cond("--output-dir", "{case}/out", dataset="{D_shards_dtype}"), expect="ok", check=saved_ok,
        out="{case}/out")

    # options no case used before (each refused before any work, naming the option)
    for id_, args, mention in [
        ("opt-batch-syn-zero", ["--batch-syn", "0"], "batch_syn"),
        ("opt-classes-per-iteration", ["--classes-per-iteration", "0"], "classes_per_iteration"),
        ("opt-cutmix-p", ["--cutmix-p", "2"], "cutmix_p"),
        ("opt-eval-momentum", ["--eval-momentum", "1.5"], "momentum"),
        ("opt-eval-weight-decay", ["--eval-weight-decay", "-1"], "weight_decay"),
        ("opt-eval-mixed-precision", ["--eval-mixed-precision", "fp8"], "fp8"),
        ("opt-eval-batch-zero", ["--eval-batch", "0"], "eval_batch"),
        ("opt-eval-protocol", ["--eval-protocol", "nosuch"], "nosuch"),
        ("opt-log-every", ["--log-every", "-1"], "log_every"),
        ("opt-lr-net-nan", ["--lr-net", "nan"], "lr_net"),
        ("opt-speed", ["--speed", "warp"], "warp"),
        ("opt-decoded-cache", ["--decoded-cache", "maybe"], "maybe"),
        ("opt-eval-at", ["--eval-at", "x"], "eval.at"),
        ("opt-holdout-seed", ["--holdout-seed", "abc"], "holdout.seed"),
    ]:
        cli(id_, Y, f"option {' '.join(args)}", cond(*args), mention=mention)
    for id_, args, mention in [
        ("eval-opt-protocol", ["--protocol", "nosuch"], "nosuch"),
        ("eval-opt-soft-loss", ["--soft-loss", "nosuch"], "nosuch"),
        ("eval-opt-hf-set-temperature", ["--temperature", "2"], r"--temperature.*hf_lodc artefact"),
        ("eval-opt-hf-set-split", ["--split", "test"], r"--split.*hf_lodc artefact"),
    ]:
        cli(id_, Y, f"evaluate.py on an hf_lodc artefact, option {' '.join(args)}", evaluate("{ART}", *args),
            mention=mention, check=no_eval_before_refusal)
    for id_, args, mention in [  # options of sets not made by hf_lodc, on such a set (a .pt)
        ("eval-opt-temperature", ["--temperature", "0"], "temperature"),
        ("eval-opt-labels-file", ["--labels-file", "{ws}/no_labels.pt"], "no_labels.pt"),
        ("eval-opt-lr-file", ["--lr-file", "{ws}/no_lr.pt"], "no_lr.pt"),
        ("eval-opt-zca-eps", ["--zca-eps", "-1"], "zca"),
        ("eval-opt-storage-bytes", ["--storage-bytes", "-5"], "storage"),
    ]:
        cli(id_, Y, f"evaluate.py on a .pt set, option {' '.join(args)}",
            evaluate("{PT_extra_str}", "--test-dataset", "{D}", *args), mention=mention, check=no_eval_before_refusal)

    # damaged checkpoints (a checkpoint at iteration 2 of 3, then one thing broken)
    def ck_edit(fn):
        def setup(fx, cd):
            copy_ckpt(fx, cd)
            fn(next((cd / "out" / "checkpoints").glob("iter_*")))
        return setup

    def _code_pickle(fx, it: Path):
        import torch

        torch.save({"state": _RunsCode(fx["PT_marker"] + "-ckpt")}, it / "condenser_state.pt")

    for id_, desc, fn, mention in [
        ("resume-missing-rng", "random_states_0.pkl deleted", lambda it: (it / "random_states_0.pkl").unlink(),
         "random_states"),
        ("resume-empty-checkpoint", "the iter_ folder empty",
         lambda it: [f.unlink() for f in list(it.iterdir())], "checkpoint"),
        ("resume-truncated-state", "condenser_state.pt cut in half",
         lambda it: (it / "condenser_state.pt").write_bytes((it / "condenser_state.pt").read_bytes()[:200]),
         "condenser_state|checkpoint"),
        ("resume-state-wrong-content", "condenser_state.pt a valid pickle of a list",
         lambda it: __import__("torch").save([1, 2, 3], it / "condenser_state.pt"), "condenser_state|checkpoint"),
        ("resume-state-empty", "condenser_state.pt of 0 bytes", lambda it: (it / "condenser_state.pt").write_bytes(b""),
         "condenser_state|checkpoint"),
    ]:
        cli(id_, R, f"resume from a checkpoint: {desc}", resume(), setup=ck_edit(fn), check=resumed_anyway,
            mention=mention, out="{case}/out")
    cli("resume-state-runs-code", "untrusted", "resume from a checkpoint whose condenser_state.pt would run a "
        "command when unpickled", resume(), setup=lambda fx, cd: (copy_ckpt(fx, cd), _code_pickle(
            fx, next((cd / "out" / "checkpoints").glob("iter_*")))), mention="condenser_state|checkpoint",
        check=lambda fx, cd, o: ["silent_wrong"] if Path(fx["PT_marker"] + "-ckpt").exists() else [],
        out="{case}/out")

    # own: the other recipes
    K = "recipes"
    exp = ["recipes/experts.py", "--cpu", "--dataset", "{D}", "--epochs", "1", "--num-experts", "1"]
    cli("experts-missing-dataset", K, "experts.py --dataset ./nope", ["recipes/experts.py", "--cpu", "--dataset",
                                                                      "./nope", "--output-dir", "{case}/e"],
        mention="nope", forbid="cannot reach|on the Hub|offline")
    cli("experts-zero", K, "experts.py --num-experts 0", [*exp[:4], "--num-experts", "0", "--output-dir",
                                                          "{case}/e"], mention="num_experts|experts")
    cli("experts-epochs-neg", K, "experts.py --epochs -1", [*exp[:4], "--epochs", "-1", "--output-dir", "{case}/e"],
        mention="epochs")
    cli("experts-output-file", K, "experts.py --output-dir a file", [*exp, "--output-dir", "{a_file}"],
        mention="a_file")
    cli("experts-model", K, "experts.py --model nosuchnet", [*exp, "--model", "nosuchnet", "--output-dir", "{case}/e"],
        mention="nosuchnet")
    cli("experts-dsa-typo", K, "experts.py --dsa-strategy colr", [*exp, "--dsa-strategy", "colr", "--output-dir",
                                                                  "{case}/e"], mention="colr")
    cli("experts-lr-nan", K, "experts.py --lr nan", [*exp, "--lr", "nan", "--output-dir", "{case}/e"], mention="lr")
    tea = ["recipes/teacher.py", "--cpu", "--dataset", "{D}", "--epochs", "1"]
    cli("teacher-missing-dataset", K, "teacher.py --dataset ./nope", ["recipes/teacher.py", "--cpu", "--dataset",
                                                                      "./nope", "--output", "{case}/t.pt"],
        mention="nope", forbid="cannot reach|on the Hub|offline")
    cli("teacher-epochs-zero", K, "teacher.py --epochs 0", [*tea[:4], "--epochs", "0", "--output", "{case}/t.pt"],
        mention="epochs")
    cli("teacher-model", K, "teacher.py --model nosuchnet", [*tea, "--model", "nosuchnet", "--output", "{case}/t.pt"],
        mention="nosuchnet")
    cli("teacher-output-not-pt", K, "teacher.py --output t.txt", [*tea, "--output", "{case}/t.txt"], mention=r"\.pt")
    cli("teacher-output-folder-missing", K, "teacher.py --output into a folder that does not exist",
        [*tea, "--output", "{case}/missing/t.pt"], mention="does not exist")
    cli("teacher-protocol", K, "teacher.py --protocol nope", [*tea, "--protocol", "nope", "--output", "{case}/t.pt"],
        mention="nope")
    cli("teacher-push-bad-repo", K, "teacher.py --push-to-hub 'not a repo'",
        [*tea, "--push-to-hub", "not a repo", "--output", "{case}/t.pt"], mention="not a repo")
    cont = ["recipes/continual.py", "--cpu", "--dataset", "{D}", "--iterations", "1", "--eval-epochs", "1",
            "--eval-runs", "1", "--seeds", "1", "--memory-ipc", "1", "--batch-real", "4"]
    cli("continual-tasks-zero", K, "continual.py --tasks 0", [*cont, "--tasks", "0", "--output-dir", "{case}/c"],
        mention="tasks")
    cli("continual-tasks-too-many", K, "continual.py --tasks 5 for 3 classes",
        [*cont, "--tasks", "5", "--output-dir", "{case}/c"], mention="tasks|classes")
    cli("continual-no-output", K, "continual.py without --output-dir", [*cont, "--tasks", "1"], mention="output")
    cli("continual-methods", K, "continual.py --methods nosuch", [*cont, "--tasks", "1", "--methods", "nosuch",
                                                                 "--output-dir", "{case}/c"], mention="nosuch")
    cli("continual-memory-zero", K, "continual.py --memory-ipc 0", [*cont, "--tasks", "1", "--memory-ipc", "0",
                                                                   "--output-dir", "{case}/c"], mention="memory_ipc")
    cli("mtt-missing-experts", K, "condense.py --method lomtt --expert-dir ./nope",
        cond("--method", "lomtt", "--expert-dir", "./nope"), mention="nope")
    cli("mtt-garbage-experts", K, "condense.py --method lomtt --expert-dir a folder of garbage",
        cond("--method", "lomtt", "--expert-dir", "{case}/ex"), setup=write_file("ex/meta.json", "{garbage"),
        mention="expert")
    return C


def needs_artefact_if_work(fx, case_dir, o):
    return needs_artefact(fx, case_dir, o) if o.rc not in (0, None) and _did_work(o) else []


def no_eval_before_refusal(fx, case_dir, o):
    return ["lost_work"] if o.rc != 0 and "[eval] " in (o.stdout + o.stderr) else []


def interrupted_saved(fx, case_dir, o):
    flags = []
    if not o.error_line().strip() or o.error_line().strip() in ("interrupted:", "interrupted: "):
        flags.append("misleading")
    if not (case_dir / "out" / "config.json").is_file():
        flags.append("lost_work")  # the finished condensation is gone
    return flags


def interrupted_no_stale(fx, case_dir, o, iterations: int = 3):
    """Into a directory that held an older artefact: no stale checkpoint may stay beside the new set. This
    run's final checkpoint may, when the message says so: --resume then goes straight to the evaluation."""
    flags = interrupted_saved(fx, case_dir, o)
    ckpt = case_dir / "out" / "checkpoints"
    if ckpt.exists() and (case_dir / "out" / "config.json").is_file():
        kept = sorted(p.name for p in ckpt.glob("iter_*"))
        announced = "with --resume evaluates it (its final checkpoint is kept" in o.stderr
        if not announced or kept != [f"iter_{iterations:07d}"]:
            flags.append("debris")
    return flags


def interrupted_eval_kept(fx, case_dir, o):
    """evaluate.py stopped after a finished run: the saved set is intact and the finished run is kept (said)."""
    flags = []
    if not (case_dir / "out" / "config.json").is_file():
        flags.append("lost_work")  # the set itself
    if not (case_dir / "out" / "checkpoints" / "eval_journal.json").is_file():
        flags.append("lost_work")  # the finished run
    if "runs that finished are kept in" not in o.stderr:
        flags.append("misleading")
    return flags


def interrupted_checkpoint(fx, case_dir, o):
    if o.rc == 130 and list((case_dir / "out" / "checkpoints").glob("iter_*")) and "Resume with" in o.stderr:
        return []
    return ["lost_work"]


def all_cases() -> list[Case]:
    cases = cli_cases() + _api_cases()
    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise RuntimeError(f"duplicate case ids: {sorted(dup)}")
    for c in cases:  # CLI cases get the work-lost check when they write somewhere
        if c.kind == "cli" and c.check is None and c.out:
            c.check = needs_artefact_if_work
    return cases


# ---------------------------------------------------------------------------------------------
# running and classifying


def _did_work(o: Outcome) -> bool:
    text = o.stdout + o.stderr
    return any(m in text for m in WORK_MARKERS)


def run_cli(case: Case, fx: dict, case_dir: Path, env: dict) -> Outcome:
    argv = [PY, *[_fmt(a, fx, case_dir) for a in case.argv]]
    argv[1] = str(REPO / argv[1])  # the recipe, from any working directory
    e = {**env, **{k: _fmt(v, fx, case_dir) for k, v in case.env.items()}}
    cwd = _fmt(case.cwd, fx, case_dir) if case.cwd else str(REPO)
    limit = case.fsize_limit

    def preexec():
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python installs its KeyboardInterrupt handler on start
        if limit:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across exec: writes fail with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    t0 = time.time()
    p = subprocess.Popen(argv, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=preexec, errors="replace")
    out: list[str] = []
    err: list[str] = []
    seen = threading.Event()

    def pump(stream, sink):
        for line in iter(stream.readline, ""):
            sink.append(line)
            if case.signal_after and re.search(case.signal_after[0], line):
                seen.set()

    threads = [threading.Thread(target=pump, args=(p.stdout, out), daemon=True),
               threading.Thread(target=pump, args=(p.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    timed_out = False
    if case.signal_after:
        if seen.wait(case.timeout):
            time.sleep(case.signal_after[2])
            if p.poll() is None:
                p.send_signal(case.signal_after[1])
    try:
        p.wait(timeout=max(1.0, case.timeout - (time.time() - t0)))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    for t in threads:
        t.join(timeout=5)
    return Outcome(rc=p.returncode, stdout="".join(out), stderr="".join(err), seconds=time.time() - t0,
                   timed_out=timed_out)


class Zygote:
    """A process that has imported hf_lodc (torch, datasets, accelerate, timm) once and forks one child
    per CLI case; the child runs the recipe as ``__main__`` with the case's argv, env, cwd and limits,
    its stdout/stderr in files. Saves the ~5-10 s interpreter start of every case; ``--fresh`` runs
    each case as a new ``python`` process instead."""

    def __init__(self, env: dict):
        self.p = subprocess.Popen([PY, str(Path(__file__).resolve()), "--zygote"], cwd=REPO, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError("the zygote did not start")

    def start(self, spec: dict) -> int:
        self.p.stdin.write(json.dumps(spec) + "\n")
        self.p.stdin.flush()
        return int(self.p.stdout.readline().split()[1])  # "pid N"

    def wait(self) -> int:
        return int(self.p.stdout.readline().split()[1])  # "rc N"

    def close(self) -> None:
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.p.kill()


def zygote_main() -> int:
    import runpy

    import torch

    torch.set_num_threads(1)
    import accelerate  # noqa: F401
    import datasets  # noqa: F401

    import hf_lodc
    import hf_lodc.pipeline  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        spec = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the case
            code = 1
            try:
                os.setsid()
                # a catalogue started in the background (`cmd &`) inherits SIGINT ignored: give the case
                # the handler an interactive `python` has, so Ctrl-C cases test the recipe, not the shell
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                fo = os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                fe = os.open(spec["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fo, 1)
                os.dup2(fe, 2)
                sys.stdout = open(1, "w", buffering=1, closefd=False)
                sys.stderr = open(2, "w", buffering=1, closefd=False)
                os.environ.clear()
                os.environ.update(spec["env"])
                os.chdir(spec["cwd"])
                if spec.get("fsize"):
                    import resource

                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], resource.getrlimit(
                        resource.RLIMIT_FSIZE)[1]))
                sys.argv = list(spec["argv"])
                try:
                    runpy.run_path(spec["argv"][0], run_name="__main__")
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                    if not isinstance(e.code, (int, type(None))):
                        print(e.code, file=sys.stderr)
                except KeyboardInterrupt:
                    traceback.print_exc()
                    code = 130
                except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
                    traceback.print_exc()
                    code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        print(f"rc {rc}", flush=True)
    return 0


def run_cli_forked(case: Case, fx: dict, case_dir: Path, env: dict, zygote: Zygote) -> Outcome:
    argv = [_fmt(a, fx, case_dir) for a in case.argv]
    argv[0] = str(REPO / argv[0])
    out_f, err_f = case_dir / "stdout.txt", case_dir / "stderr.txt"
    spec = {"argv": argv, "env": {**env, **{k: _fmt(v, fx, case_dir) for k, v in case.env.items()}}, "cwd": _fmt(case.cwd, fx, case_dir) if case.cwd else str(REPO),
            "fsize": case.fsize_limit, "stdout": str(out_f), "stderr": str(err_f)}
    t0 = time.time()
    pid = zygote.start(spec)
    result: dict[str, int] = {}
    waiter = threading.Thread(target=lambda: result.setdefault("rc", zygote.wait()), daemon=True)
    waiter.start()
    sent = False
    timed_out = False
    while waiter.is_alive():
        waiter.join(0.2)
        if time.time() - t0 > case.timeout and waiter.is_alive():
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            waiter.join(30)
            break
        if case.signal_after and not sent and out_f.exists():
            text = out_f.read_text(errors="replace") + err_f.read_text(errors="replace")
            if re.search(case.signal_after[0], text):
                time.sleep(case.signal_after[2])
                try:
                    os.kill(pid, case.signal_after[1])
                except ProcessLookupError:
                    pass
                sent = True
    rc = result.get("rc")
    return Outcome(rc=rc, stdout=out_f.read_text(errors="replace") if out_f.exists() else "",
                   stderr=err_f.read_text(errors="replace") if err_f.exists() else "", seconds=time.time() - t0,
                   timed_out=timed_out)


def classify(case: Case, o: Outcome, fx: dict, case_dir: Path) -> tuple[str, list[str]]:
    flags: list[str] = []
    if o.timed_out:
        flags.append("hang")
    if case.kind == "cli":
        tb = "Traceback (most recent call last)" in o.stderr
        if tb or (o.rc not in (0, 2, 130) and not o.timed_out):
            flags.append("traceback")
        saved_elsewhere = "saved to" in o.stderr or "saved in" in o.stderr
        if o.rc != 0 and _did_work(o) and "lost_work" not in flags and not saved_elsewhere:
            # it condensed / evaluated, then failed: the result must be on disk (its output dir, or a
            # rescue dir the message names); without an output dir nothing could keep it
            if case.out is None or not (Path(_fmt(case.out, fx, case_dir)) / "config.json").is_file():
                flags.append("lost_work")
        refused = o.rc not in (0, None) and not o.timed_out
    else:
        if o.raised is not None and not o.hf_error:
            flags.append("traceback")
        if o.returned is not None and o.returned.startswith(("silent", "bad")):
            flags.append("silent_wrong")
        refused = o.raised is not None
    if case.check is not None and not o.timed_out:
        try:
            flags += case.check(fx, case_dir, o)
        except Exception as e:  # noqa: BLE001 - a check that cannot run says so
            flags.append("traceback")
            o.message += f" [check failed: {type(e).__name__}: {e}]"
    line = o.error_line()
    if case.expect == "clean_error":
        if not refused and not o.timed_out:
            flags.append("silent_wrong")
        elif refused and not flags:
            msg = re.sub(r"^(error|interrupted):\s*", "", line.split(": error: ")[-1])
            if (not msg.strip() or (case.mention and not re.search(case.mention, msg, re.IGNORECASE))
                    or (case.forbid and re.search(case.forbid, msg))
                    or (case.kind == "api" and "\n" in o.message.strip())):
                flags.append("misleading")
    elif case.expect == "ok" and refused and not flags:
        flags.append("misleading")  # a valid input was refused
    for f in SEVERITY:
        if f in flags:
            return f, flags
    return case.expect, flags


def run_api_worker(ws: Path, ids: list[str], timeout: float) -> dict[str, dict]:
    """Run API cases, each in a forked child of one process that has imported hf_lodc and loaded the data."""
    import multiprocessing as mp

    import torch

    torch.set_num_threads(1)
    import hf_lodc

    fx = json.loads((ws / "fixtures.json").read_text())
    import warnings

    warnings.simplefilter("ignore")
    fx["_data"] = hf_lodc.load_image_classification(fx["D"])
    cases = {c.id: c for c in _api_cases()}
    ctx = mp.get_context("fork")
    results = {}
    for cid in ids:
        case = cases[cid]
        r, w = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_api_child, args=(case.api, fx, w))
        t0 = time.time()
        proc.start()
        w.close()
        got = None
        if r.poll(case.timeout):
            try:
                got = r.recv()
            except EOFError:
                got = None
        proc.join(5)
        timed_out = got is None and proc.is_alive()
        if proc.is_alive():
            proc.kill()
            proc.join()
        if got is None:
            got = {"raised": "ChildDied" if not timed_out else None,
                   "message": f"child exit code {proc.exitcode}", "hf_error": False}
        got.update(seconds=time.time() - t0, timed_out=timed_out)
        results[cid] = got
    return results


def _api_child(fn, fx, conn):
    import warnings

    warnings.simplefilter("ignore")
    from hf_lodc.errors import HfLodcError

    os.chdir(fx["ws"])
    try:
        value = fn(fx)
        out = {"returned": value if isinstance(value, str) and value.startswith(("ok", "bad", "silent"))
               else f"returned {type(value).__name__}"}
        if out["returned"].startswith("returned"):
            out["returned"] = "silent: " + out["returned"]  # a refusal was expected (ok cases return 'ok')
    except BaseException as e:  # noqa: BLE001 - classify every exception
        out = {"raised": type(e).__name__, "hf_error": isinstance(e, HfLodcError), "message": str(e),
               "traceback": traceback.format_exc()[-2000:]}
    conn.send(out)
    conn.close()


def base_env(ws: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        HF_LODC_CACHE=str(ws / "cache"),
        HF_DATASETS_CACHE=str(ws / "hf_datasets"),
        HF_HOME=str(ws / "hf_home"),  # no token: pushes must be refused for that
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HOME=str(ws / "home"),
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        TQDM_DISABLE="1",
        PYTHONWARNINGS="ignore",
    )
    env.pop("HF_TOKEN", None)
    env.pop("HUGGING_FACE_HUB_TOKEN", None)
    hub = env.get("HF_LODC_LOCAL_HUB") or str((REPO / ".." / "shared" / "hub").resolve())
    env["HF_LODC_LOCAL_HUB"] = str(Path(hub).resolve())
    return env


def prepare(ws: Path, runs: bool = True) -> tuple[dict, dict]:
    """Fixtures in ``ws``; ``runs=False`` skips the artefact and checkpoint (see :func:`needs_runs`)."""
    ws.mkdir(parents=True, exist_ok=True)
    env = base_env(ws)
    os.environ.update({k: env[k] for k in ("HF_LODC_CACHE", "HF_DATASETS_CACHE", "HF_HOME", "HF_HUB_OFFLINE",
                                           "HF_DATASETS_OFFLINE")})
    fx = build_fixtures(ws)
    if runs:
        build_runs(ws, fx, env)
    (ws / "fixtures.json").write_text(json.dumps(fx))
    return fx, env


def run_catalogue(cases: list[Case], ws: Path, fx: dict, env: dict, jobs: int = 2, fresh: bool = False,
                  log: Callable[[str], None] = print) -> list[dict]:
    fx = {**fx, "_env": env}
    rows: dict[str, dict] = {}
    cli = [c for c in cases if c.kind == "cli"]
    api = [c for c in cases if c.kind == "api"]
    lock = threading.Lock()

    def record(case: Case, o: Outcome, case_dir: Path, extra: list[str]) -> None:
        cls, flags = classify(case, o, fx, case_dir)
        if extra:
            flags += extra
            cls = next((f for f in SEVERITY if f in flags), cls)
        row = {"id": case.id, "group": case.group, "kind": case.kind, "description": case.description,
               "expected": case.expect, "result": cls, "flags": flags, "seconds": round(o.seconds, 1),
               "rc": o.rc, "message": (o.error_line() if cls != "ok" or case.kind == "api" else
                                       (o.stdout.strip().splitlines() or [""])[-1])[:400] or (o.returned or "")}
        if case.kind == "cli":
            row["command"] = "python " + " ".join(_fmt(a, fx, case_dir) if a else "''" for a in case.argv)
            if "traceback" in flags:
                row["stderr_tail"] = o.stderr[-1500:]
        else:
            row["callable"] = case.description
            if o.raised:
                row["raised"] = o.raised
        with lock:
            rows[case.id] = row
            mark = "PASS" if cls in PASSING else "FAIL"
            log(f"[{len(rows):3d}/{len(cases)}] {mark} {cls:12s} {case.id} ({o.seconds:.0f} s)")

    import queue

    zygotes: queue.Queue[Zygote] = queue.Queue()
    if not fresh:
        for _ in range(jobs):
            zygotes.put(Zygote(env))

    def do_cli(case: Case) -> None:
        case_dir = ws / "cases" / case.id
        case_dir.mkdir(parents=True, exist_ok=True)
        extra: list[str] = []
        try:
            if case.setup:
                case.setup(fx, case_dir)
            if fresh:
                o = run_cli(case, fx, case_dir, env)
            else:
                z = zygotes.get()
                try:
                    o = run_cli_forked(case, fx, case_dir, env, z)
                finally:
                    zygotes.put(z)
        except Exception as e:  # noqa: BLE001 - the catalogue reports its own failures per case
            o = Outcome(rc=None, stderr=f"catalogue error: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            extra.append("traceback")
        finally:
            if case.teardown:
                try:
                    extra += case.teardown(fx, case_dir)
                except Exception:  # noqa: BLE001
                    pass
        record(case, o, case_dir, extra)

    def do_api(batch: list[Case]) -> None:
        if not batch:
            return
        p = subprocess.run([PY, str(Path(__file__).resolve()), "--api-worker", str(ws), ",".join(c.id for c in batch)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=60 + 120 * len(batch))
        try:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = {}
        for c in batch:
            r = res.get(c.id)
            if r is None:
                o = Outcome(raised="WorkerDied", message=(p.stderr or "")[-300:], seconds=0)
            else:
                o = Outcome(raised=r.get("raised"), hf_error=r.get("hf_error", False), message=r.get("message", ""),
                            returned=r.get("returned"), seconds=r.get("seconds", 0), timed_out=r.get("timed_out"))
            record(c, o, ws / "cases" / c.id, [])

    half = (len(api) + 1) // 2 if len(api) > 12 else len(api)  # a worker costs one interpreter start
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futs = [pool.submit(do_api, api[:half]), pool.submit(do_api, api[half:])]
            futs += [pool.submit(do_cli, c) for c in cli]
            for f in futs:
                f.result()
    finally:
        while not zygotes.empty():
            zygotes.get().close()
    return [rows[c.id] for c in cases]


def summarise(rows: list[dict]) -> dict[str, Any]:
    counts = {c: sum(r["result"] == c for r in rows) for c in CLASSES}
    groups: dict[str, dict[str, int]] = {}
    for r in rows:
        g = groups.setdefault(r["group"], {})
        g[r["result"]] = g.get(r["result"], 0) + 1
    return {"cases": len(rows), "passing": sum(r["result"] in PASSING for r in rows), "counts": counts,
            "by_group": groups}


def write_results(rows: list[dict], summary: dict, command: str, seconds: float, out_dir: Path) -> None:
    from benchmarks._machine import machine, machine_line

    hw = machine()
    out_dir.mkdir(parents=True, exist_ok=True)
    blob = {"command": command, "hardware": hw, "wall_time_s": round(seconds, 1), "summary": summary, "cases": rows}
    (out_dir / "fault_catalogue.json").write_text(json.dumps(blob, indent=2, default=str) + "\n")
    lines = [
        "# Fault catalogue",
        "",
        f"Command: `{command}`  ",
        f"Hardware: {machine_line(hw)}  ",
        f"Load average at the end: {', '.join(f'{v:.1f}' for v in hw['load_average'])} (shared machine)  ",
        f"Wall time: {seconds:.0f} s; {summary['cases']} cases, {summary['passing']} as expected.",
        "",
        "Each case expects a clean error (exit 2 and one `error:` line / an `HfLodcError`) or, for valid "
        "inputs, success with a right result; it is classified automatically from exit code, stderr, exception "
        "and files on disk: `traceback` (a Python traceback, an unexpected exit code or a non-hf_lodc "
        "exception), `lost_work` (it condensed/evaluated, then failed without its result on disk), "
        "`silent_wrong` (exit 0 / a return value where it should refuse, or a result contradicting its "
        "inputs), `misleading` (a clean error blaming the wrong thing, or a valid value refused), `debris` "
        "(partial files left behind), `hang` (timeout). CLI cases run the recipe as `__main__` in a process "
        "forked from one that imported hf_lodc once (`--fresh`: a new interpreter per case); API cases run in "
        "a forked child each.",
        "",
        "| class | cases |",
        "| --- | ---: |",
        *[f"| {c} | {n} |" for c, n in summary["counts"].items()],
        "",
        "| group | " + " | ".join(CLASSES) + " |",
        "| --- | " + " | ".join("---:" for _ in CLASSES) + " |",
        *[f"| {g} | " + " | ".join(str(v.get(c, 0)) for c in CLASSES) + " |" for g, v in summary["by_group"].items()],
        "",
        "| case | kind | expected | result | message |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        msg = r["message"].replace("|", "\\|").replace("\n", " ")[:160]
        lines.append(f"| `{r['id']}` | {r['kind']} | {r['expected']} | **{r['result']}** | {msg} |")
    (out_dir / "fault_catalogue.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated case ids (default: all)")
    ap.add_argument("--group", help="comma-separated groups (default: all)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at the same time")
    ap.add_argument("--workdir", help="keep the fixtures and case folders here (default: a temporary folder)")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results"), help="where to write the results")
    ap.add_argument("--no-write", action="store_true", help="do not write the results files")
    ap.add_argument("--fresh", action="store_true",
                    help="run every CLI case as a new python process (default: forked from a process that has "
                         "imported hf_lodc once; same recipe code, ~5-10 s less per case)")
    ap.add_argument("--api-worker", nargs=2, metavar=("WS", "IDS"), help=argparse.SUPPRESS)
    ap.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.zygote:
        return zygote_main()
    if args.api_worker:
        res = run_api_worker(Path(args.api_worker[0]), args.api_worker[1].split(","), 90)
        print(json.dumps(res, default=str))
        return 0
    cases = all_cases()
    if args.only:
        want = set(args.only.split(","))
        unknown = want - {c.id for c in cases}
        if unknown:
            print(f"unknown case ids: {sorted(unknown)}", file=sys.stderr)
            return 2
        cases = [c for c in cases if c.id in want]
    if args.group:
        cases = [c for c in cases if c.group in set(args.group.split(","))]
    if args.list:
        for c in cases:
            print(f"{c.id:40s} {c.kind:3s} {c.group:9s} {c.expect:11s} {c.description}")
        print(f"{len(cases)} cases")
        return 0
    t0 = time.time()
    tmp = None
    if args.workdir:
        ws = Path(args.workdir).resolve()
        if ws.exists():
            shutil.rmtree(ws)
    else:
        tmp = tempfile.mkdtemp(prefix="hf_lodc_faults_")
        ws = Path(tmp)
    try:
        print(f"[catalogue] fixtures in {ws}", flush=True)
        fx, env = prepare(ws, runs=needs_runs(cases))
        print(f"[catalogue] fixtures ready ({time.time() - t0:.0f} s); {len(cases)} cases, {args.jobs} at a time",
              flush=True)
        rows = run_catalogue(cases, ws, fx, env, jobs=args.jobs, fresh=args.fresh, log=lambda s: print(s, flush=True))
    finally:
        for m in (ws / "cases").glob("*/mnt") if (ws / "cases").exists() else []:
            if os.path.ismount(m):
                subprocess.run(["umount", "-l", str(m)], capture_output=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.time() - t0
    summary = summarise(rows)
    print(f"\n{summary['cases']} cases in {seconds:.0f} s; {summary['passing']} as expected")
    for c, n in summary["counts"].items():
        print(f"  {c:13s} {n}")
    for c in CLASSES:
        ids = [r["id"] for r in rows if r["result"] == c]
        if ids and c not in PASSING:
            print(f"{c}: {', '.join(ids)}")
    if not args.no_write and not args.only and not args.group:
        cmd = "HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/fault_catalogue.py" + (
            f" --jobs {args.jobs}" if args.jobs != 2 else "") + (" --fresh" if args.fresh else "")
        write_results(rows, summary, cmd, seconds, Path(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
