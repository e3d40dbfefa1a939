"""A teacher trained by hf_lodc (recipes/teacher.py, published/teacher_training.py): what it writes, that
``--teacher`` loads it and relabels an evaluation with it, its model repo, and its bad inputs."""

from __future__ import annotations

import json

import pytest
import torch

import hf_lodc
from hf_lodc.published.teacher import load_teacher
from hf_lodc.published.teacher_training import save_teacher, train_teacher

# huggingface_hub's own LFS PUT (data=<file object>) triggers this httpx2 deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def test_recipe_writes_a_teacher_that_evaluate_teacher_loads_and_relabels_with(rgb8_root, rgb8, tmp_path, capsys):
    from recipes.evaluate import main as evaluate_main
    from recipes.teacher import main

    pt = tmp_path / "teacher.pt"
    assert main(["--dataset", str(rgb8_root), "--output", str(pt), "--epochs", "2", "--seed", "3", "--cpu"]) == 0
    out = capsys.readouterr().out
    record = json.loads(pt.with_suffix(".json").read_text())
    assert record["format"] == "hf_lodc teacher" and record["checkpoint"] == "teacher.pt"
    assert record["model"] == "convnet" and record["architecture"] == "lodc_convnet_d3_w128"
    assert record["hf_lodc_version"] == hf_lodc.__version__
    assert record["train"] == {"split": "train", "images": 36, "per_class": [12, 12], "labels": "hard, cross-entropy",
                               "epochs": 2, "seed": 3}
    assert record["protocol"]["lr_schedule"] == "x0.1 after epoch 1" and record["protocol"]["epochs"] == 2
    assert record["input"]["mean"] == rgb8.info.mean and record["test_rows"] == 12  # the whole test split
    assert f"{record['test_accuracy']:.2f} % on 12 test images" in out

    # the API gives the same teacher (seeded by seed and model only), and the .pt is exactly its state dict
    t = train_teacher(rgb8, "convnet", epochs=2, seed=3)
    assert round(t.accuracy, 3) == record["test_accuracy"]
    saved = torch.load(pt, weights_only=True)
    assert saved.keys() == t.state.keys() and all(torch.equal(saved[k], t.state[k]) for k in saved)
    net = load_teacher(str(pt), "convnet", 3, (3, 8, 8), "cpu")
    assert not net.training and not any(p.requires_grad for p in net.parameters())

    # the evaluation relabels the set and its random baseline with it, end to end through the CLI
    idx = torch.cat([torch.nonzero(rgb8.train.labels == c).flatten()[:2] for c in range(3)])
    torch.save({"images": rgb8.train.images[idx].float() / 255, "labels": rgb8.train.labels[idx]},
               tmp_path / "set.pt")
    res = tmp_path / "r.json"
    assert evaluate_main([str(tmp_path / "set.pt"), "--test-dataset", str(rgb8_root), "--teacher", str(pt),
                          "--teacher-model", "convnet", "--runs", "1", "--epochs", "1", "--output", str(res),
                          "--cpu"]) == 0
    report = json.loads(res.read_text())["foreign_report"]
    assert report["labels_kind"].startswith("teacher convnet (teacher.pt) relabels each augmented batch")
    assert report["baseline"]["evaluations"]["convnet"]["protocol"]["loss"] == "teacher sce (T=1)"


def test_save_is_atomic_and_the_protocol_options_reach_the_training(rgb8, tmp_path):
    from hf_lodc.engine.config import EvalConfig

    t = train_teacher(rgb8, "convnet", epochs=1, eval_config=EvalConfig(eval_protocol="idc"), eval_max_per_class=1)
    assert t.record["protocol"]["name"] == "idc" and t.record["protocol"]["batch_size"] == 64
    assert t.record["test_rows"] == 3 and t.record["test_max_per_class"] == 1
    pt, rec = save_teacher(t, tmp_path / "sub" / "t.pt")
    assert sorted(p.name for p in pt.parent.iterdir()) == ["t.json", "t.pt"]  # no temporaries left
    assert json.loads(rec.read_text())["test_accuracy"] == round(t.accuracy, 3)


