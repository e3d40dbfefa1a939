"""Bad input data and faults while writing the result: each ends in one clear hf_lodc error.

Issue 6, cases 1-6 (dataset, revision, columns, labels, splits, mixed images, corrupt images,
class sizes) and 9 (output directory read-only / disk full). Every dataset here is a real folder in
the Hub layout written by ``tests/datasets_factory.py`` (real PNG bytes, real broken PNG files);
the Hub cases go through the fake Hub server and the real ``datasets`` client; the file-system
faults are real (a read-only mount, a full tmpfs, a file-size limit).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

import hf_lodc
from hf_lodc.errors import (
    ArtifactError,
    ClassSizeError,
    ColumnError,
    ConfigError,
    DatasetError,
    DatasetNotFoundError,
    ImageDecodeError,
    SplitError,
)
from hf_lodc.export.artifact import Artifact, load_artifact
from hf_lodc.atomic import check_writable
from hf_lodc.export.save import save_artifact, save_artifact_or_rescue
from tests.datasets_factory import OddRow, make_dataset, png_bytes, tiny_imagenet_like, write_dataset

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    """Decoded-tensor cache and datasets' Arrow cache of this test only."""
    monkeypatch.setenv("HF_LODC_CACHE", str(tmp_path / "hf_lodc_cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")


def load(path, **kw) -> hf_lodc.ImageClassificationData:
    return hf_lodc.load_image_classification(str(path), cache=False, **kw)


def _features(**cols):
    return datasets.Features(cols)


# ---------------------------------------------------------------------------------------------
# 1. dataset / path / revision that does not exist


def test_missing_local_path_and_empty_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"dataset '\./no/such/dir' not found: no such directory"):
        hf_lodc.load_image_classification("./no/such/dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"'.*/empty' contains no data files that datasets can read"):
        load(tmp_path / "empty")
    (tmp_path / "file.parquet").write_bytes(b"x")
    with pytest.raises(DatasetNotFoundError, match=r"dataset path '.*file\.parquet' is a file; pass the repository folder"):
        load(tmp_path / "file.parquet")


def test_revision_is_ignored_with_a_warning_for_a_local_folder(tmp_path):
    root = make_dataset(tmp_path / "d")
    with pytest.warns(UserWarning, match=r"revision 'v2' ignored: dataset '.*' is read from the local folder"):
        d = load(root, revision="v2")
    assert len(d.train) == 12


def test_missing_hub_repo_and_revision_fail_fast(hub_server, tmp_path):
    api = hub_server.api
    root = make_dataset(tmp_path / "d", per_class={"train": 2, "test": 1})
    api.create_repo("alice/tiny", repo_type="dataset")
    api.upload_folder(folder_path=root, repo_id="alice/tiny", repo_type="dataset")
    api.create_branch("alice/tiny", branch="v1", repo_type="dataset")

    d = hf_lodc.load_image_classification("alice/tiny", revision="v1", cache=False)
    assert d.info.hub_id == "alice/tiny" and d.info.revision == "v1"
    assert d.info.revision_sha == hub_server.server.repo_state("alice/tiny").head

    endpoint = hub_server.endpoint.replace(".", r"\.")
    t0 = time.perf_counter()
    with pytest.raises(DatasetNotFoundError, match=rf"dataset 'alice/tiny': revision 'no-such-tag' does not exist "
                                                   rf"on the Hub \({endpoint}\)\. Use an existing branch, tag"):
        hf_lodc.load_image_classification("alice/tiny", revision="no-such-tag", cache=False)
    with pytest.raises(DatasetNotFoundError, match=r"dataset 'alice/nope' not found: no local folder of that name "
                                                   rf".*no dataset repo 'alice/nope' on the Hub \({endpoint}\)"):
        hf_lodc.load_image_classification("alice/nope", cache=False)
    assert time.perf_counter() - t0 < 10  # a 404 is final: no retry loop


def test_unreachable_hub_is_named(hub_server, monkeypatch):
    """Offline mode is the network-down case that needs no retry loop (an unreachable host is
    retried by huggingface_hub for ~25 s before the same translation applies)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetNotFoundError, match=r"dataset 'alice/tiny': cannot reach the Hub .*HF_HUB_OFFLINE=1 "
                                                   "only cached datasets load"):
        hf_lodc.load_image_classification("alice/tiny", cache=False)


@pytest.mark.parametrize("card, problem", [
    ("license: [mit\n", r"expected ',' or '\]', but got '<stream end>'"),
    ("license: !!python/object/apply:os.system ['touch PWNED']\n",
     r"could not determine a constructor for the tag 'tag:yaml\.org,2002:python/object/apply:os\.system'"),
])
def test_malformed_or_malicious_dataset_card(tmp_path, monkeypatch, card, problem):
    root = make_dataset(tmp_path / "d")
    (root / "README.md").write_text(f"---\n{card}---\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=rf"dataset card \(README\.md\) has YAML metadata that cannot be read "
                                           rf"safely: {problem} \(line 1 of the YAML header\)"):
        load(root)
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------------------------------------
# 2. columns and label types


def test_no_image_column(tmp_path):
    root = write_dataset(tmp_path / "d", {"train": {"text": ["a", "b"], "label": [0, 1]}},
                         _features(text=datasets.Value("string"), label=datasets.ClassLabel(names=["x", "y"])))
    with pytest.raises(ColumnError, match=r"has no image column \(no datasets\.Image feature\); columns: "
                                          r"\{'text': string, 'label': ClassLabel\}\. If a binary or string column"):
        load(root, eval_split=None)


def test_binary_column_named_as_image_column_is_read(tmp_path):
    imgs = [png_bytes("RGB", (6, 6), i) for i in range(4)]
    root = write_dataset(tmp_path / "d", {"train": {"png": imgs, "label": [0, 1, 0, 1]}},
                         _features(png=datasets.Value("binary"), label=datasets.ClassLabel(names=["x", "y"])))
    with pytest.raises(ColumnError, match="has no image column"):
        load(root, eval_split=None)
    d = load(root, eval_split=None, image_column="png")
    assert d.train.images.shape == (4, 3, 6, 6)
    assert "column 'png' (binary) read as encoded images" in d.info.notes
    with pytest.raises(ColumnError, match=r"column 'label' cannot hold images \(type ClassLabel\)"):
        load(root, eval_split=None, image_column="label")


def test_several_image_columns_need_a_choice(tmp_path):
    n = 4
    root = write_dataset(
        tmp_path / "d",
        {"train": {"image": [png_bytes("RGB", (5, 5), i) for i in range(n)],
                   "mask": [png_bytes("L", (5, 5), i) for i in range(n)], "label": [0, 1, 0, 1]}},
        _features(image=datasets.Image(), mask=datasets.Image(), label=datasets.ClassLabel(names=["a", "b"])),
    )
    with pytest.raises(ColumnError, match=r"has several image columns \['image', 'mask'\]; choose one with "
                                          r"image_column=\.\.\."):
        load(root, eval_split=None)
    assert load(root, eval_split=None, image_column="mask").image_shape == (1, 5, 5)
    with pytest.raises(ColumnError, match=r"has no column 'photo'; columns: \{'image': Image, 'mask': Image, "
                                          r"'label': ClassLabel\}"):
        load(root, eval_split=None, image_column="photo")


def test_no_label_column(tmp_path):
    root = write_dataset(tmp_path / "d",
                         {"train": {"image": [png_bytes("RGB", (5, 5), i) for i in range(2)], "caption": ["a", "b"]}},
                         _features(image=datasets.Image(), caption=datasets.Value("string")))
    with pytest.raises(ColumnError, match=r"has no label column \(no ClassLabel feature and none named \['label', "
                                          r".*\]\); columns: \{'image': Image, 'caption': string\}\. Pass label_column"):
        load(root, eval_split=None)
    d = load(root, eval_split=None, label_column="caption")  # strings: accepted
    assert d.info.class_names == ["a", "b"]


def test_int_and_string_labels_build_the_class_list(tmp_path):
    imgs = [png_bytes("RGB", (5, 5), i) for i in range(6)]
    root = write_dataset(tmp_path / "i", {"train": {"image": imgs, "label": [30, 10, 20, 10, 30, 20]}},
                         _features(image=datasets.Image(), label=datasets.Value("int64")))
    with pytest.warns(UserWarning, match=r"label column 'label' is int64, not ClassLabel: built 3 classes from its "
                                         r"sorted unique values \(10, 20, 30\)"):
        d = load(root, eval_split=None)
    assert d.info.class_names == ["10", "20", "30"]
    assert d.train.labels.tolist() == [2, 0, 1, 0, 2, 1]
    assert any("not ClassLabel" in n for n in d.info.notes)

    root = write_dataset(tmp_path / "s", {"train": {"image": imgs, "label": ["dog", "cat", "dog", "cat", "eel", "cat"]}},
                         _features(image=datasets.Image(), label=datasets.Value("string")))
    with pytest.warns(UserWarning, match=r"label column 'label' is string, not ClassLabel: built 3 classes .*"
                                         r"\(cat, dog, eel\)"):
        d = load(root, eval_split=None)
    assert d.info.class_names == ["cat", "dog", "eel"] and d.train.labels.tolist() == [1, 0, 1, 0, 2, 0]


def test_float_labels_are_refused(tmp_path):
    root = make_dataset(tmp_path / "d", label_type="float")
    with pytest.raises(ColumnError, match=r"label column 'label' holds float32 values; class labels must be "
                                          r"ClassLabel, int or string"):
        load(root)


def test_unlabelled_rows_are_dropped_and_an_unlabelled_eval_split_refused(tmp_path):
    imgs = [png_bytes("RGB", (5, 5), i) for i in range(6)]
    feats = _features(image=datasets.Image(), label=datasets.ClassLabel(names=["a", "b"]))
    root = write_dataset(tmp_path / "d", {"train": {"image": imgs, "label": [0, 1, -1, 0, 1, 0]},
                                          "test": {"image": imgs[:2], "label": [-1, -1]}}, feats)
    with pytest.warns(UserWarning, match=r"split 'train': dropped 1 rows without a label \(-1 or missing\)"):
        d = load(root, eval_split=None)
    assert len(d.train) == 5
    with pytest.raises(SplitError, match=r"split 'test' has no usable rows \(all unlabelled, corrupt or of dropped "
                                         r"classes\); choose another eval_split"):
        load(root)


# ---------------------------------------------------------------------------------------------
# 3. missing splits


def test_missing_eval_split_names_the_splits_and_offers_a_seeded_holdout(tmp_path):
    root = make_dataset(tmp_path / "d", num_classes=3, per_class={"train": [5, 4, 1]})
    with pytest.raises(SplitError, match=r"dataset '.*' has no split 'test' to evaluate on; splits: \['train'\]\. "
                                         r"Choose one with eval_split=.*holdout_fraction=0\.1"):
        load(root)
    a = load(root, holdout_fraction=0.25, holdout_seed=1)
    b = load(root, holdout_fraction=0.25, holdout_seed=1)
    c = load(root, holdout_fraction=0.25, holdout_seed=2)
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.test.images, c.test.images)
    # stratified: floor(0.25 * n) but >= 1 per class, and every class keeps a train image
    assert torch.bincount(a.test.labels, minlength=3).tolist() == [1, 1, 0]
    assert torch.bincount(a.train.labels, minlength=3).tolist() == [4, 3, 1]
    assert a.info.eval_split == "train[holdout 0.25, seed 1]"
    assert "evaluation split carved off 'train': 2 rows, seed 1" in a.info.notes


def test_eval_split_choice_and_missing_train_split(tmp_path):
    root = make_dataset(tmp_path / "d", per_class={"train": 2, "validation": 1})
    d = load(root, eval_split="validation")
    assert d.info.eval_split == "validation" and len(d.test) == 3
    assert load(root, eval_split=None).test is None
    with pytest.raises(SplitError, match=r"has no split 'training'; splits: \['train', 'validation'\]\. "
                                         r"Choose one with train_split="):
        load(root, train_split="training", eval_split=None)
    with pytest.raises(ConfigError, match=r"eval_split is the train split 'train': the evaluation would test on "
                                          r"the images the set is condensed from"):
        load(root, eval_split="train")
    with pytest.raises(SplitError, match=r"cannot carve an evaluation split off 'train': every class has a single image"):
        load(make_dataset(tmp_path / "one", per_class={"train": 1}), eval_split=None, holdout_fraction=0.5)


# ---------------------------------------------------------------------------------------------
# 4. mixed sizes and modes


MIXED = {"train": {1: OddRow(mode="L"), 2: OddRow(mode="RGBA"), 4: OddRow(mode="P"), 5: OddRow(mode="CMYK"),
                   7: OddRow(size=(12, 10))}}


def test_mixed_modes_and_sizes_are_converted_with_counts(tmp_path):
    root = make_dataset(tmp_path / "d", size=(8, 8), odd=MIXED)
    with pytest.warns(UserWarning, match=r"mixed images: 4 not in the dominant mode RGB \(modes: \{RGB: 14, L: 1, "
                                         r"RGBA: 1, P: 1, CMYK: 1\}\), 1 not of the dominant size 8x8 \(sizes: "
                                         r"\{8x8: 17, 12x10: 1\}\), first of each other kind: split 'train' row 1 \(L 8x8\), .*; "
                                         r"converting them to RGB 8x8"):
        d = load(root)
    assert d.train.images.shape == (12, 3, 8, 8) and d.test.images.shape == (6, 3, 8, 8)
    grey = d.train.images[1]  # the L image: every channel equal
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert d.info.notes[-1].startswith("converted 5 of 18 images to RGB 8x8 (modes: {RGB: 14, L: 1,")


def test_mixed_images_refused_on_request_and_declared_target(tmp_path):
    root = make_dataset(tmp_path / "d", size=(8, 8), odd=MIXED)
    with pytest.raises(DatasetError, match=r"mixed images: 4 not in the dominant mode RGB \(modes: .*\), 1 not of the "
                                           r"dominant size 8x8 \(sizes: \{8x8: 17, 12x10: 1\}\), first of each other kind: "
                                           r".*split 'train' row 7 \(RGB 12x10\)\. Pass mixed='convert' "
                                           r"to convert them all to RGB 8x8"):
        load(root, mixed="error")
    with pytest.warns(UserWarning, match=r"mixed images: 4 not in the dominant mode RGB .*; converting them to L 6x5"):
        d = load(root, image_mode="L", image_size=(5, 6))
    assert d.image_shape == (1, 5, 6) and d.info.notes[-1].startswith("converted 18 of 18 images to L 6x5")
    with pytest.raises(ConfigError, match=r"image_mode must be one of \['L', 'RGB'\] or None, got 'CMYK'"):
        load(root, image_mode="CMYK")
    # images that agree with each other are not "mixed", even in a mode that is stored converted
    rgba = make_dataset(tmp_path / "rgba", mode="RGBA")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = load(rgba, mixed="error")
    assert d.image_shape == (3, 8, 8) and d.info.notes == ["converted 18 of 18 images to RGB 8x8 (modes: {RGBA: 18}, "
                                                           "sizes: {8x8: 18})"]


def test_mode_conversions_are_exact():
    """Alpha on black, 16-bit greyscale scaled to 8 bits, palette through its colours."""
    from PIL import Image

    from hf_lodc.data.decode import convert_image, target_mode_of

    rgba = Image.fromarray(np.array([[[10, 20, 30, 255], [200, 100, 50, 0]]], dtype=np.uint8), "RGBA")
    assert np.asarray(convert_image(rgba, "RGB", (2, 1))).tolist() == [[[10, 20, 30], [0, 0, 0]]]
    i16 = Image.fromarray(np.array([[0, 256 * 200 + 7]], dtype=np.uint16))
    assert np.asarray(convert_image(i16, "L", (2, 1))).tolist() == [[0, 200]]
    pal = Image.fromarray(np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8), "RGB").quantize(colors=2)
    assert np.asarray(convert_image(pal, "RGB", (2, 1))).tolist() == [[[255, 0, 0], [0, 0, 255]]]
    assert [target_mode_of(m) for m in ("1", "LA", "I;16", "P", "CMYK", "RGBA")] == ["L", "L", "L", "RGB", "RGB", "RGB"]


# ---------------------------------------------------------------------------------------------
# 5. corrupt images


def test_corrupt_image_names_split_and_row_and_can_be_skipped(tmp_path):
    root = make_dataset(tmp_path / "d", odd={"train": {5: OddRow(corrupt="truncated")},
                                             "test": {1: OddRow(corrupt="garbage")}})
    with pytest.raises(ImageDecodeError, match=r"dataset '.*', split 'train', row 5: image cannot be decoded "
                                               r"\(OSError: image file is truncated.*\)\. Pass skip_corrupt=True"):
        load(root, eval_split=None)
    with pytest.raises(ImageDecodeError, match=r"split 'test', row 1: image cannot be decoded \(UnidentifiedImageError: "
                                               r"not an image format PIL can read\)"):
        load(root)  # headers are read first: the garbage bytes fail before the truncated pixels
    with pytest.warns(UserWarning, match=r"split 'train': skipped 1 corrupt rows \(rows \[5\]\)"):
        d = load(root, skip_corrupt=True)
    assert (len(d.train), len(d.test)) == (11, 5)
    assert "split 'test': skipped 1 corrupt rows (rows [1])" in d.info.notes


def test_corrupt_row_index_is_the_split_row_even_after_max_per_class(tmp_path):
    imgs = [png_bytes("RGB", (5, 5), i) for i in range(8)]
    imgs[5] = b"\x89PNG\r\n\x1a\nnot really"
    imgs[6] = None  # a row without an image
    root = write_dataset(tmp_path / "d", {"train": {"image": imgs, "label": [0, 0, 0, 0, 1, 1, 1, 1]}},
                         _features(image=datasets.Image(), label=datasets.ClassLabel(names=["a", "b"])))
    with pytest.raises(ImageDecodeError, match=r"split 'train', row 5: image cannot be decoded"):
        load(root, eval_split=None, max_per_class=2)  # rows 0, 1, 4, 5 are read
    root = write_dataset(tmp_path / "e", {"train": {"image": imgs[6:], "label": [0, 1]}},
                         _features(image=datasets.Image(), label=datasets.ClassLabel(names=["a", "b"])))
    with pytest.raises(ImageDecodeError, match=r"split 'train', row 0: image cannot be decoded \(ValueError: the row "
                                               r"has no image \(empty or null\)\)"):
        load(root, eval_split=None)


# ---------------------------------------------------------------------------------------------
# 6. class sizes


def test_class_without_images_is_refused_or_dropped(tmp_path):
    root = make_dataset(tmp_path / "d", num_classes=3, per_class={"train": [3, 2, 0], "test": 1})
    with pytest.raises(ClassSizeError, match=r"split 'train': 1 of 3 classes have no images: \['class_2'\]\. Pass "
                                             r"drop_empty_classes=True to drop them \(and their evaluation rows\)"):
        load(root)
    with pytest.warns(UserWarning, match=r"dropped 1 classes without train images: \['class_2'\] \(1 evaluation rows\)"):
        d = load(root, drop_empty_classes=True)
    assert d.info.class_names == ["class_0", "class_1"] and d.num_classes == 2
    assert sorted(d.test.labels.tolist()) == [0, 1]


def test_class_smaller_than_batch_or_images_per_class_warns_and_runs(tmp_path):
    root = make_dataset(tmp_path / "d", num_classes=3, per_class={"train": [6, 2, 6], "test": 1})
    d = load(root)
    # 8x8, rank 2, ipc 1 -> 64 / 32 = 2 factor images per class; batch_real 4 > 2 images of class_1
    with pytest.warns(UserWarning, match=r"1 of 3 classes have fewer than 4 real images: 'class_1' \(2\)\. Their 4 "
                                         r"draws repeat images \(sampled with replacement\)"):
        r = hf_lodc.condense(d, method="lodm", ipc=1, rank=2, iterations=1, batch_real=4, progress=False)
    assert r.budget.images_per_class == 2 and torch.isfinite(r.images()).all()
    with pytest.warns(UserWarning, match=r"1 of 3 classes have fewer than 3 real images: '1' \(2\)"):
        hf_lodc.condense(d, method="random", ipc=3, progress=False)  # 3 stored real images, 2 exist


# ---------------------------------------------------------------------------------------------
# the TinyImageNet shape: 200 classes, 64x64 RGB (+ a few grey images), splits train / valid


def test_tinyimagenet_shaped_dataset_runs_lodm_rank4(tmp_path):
    from hf_lodc.engine.condenser import Condenser

    root = tiny_imagenet_like(tmp_path / "tin", per_class=2, eval_per_class=1)
    with pytest.warns(UserWarning, match=r"mixed images: 1 not in the dominant mode RGB \(modes: \{RGB: 599, L: 1\}\)"):
        d = load(root, eval_split="valid")
    assert d.image_shape == (3, 64, 64) and d.num_classes == 200 and d.info.class_names[0] == "n01440000"
    assert (len(d.train), len(d.test)) == (400, 200)
    cfg = hf_lodc.CondenseConfig(method="lodm", ipc=1, rank=4, iterations=0, init="noise", batch_real=2)
    whole = Condenser(d, cfg, progress=False).run()
    # 1 pixel image = 3*64*64 = 12288 numbers; a rank-4 factor image 3*4*(64+64) = 1536 -> 8 per class
    assert whole.budget.images_per_class == 8 and whole.budget.used_numel_per_class == 12288
    assert whole.synset.A.shape == (1600, 3, 64, 4) and whole.synset.B.shape == (1600, 3, 4, 64)
    assert whole.config.matching_model == "lodc_convnet_d4_w128"  # the default matching model at 64 px
    # two matching iterations (CPU-sized: 3 of the 200 classes, as one process of a multi-process run;
    # the network still has the 200-way head)
    cfg = hf_lodc.CondenseConfig(method="lodm", ipc=1, rank=4, iterations=2, batch_real=2)
    with pytest.warns(UserWarning, match=r"3 of 3 classes have fewer than 8 real images"):  # svd init: 8 from 2
        part = Condenser(d, cfg, classes=torch.tensor([0, 99, 199]), progress=False).run()
    assert part.synset.A.shape == (24, 3, 64, 4) and [h["iteration"] for h in part.history] == [0, 1]
    assert all(np.isfinite(h["loss"]) for h in part.history) and torch.isfinite(part.images()).all()


# ---------------------------------------------------------------------------------------------
# 9. output directory not writable / disk full: nothing partial left behind


@pytest.fixture(scope="module")
def artefact() -> Artifact:
    """A small real artefact (~155 KB on disk): 10 classes x 4 rank-2 images of 3x16x16."""
    root = make_dataset(Path(os.environ.get("TMPDIR", "/tmp")) / f"hf_lodc_art_{os.getpid()}", num_classes=10,
                        per_class={"train": 4, "test": 1}, size=(16, 16))
    try:
        d = load(root)
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    r = hf_lodc.condense(d, method="lorandom", ipc=1, rank=2, progress=False)
    return Artifact(synset=r.synset, source=d.info, budget=r.budget, method="lorandom",
                    condense_config=dict(r.condense_config))


def _same(a: Artifact, b: Artifact) -> bool:
    return torch.equal(a.images(), b.images()) and a.config_record()["budget"] == b.config_record()["budget"]


def _mount_tmpfs(where: Path, options: str) -> bool:
    """Mount a tmpfs (root with CAP_SYS_ADMIN only); False if this machine does not allow it."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@contextlib.contextmanager
def _tmpfs(where: Path, options: str):
    if not _mount_tmpfs(where, options):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the file-size-limit test covers "
                    "the write failure path")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody can write into. chmod is ignored by root, so as root a read-only tmpfs."""
    ro = tmp_path / "ro"
    if os.geteuid() != 0:
        ro.mkdir()
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    with _tmpfs(ro, "ro,size=64k") as where:
        yield where


def test_read_only_output_dir_fails_early_and_leaves_nothing(read_only_dir, artefact):
    out = read_only_dir / "run"
    assert not os.access(read_only_dir, os.W_OK) or os.geteuid() == 0
    with pytest.raises(ArtifactError, match=rf"cannot write the artefact '{out}': '{read_only_dir}' is not writable "
                                            r"\((Read-only file system|Permission denied)\)\. Choose a writable"):
        check_writable(out)
    with pytest.raises(ArtifactError, match=r"is not writable \((Read-only file system|Permission denied)\)"):
        save_artifact(artefact, out)
    assert os.listdir(read_only_dir) == []


def test_disk_full_leaves_no_partial_artefact_and_keeps_the_old_one(tmp_path, artefact):
    with _tmpfs(tmp_path / "small", "size=256k") as small:
        out = small / "run"
        save_artifact(artefact, out)  # ~155 KB fits once ...
        before = sorted(os.listdir(out))
        with pytest.raises(ArtifactError, match=rf"writing the artefact '{out}' failed \(.*No space left on device.*\); "
                                                r"nothing partial was left: the artefact already there is unchanged"):
            save_artifact(artefact, out)  # ... not twice (the new copy is written beside the old one)
        assert os.listdir(small) == ["run"] and sorted(os.listdir(out)) == before
        assert _same(load_artifact(out), artefact)
        with pytest.raises(ArtifactError, match=r"No space left on device.*no directory was created\. .* The finished "
                                                r"artefact was saved to '.*hf_lodc-rescue-.*/run2' instead"):
            save_artifact_or_rescue(artefact, small / "run2")
        assert os.listdir(small) == ["run"]


@contextlib.contextmanager
def _file_size_limit(nbytes: int):
    """RLIMIT_FSIZE for this process (works for any user): writes past it fail with EFBIG."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def test_write_failure_mid_save_leaves_nothing(tmp_path, artefact):
    out = tmp_path / "run"
    with _file_size_limit(64_000):  # synset.safetensors (~31 KB) fits, images.safetensors (~123 KB) does not
        with pytest.raises(ArtifactError, match=rf"writing the artefact '{out}' failed \(.*File too large.*\); "
                                                r"nothing partial was left: no directory was created"):
            save_artifact(artefact, out)
    assert os.listdir(tmp_path) == []


