"""Accuracy against iterations (``eval_at``): snapshots taken in the loop, evaluated with the short
protocol after it, recorded in results.json and drawn to curve.png; the last point is the final set."""

from __future__ import annotations

import json

import pytest
import torch

import hf_lodc
from hf_lodc import pipeline
from hf_lodc.engine.config import RunConfig
from hf_lodc.errors import ConfigError
from tests.datasets_factory import make_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_dataset(tmp_path_factory.mktemp("curve") / "d", per_class={"train": 6, "test": 3})
    return str(path), hf_lodc.load_image_classification(str(path), cache=False)


def _cfg(path, **kw):
    return RunConfig.from_flat({"dataset": path, "method": "lodm", "ipc": 1, "rank": 2, "iterations": 4,
                                "batch_real": 4, "eval_runs": 1, "eval_epochs": 2, "eval_at_runs": 2,
                                "eval_at_epochs": 2, "lr": 10.0, **kw})


def test_the_curve_is_recorded_drawn_and_ends_at_the_final_set(tiny, tmp_path):
    path, data = tiny
    out = tmp_path / "run"
    art = pipeline.run_experiment(_cfg(path, eval_at="2,4,9", output_dir=str(out)), data=data, progress=False,
                                  log=lambda s: None)
    curve = json.loads((out / "results.json").read_text())["curve"]
    assert [p["iteration"] for p in curve["points"]] == [2, 4] and curve["not_reached"] == [9]
    assert curve["runs"] == 2 and curve["epochs"] == 2 and all(len(p["accuracies"]) == 2 for p in curve["points"])
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "README.md").read_text()
    assert "### Accuracy against iterations" in card and f"| 4 | {curve['points'][1]['accuracy_mean']:.2f}" in card
    assert not (out / "checkpoints").exists()  # the snapshots went with the checkpoints when the artefact was written
    # the point at the last iteration is the finished set, evaluated with the curve's protocol and seeds
    from hf_lodc.engine.curve import curve_config
    from hf_lodc.engine.evaluate import evaluate_synthetic

    ref = evaluate_synthetic(art.images(), art.labels, data.test, data.mean, data.std, data.num_classes,
                             curve_config(_cfg(path, eval_at="2,4,9").eval),
                             seed=curve["seed"])["convnet"]
    assert curve["points"][-1]["accuracies"] == ref.accuracies


def test_snapshots_leave_the_condensation_bits_unchanged(tiny):
    path, data = tiny
    plain = pipeline.run_experiment(_cfg(path, eval_runs=0), data=data, progress=False, log=lambda s: None)
    seen = []
    res = pipeline.condense(data, _cfg(path).condense, snapshot_at=(1, 3), on_snapshot=lambda i, s: seen.append(i))
    assert seen == [1, 3]
    for k, v in plain.synset.state_dict().items():
        assert torch.equal(res.synset.state_dict()[k], v), k


def test_eval_at_is_checked_at_the_door(tiny):
    path, _ = tiny
    with pytest.raises(ConfigError, match="eval_at"):
        _cfg(path, eval_at="0,5")
    with pytest.raises(ConfigError, match="eval_at"):
        _cfg(path, eval_at="five")
