"""Evaluating condensed sets not made by hf_lodc: .pt layouts, Image / Array3D datasets, storage, baseline."""

from __future__ import annotations

import argparse
import io
import json

import datasets
import pytest
import torch

import hf_lodc
from hf_lodc.data.types import normalize
from hf_lodc.errors import ConfigError, DatasetError
from hf_lodc.foreign import (
    evaluate_condensed_set,
    infer_normalization,
    load_condensed_set,
    to_source_normalization,
)
from tests.datasets_factory import write_dataset

FAST = dict(models=["convnet"], runs=1, epochs=1, eval_max_per_class=3)


@pytest.fixture(scope="module")
def mnist_small(shared_hub):
    return hf_lodc.load_image_classification("ylecun/mnist", max_per_class=10)


def _ipc2(data):
    """The first 2 real train images of each class: (N, 1, 28, 28) uint8, labels (N,)."""
    idx = torch.cat([torch.nonzero(data.train.labels == c).flatten()[:2] for c in range(data.num_classes)])
    return data.train.images[idx], data.train.labels[idx]


def test_pt_pair_float32_source_normalised(mnist_small, tmp_path):
    u8, y = _ipc2(mnist_small)
    x = normalize(u8, mnist_small.mean, mnist_small.std)  # (20, 1, 28, 28)
    torch.save((x, y), tmp_path / "set.pt")
    r = evaluate_condensed_set(str(tmp_path / "set.pt"), mnist_small, **FAST)
    assert r.kind == "pt" and r.layout == "tuple (images, labels)" and r.label_matching == "by-id"
    assert r.input_normalization == "source" and r.normalization_reason.startswith("inferred")
    assert r.storage_bytes == 20 * 784 * 4 and r.stored_dtype == "float32"
    assert r.images_per_class == {str(c): 2 for c in range(10)}
    assert r.baseline["images_per_class"] == 2 and r.baseline["storage_bytes"] == r.storage_bytes
    rec, rel = r.evaluations["convnet"], r.relative["convnet"]
    base = r.baseline["evaluations"]["convnet"]
    assert rel["set"] == round(rec["accuracy_mean"], 3) and rel["random"] == round(base["accuracy_mean"], 3)
    assert rel["improvement_pp"] == pytest.approx(rec["accuracy_mean"] - base["accuracy_mean"], abs=1e-3)
    assert r.test_data["rows"] == 30 and "random real at the same storage" in r.summary()
    json.dumps(r.to_dict())  # the report is JSON-serialisable


@pytest.mark.parametrize("layout,expected", [
    (lambda x, y: {"x": x, "y": y}, "dict {'x': images, 'y': labels}"),
    (lambda x, y: {"data": x, "targets": y, "epoch": torch.tensor(3)}, "dict {'data': images, 'targets': labels}"),
    (lambda x, y: [x, y], "list (images, labels)"),
    (lambda x, y: {"Images": x, "Labels": torch.nn.functional.one_hot(y, 10).float()},
     "dict {'Images': images, 'Labels': labels}"),
])
def test_pt_layouts_read_the_same_set(mnist_small, tmp_path, layout, expected):
    u8, y = _ipc2(mnist_small)
    x = u8.float() / 255.0
    torch.save(layout(x, y), tmp_path / "set.pt")
    cs, matching = load_condensed_set(str(tmp_path / "set.pt"), mnist_small)
    assert cs.layout == expected and matching == "by-id"
    assert torch.equal(cs.images, x) and torch.equal(cs.labels, y)


def test_pt_images_with_a_labels_file_and_channels_last(mnist_small, tmp_path):
    u8, y = _ipc2(mnist_small)
    torch.save(u8.permute(0, 2, 3, 1).contiguous(), tmp_path / "images_best.pt")  # (N, H, W, C) uint8
    torch.save(y, tmp_path / "labels_best.pt")
    with pytest.raises(DatasetError, match="no labels; pass the labels file"):
        load_condensed_set(str(tmp_path / "images_best.pt"), mnist_small)
    cs, _ = load_condensed_set(str(tmp_path / "images_best.pt"), mnist_small,
                               labels_file=str(tmp_path / "labels_best.pt"))
    assert torch.equal(cs.images, u8) and any("channels-last" in n for n in cs.notes)
    assert cs.itemsize == 1 and cs.stored_dtype == "uint8"


def test_pickle_of_other_objects_is_refused(mnist_small, tmp_path):
    u8, y = _ipc2(mnist_small)
    torch.save({"images": u8, "labels": y, "args": argparse.Namespace(ipc=2)}, tmp_path / "set.pt")
    with pytest.raises(DatasetError, match="Python objects other than tensors"):
        load_condensed_set(str(tmp_path / "set.pt"), mnist_small)
    torch.save({"images": u8, "labels": torch.rand(len(y), 10)}, tmp_path / "soft.pt")
    cs, _ = load_condensed_set(str(tmp_path / "soft.pt"), mnist_small)  # soft labels: kept (tests/test_published.py)
    assert cs.soft is not None and cs.soft.kind == "logits"
    torch.save({"images": u8, "labels": torch.rand(len(y), 7)}, tmp_path / "soft7.pt")
    with pytest.raises(DatasetError, match="soft labels have 7 columns"):
        load_condensed_set(str(tmp_path / "soft7.pt"), mnist_small)
    torch.save((u8[:, :, :20], y), tmp_path / "small.pt")
    with pytest.raises(DatasetError, match="do not fit"):
        load_condensed_set(str(tmp_path / "small.pt"), mnist_small)


