"""The Hub layout of a condensed set, built offline: views, determinism, card, preview, local repo folder."""

from __future__ import annotations

import copy
import functools
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

datasets = pytest.importorskip("datasets")

from hf_lodc import CondensedDataset  # noqa: E402
from hf_lodc.data.types import denormalize_to_uint8  # noqa: E402
from hf_lodc.errors import ConfigError, IncompatibleArtifactError  # noqa: E402
from hf_lodc.export import card as card_mod  # noqa: E402
from hf_lodc.export import pull, repo_files  # noqa: E402
from hf_lodc.export import views as view_mod  # noqa: E402

EVAL = dict(models=["convnet"], runs=1, epochs=2)


@functools.lru_cache(maxsize=None)
def _tiny(kind: str) -> CondensedDataset:
    """Tiny real MNIST condensations, built once per test process (callers get deep copies)."""
    cd = CondensedDataset("ylecun/mnist", max_per_class=20, eval_max_per_class=10)
    if kind == "lodm":  # the real method, 2 iterations, evaluated (float32 + uint8)
        cd.condense(method="lodm", ipc=1, rank=2, iterations=2, batch_real=8, seed=0)
        cd.evaluate(**EVAL)
    elif kind == "pixel":  # a pixel set (random real images), not evaluated
        cd.condense(method="random", ipc=1, seed=0)
    else:
        raise ValueError(kind)
    return cd


def tiny_condensed(kind: str = "lodm") -> CondensedDataset:
    """A private copy of the shared tiny condensation (safe to mutate)."""
    src = _tiny(kind)
    cd = copy.copy(src)
    cd._artifact = copy.deepcopy(src._artifact)
    cd.eval_config = copy.deepcopy(src.eval_config)
    return cd


def write_repo_folder(cd: CondensedDataset, folder: Path, name: str = "lodm-ipc1-r2") -> Path:
    """The files of a one-condensation repo, written as a local folder (what the Hub would hold)."""
    files, meta = repo_files.condensation_files(cd.artifact, name)
    front = card_mod.front_matter({name: meta}, name, {})
    readme = card_mod.build_card({name: meta}, name, "alice/x", card_data=front)
    for path, data in {**files, "README.md": readme.encode()}.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return folder


def test_views_hold_the_same_images_and_factors():
    cd = tiny_condensed("lodm")
    art = cd.artifact
    views = view_mod.view_datasets(art)
    assert set(views) == {"images", "pixel_values", "factors"}
    n, (c, h, w) = len(art.synset), art.synset.image_shape
    assert n == 70 and art.synset.per_class == 7  # MNIST ipc 1 rank 2: floor(784 / (2 * 56)) = 7 per class

    img = views["images"]
    assert isinstance(img.features["image"], datasets.Image)
    assert img.features["label"].names == [str(i) for i in range(10)]
    decoded = np.stack([np.asarray(im) for im in img["image"]])  # (N, H, W) mode L
    assert decoded.shape == (n, h, w) and decoded.dtype == np.uint8
    want = denormalize_to_uint8(art.images(), art.mean, art.std)[:, 0].numpy()
    assert np.array_equal(decoded, want)
    assert img["label"] == art.labels.tolist()

    px = views["pixel_values"].with_format("numpy")[:]
    assert views["pixel_values"].features["pixel_values"] == datasets.Array3D(shape=(c, h, w), dtype="float32")
    x = torch.from_numpy(np.asarray(px["pixel_values"]))
    assert torch.equal(x, art.images())

    fa = views["factors"].with_format("numpy")[:]
    assert views["factors"].features["A"].shape == (c, h, 2) and views["factors"].features["B"].shape == (c, 2, w)
    A, B = torch.from_numpy(np.asarray(fa["A"])), torch.from_numpy(np.asarray(fa["B"]))
    assert (A @ B - x).abs().max() <= 1e-6

    pixel = tiny_condensed("pixel")
    assert set(view_mod.view_datasets(pixel.artifact)) == {"images", "pixel_values"}  # no factors for pixel sets
    assert pixel.factors is None


def test_files_are_byte_deterministic_and_record_storage():
    cd = tiny_condensed("lodm")
    f1, meta = repo_files.condensation_files(cd.artifact, "lodm-ipc1-r2")
    f2, _ = repo_files.condensation_files(copy.deepcopy(cd.artifact), "lodm-ipc1-r2")
    assert f1 == f2  # same artefact -> same bytes -> a re-push is a no-op
    assert sorted(f1) == [
        "condensations/lodm-ipc1-r2/factors/train-00000-of-00001.parquet",
        "condensations/lodm-ipc1-r2/hf_lodc.json",
        "condensations/lodm-ipc1-r2/images/train-00000-of-00001.parquet",
        "condensations/lodm-ipc1-r2/pixel_values/train-00000-of-00001.parquet",
        "condensations/lodm-ipc1-r2/preview.png",
    ]
    assert json.loads(f1["condensations/lodm-ipc1-r2/hf_lodc.json"]) == meta
    assert meta["layout_version"] == view_mod.LAYOUT_VERSION
    assert meta["views"]["factors"]["config_name"] == "lodm-ipc1-r2-factors"
    storage = meta["results"]["storage"]
    # 7 factor images of 1 * 2 * (28 + 28) floats per class vs 1 pixel image of 784 floats per class
    assert storage["stored_bytes"] == 10 * 7 * 112 * 4 and storage["budget_bytes"] == 10 * 784 * 4


