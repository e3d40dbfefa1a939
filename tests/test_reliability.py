"""Issue 12 fixes, one focused test each: the artefact reader refuses damaged files, the pipeline checks
before it works and saves before it fails, the API names the argument, identity is defined once."""

from __future__ import annotations

import json
import os
import signal
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import hf_lodc
from hf_lodc import pipeline
from hf_lodc.engine.config import RunConfig
from hf_lodc.engine.identity import finished_identity, identity_diff, run_identity
from hf_lodc.errors import (
    BudgetError,
    ConfigError,
    DatasetError,
    HfLodcError,
    IncompatibleArtifactError,
    NonFiniteError,
)
from hf_lodc.export.artifact import load_artifact
from hf_lodc.export.save import save_artifact
from tests.datasets_factory import make_dataset


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert isinstance(e.value, HfLodcError) and "\n" not in msg and msg
    return msg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 classes of 8x8 RGB, loaded, and a 1-iteration lodm artefact of it saved to disk."""
    root = tmp_path_factory.mktemp("rel")
    path = make_dataset(root / "d")
    data = hf_lodc.load_image_classification(str(path), cache=False)
    cfg = RunConfig.from_flat({"dataset": str(path), "method": "lodm", "ipc": 1, "rank": 2, "iterations": 1,
                               "batch_real": 4, "eval_runs": 0})
    art = pipeline.run_experiment(cfg, data=data, progress=False, log=lambda s: None)
    save_artifact(art, root / "art")
    return data, path, root / "art", cfg


def _variant(src, dst, edit):
    import shutil

    shutil.copytree(src, dst)
    edit(dst)
    return dst


# -- the artefact reader ------------------------------------------------------------------------


def _edit_config(fn):
    def edit(p):
        c = json.loads((p / "config.json").read_text())
        c = fn(c) or c
        (p / "config.json").write_text(json.dumps(c))
    return edit


def _edit_synset(fn):
    def edit(p):
        t = load_file(str(p / "synset.safetensors"))
        fn(t)
        save_file(t, str(p / "synset.safetensors"))
    return edit


@pytest.mark.parametrize("name, edit, words", [
    ("truncated", lambda p: (p / "synset.safetensors").write_bytes((p / "synset.safetensors").read_bytes()[:40]),
     "synset.safetensors"),
    ("results", lambda p: (p / "results.json").write_text("{bad"), "results.json"),
    ("history-type", lambda p: (p / "history.json").write_text('{"a": 1}'), "history.json"),
    ("config-list", lambda p: (p / "config.json").write_text("[1, 2]"), "config.json"),
    ("classes-str", _edit_config(lambda c: c.update(num_classes="three")), "num_classes"),
    ("short-shape", _edit_config(lambda c: c.update(image_shape=[3, 8])), "image_shape"),
    ("neg-ipc", _edit_config(lambda c: c.update(images_per_class=-1)), "images_per_class"),
    ("source-str", _edit_config(lambda c: c.update(source="x")), "source"),
    ("mean-short", _edit_config(lambda c: c["source"].update(mean=[0.5])), "source.mean"),
    ("labels-range", _edit_synset(lambda t: t["labels"].fill_(7)), "labels"),
    ("nan", _edit_synset(lambda t: t["A"].fill_(float("nan"))), "NaN"),
    ("inf", _edit_synset(lambda t: t["B"].fill_(float("inf"))), "NaN/Inf"),
])
def test_damaged_artefacts_are_one_artifact_error(tiny, tmp_path, name, edit, words):
    p = _variant(tiny[2], tmp_path / name, edit)
    with pytest.raises(IncompatibleArtifactError) as e:
        load_artifact(p)
    assert words in _one_line(e)


def test_a_good_artefact_still_loads(tiny):
    art = load_artifact(tiny[2])
    assert art.results["evaluated"] is False and "eval_runs is 0" in art.results["not_evaluated_because"]


# -- the pipeline: checks before work, the lock, save before failure ----------------------------------


def test_resume_and_checkpoint_every_need_an_output_dir(tiny):
    data, path, _, cfg = tiny
    for over, word in [({"resume": True}, "--resume"), ({"checkpoint_every": 1}, "--checkpoint-every")]:
        with pytest.raises(ConfigError) as e:
            pipeline.run_experiment(cfg.replace(**over), data=data, progress=False, log=lambda s: None)
        assert word in _one_line(e) and "--output-dir" in str(e.value)


def test_empty_output_dir_and_bad_push_are_refused_before_work(tiny, monkeypatch):
    data, _, _, cfg = tiny
    with pytest.raises(ConfigError, match="--output-dir is empty"):
        pipeline.run_experiment(cfg.replace(output_dir=""), data=data, progress=False)
    with pytest.raises(ConfigError, match="not a valid Hub repo id"):
        pipeline.run_experiment(cfg.replace(push_to_hub="not a repo!!"), data=data, progress=False)
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(HfLodcError, match="token"):
        pipeline.run_experiment(cfg.replace(push_to_hub="alice/tiny"), data=data, progress=False)


def test_eval_model_that_cannot_take_the_size_is_refused_before_condensing(tiny, tmp_path):
    data, _, _, cfg = tiny
    logs = []
    with pytest.raises(ConfigError, match="vit_tiny_patch16_224.*cannot take images of shape"):
        pipeline.run_experiment(cfg.replace(eval_runs=1, eval_models=["vit_tiny_patch16_224"],
                                            output_dir=str(tmp_path / "o")), data=data, progress=False, log=logs.append)
    assert not any("condensed" in m for m in logs) and not (tmp_path / "o").exists()


def test_huge_ipc_is_a_memory_error_up_front(tiny):
    data, _, _, cfg = tiny
    with pytest.raises(hf_lodc.errors.MemoryBudgetError) as e:
        pipeline.run_experiment(cfg.replace(method="dm", rank=None, ipc=100_000_000), data=data, progress=False)
    assert "ipc 100000000" in _one_line(e)


def test_interrupt_during_evaluation_saves_the_set_unevaluated(tiny, tmp_path):
    """SIGTERM while evaluating: the condensed set is saved (marked un-evaluated, no stale checkpoints:
    only this run's final one, so --resume goes straight to the evaluation), and the error names where
    and how to evaluate it later."""
    data, _, _, cfg = tiny
    out = tmp_path / "o"
    (out / "checkpoints" / "iter_0000000").mkdir(parents=True)  # a stale checkpoint of an earlier run

    def log(msg):  # the condensation is done: send SIGTERM a moment into the evaluation
        if "condensed in" in msg:
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()

    big = cfg.replace(eval_runs=1, eval_epochs=2000, output_dir=str(out))
    with pytest.raises(hf_lodc.engine.Interrupted) as e:
        pipeline.run_experiment(big, data=data, progress=False, log=log)
    msg = str(e.value)
    assert "SIGTERM" in msg and str(out) in msg and "recipes/evaluate.py" in msg
    saved = load_artifact(out)
    assert saved.results["evaluated"] is False and saved.results["not_evaluated_because"] == "interrupted"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter_0000001"]  # this run's final one
    assert "--resume" in msg
    assert not (tmp_path / f".{out.name}.hf_lodc.lock").exists()  # the lock is released
    logs = []
    done = pipeline.run_experiment(cfg.replace(eval_runs=1, eval_epochs=2, output_dir=str(out), resume=True), data=data,
                                   progress=False, log=logs.append)
    assert any("resumed" in m.lower() for m in logs), logs
    assert done.results.get("evaluated") is not False and not (out / "checkpoints").exists()
    torch.testing.assert_close(load_artifact(out).synset.state_dict(), saved.synset.state_dict(), rtol=0, atol=0)


def test_sigterm_during_the_final_save_waits_for_the_save(tiny, tmp_path, monkeypatch):
    """A launcher's SIGTERM arriving while the finished run is written (a sibling process died): the
    artefact is written whole first, then the run stops as interrupted."""
    data, _, _, cfg = tiny
    out = tmp_path / "o"
    real_save = pipeline.save_artifact_or_rescue

    def save_under_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered now, mid-save
        return real_save(*args, **kwargs)

    monkeypatch.setattr(pipeline, "save_artifact_or_rescue", save_under_sigterm)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        pipeline.run_experiment(cfg.replace(eval_runs=0, output_dir=str(out)), data=data, progress=False,
                                log=lambda *_: None)
    assert load_artifact(out).synset is not None  # whole and readable
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored


def test_a_second_run_into_a_locked_output_dir_names_the_first(tiny, tmp_path):
    from hf_lodc.errors import OutputDirLockedError
    from hf_lodc.preflight import lock_output_dir

    data, _, _, cfg = tiny
    out = tmp_path / "o"
    with lock_output_dir(out, command=["first-run"]):
        with pytest.raises(OutputDirLockedError) as e:
            pipeline.run_experiment(cfg.replace(output_dir=str(out)), data=data, progress=False)
    assert "first-run" in _one_line(e) and str(os.getpid()) in str(e.value)


# -- the Python API --------------------------------------------------------------------------------


def test_condense_names_wrong_inputs(tiny):
    data = tiny[0]
    with pytest.raises(ConfigError, match="load_image_classification"):
        hf_lodc.condense("a/path", method="lodm", iterations=1)
    with pytest.raises(ConfigError, match=r"'itertions': did you mean 'iterations'"):
        hf_lodc.condense(data, itertions=1)
    floats = hf_lodc.ImageClassificationData(hf_lodc.LabeledImages(data.train.images.float(), data.train.labels),
                                             data.test, data.info)
    with pytest.raises(DatasetError, match="uint8"):
        hf_lodc.condense(floats, iterations=1)
    lab = data.train.labels.clone()
    lab[0] = 9
    bad = hf_lodc.ImageClassificationData(hf_lodc.LabeledImages(data.train.images, lab), data.test, data.info)
    with pytest.raises(DatasetError, match=r"range over \[0, 9\]"):
        hf_lodc.condense(bad, iterations=1)


def _ev(data, **over):
    a = dict(images=torch.randn(6, 3, 8, 8), labels=torch.arange(3).repeat(2), test=data.test, mean=data.mean,
             std=data.std, num_classes=3, cfg=hf_lodc.EvalConfig(eval_runs=1, eval_epochs=1))
    a.update(over)
    return hf_lodc.evaluate_synthetic(**a)


@pytest.mark.parametrize("over, words", [
    ({"labels": torch.arange(5)}, "labels must be (N,)"),
    ({"num_classes": 2}, "outside num_classes=2"),
    ({"num_classes": 5}, "pass num_classes=3"),
    ({"images": torch.randn(6, 8, 8)}, "images must be (N, C, H, W)"),
    ({"images": torch.randn(6, 1, 8, 8)}, "1 channel(s)"),
    ({"images": torch.randn(6, 3, 16, 16)}, "16x16"),
    ({"images": torch.full((6, 3, 8, 8), float("nan"))}, "NaN/Inf"),
    ({"images": torch.randn(0, 3, 8, 8), "labels": torch.zeros(0, dtype=torch.long)}, "empty"),
    ({"mean": [0.5]}, "one value per channel"),
    ({"labels": torch.arange(3).repeat(2).float()}, "integer class ids"),
])
def test_evaluate_synthetic_names_the_argument(tiny, over, words):
    with pytest.raises(HfLodcError) as e:
        _ev(tiny[0], **over)
    assert words in _one_line(e)
    if "NaN" in words:
        assert isinstance(e.value, NonFiniteError)


def test_evaluate_synthetic_accepts_numpy_with_the_same_result(tiny):
    data = tiny[0]
    x, y = torch.randn(6, 3, 8, 8), torch.arange(3).repeat(2)
    ref = _ev(data, images=x, labels=y)["convnet"].accuracies
    assert _ev(data, images=x.numpy(), labels=y.numpy())["convnet"].accuracies == ref
    assert _ev(data, images=x, labels=y, mean=np.asarray(data.mean))["convnet"].accuracies == ref


def test_plan_budget_names_swapped_arguments():
    with pytest.raises(BudgetError, match=r"image_shape must be \(C, H, W\).*plan_budget\(image_shape, ipc="):
        hf_lodc.plan_budget("1", (3, 8, 8), rank=2)
    assert hf_lodc.plan_budget((3, 8, 8), ipc=1, rank=2).images_per_class >= 1


# -- identity, defined once ------------------------------------------------------------------------


def test_finished_identity_adds_iterations_and_contrast_only():
    cfg = {"method": "lodm", "ipc": 1, "rank": 2, "lr": 1.0, "iterations": 5, "contrast": "none", "log_every": 3}
    a, b = run_identity(cfg), finished_identity(cfg)
    assert "iterations" not in a and "contrast" not in a and "log_every" not in a
    assert b["iterations"] == 5 and b["contrast"] == "none" and "log_every" not in b
    assert set(identity_diff(finished_identity({**cfg, "iterations": 6}), b)) == {"iterations"}
    assert not identity_diff(run_identity({**cfg, "iterations": 6, "contrast": "class_std"}), a)


def test_continuing_a_held_set_with_another_lr_starts_afresh_or_is_refused(tiny):
    cd = hf_lodc.CondensedDataset.from_disk(tiny[2])
    with pytest.raises(ConfigError, match=r"cannot continue the current set: lr=0\.5 \(set has 1\.0\)"):
        cd.condense(lr=0.5, iterations=1, continue_from_current=True)
