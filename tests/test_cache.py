"""The decoded cache on disk (data/cache.py): built once, reused, one writer while others wait,
damaged entries rebuilt, and read through memory maps that equal the in-memory decode bit for bit."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_lodc
from hf_lodc.data import decode_plan, hub, load_cache
from hf_lodc.data.cache import decoded_cache_dir, get_or_build, is_mapped, open_entry
from hf_lodc.errors import CacheError, ConfigError
from tests.datasets_factory import OddRow, make_dataset

@pytest.fixture()
def folder(tmp_path):
    """6 classes, 64 x 16 px RGB with one greyscale row and one corrupt row in train."""
    odd = {"train": {2: OddRow(mode="L"), 5: OddRow(corrupt="truncated")}}
    return make_dataset(tmp_path / "ds", num_classes=6, per_class={"train": 5, "test": 2}, size=(16, 16),
                        odd=odd, seed=3)


def _load(folder, cache_dir, mode, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hf_lodc.load_image_classification(str(folder), cache_dir=cache_dir, decoded_cache=mode,
                                                 skip_corrupt=True, **kw)


def _entries(cache_dir) -> list[Path]:
    return [p for p in decoded_cache_dir(cache_dir).iterdir() if p.is_dir() and not p.name.startswith(".")]


def test_build_reuse_and_bitwise_equal_to_memory(folder, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    ram = _load(folder, None, "off", cache=False)
    mapped = _load(folder, cache_dir, "on")
    (entry,) = _entries(cache_dir)
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["splits"]["train"]["rows"] == 29  # one corrupt row dropped
    assert manifest["splits"]["train"]["images"]["shape"] == [29, 3, 16, 16]  # cut to the rows kept
    for split in ("train", "test"):
        r, m = getattr(ram, split), getattr(mapped, split)
        assert is_mapped(m.images) and not is_mapped(r.images)
        assert m.images.dtype == torch.uint8 and m.images.is_contiguous()
        assert torch.equal(r.images, m.images) and torch.equal(r.labels, m.labels)
    assert ram.info.mean == mapped.info.mean and ram.info.std == mapped.info.std
    assert ram.info.notes == mapped.info.notes

    def no_decode(*a, **k):
        raise AssertionError("decoded again although the cache holds the split")

    monkeypatch.setattr(decode_plan, "decode_split", no_decode)
    again = _load(folder, cache_dir, "on")
    assert torch.equal(again.train.images, ram.train.images) and again.info.notes == ram.info.notes
    # "auto" on a set this small stays in memory, and "off" never reads the map
    monkeypatch.undo()
    assert not is_mapped(_load(folder, cache_dir, "auto").train.images)


def test_damaged_or_partial_entry_is_rebuilt_never_read(folder, tmp_path):
    cache_dir = tmp_path / "cache"
    ram = _load(folder, None, "off", cache=False)
    _load(folder, cache_dir, "on")
    (entry,) = _entries(cache_dir)
    images = entry / "train.images.npy"
    for damage in ("truncate", "manifest", "bytes"):
        if damage == "truncate":  # a short file: size and sampled blocks disagree with the manifest
            with open(images, "r+b") as f:
                f.truncate(images.stat().st_size - 100)
        elif damage == "manifest":  # a writer killed before its manifest (cannot happen by rename, but a copy can)
            (entry / "manifest.json").unlink()
        else:  # flipped bytes at the start of the data (a sampled block)
            with open(images, "r+b") as f:
                f.seek(128)
                f.write(b"\xff" * 64)
        assert open_entry(decoded_cache_dir(cache_dir), entry.name) is None
        with pytest.warns(UserWarning, match="damaged"):
            data = hf_lodc.load_image_classification(str(folder), cache_dir=cache_dir, decoded_cache="on",
                                                     skip_corrupt=True)
        assert torch.equal(data.train.images, ram.train.images), damage
        assert open_entry(decoded_cache_dir(cache_dir), entry.name) is not None


def test_leftover_temp_folder_of_a_dead_writer_is_cleaned(folder, tmp_path):
    cache_dir = tmp_path / "cache"
    root = decoded_cache_dir(cache_dir)
    _load(folder, cache_dir, "on")
    (entry,) = _entries(cache_dir)
    key = entry.name
    import shutil

    shutil.rmtree(entry)
    stale = root / f".{key}.tmp-999999"
    stale.mkdir()
    (stale / "train.images.npy").write_bytes(b"half")
    _load(folder, cache_dir, "on")
    assert not stale.exists() and open_entry(root, key) is not None


def _slow_writer(root, started):
    """Another process: builds entry "k" and holds the lock for 2 s while doing it."""

    def build(w):
        arr = w.images("train", (4, 1, 2, 2))
        arr[:] = np.arange(16, dtype=np.uint8).reshape(4, 1, 2, 2)
        started.set()
        time.sleep(2.0)
        w.labels("train", np.array([0, 1, 0, 1]), 2)
        return {"meta": {"by": "child"}}

    get_or_build(root, "k", build, "a test entry")


def test_one_writer_the_other_waits_and_reads_its_entry(tmp_path):
    root = tmp_path / "decoded"
    ctx = multiprocessing.get_context("fork")  # the child needs no fresh interpreter (and no torch import)
    started = ctx.Event()
    child = ctx.Process(target=_slow_writer, args=(root, started))
    child.start()
    try:
        assert started.wait(30)  # the child holds the lock now

        def must_not_build(w):
            raise AssertionError("a second writer built the entry")

        t = time.monotonic()
        with pytest.warns(UserWarning, match="another process is writing"):
            entry = get_or_build(root, "k", must_not_build, "a test entry")
        assert time.monotonic() - t > 0.5  # it waited for the child
        images, labels = entry.split("train")
        assert entry.manifest["meta"] == {"by": "child"} and images.shape == (4, 1, 2, 2)
        assert np.array_equal(images.reshape(-1), np.arange(16)) and labels.tolist() == [0, 1, 0, 1]
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0


def test_condensation_and_evaluation_from_the_map_equal_memory(tmp_path):
    kw = dict(max_per_class=20)
    ram = hf_lodc.load_image_classification("ylecun/mnist", cache=False, decoded_cache="off", **kw)
    mapped = hf_lodc.load_image_classification("ylecun/mnist", cache_dir=tmp_path, decoded_cache="on", **kw)
    assert is_mapped(mapped.train.images) and is_mapped(mapped.test.images)
    # the map's mean/std are exact (integer histograms); in memory they are float32 reductions, which
    # may differ in the 6th (last recorded) decimal. Given the same normalisation, the runs are equal:
    assert np.allclose(ram.info.mean, mapped.info.mean, atol=1.5e-6, rtol=0)
    assert np.allclose(ram.info.std, mapped.info.std, atol=1.5e-6, rtol=0)
    mapped = hub.ImageClassificationData(mapped.train, mapped.test, ram.info)
    results = []
    for data in (ram, mapped):
        res = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=2, batch_real=4)
        test = hf_lodc.LabeledImages(data.test.images[:100], data.test.labels[:100])  # a view of the map
        ec = hf_lodc.EvalConfig(eval_runs=1, eval_epochs=1, eval_batch=64)
        recs = hf_lodc.evaluate_synthetic(res.images(), res.labels, test, data.mean, data.std, data.num_classes,
                                          ec, seed=0)
        results.append((res.synset.state_dict(), [h["loss"] for h in res.history], recs["convnet"].accuracies))
    (s0, l0, a0), (s1, l1, a1) = results
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k], s1[k]) for k in s0)
    assert l0 == l1 and a0 == a1


def test_sampler_gathers_from_the_map_without_copying_it(tmp_path):
    from hf_lodc.objectives.base import RealSampler

    data = hf_lodc.load_image_classification("ylecun/mnist", cache_dir=tmp_path, decoded_cache="on",
                                             max_per_class=10, eval_split=None)
    s = RealSampler(data.train, torch.arange(10), data.mean, data.std, torch.device("cpu"), 10)
    assert s.images is data.train.images  # the map itself, not a copy
    sub = RealSampler(data.train, torch.tensor([3, 7]), data.mean, data.std, torch.device("cpu"), 10)
    x = sub.take(sub.indices(4, torch.Generator().manual_seed(0)))  # (2*4, C, H, W)
    idx = sub.rows[sub.indices(4, torch.Generator().manual_seed(0))]
    assert data.train.labels[idx].tolist() == [3] * 4 + [7] * 4
    assert torch.equal(x, hub.normalize(data.train.images[idx], data.mean, data.std))


def test_bad_option_and_unwritable_cache_are_clear_errors(folder, tmp_path):
    with pytest.raises(ConfigError, match="decoded_cache must be one of"):
        hf_lodc.load_image_classification(str(folder), decoded_cache="yes")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match="cannot write"):
        _load(folder, blocker, "on")


def test_auto_maps_only_a_set_past_its_share_of_memory(folder, tmp_path, monkeypatch):
    assert not is_mapped(_load(folder, tmp_path / "a", "auto").train.images)  # 6 classes: far below 10 % of RAM
    monkeypatch.setattr(load_cache, "MAP_AUTO_FRACTION", 1e-9)  # as if the set were larger than that share
    assert is_mapped(_load(folder, tmp_path / "b", "auto").train.images)
    assert not is_mapped(_load(folder, tmp_path / "c", "auto", cache=False).train.images)  # no disk caches at all


def test_a_holdout_of_a_mapped_split_says_it_copies(folder, tmp_path):
    with pytest.warns(UserWarning, match="copied its .* kept images into memory"):
        data = hf_lodc.load_image_classification(str(folder), cache_dir=tmp_path, decoded_cache="on",
                                                 skip_corrupt=True, eval_split=None, holdout_fraction=0.3)
    assert not is_mapped(data.train.images) and len(data.test) > 0


def test_the_scale_benchmark_generator_writes_a_set_the_loader_reads(tmp_path):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    root = bench.generate(tmp_path / "gen", classes=3, per_class=4, px=8, eval_per_class=2, rows_per_group=5)
    data = hf_lodc.load_image_classification(str(root), cache=False)
    assert data.image_shape == (3, 8, 8) and len(data.train) == 12 and len(data.test) == 6
    assert torch.bincount(data.train.labels).tolist() == [4, 4, 4] and data.num_classes == 3


def test_threaded_decode_into_a_map_equals_the_sequential_decode(folder):
    import datasets

    from hf_lodc.data.decode import decode_split, decode_split_into, scan_split

    ds = datasets.load_dataset(str(folder))["train"]
    raw = ds.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
    rows = np.arange(len(ds))
    ref_scan = scan_split(raw, "image", "train", "d", rows, skip_corrupt=True)
    ref, ref_keep, ref_conv = decode_split(raw, "image", ref_scan, "d", "RGB", (16, 16), True)  # (n, H, W, C)
    assert len(ref_scan.corrupt) == 1 and not ref_keep[5]  # a truncated PNG: its header reads, its pixels do not
    for workers, chunk in ((1, 512), (3, 4), (4, 1)):
        scan = scan_split(raw, "image", "train", "d", rows, skip_corrupt=True)
        assert not scan.corrupt  # found only while decoding: the rows after it move up over its slot
        out = np.full((len(ds), 3, 16, 16), 7, dtype=np.uint8)
        got, keep, conv = decode_split_into(raw, "image", scan, "d", "RGB", (16, 16), True, out, workers=workers,
                                            chunk=chunk)
        assert np.array_equal(got, ref.transpose(0, 3, 1, 2)) and np.array_equal(keep, ref_keep) and conv == ref_conv
        assert scan.corrupt == ref_scan.corrupt


def _scale_bench():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_scale_benchmark_generator_in_shards_writes_the_same_rows(tmp_path, monkeypatch):
    bench = _scale_bench()
    monkeypatch.setitem(sys.modules, "bench_scale", bench)  # the worker processes pickle its functions by name
    root = bench.generate(tmp_path / "gen", classes=3, per_class=5, px=8, eval_per_class=2, rows_per_group=4,
                          workers=2)
    assert sorted(p.name for p in (root / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    data = hf_lodc.load_image_classification(str(root), cache=False)
    assert len(data.train) == 15 and len(data.test) == 6
    assert torch.bincount(data.train.labels).tolist() == [5, 5, 5]


def test_the_scale_benchmark_skips_the_in_memory_mode_only_when_it_would_not_fit():
    bench = _scale_bench()
    decoded = bench.decoded_bytes(classes=1000, per_class=2200, px=64, eval_per_class=5)
    assert decoded == 1000 * 2205 * 64 * 64 * 3
    assert bench.in_memory_skip_reason(2 * 10**9, available=10 * 10**9) is None  # 5 x 2 GB fits in 10 GB
    reason = bench.in_memory_skip_reason(decoded, available=20 * 10**9)
    assert reason == ("not run: the in-memory path needs >= 135.5 GB (5 x 27.1 GB decoded), "
                      "the machine has 20.0 GB available")
    assert bench.mem_available_bytes() > 0


def test_a_cache_file_larger_than_the_machine_opens_as_a_private_map_that_reserves_nothing(tmp_path):
    """numpy's copy-on-write map reserves the file's size, which the kernel refuses past memory + swap: the
    larger-than-memory case the cache exists for. The file here is sparse (no disk used)."""
    import numpy as np

    from hf_lodc.data.cache import as_mapped_tensor, is_mapped, map_npy

    meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines())
    limit = sum(int(meminfo[k].split()[0]) * 1024 for k in ("MemTotal", "SwapTotal"))
    rows = limit // (3 * 64 * 64) + 1000  # (rows, 3, 64, 64) uint8: past memory + swap
    path = tmp_path / "train_images.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, 3, 64, 64))
    anon = lambda: int(open("/proc/self/status").read().split("RssAnon:")[1].split()[0])  # noqa: E731 (kB)
    before = anon()
    arr = map_npy(path)
    assert arr.shape == (rows, 3, 64, 64) and arr.flags.writeable
    t = as_mapped_tensor(arr)
    assert is_mapped(t) and int(t[rows - 1].sum()) == 0
    t[3] = 7  # an in-place write lands on a private page, never in the cache file
    assert int(t[3].max()) == 7 and int(np.load(path, mmap_mode="r")[3].max()) == 0
    assert anon() - before < 64 * 1024  # kB: the map itself holds no anonymous memory
