"""Evaluation protocols: the DC literature's (default) and IDC's own (batch 64, multistep lr, CutMix),
one training loop for both, both backends, and both numbers side by side in results and the card."""

from __future__ import annotations

import json

import pytest
import torch

import hf_lodc
from hf_lodc import pipeline
from hf_lodc.data.augment import DSAugment, cutmix
from hf_lodc.engine.config import EvalConfig, RunConfig
from hf_lodc.engine.evaluate import augment_of, protocol_of, record_key, schedule_of
from hf_lodc.training.loop import TrainSchedule, train_network
from hf_lodc.errors import UnknownNameError
from tests.datasets_factory import make_dataset


def test_lr_schedules():
    E = 12
    dc = TrainSchedule(lr=1.0, epochs=E, lr_schedule="step_half")
    assert [dc.lr_at(e) for e in range(E)] == [1.0] * 6 + [0.1] * 6
    idc = TrainSchedule(lr=1.0, epochs=E, lr_schedule="idc_multistep")  # milestones 2E/3 = 8, 5E/6 = 10
    assert [idc.lr_at(e) for e in range(E)] == [1.0] * 8 + [0.2] * 2 + [0.04] * 2
    assert TrainSchedule(lr=0.5, epochs=E).lr_at(E - 1) == 0.5  # constant: gradient matching, experts
    assert idc.describe_lr() == "x0.2 after epoch 8, x0.04 after epoch 10"
    with pytest.raises(UnknownNameError, match="constant, idc_multistep, step_half"):
        TrainSchedule(lr=1.0, lr_schedule="cosine")
    with pytest.raises(ValueError, match="cutmix_p"):
        TrainSchedule(lr=1.0, cutmix_p=1.5)


def test_cutmix_pastes_one_box_from_partners():
    x = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 2, 8, 8).contiguous()  # image i is all i
    y = torch.arange(6)
    mixed, y_b, ratio = cutmix(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(x[:, :, 0, 0], torch.arange(6, dtype=torch.float32).view(6, 1).expand(6, 2))  # not in place
    changed = mixed != x  # (6, 2, 8, 8)
    for i in range(6):
        partner = int(y_b[i])
        inside = mixed[i] == partner
        assert torch.all((mixed[i] == i) | inside)  # every pixel is its own or its partner's
        if partner != i:  # the kept area is exactly 1 - box area / image area
            assert float((~inside).float().mean()) == pytest.approx(ratio)
            assert changed[i].any() == (ratio < 1.0)
    assert sorted(y_b.tolist()) == list(range(6))  # partners are a permutation
    again = cutmix(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], mixed) and again[2] == ratio  # reproducible from the generator


def test_no_cutmix_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert TrainSchedule(lr=1.0).draw_cutmix(g) is False
    assert torch.equal(g.get_state(), state)  # trainings without CutMix draw exactly as before it existed


def test_cutmix_changes_the_training_and_stays_finite():
    torch.manual_seed(0)
    images, labels = torch.randn(16, 1, 8, 8), torch.arange(16) % 4

    def trained(p: float) -> torch.Tensor:
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
        torch.nn.init.zeros_(net[1].weight)
        torch.nn.init.zeros_(net[1].bias)
        sched = TrainSchedule(lr=0.1, batch=8, epochs=3, cutmix_p=p)
        train_network(net, images, labels, sched, torch.Generator().manual_seed(0), DSAugment("none"))
        return net[1].weight.detach().clone()

    plain, mixed = trained(0.0), trained(1.0)
    assert torch.isfinite(mixed).all() and not torch.allclose(plain, mixed)
    assert torch.equal(trained(1.0), mixed)


def test_protocol_records():
    dc, idc = EvalConfig(eval_epochs=600), EvalConfig(eval_epochs=600, eval_protocol="idc")
    p = protocol_of(dc)
    assert "name" not in p and p["batch_size"] == 256 and p["lr_schedule"] == "x0.1 after epoch 300"
    assert p["augmentation"] == "dsa:color_crop_cutout_flip_scale_rotate"
    q = protocol_of(idc)
    assert (q["name"], q["batch_size"], q["cutmix_p"]) == ("idc", 64, 0.5)
    assert q["lr_schedule"] == "x0.2 after epoch 400, x0.04 after epoch 500"
    assert q["augmentation"] == "dsa:color_crop_flip_scale_rotate"  # CutMix replaces cutout
    assert "cutout" not in augment_of(idc).families and "cutout" in augment_of(dc).families
    assert schedule_of(idc).batch == 64 and schedule_of(dc).batch == 256
    assert (record_key("convnet", dc), record_key("convnet", idc)) == ("convnet", "convnet@idc")
    with pytest.raises(UnknownNameError, match="valid evaluation protocols: dc, idc"):
        pipeline.validate_eval(EvalConfig(eval_protocol="kip"))


