"""The one road from data to artefact (``pipeline.condense``): the engine's set, the run config recorded."""

from __future__ import annotations

import pytest
import torch

import hf_lodc
from hf_lodc import pipeline
from hf_lodc.engine.condenser import Condenser
from hf_lodc.engine.config import RunConfig
from tests.datasets_factory import make_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_dataset(tmp_path_factory.mktemp("road") / "d", per_class={"train": 6, "test": 3})
    return str(path), hf_lodc.load_image_classification(str(path), cache=False)


def test_the_road_records_its_run_config_and_computes_the_engines_set(tiny):
    path, data = tiny
    cfg = RunConfig.from_flat({"dataset": path, "method": "lodm", "ipc": 1, "rank": 2, "iterations": 2,
                               "batch_real": 4, "speed": "exact"})
    seen = []
    art = pipeline.condense(data, cfg, on_result=seen.append)
    assert art.run_config == cfg.to_dict() and "speed" not in art.results  # no plan asked for, none recorded
    assert len(seen) == 1 and torch.equal(seen[0].images(), art.images())
    part = pipeline.condense(data, cfg.condense, record={"continual": {"task": 0}})
    assert part.run_config == {"condense": cfg.to_dict()["condense"], "continual": {"task": 0}}
    ref = Condenser(data, cfg.condense, progress=False).run()  # the engine alone: the same bits
    for k, v in ref.synset.state_dict().items():
        assert torch.equal(art.synset.state_dict()[k], v) and torch.equal(part.synset.state_dict()[k], v), k
    more = pipeline.condense(data, cfg.replace(iterations=3), continue_from=art)  # one more iteration
    assert more.results["condensation"]["continued_from_iteration"] == 2 and more.condense_config["iterations"] == 3