def test_foreign_folder_is_never_replaced(tmp_path, artefact):
    mine = tmp_path / "my_photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    for fn in (check_writable, lambda p: save_artifact(artefact, p)):
        with pytest.raises(ArtifactError, match=r"my_photos' exists and is not an hf_lodc artefact .*refusing to "
                                                r"replace it"):
            fn(mine)
    assert (mine / "holiday.jpg").read_bytes() == b"precious"
    (mine / "holiday.jpg").unlink()
    (mine / "checkpoints").mkdir()  # the run's own checkpoints: replaceable
    save_artifact(artefact, mine)
    assert _same(load_artifact(mine), artefact) and not (mine / "checkpoints").exists()


def test_interrupt_during_save_leaves_the_old_artefact(tmp_path, artefact):
    out = tmp_path / "run"
    save_artifact(artefact, out)

    class Exploding(Artifact):
        def images(self):
            raise KeyboardInterrupt

    bad = Exploding(**{f: getattr(artefact, f) for f in artefact.__dataclass_fields__})
    with pytest.raises(KeyboardInterrupt):
        save_artifact(bad, out)
    assert os.listdir(tmp_path) == ["run"] and _same(load_artifact(out), artefact)


# ---------------------------------------------------------------------------------------------
# issue 12: a local path is a path (never a Hub lookup), the mirror is named, the source is absolute