def test_preview_grid_is_a_png_with_one_row_per_class():
    from PIL import Image

    cd = tiny_condensed("lodm")
    files, _ = repo_files.condensation_files(cd.artifact, "x")
    im = Image.open(io.BytesIO(files["condensations/x/preview.png"]))
    assert im.format == "PNG" and im.mode == "RGB"
    # 28 px digits upscaled x2 to 56 px tiles, 2 px gaps, 7 columns + a 64 px label margin, 10 rows
    assert im.size == (64 + 7 * 58 + 2, 10 * 58 + 2)


def test_card_yaml_carries_configs_license_condensation_and_measured_results():
    cd = tiny_condensed("lodm")
    name = "lodm-ipc1-r2"
    _, meta = repo_files.condensation_files(cd.artifact, name)
    front = card_mod.front_matter({name: meta}, name, {})
    text = card_mod.build_card({name: meta}, name, "alice/mnist-lodm", card_data=front)
    assert text.startswith("---\n")
    data = yaml.safe_load(text.split("---\n")[1])
    configs = {c["config_name"]: c["data_files"] for c in data["configs"]}
    assert set(configs) == {"default", "pixel_values", "factors", name, f"{name}-pixel_values", f"{name}-factors"}
    assert configs["default"] == configs[name] == [{"split": "train", "path": f"condensations/{name}/images/train-*"}]
    assert configs["factors"] == [{"split": "train", "path": f"condensations/{name}/factors/train-*"}]
    infos = {i["config_name"]: i for i in data["dataset_info"]}
    assert infos["default"]["splits"] == [{"name": "train", "num_bytes": meta["views"]["images"]["num_bytes"],
                                           "num_examples": 70}]
    assert data["license"] == "mit"  # inherited from the MNIST card
    assert data["source_datasets"] == ["ylecun/mnist"]
    assert data["task_categories"] == ["image-classification"]
    assert {"dataset-condensation", "low-rank", "lodm"} <= set(data["tags"])
    (cond,) = data["condensation"]
    assert cond["config_name"] == name and cond["default"] is True
    assert cond["method"] == "lodm" and cond["rank"] == 2 and cond["pixel_budget_ipc"] == 1
    assert cond["images_per_class"] == 7 and cond["iterations"] == 2 and cond["init"] == "svd" and cond["seed"] == 0
    assert cond["storage"]["stored_bytes"] == 31360 and cond["storage"]["pixel_budget_bytes"] == 31360
    assert cond["normalisation"]["mean"] == cd.artifact.source.mean
    assert {"hf_lodc", "torch", "datasets"} <= set(cond["versions"]) and cond["hardware"]
    assert cond["wall_time_s"] == cd.results["condensation"]["wall_time_s"]
    # accuracies come from the artefact's evaluation record, both data views
    by_view = {r["data"]: r for r in data["results"]}
    for view, key in (("pixel_values", "evaluations"), ("images", "evaluations_uint8")):
        rec = cd.results[key]["convnet"]
        assert by_view[view]["accuracy_mean"] == rec["accuracy_mean"]
        assert by_view[view]["accuracies"] == rec["accuracies"]
        assert by_view[view]["runs"] == 1 and by_view[view]["epochs"] == 2
        assert by_view[view]["protocol"]["accuracy"] == "last epoch (not best)"
        assert by_view[view]["protocol"]["test_data"] == "first 10 images per class of split 'test' (100 rows)"
    body = text.split("---\n", 2)[2]
    fl, u8 = cd.results["evaluations"]["convnet"], cd.results["evaluations_uint8"]["convnet"]
    delta = u8["accuracy_mean"] - fl["accuracy_mean"]
    row = (f"| `{name}` | convnet | {fl['accuracy_mean']:.2f} ± {fl['accuracy_std']:.2f} | "
           f"{u8['accuracy_mean']:.2f} ± {u8['accuracy_std']:.2f} | {delta:+.2f} | 1 × 2 |")
    assert row in body
    assert "after the last epoch (not the best epoch)" in body and "lr × 0.1 after epoch 1" in body
    assert f"condensations/{name}/preview.png" in body and "Yang, Enneng" in body
    assert 'load_dataset("alice/mnist-lodm", "factors", split="train")' in body


