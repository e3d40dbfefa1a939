"""A pushed condensed repo with the real clients (issue 14, items 1 and 2): the real test split as the
``validation`` / ``test`` splits (datasets, transformers' Trainer, timm's ``hfds/`` reader), and model
repos that ``timm.create_model("hf-hub:...", pretrained=True)`` loads and that reproduce the card's
accuracy; all against the loopback Hub server."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

datasets = pytest.importorskip("datasets")

from hf_lodc.data.types import normalize  # noqa: E402
from hf_lodc.errors import ConfigError  # noqa: E402
from hf_lodc.export.model_repo import median_run  # noqa: E402
from tests.test_export import tiny_condensed  # noqa: E402

from tests.hub_helpers import FAST, NAME, REPO  # noqa: E402
from tests.hub_helpers import card_front_matter as _card  # noqa: E402


def test_pushed_repo_has_real_validation_and_test_splits_stored_once(hub_server):
    cd = tiny_condensed("lodm")
    test = cd.test_split()  # what the card's accuracies were measured on (10 per class)
    cd.push_to_hub(REPO, **FAST)

    ds = datasets.load_dataset(REPO)
    assert set(ds) == {"train", "validation", "test"}
    assert len(ds["train"]) == 70 and len(ds["validation"]) == len(ds["test"]) == len(test) == 100
    for split in ("validation", "test"):
        assert ds[split].features == ds["train"].features  # image + the same ClassLabel names
        assert ds[split]["label"] == test.labels.tolist()
    got = np.stack([np.asarray(im) for im in ds["validation"]["image"]])  # (M, H, W) mode L
    assert np.array_equal(got, test.images[:, 0].numpy())  # the real images, lossless

    px = datasets.load_dataset(REPO, "pixel_values")
    assert set(px) == {"train", "validation", "test"} and px["test"].features == px["train"].features
    x = px["test"].with_format("numpy")[:]["pixel_values"]
    assert np.abs(x - normalize(test.images, cd.mean, cd.std).numpy()).max() <= 1e-6  # normalised like train

    assert set(datasets.load_dataset(REPO, "factors")) == {"train"}  # parameters: no evaluation split

    files = hub_server.server.repo_state(REPO).files
    test_files = sorted(p for p in files if p.endswith("test-00000-of-00001.parquet"))
    assert len(test_files) == 2  # images + pixel_values, once each, shared by both split names
    card = _card(hub_server.server)
    default = next(c for c in card["configs"] if c["config_name"] == "default")
    paths = {f["split"]: f["path"] for f in default["data_files"]}
    assert paths["validation"] == paths["test"] and paths["test"].startswith("condensations/_test/")
    (cond,) = card["condensation"]
    ev = cond["eval_split"]
    assert ev["source"] == "ylecun/mnist" and ev["split"] == "test" and ev["rows"] == 100
    assert ev["max_per_class"] == 10 and ev["splits"] == ["validation", "test"]
    assert card["size_categories"] == ["n<1K"]
    assert {r["data"] for r in card["results"]} == {"pixel_values", "images"}
    for r in card["results"]:  # both views' records say what they were tested on, with which seed
        assert r["protocol"]["test_data"] == "first 10 images per class of split 'test' (100 rows)"
        assert r["protocol"]["seed"] == 0
    body = hub_server.server.read_file(REPO, "README.md").decode()
    assert "### Evaluation splits" in body and "has no evaluation split" in body


def test_no_test_split_leaves_only_train(hub_server):
    cd = tiny_condensed("lodm")
    cd.push_to_hub(REPO, test_split=False, **FAST)
    assert set(datasets.load_dataset(REPO)) == {"train"}
    assert not any("_test" in p for p in hub_server.server.repo_state(REPO).files)
    assert _card(hub_server.server)["condensation"][0]["eval_split"] is None


def test_transformers_trainer_trains_a_tiny_vit_and_evaluates_on_the_validation_split(hub_server, tmp_path):
    transformers = pytest.importorskip("transformers")
    cd = tiny_condensed("lodm")
    cd.push_to_hub(REPO, **FAST)

    ds = datasets.load_dataset(REPO)  # a user's code: no hf_lodc below this line
    mean, std = float(cd.mean[0]), float(cd.std[0])

    def to_pixels(batch):
        x = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in batch["image"]])[:, None]  # (B, 1, H, W)
        return {"pixel_values": torch.from_numpy((x - mean) / std), "labels": torch.tensor(batch["label"])}

    train, val = ds["train"].with_transform(to_pixels), ds["validation"].with_transform(to_pixels)
    names = ds["train"].features["label"].names
    config = transformers.ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=64, num_labels=len(names),
                                    id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config)

    def accuracy(p):
        return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

    args = transformers.TrainingArguments(output_dir=str(tmp_path / "vit"), max_steps=3, per_device_train_batch_size=16,
                                          per_device_eval_batch_size=50, learning_rate=1e-3, report_to=[],
                                          remove_unused_columns=False, use_cpu=True, save_strategy="no",
                                          logging_strategy="no", disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                                   compute_metrics=accuracy)
    out = trainer.train()
    assert out.global_step == 3
    metrics = trainer.evaluate()
    assert np.isfinite(metrics["eval_loss"]) and 0.0 <= metrics["eval_accuracy"] <= 1.0
    pred = trainer.predict(val)
    assert pred.label_ids.tolist() == cd.test_split().labels.tolist()  # evaluated on the 100 real test images


def test_timm_reads_the_validation_split_through_hfds(hub_server):
    timm_data = pytest.importorskip("timm.data")
    cd = tiny_condensed("lodm")
    cd.push_to_hub(REPO, **FAST)
    test = cd.test_split()
    val = timm_data.create_dataset(f"hfds/{REPO}", root=None, split="validation")
    train = timm_data.create_dataset(f"hfds/{REPO}", root=None, split="train")
    assert len(val) == len(test) and len(train) == 70
    img, label = val[3]
    assert np.array_equal(np.asarray(img.convert("L")), test.images[3, 0].numpy()) and label == int(test.labels[3])


def test_median_run():
    assert median_run({0: 10.0, 1: 30.0, 2: 20.0}) == 2
    assert median_run({0: 10.0, 1: 20.0}) == 0  # median 15: both equally close -> the lower run
    assert median_run({3: 50.0}) == 3


def test_pushed_model_loads_with_timm_hf_hub_and_reproduces_the_card_accuracy(hub_server):
    import timm
    from huggingface_hub import ModelCard

    import hf_lodc  # noqa: F401  (registers the lodc_* architectures)

    cd = tiny_condensed("lodm")
    recs = cd.evaluate(models=["convnet"], runs=3, epochs=2, uint8=False, keep_models=True)
    accs = recs["convnet"].accuracies
    run = median_run(dict(enumerate(accs)))
    res = cd.push_to_hub(REPO, push_models=True, **FAST)
    assert res.changed
    model_repo = f"{REPO}-convnet"
    server = hub_server.server
    assert len(server.commits(model_repo, repo_type="model")) == 2  # "initial commit" + ONE with everything

    net = timm.create_model(f"hf-hub:{model_repo}", pretrained=True).eval()
    cfg = timm.data.resolve_data_config({}, model=net)
    assert cfg["input_size"] == (1, 28, 28) and cfg["mean"] == tuple(cd.artifact.source.mean)
    test = cd.test_split()
    with torch.no_grad():
        pred = net(normalize(test.images, cd.mean, cd.std)).argmax(1)
    acc = 100.0 * float((pred == test.labels).sum()) / len(test)
    assert acc == accs[run]  # the very run the evaluation recorded, exactly

    card = ModelCard.load(model_repo)
    assert card.data.library_name == "timm"
    assert set(card.data.datasets) == {REPO, "ylecun/mnist"}
    (ev,) = card.data.eval_results
    assert ev.task_type == "image-classification" and ev.dataset_type == "ylecun/mnist"
    assert ev.dataset_split == "test" and ev.metric_type == "accuracy"
    assert ev.metric_value == round(accs[run], 3)
    assert f"run {run} of the 3 runs" in card.text

    dcard = _card(server)
    (m,) = dcard["condensation"][0]["models"]
    assert m == {"model": "convnet", "repo_id": model_repo, "run": run, "runs": 3, "accuracy": round(accs[run], 3)}
    assert f"https://huggingface.co/{model_repo}" in server.read_file(REPO, "README.md").decode()


def test_push_models_needs_kept_networks_and_refuses_transformers_models():
    cd = tiny_condensed("lodm")
    with pytest.raises(ConfigError, match="keep_models=True"):
        cd.push_to_hub(REPO, push_models=True, **FAST)
    with pytest.raises(ConfigError, match="transformers model"):
        cd.evaluate(models=["hf:vit"], runs=1, epochs=1, keep_models=True)


def test_the_local_artefact_is_the_repo_layout_and_a_push_uploads_it_as_it_is(hub_server, tmp_path):
    from hf_lodc import CondensedDataset
    from hf_lodc.export.artifact import load_artifact
    from hf_lodc.export.push import push_folder

    cd = tiny_condensed("lodm")
    local = tmp_path / "runs" / "mnist-lodm"
    cd.save_to_disk(local)
    here = datasets.load_dataset(str(local))  # the folder, as a dataset repo
    assert set(here) == {"train", "validation", "test"} and len(here["train"]) == 70
    assert set(datasets.load_dataset(str(local), "pixel_values")) == {"train", "validation", "test"}
    assert torch.equal(load_artifact(local).images(), cd.images())  # the hf_lodc files are there too
    back = CondensedDataset.from_disk(local)
    assert back.name == NAME and torch.equal(back.images(), cd.images())

    res = push_folder(local, REPO, **FAST)
    assert res.changed and res.config_name == NAME
    files = hub_server.server.repo_state(REPO).files
    mine = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*")
            if p.is_file() and p.relative_to(local).parts[0] == "condensations"}
    assert mine and all(hub_server.server.read_file(REPO, p) == b for p, b in mine.items())  # byte for byte
    assert {p for p in files if p.startswith("condensations/")} == set(mine)
    local_card = yaml.safe_load((local / "README.md").read_text().split("---\n")[1])
    remote_card = _card(hub_server.server)
    for key in ("configs", "dataset_info", "condensation", "results", "size_categories"):
        assert local_card[key] == remote_card[key]  # the same card (its snippets name the repo instead of the folder)
    pushed = datasets.load_dataset(REPO)
    for split in here:
        assert pushed[split]["label"] == here[split]["label"]

    from recipes.evaluate import main  # publishing a saved run from the command line: the same upload

    assert main([str(local), "--runs", "0", "--push-to-hub", "alice/again"]) == 0
    assert all(hub_server.server.read_file("alice/again", p) == b for p, b in mine.items())


def test_condense_recipe_push_models_and_no_test_split(hub_server, tmp_path):
    import timm

    from recipes.condense import main
    from tests.datasets_factory import make_dataset

    src = make_dataset(tmp_path / "tiny", num_classes=3, per_class={"train": 6, "test": 4}, size=(16, 16),
                       mode="L")
    out = tmp_path / "runs" / "tiny"
    base = ["--dataset", str(src), "--method", "random", "--ipc", "1", "--eval-models", "convnet",
            "--eval-runs", "3", "--eval-epochs", "2", "--no-eval-dsa", "--cpu"]
    assert main([*base, "--output-dir", str(out), "--push-to-hub", "alice/tiny", "--push-models"]) == 0
    local = datasets.load_dataset(str(out))
    assert {k: len(v) for k, v in local.items()} == {"train": 3, "validation": 12, "test": 12}
    remote = datasets.load_dataset("alice/tiny")
    assert {k: len(v) for k, v in remote.items()} == {"train": 3, "validation": 12, "test": 12}
    (m,) = _card(hub_server.server, "alice/tiny")["condensation"][0]["models"]
    assert m["repo_id"] == "alice/tiny-convnet" and m["runs"] == 3
    net = timm.create_model("hf-hub:alice/tiny-convnet", pretrained=True).eval()
    assert net.pretrained_cfg["input_size"] == (1, 16, 16) and net.num_classes == 3

    assert main([*base, "--push-to-hub", "alice/tiny-train-only", "--no-test-split"]) == 0
    assert set(datasets.load_dataset("alice/tiny-train-only")) == {"train"}
    refused = ["--dataset", str(src), "--method", "random", "--ipc", "1", "--eval-models", "hf:vit", "--cpu",
               "--output-dir", str(tmp_path / "runs" / "refused"), "--push-to-hub", "alice/x", "--push-models"]
    assert main(refused) == 2  # a transformers model: refused before any work
    assert not (tmp_path / "runs" / "refused").exists()
