"""A stopped evaluation resumes at the run it stopped in: the finished runs are read back from the
journal beside the checkpoint, only the others train, and the record equals an uninterrupted one."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import hf_lodc.engine.evaluate as evaluation
from hf_lodc.data.types import LabeledImages
from hf_lodc.engine.condenser import Interrupted
from hf_lodc.engine.config import EvalConfig, RunConfig
from hf_lodc.engine.eval_journal import JOURNAL_NAME, EvalJournal, journal_key
from hf_lodc.pipeline import run_experiment
from tests.datasets_factory import make_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("journal") / "data", per_class={"train": 6, "test": 3})


def _counting(monkeypatch, stop_at: int | None = None) -> list[int]:
    """Count the networks the evaluation trains; with ``stop_at``, the stop signal arrives in that one."""
    trained, train_one = [], evaluation.train_one

    def counted(*args, **kwargs):
        trained.append(1)
        if stop_at is not None and len(trained) == stop_at:
            raise KeyboardInterrupt("SIGTERM")  # what the run's handler turns a SIGTERM into
        return train_one(*args, **kwargs)

    monkeypatch.setattr(evaluation, "train_one", counted)
    return trained


def _accuracies(out) -> list[float]:
    return json.loads((out / "results.json").read_text())["evaluations"]["convnet"]["accuracies"]


def test_a_stopped_evaluation_resumes_at_the_run_it_stopped_in(tiny, tmp_path, monkeypatch, capsys):
    opts = {"dataset": str(tiny), "iterations": 2, "batch_real": 4, "eval_runs": 3, "eval_epochs": 2}
    out = tmp_path / "run"
    trained = _counting(monkeypatch, stop_at=3)  # runs 0 and 1 finish, run 2 is stopped
    with pytest.raises(Interrupted, match="the evaluation runs that finished are not trained again"):
        run_experiment(RunConfig.from_flat({**opts, "output_dir": str(out)}), progress=False, log=lambda m: None)
    journal = out / "checkpoints" / JOURNAL_NAME
    runs = json.loads(journal.read_text())["runs"]
    assert [sorted(v) for v in runs.values()] == [["0", "1"]]

    monkeypatch.undo()
    trained = _counting(monkeypatch)
    capsys.readouterr()
    run_experiment(RunConfig.from_flat({**opts, "output_dir": str(out), "resume": True}), progress=True,
                   log=lambda m: None)
    assert len(trained) == 1  # only run 2
    said = capsys.readouterr().out
    assert "2 of 3 runs finished before the stop" in said and "over 1 runs" in said  # this sitting's run
    mean = sum(_accuracies(out)) / 3
    assert f"{mean:.2f} +- " in said and "over 3 runs" in said and "all 3 runs, 2 of them read back" in said
    assert not (out / "checkpoints").exists()  # the journal went with the checkpoint

    fresh = tmp_path / "fresh"
    run_experiment(RunConfig.from_flat({**opts, "output_dir": str(fresh)}), progress=False, log=lambda m: None)
    assert _accuracies(out) == _accuracies(fresh)


def _test_split() -> LabeledImages:
    g = torch.Generator().manual_seed(0)
    return LabeledImages(torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8, generator=g),
                         torch.arange(20) % 2)


def test_the_key_changes_with_what_decides_an_accuracy_and_only_with_that():
    images, labels, test = torch.randn(4, 1, 8, 8), torch.tensor([0, 0, 1, 1]), _test_split()
    mean, std, ec = torch.tensor([0.5]), torch.tensor([0.25]), EvalConfig(eval_runs=3, eval_epochs=5)

    def key(**change):
        a = {"images": images, "labels": labels, "test": test, "ec": ec, "seed": 0, "model": "convnet", **change}
        return journal_key(a["images"], a["labels"], a["test"], mean, std, 2, a["ec"], a["seed"], "cpu", a["model"])

    base = key()
    assert key(ec=replace(ec, eval_runs=20)) == base  # more runs: the first ones are the same runs
    other_test = LabeledImages(test.images.clone(), test.labels.clone())
    other_test.images[0, 0, 0, 0] ^= 1
    changed = [key(images=images + 1e-3), key(labels=labels.flip(0)), key(test=other_test),
               key(ec=replace(ec, eval_epochs=6)), key(ec=replace(ec, eval_lr=0.02)), key(seed=1),
               key(model="mlp"), key(ec=replace(ec, eval_mixed_precision="bf16")),
               key(ec=replace(ec, eval_compile=True)), key(ec=replace(ec, eval_channels_last=True))]
    assert base not in changed and len(set(changed)) == len(changed)
    # an option left unset and the same option spelled "off" train the same network
    spelled = replace(ec, eval_mixed_precision="no", eval_channels_last=False, eval_compile=False)
    assert key(ec=spelled) == base


def test_a_damaged_journal_is_an_empty_one_and_a_write_keeps_the_file_whole(tmp_path):
    path = tmp_path / "checkpoints" / JOURNAL_NAME
    path.parent.mkdir()
    path.write_text('{"version": 1, "runs": {"k": {"0": [41.5')  # cut short by a crash mid-write
    journal = EvalJournal(path)
    assert journal.done("k") == {}
    journal.record("k", 2, 43.25, 12.0)
    assert EvalJournal(path).done("k") == {2: (43.25, 12.0)}
    assert [p.name for p in path.parent.iterdir()] == [JOURNAL_NAME]  # no temporary file left


def test_recipes_evaluate_goes_on_where_a_stopped_evaluation_of_a_saved_set_stopped(tiny, tmp_path, monkeypatch,
                                                                                     capsys):
    import recipes.evaluate as recipe

    saved = tmp_path / "set"
    run_experiment(RunConfig.from_flat({"dataset": str(tiny), "iterations": 2, "batch_real": 4, "eval_runs": 0,
                                        "output_dir": str(saved)}), progress=False, log=lambda m: None)
    argv = [str(saved), "--cpu", "--eval-runs", "3", "--eval-epochs", "2", "--no-uint8"]
    _counting(monkeypatch, stop_at=2)  # run 0 finishes, run 1 is stopped
    assert recipe.main(argv) == 130
    err = capsys.readouterr().err
    assert "SIGTERM during the evaluation of" in err and "the evaluation runs that finished are kept in" in err
    assert "the same command again trains only the others" in err
    journal = saved / "checkpoints" / JOURNAL_NAME
    assert [sorted(v) for v in json.loads(journal.read_text())["runs"].values()] == [["0"]]
    assert json.loads((saved / "results.json").read_text())["evaluated"] is False  # the set itself untouched

    monkeypatch.undo()
    trained = _counting(monkeypatch)
    assert recipe.main(argv) == 0
    assert len(trained) == 2  # runs 1 and 2
    assert not (saved / "checkpoints").exists()  # the new records replaced the folder, journal included
    resumed = _accuracies(saved)

    monkeypatch.undo()
    assert recipe.main(argv) == 0  # a full evaluation of the same set: the same three accuracies
    assert _accuracies(saved) == resumed and len(resumed) == 3


def test_a_journal_that_cannot_be_written_is_said_once_and_the_evaluation_goes_on(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    journal = EvalJournal(blocker / JOURNAL_NAME)  # its folder cannot be made: as on a full or read-only disk
    journal.record("k", 0, 40.0, 1.0)
    journal.record("k", 1, 41.0, 1.0)
    err = capsys.readouterr().err
    assert err.count("cannot write the evaluation journal") == 1 and "the evaluation goes on" in err
    assert journal.done("k") == {0: (40.0, 1.0), 1: (41.0, 1.0)}