def test_missing_local_path_names_the_resolved_folder_not_the_hub(tmp_path, monkeypatch):
    from hf_lodc.errors import LocalPathNotFoundError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(LocalPathNotFoundError, match=rf"dataset '\./runs/data' not found: no such directory "
                                                     rf"'{tmp_path}/runs/data' \('{tmp_path}/runs' exists but has "
                                                     r"no entry 'data'; cwd: .*\)\. Pass an existing dataset folder "
                                                     r"\(was it moved or renamed\?\)") as e:
        hf_lodc.load_image_classification("./runs/data")
    assert "Hub" not in str(e.value) and "\n" not in str(e.value)
    moved = tmp_path / "gone" / "deeper" / "D"  # a source folder moved away: named with what still exists
    with pytest.raises(LocalPathNotFoundError, match=rf"no such directory '{moved}' \(the nearest existing folder "
                                                     rf"is '{tmp_path}'"):
        hf_lodc.load_image_classification(str(moved))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(LocalPathNotFoundError, match=rf"dataset '~/nope' not found: no such directory '{tmp_path}/nope'"):
        hf_lodc.load_image_classification("~/nope")


def test_local_hub_that_does_not_exist_is_named(monkeypatch, tmp_path):
    from hf_lodc.errors import LocalHubNotFoundError

    monkeypatch.setenv("HF_LODC_LOCAL_HUB", str(tmp_path / "no_mirror"))
    with pytest.raises(LocalHubNotFoundError, match=rf"HF_LODC_LOCAL_HUB='{tmp_path}/no_mirror' is not a folder "
                                                    r"\(.* does not exist\); point it at the local mirror"):
        hf_lodc.load_image_classification("ylecun/mnist")
    root = make_dataset(tmp_path / "d")
    assert len(load(root).train) == 12  # a local folder does not need the mirror


