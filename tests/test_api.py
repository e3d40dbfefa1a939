"""CondensedDataset: the builder API (condense, evaluate, save/load, continue condensing)."""

from __future__ import annotations

import pytest
import torch

from hf_lodc import CondensedDataset
from hf_lodc.errors import ConfigError, UnknownNameError
from tests.test_export import tiny_condensed


def test_save_to_disk_and_from_disk_round_trip_exactly(tmp_path):
    cd = tiny_condensed("lodm")
    cd.save_to_disk(tmp_path / "a")
    back = CondensedDataset.from_disk(tmp_path / "a")
    assert torch.equal(back.images(), cd.images()) and torch.equal(back.labels, cd.labels)
    assert torch.equal(back.factors[0], cd.factors[0]) and torch.equal(back.factors[1], cd.factors[1])
    assert back.results == cd.results and back.config["condense"] == cd.config["condense"]
    assert back.eval_max_per_class == 10 and back.eval_config.eval_epochs == 2
    assert back.data_config.dataset == "ylecun/mnist" and back.data_config.max_per_class == 20
    assert repr(back) == ("CondensedDataset(source='ylecun/mnist', method='lodm', ipc=1, rank=2, images=70 "
                          "(7/class), classes=10)")
    x, y = back.to_torch_dataset(uint8=True).tensors
    assert x.dtype == torch.uint8 and x.shape == (70, 1, 28, 28) and torch.equal(y, cd.labels)


def test_continue_condensing_a_loaded_set(tmp_path):
    cd = tiny_condensed("lodm")
    cd.save_to_disk(tmp_path / "a")
    back = CondensedDataset.from_disk(tmp_path / "a")
    with pytest.raises(ConfigError, match="say how many more iterations with iterations="):
        back.condense()
    with pytest.raises(ConfigError, match=r"cannot continue the current set: rank=4 \(set has 2\)"):
        back.condense(rank=4, iterations=1, continue_from_current=True)
    A0 = back.factors[0]
    back.condense(iterations=1)  # one more iteration, from the loaded factors
    assert back.config["condense"]["iterations"] == 3
    assert back.results["condensation"]["continued_from_iteration"] == 2
    assert back.artifact.history[-1]["iteration"] == 2  # iteration index 2: seeds of an uninterrupted run
    assert not torch.equal(back.factors[0], A0) and not back.results["evaluations"]  # a new set, not evaluated

    fresh = CondensedDataset.from_disk(tmp_path / "a")
    fresh.condense(method="lorandom", ipc=1, rank=2)  # another method: starts afresh
    assert fresh.config["method"] == "lorandom" and fresh.config["condense"]["iterations"] == 0


def test_evaluate_records_float32_and_uint8_with_the_same_seeds():
    cd = tiny_condensed("lodm")
    fl, u8 = cd.results["evaluations"]["convnet"], cd.results["evaluations_uint8"]["convnet"]
    assert fl["runs"] == u8["runs"] == 1 and fl["epochs"] == u8["epochs"] == 2
    assert fl["protocol"]["seed"] == u8["protocol"]["seed"] == 0
    assert fl["protocol"]["test_data"] == "first 10 images per class of split 'test' (100 rows)"
    again = cd.evaluate(models=["convnet"], runs=1, epochs=2, uint8=False)["convnet"]
    assert again.accuracies == fl["accuracies"]  # deterministic given the seed
    assert cd.results["evaluations_uint8"]["convnet"] == u8  # kept when not re-measured
    assert "replaced_evaluations" not in cd.results  # the same measurement again: nothing to keep


def test_a_record_replaced_by_another_protocol_is_kept(tmp_path, capsys):
    cd = tiny_condensed("lodm")
    long = dict(cd.results["evaluations"]["convnet"])  # 1 run x 2 epochs
    cd.evaluate(models=["convnet"], runs=1, epochs=1, uint8=False, progress=True)  # a quicker re-check
    assert cd.results["evaluations"]["convnet"]["epochs"] == 1
    assert "the earlier record (1 runs x 2 epochs" in capsys.readouterr().out
    cd.save_to_disk(tmp_path / "a")
    kept = CondensedDataset.from_disk(tmp_path / "a").results["replaced_evaluations"]
    assert kept == [{"results_key": "evaluations", "model": "convnet", **long}]


def test_builder_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"give a source dataset \(Hub id or local folder\) or data=\.\.\."):
        CondensedDataset()
    with pytest.raises(ConfigError, match=r"unknown data option\(s\) \['colour'\]"):
        CondensedDataset("ylecun/mnist", colour=True)
    cd = CondensedDataset("ylecun/mnist", max_per_class=5)
    with pytest.raises(ConfigError, match=r"nothing condensed yet: call \.condense\(\.\.\.\) or load a set with "
                                          r"from_hub / from_disk"):
        cd.images()
    with pytest.raises(ConfigError, match=r"unknown condense option\(s\) \['ranks'\]"):
        cd.condense(ranks=2)
    done = tiny_condensed("pixel")
    with pytest.raises(ConfigError, match=r"unknown evaluation option\(s\) \['epoch'\]"):
        done.evaluate(epoch=3)
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        done.evaluate(float32=False, uint8=False)
    with pytest.raises(UnknownNameError, match="unknown"):
        done.evaluate(models=["no_such_model"], runs=1, epochs=1)