def test_normalisation_inference_and_conversion(mnist_small):
    u8, _ = _ipc2(mnist_small)
    mean, std = mnist_small.mean, mnist_small.std
    want = normalize(u8, mean, std)
    forms = {"uint8": u8, "zero-one": u8.float() / 255, "source": want}
    for mode, x in forms.items():
        assert infer_normalization(x)[0] == mode
        assert torch.allclose(to_source_normalization(x, mode, mean, std), want, atol=1e-5)
    assert infer_normalization(u8.float())[0] == "uint8"  # [0, 255] integer-valued floats
    # a file normalised with other statistics (e.g. mean 0.5, std 0.5): undone, then the source's applied
    other = (u8.float() / 255 - 0.5) / 0.5
    assert torch.allclose(to_source_normalization(other, "source", mean, std, [0.5], [0.5]), want, atol=1e-5)


def test_given_normalisation_changes_the_report_and_storage_override(mnist_small, tmp_path):
    u8, y = _ipc2(mnist_small)
    torch.save((u8.half() / 255, y), tmp_path / "set.pt")
    r = evaluate_condensed_set(str(tmp_path / "set.pt"), mnist_small, input_normalization="zero-one",
                               storage_bytes=10 * 784 * 2, **FAST)
    assert r.input_normalization == "zero-one" and r.normalization_reason == "given"
    assert r.stored_dtype == "float16" and r.storage_bytes == 10 * 784 * 2
    assert r.baseline["images_per_class"] == 1 and r.baseline["itemsize"] == 2
    r = evaluate_condensed_set(str(tmp_path / "set.pt"), mnist_small, storage_bytes=100, **FAST)
    assert "images_per_class" not in r.baseline and "less than one real image" in r.baseline["reason"]
    assert r.relative == {}


def _array3d_repo(root, x: torch.Tensor, y: torch.Tensor, label_feature):
    c, h, w = x.shape[1:]
    feats = datasets.Features({"pixel_values": datasets.Array3D(shape=(c, h, w), dtype="float32"),
                               "label": label_feature})
    return write_dataset(root, {"train": {"pixel_values": x.numpy(), "label": y.tolist()}}, feats)


def test_array3d_repo_with_integer_labels_by_id(mnist_small, tmp_path):
    u8, y = _ipc2(mnist_small)
    x = normalize(u8, mnist_small.mean, mnist_small.std)
    repo = _array3d_repo(tmp_path / "repo", x, y, datasets.Value("int64"))
    r = evaluate_condensed_set(str(repo), mnist_small, labels="by-id", **FAST)
    assert r.kind == "dataset" and "pixel_values" in r.layout and r.label_matching == "by-id"
    assert r.input_normalization == "source" and r.storage_bytes == 20 * 784 * 4
    cs, _ = load_condensed_set(str(repo), mnist_small)
    assert torch.allclose(cs.images, x) and torch.equal(cs.labels, y)
    with pytest.raises(ConfigError, match="by-id"):
        load_condensed_set(str(repo), mnist_small, labels="by-name")


def test_image_repo_classlabel_by_name_and_by_id(mnist_small, tmp_path):
    """Class names in another order are matched by name; plain integer labels by id."""
    from PIL import Image

    u8, y = _ipc2(mnist_small)
    pngs = []
    for img in u8:
        buf = io.BytesIO()
        Image.fromarray(img[0].numpy(), "L").save(buf, format="PNG")
        pngs.append(buf.getvalue())
    names = [str(9 - i) for i in range(10)]  # reversed: id i means digit 9 - i
    feats = datasets.Features({"img": datasets.Image(), "digit": datasets.ClassLabel(names=names)})
    repo = write_dataset(tmp_path / "named", {"train": {"img": pngs, "digit": (9 - y).tolist()}}, feats)
    cs, matching = load_condensed_set(str(repo), mnist_small)
    assert matching == "by-name" and torch.equal(cs.labels, y) and torch.equal(cs.images, u8)
    r = evaluate_condensed_set(str(repo), mnist_small, **FAST)
    assert r.stored_dtype == "uint8 (Image)" and r.storage_bytes == 20 * 784 and r.input_normalization == "uint8"
    assert r.baseline["images_per_class"] == 2 and r.baseline["itemsize"] == 1

    letters = datasets.Features({"img": datasets.Image(), "digit": datasets.ClassLabel(names=list("abcdefghij"))})
    repo = write_dataset(tmp_path / "letters", {"train": {"img": pngs, "digit": y.tolist()}}, letters)
    with pytest.raises(ConfigError, match="--labels by-id"):
        load_condensed_set(str(repo), mnist_small)
    cs, matching = load_condensed_set(str(repo), mnist_small, labels="by-id")
    assert matching == "by-id" and torch.equal(cs.labels, y)


