"""Property: on any small dataset, the pipeline either works end to end or raises hf_lodc's own error.

Hypothesis draws datasets in the Hub layout (tests/datasets_factory.py): 1-5 classes with 0-4
images each, random sizes (including ones too small for the networks), modes L / RGB / RGBA / P /
CMYK (+ odd rows of another mode or size), label types ClassLabel / int / str / float, a missing
evaluation split, corrupt and unlabelled rows; and options (method, rank, ipc, init, skip_corrupt,
mixed, drop_empty_classes, holdout). Each example runs what the recipe runs: load -> validate ->
1-iteration condensation -> 1-epoch evaluation -> atomic save -> load back. It must either
succeed, with the artefact round-tripping exactly, or raise an ``HfLodcError`` subclass; any other
exception is a bug to fix at its root.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import datasets
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hf_lodc.engine.condense_options import flat_option_names
from hf_lodc.engine.config import RunConfig
from hf_lodc.errors import HfLodcError
from hf_lodc.export.artifact import load_artifact
from hf_lodc.pipeline import run_experiment
from tests.datasets_factory import LABEL_TYPES, OddRow, make_dataset

MODES = ("RGB", "L", "RGBA", "P", "CMYK")
SIDES = (8, 12, 9, 16, 8, 12, 6, 2)  # ConvNet-3 needs >= 8 px: a quarter of the sides are too small
METHODS = ("lodm", "dm", "lodc", "dsa", "random", "lorandom", "herding")
LABELS = ("classlabel", "classlabel", *LABEL_TYPES[1:])  # ClassLabel twice as often


@st.composite
def odd_rows(draw, n_rows: int) -> dict[int, OddRow]:
    if n_rows == 0:
        return {}
    rows = draw(st.lists(st.integers(0, n_rows - 1), max_size=2, unique=True))
    kinds = st.one_of(
        st.builds(OddRow, mode=st.sampled_from(MODES)),
        st.builds(OddRow, size=st.tuples(st.sampled_from(SIDES), st.sampled_from(SIDES))),
        st.builds(OddRow, corrupt=st.sampled_from(("truncated", "garbage", "empty"))),
        st.builds(OddRow, unlabelled=st.just(True)),
    )
    return {r: draw(kinds) for r in rows}


@st.composite
def scenarios(draw) -> dict:
    k = draw(st.integers(1, 5))
    train = draw(st.lists(st.sampled_from((2, 3, 4, 1, 3, 4, 2, 0)), min_size=k, max_size=k))
    eval_kind = draw(st.sampled_from(("test", "missing", "valid")))
    per_class = {"train": train}
    if eval_kind != "missing":
        per_class[eval_kind] = draw(st.lists(st.sampled_from((1, 2, 1, 0)), min_size=k, max_size=k))
    odd = {split: draw(odd_rows(sum(counts))) for split, counts in per_class.items()}
    method = draw(st.sampled_from(METHODS))
    return {
        "dataset": dict(num_classes=k, per_class=per_class, label_type=draw(st.sampled_from(LABELS)),
                        mode=draw(st.sampled_from(MODES)), odd=odd,
                        size=(draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))),
                        seed=draw(st.integers(0, 2**16))),
        "options": dict(
            eval_split=eval_kind if eval_kind != "missing" else draw(st.sampled_from(("test", None))),
            holdout_fraction=draw(st.sampled_from((None, 0.3))),
            skip_corrupt=draw(st.booleans()),
            mixed=draw(st.sampled_from(("convert", "error", "convert"))),
            drop_empty_classes=draw(st.booleans()),
            method=method,
            ipc=draw(st.sampled_from((1, 2, 1, 1, 0))),
            rank=draw(st.sampled_from((2, 1, 3))),
            init=draw(st.sampled_from((None, None, "noise", "real"))),
        ),
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=40, deadline=None, derandomize=True, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(scenario=scenarios())
def test_pipeline_succeeds_or_raises_its_own_error(scenario, scratch, monkeypatch):
    monkeypatch.setenv("HF_LODC_CACHE", str(scratch / "hf_lodc_cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", scratch / "hf_datasets")
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        root = make_dataset(Path(tmp) / "data", **scenario["dataset"])
        out = Path(tmp) / "out"
        # a small inner-network batch for the methods that train one (gradient matching); the others
        # have no such option and refuse it by name
        small = {"batch_train": 8} if "batch_train" in flat_option_names(scenario["options"]["method"]) else {}
        cfg = RunConfig.from_dict({
            "dataset": str(root), **scenario["options"], "iterations": 1, "batch_real": 2, **small,
            "eval_runs": 1, "eval_epochs": 1, "eval_batch": 16, "eval_backend": "sequential",
            "output_dir": str(out),
        })
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                art = run_experiment(cfg, progress=False, log=lambda *a, **k: None)
        except HfLodcError as e:
            event(f"refused: {type(e).__name__}")  # pytest --hypothesis-show-statistics
            assert not out.exists()  # a failed run leaves no artefact
            return
        event(f"succeeded: {cfg.condense.method}")
        back = load_artifact(out)
        assert torch.equal(back.images(), art.images()) and torch.equal(back.labels, art.labels)
        assert {k: v for k, v in back.synset.state_dict().items()}.keys() == art.synset.state_dict().keys()
        for name, tensor in art.synset.state_dict().items():
            assert torch.equal(back.synset.state_dict()[name], tensor), name
        assert json.dumps(back.config_record(), sort_keys=True, default=str) == \
            json.dumps(art.config_record(), sort_keys=True, default=str)
        assert back.results == json.loads(json.dumps(art.results)) and back.history == art.history
        assert back.source.class_names == art.source.class_names and len(art.source.class_names) >= 1