def test_source_recorded_absolute_from_relative_tilde_and_pathlib(tmp_path, monkeypatch):
    from hf_lodc.data.sources import resolve_dataset_arg

    root = make_dataset(tmp_path / "home" / "data" / "d")
    monkeypatch.chdir(tmp_path / "home")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for given in ("data/d", "./data/d", "~/data/d", Path("data/d")):
        d = load(given)
        assert d.info.dataset == str(root) and d.info.resolved_path == str(root), given
        assert d.info.hub_id is None
    assert resolve_dataset_arg("data/d") == str(root) and resolve_dataset_arg("~/data/d") == str(root)
    assert resolve_dataset_arg("./not/there") == str(tmp_path / "home" / "not" / "there")  # a path, made absolute
    assert resolve_dataset_arg("ylecun/mnist") == "ylecun/mnist"  # a Hub id stays one
    with pytest.raises(ConfigError, match=r"dataset must be a Hub id like 'uoft-cs/cifar10' or a local path, got ''"):
        resolve_dataset_arg("")


def test_hub_id_from_the_mirror_records_id_and_folder(shared_hub):
    d = hf_lodc.load_image_classification("ylecun/mnist", max_per_class=1, eval_split=None)
    assert d.info.dataset == "ylecun/mnist" and d.info.hub_id == "ylecun/mnist"
    assert d.info.resolved_path == str(shared_hub / "datasets" / "ylecun" / "mnist")