def test_bad_label_ids_and_missing_columns(mnist_small, tmp_path):
    u8, y = _ipc2(mnist_small)
    torch.save((u8, y + 5), tmp_path / "set.pt")
    with pytest.raises(DatasetError, match="outside the test dataset's 10 classes"):
        load_condensed_set(str(tmp_path / "set.pt"), mnist_small)
    repo = _array3d_repo(tmp_path / "repo", u8.float(), y, datasets.Value("int64"))
    from hf_lodc.errors import ColumnError

    with pytest.raises(ColumnError, match="no column 'image'"):
        load_condensed_set(str(repo), mnist_small, image_column="image")


def test_recipe_evaluates_a_pt_file(mnist_small, tmp_path, capsys):
    from recipes.evaluate import main

    u8, y = _ipc2(mnist_small)
    torch.save({"x": u8, "y": y}, tmp_path / "set.pt")
    out = tmp_path / "r.json"
    argv = [str(tmp_path / "set.pt"), "--test-dataset", "ylecun/mnist", "--max-per-class", "10", "--models",
            "convnet", "--runs", "1", "--epochs", "1", "--eval-max-per-class", "3", "--output", str(out), "--cpu"]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    rep = res["foreign_report"]
    assert rep["storage_bytes"] == 20 * 784 and rep["input_normalization"] == "uint8"
    assert res["evaluations_uint8"]["convnet"]["runs"] == 1
    printed = capsys.readouterr().out
    assert "values read as 'uint8'" in printed and "improvement" in printed
    assert "precision" not in res["evaluations_uint8"]["convnet"]["protocol"]  # fp32 unless asked
    assert main([str(tmp_path / "set.pt"), "--runs", "1"]) == 2  # no --test-dataset: a clear error
    # the speed options reach the evaluation and are recorded with its accuracy
    assert main(argv + ["--mixed-precision", "bf16", "--channels-last"]) == 0
    proto = json.loads(out.read_text())["evaluations_uint8"]["convnet"]["protocol"]
    assert proto["precision"].startswith("bf16 autocast") and proto["memory_format"] == "channels_last"


def test_recipe_on_an_array3d_hub_repo_by_id(hub_server, mnist_small, tmp_path):
    """A float Array3D repo with integer labels on the (loopback) Hub, through the recipe's options."""
    from recipes.evaluate import main

    u8, y = _ipc2(mnist_small)
    x = (u8.float() / 255.0).numpy()  # [0, 1] pixels
    feats = datasets.Features({"pixel_values": datasets.Array3D(shape=(1, 28, 28), dtype="float32"),
                               "extra": datasets.Array3D(shape=(1, 28, 28), dtype="float32"),
                               "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"pixel_values": x, "extra": x, "label": y.tolist()}, features=feats).push_to_hub(
        "alice/array3d-set", token=hub_server.token)
    out = tmp_path / "r.json"
    base = ["alice/array3d-set", "--test-dataset", "ylecun/mnist", "--max-per-class", "10", "--models", "convnet",
            "--runs", "1", "--epochs", "1", "--eval-max-per-class", "2", "--cpu"]
    assert main(base) == 2  # two Array3D columns: --image-column is needed (a ColumnError, exit code 2)
    assert main(base + ["--image-column", "pixel_values", "--labels", "by-id", "--output", str(out)]) == 0
    rep = json.loads(out.read_text())["foreign_report"]
    assert rep["kind"] == "dataset" and rep["label_matching"] == "by-id"
    assert rep["input_normalization"] == "zero-one" and rep["storage_bytes"] == 20 * 784 * 4
    assert rep["baseline"]["images_per_class"] == 2


def test_pt_file_in_a_hub_repo(hub_server, mnist_small, tmp_path):
    from huggingface_hub import HfApi

    u8, y = _ipc2(mnist_small)
    torch.save({"images": u8, "labels": y}, tmp_path / "set.pt")
    api = HfApi(token=hub_server.token)
    api.create_repo("alice/pt-sets", repo_type="dataset")
    api.upload_file(path_or_fileobj=str(tmp_path / "set.pt"), path_in_repo="mnist/ipc2.pt",
                    repo_id="alice/pt-sets", repo_type="dataset")
    cs, _ = load_condensed_set("alice/pt-sets/mnist/ipc2.pt", mnist_small)
    assert torch.equal(cs.images, u8) and torch.equal(cs.labels, y)
    from hf_lodc.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="not found in Hub repo alice/pt-sets"):
        load_condensed_set("alice/pt-sets/mnist/nope.pt", mnist_small)