def test_card_keeps_user_text_and_keys_and_rerenders_identically():
    cd = tiny_condensed("lodm")
    name = "lodm-ipc1-r2"
    _, meta = repo_files.condensation_files(cd.artifact, name)
    first = card_mod.build_card({name: meta}, name, "alice/x", card_data=card_mod.front_matter({name: meta}, name, {}))
    data, body = card_mod.read_card_data(first)
    edited_body = "My intro.\n\n" + body + "\nMy footer.\n"
    data["language"] = ["en"]
    again = card_mod.build_card({name: meta}, name, "alice/x", card_data=card_mod.front_matter({name: meta}, name, data),
                                existing_body=edited_body)
    assert "My intro." in again and "My footer." in again and "language:\n- en" in again
    data2, body2 = card_mod.read_card_data(again)
    front2 = card_mod.front_matter({name: meta}, name, data2)
    third = card_mod.build_card({name: meta}, name, "alice/x", card_data=front2, existing_body=body2)
    assert third == again  # stable: re-pushing changes nothing


@pytest.mark.parametrize("bad", ["default", "pixel_values", "factors", "x-factors", "y-pixel_values", "a b", "-x", ""])
def test_reserved_or_malformed_config_names_are_refused(bad):
    with pytest.raises(ConfigError, match="config name"):
        view_mod.check_config_name(bad)
    assert view_mod.check_config_name("lodm-ipc10-r2.v2") == "lodm-ipc10-r2.v2"


def test_local_repo_folder_loads_with_plain_datasets_and_back_into_hf_lodc(tmp_path):
    cd = tiny_condensed("lodm")
    folder = write_repo_folder(cd, tmp_path / "repo")
    ds = datasets.load_dataset(str(folder), split="train")
    assert len(ds) == 70 and ds.features["label"].names == [str(i) for i in range(10)]
    px = datasets.load_dataset(str(folder), "lodm-ipc1-r2-pixel_values", split="train").with_format("torch")[:]
    assert torch.equal(px["pixel_values"], cd.images())

    back = CondensedDataset.from_disk(folder)  # a local copy of a Hub repo
    assert back.name == "lodm-ipc1-r2"
    assert torch.equal(back.images(), cd.images()) and torch.equal(back.labels, cd.labels)
    assert torch.equal(back.factors[0], cd.factors[0]) and torch.equal(back.factors[1], cd.factors[1])
    assert back.mean.tolist() == cd.mean.tolist() and back.class_names == cd.class_names
    assert back.config["condense"] == cd.config["condense"] and back.results == cd.results


def test_folder_that_is_not_a_condensed_set_is_refused_by_name(tmp_path):
    from tests.datasets_factory import make_dataset

    folder = tmp_path / "plain"
    make_dataset(folder, num_classes=2)
    with pytest.raises(IncompatibleArtifactError) as e:
        pull.load_condensation(str(folder))
    assert str(e.value).startswith(f"{str(folder)!r} is not an hf_lodc condensed set: it has no "
                                   "condensations/<name>/hf_lodc.json record (configs: ['default']")
    with pytest.raises(IncompatibleArtifactError, match=r"is not an hf_lodc artefact: missing \['synset.safetensors', "
                                                        r"'config.json'\]"):
        CondensedDataset.from_disk(folder)


def _edit_meta(folder: Path, name: str, fn) -> None:
    p = folder / "condensations" / name / "hf_lodc.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def test_incompatible_versions_and_missing_fields_are_named(tmp_path):
    cd = tiny_condensed("lodm")
    name = "lodm-ipc1-r2"
    cases = [
        (lambda m: m.update(layout_version=99),
         "condensations/lodm-ipc1-r2/hf_lodc.json has layout_version 99; this hf_lodc reads layout_version 1"),
        (lambda m: m["artifact"].update(format_version=7), "has format_version 7; this hf_lodc"),
        (lambda m: m.pop("views"), "condensations/lodm-ipc1-r2/hf_lodc.json lacks the field 'views'"),
        (lambda m: m["artifact"].pop("budget"), "the config record lacks the field 'budget'"),
        (lambda m: m["views"].pop("factors"), "lists no 'factors' view, which a 'lowrank' set needs to be rebuilt"),
        (lambda m: m["views"]["factors"].update(config_name="gone-factors"),
         "the config 'gone-factors' (factors) cannot be loaded"),
    ]
    for i, (edit, message) in enumerate(cases):
        folder = write_repo_folder(cd, tmp_path / f"r{i}", name)
        _edit_meta(folder, name, edit)
        with pytest.raises(IncompatibleArtifactError) as e:
            CondensedDataset.from_disk(folder)
        assert message in str(e.value), (i, str(e.value))
    folder = write_repo_folder(cd, tmp_path / "unsafe", name)
    (folder / "README.md").write_text("---\nlicense: !!python/object/apply:os.system ['echo pwned']\n---\nhi\n")
    with pytest.raises(IncompatibleArtifactError, match=r"the README.md front matter is not valid \(safe\) YAML "
                                                        r"\(ConstructorError: could not determine a constructor"):
        CondensedDataset.from_disk(folder)
    folder = write_repo_folder(cd, tmp_path / "named", name)
    with pytest.raises(IncompatibleArtifactError, match=r"has no condensation 'nope' \(no file condensations/nope/"
                                                        r"hf_lodc.json\); available: \['lodm-ipc1-r2'\]"):
        pull.load_condensation(str(folder), "nope")
    assert pull.load_condensation(str(folder), "lodm-ipc1-r2-factors").name == name