def test_push_round_trip_through_the_model_repo_pusher(hub_server, rgb8_root, tmp_path, capsys):
    import timm
    from huggingface_hub import ModelCard, hf_hub_download

    from recipes.teacher import main

    repo = "alice/rgb8-teacher"
    pt = tmp_path / "t.pt"
    assert main(["--dataset", str(rgb8_root), "--output", str(pt), "--epochs", "1", "--push-to-hub", repo,
                 "--cpu"]) == 0
    assert "pushed teacher convnet" in capsys.readouterr().out
    server = hub_server.server
    assert len(server.commits(repo, repo_type="model")) == 2  # "initial commit" + ONE with everything
    record = json.loads(pt.with_suffix(".json").read_text())
    remote = json.loads(open(hf_hub_download(repo, "teacher.json")).read())
    assert remote == {k: v for k, v in record.items() if k != "checkpoint"}

    # the repo's weights are what --teacher loads, and timm rebuilds the network from the repo alone
    net = load_teacher(hf_hub_download(repo, "model.safetensors"), "convnet", 3, (3, 8, 8), "cpu")
    local = torch.load(pt, weights_only=True)
    assert all(torch.equal(v, local[k]) for k, v in net.state_dict().items())
    hub_net = timm.create_model(f"hf-hub:{repo}", pretrained=True).eval()
    assert timm.data.resolve_data_config({}, model=hub_net)["mean"] == tuple(record["input"]["mean"])

    card = ModelCard.load(repo)
    (ev,) = card.data.eval_results
    assert ev.metric_type == "accuracy" and ev.metric_value == record["test_accuracy"] and ev.dataset_split == "test"
    assert f"**{record['test_accuracy']:.2f} %**" in card.text and "1 epochs" in card.text
    assert "--teacher-model convnet" in card.text


def test_a_failed_first_push_leaves_the_teacher_written_and_no_empty_repo(hub_server, rgb8):
    from hf_lodc.errors import HubPushError
    from hf_lodc.published.teacher_training import push_teacher

    t = train_teacher(rgb8, "convnet", epochs=1)
    server = hub_server.server
    server.fail_next("commit", status=503, times=10)
    with pytest.raises(HubPushError, match=r"pushing teacher 'convnet' to 'alice/t' failed after 2 attempt\(s\).*"
                                           r"the empty repo created for this push was deleted again"):
        push_teacher(t, "alice/t", max_retries=1, retry_wait=0.01, log=None)
    assert server.store.get("model", "alice/t") is None


@pytest.mark.parametrize("argv, message", [
    (["--model", "no_such_net"], "no_such_net"),
    (["--dataset", "/nonexistent/ds"], "/nonexistent/ds"),
    (["--epochs", "0"], "--epochs must be a positive whole number, got 0"),
    (["--max-per-class", "-1"], "--max-per-class must be a positive whole number"),
    (["--protocol", "nope"], "nope"),
    (["--output", "OUT/t.txt"], "must name a .pt file"),
    (["--output", "OUT/missing/t.pt"], "does not exist"),
])
def test_bad_inputs_are_one_clear_error(rgb8_root, tmp_path, capsys, argv, message):
    from recipes.teacher import main

    args = {"--dataset": str(rgb8_root), "--output": str(tmp_path / "t.pt"), "--epochs": "1"}
    it = iter(argv)
    for k in it:
        args[k] = next(it).replace("OUT", str(tmp_path))
    assert main([x for kv in args.items() for x in kv] + ["--cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "t.pt").exists()


def test_an_unpublishable_teacher_is_refused_before_training(rgb8):
    from hf_lodc.errors import ConfigError
    from hf_lodc.published import teacher_training
    from hf_lodc.published.teacher_training import check_publishable

    check_publishable("convnet", rgb8.image_shape)
    with pytest.raises(ConfigError, match="cannot be published"):
        check_publishable("hf:some/vit", rgb8.image_shape)
    t = train_teacher(rgb8, "convnet", epochs=1)
    t.pretrained_cfg = None  # what a transformers model or a resized backbone gives
    with pytest.raises(ConfigError, match="cannot be published"):
        teacher_training.teacher_files(t, "alice/x")