def test_both_protocols_side_by_side_in_results_and_card(tmp_path):
    path = make_dataset(tmp_path / "d", per_class={"train": 12, "test": 6})
    data = hf_lodc.load_image_classification(str(path), cache=False)
    cfg = RunConfig.from_flat({"dataset": str(path), "method": "dm", "ipc": 1, "iterations": 2, "batch_real": 4,
                               "eval_runs": 2, "eval_epochs": 3, "output_dir": str(tmp_path / "run")})
    pipeline.run_experiment(cfg, data=data, progress=False, log=lambda s: None)
    cd = hf_lodc.CondensedDataset.from_disk(tmp_path / "run")
    dc_before = dict(cd.results["evaluations"]["convnet"])
    recs = cd.evaluate(runs=2, epochs=3, uint8=False, eval_protocol="idc")
    assert set(recs) == {"convnet@idc"}
    ev = cd.results["evaluations"]
    assert ev["convnet"] == dc_before  # the default protocol's numbers are kept
    assert ev["convnet@idc"]["protocol"]["name"] == "idc" and ev["convnet@idc"]["runs"] == 2
    assert ev["convnet@idc"]["protocol"]["batch_size"] == 64
    cd.save_to_disk(tmp_path / "both")
    saved = json.loads((tmp_path / "both" / "results.json").read_text())["evaluations"]
    assert set(saved) == {"convnet", "convnet@idc"}
    card = (tmp_path / "both" / "README.md").read_text()
    assert "convnet@idc" in card and "Protocol `idc` (IDC's own evaluation" in card
    assert "Protocol (DC/DSA/DM literature)" in card and "CutMix on a batch with probability 0.5" in card


def test_evaluate_recipe_refuses_an_unknown_protocol_before_reading_the_set(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "evaluate_recipe", Path(__file__).resolve().parents[1] / "recipes" / "evaluate.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    (tmp_path / "set").mkdir()  # exists, but is no artefact: the protocol must fail first
    assert recipe.main([str(tmp_path / "set"), "--protocol", "kip"]) == 2
    assert "unknown evaluation protocol 'kip'; valid evaluation protocols: dc, idc" in capsys.readouterr().err


def test_evaluating_a_set_saved_unevaluated_writes_its_records_into_it(tmp_path):
    """The hint a run interrupted while evaluating prints (`recipes/evaluate.py DIR`) completes the artefact."""
    import importlib.util
    from pathlib import Path

    path = make_dataset(tmp_path / "d", per_class={"train": 12, "test": 6})
    data = hf_lodc.load_image_classification(str(path), cache=False)
    cfg = RunConfig.from_flat({"dataset": str(path), "method": "dm", "ipc": 1, "iterations": 2, "batch_real": 4,
                               "eval_runs": 0, "output_dir": str(tmp_path / "run")})
    pipeline.run_experiment(cfg, data=data, progress=False, log=lambda s: None)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["evaluated"] is False
    spec = importlib.util.spec_from_file_location(
        "evaluate_recipe", Path(__file__).resolve().parents[1] / "recipes" / "evaluate.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    assert recipe.main([str(tmp_path / "run"), "--runs", "2", "--epochs", "2", "--no-uint8", "--cpu"]) == 0
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["evaluated"] is True and "not_evaluated_because" not in saved
    assert saved["evaluations"]["convnet"]["runs"] == 2
    assert hf_lodc.CondensedDataset.from_disk(tmp_path / "run").results["evaluations"]["convnet"]["runs"] == 2


def test_a_long_evaluation_says_each_run_as_it_finishes(capsys):
    g = torch.Generator().manual_seed(0)
    imgs, labels = torch.randn(6, 1, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    test = hf_lodc.LabeledImages((torch.rand(9, 1, 8, 8, generator=g) * 255).to(torch.uint8), torch.arange(9) % 3)
    ec = hf_lodc.EvalConfig(eval_runs=2, eval_epochs=1, eval_batch=4)
    kept = []
    recs = hf_lodc.evaluate_synthetic(imgs, labels, test, torch.tensor([0.5]), torch.tensor([0.25]), 3, ec,
                                      progress=True, keep_state=lambda m, r, a, n: kept.append((r, a)))
    out = capsys.readouterr().out
    assert "[eval] convnet run 1/2:" in out and "[eval] convnet run 2/2:" in out
    assert [a for _, a in kept] == recs["convnet"].accuracies  # the caller's keep_state still sees every run


def test_a_long_evaluation_shows_a_bar_over_each_networks_epochs_and_the_same_accuracies(capsys):
    from hf_lodc.data.types import LabeledImages
    from hf_lodc.engine.evaluate import evaluate_synthetic

    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(8, 1, 8, 8, generator=g), torch.arange(4).repeat(2)
    test = LabeledImages((torch.rand(8, 1, 8, 8, generator=g) * 255).to(torch.uint8), torch.arange(4).repeat(2))
    cfg = EvalConfig(eval_runs=2, eval_epochs=3, eval_batch=4)
    args = (images, labels, test, torch.zeros(1), torch.ones(1), 4, cfg)
    quiet = evaluate_synthetic(*args)["convnet"].accuracies
    capsys.readouterr()
    shown = evaluate_synthetic(*args, progress=True)["convnet"].accuracies
    err = capsys.readouterr().err
    # one bar per network, counting its 3 epochs (tqdm redraws at most every 0.1 s, so only its start is sure)
    assert "[eval] convnet run 1/2" in err and "[eval] convnet run 2/2" in err and "/3 [" in err and "epoch" in err
    assert shown == quiet  # the bar reads nothing from the training
