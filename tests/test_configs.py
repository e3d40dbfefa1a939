"""Every shipped recipe config parses, has only known keys, and fits its dataset's budget."""

from pathlib import Path

import pytest

from hf_lodc.engine.config import RunConfig, load_yaml_config
from hf_lodc.pipeline import validate
from tests.conftest import REPO_ROOT

SHAPES = {"ylecun/mnist": (1, 28, 28), "uoft-cs/cifar10": (3, 32, 32), "uoft-cs/cifar100": (3, 32, 32),
          "zh-plus/tiny-imagenet": (3, 64, 64)}
CONFIGS = sorted((REPO_ROOT / "recipes" / "configs").glob("*.yaml"))


def test_there_is_a_config_per_paper_row():
    names = {p.stem for p in CONFIGS}
    for row in ["mnist-lodm-ipc1", "mnist-lodm-ipc10", "mnist-lodm-ipc50", "cifar10-lodm-ipc1", "cifar10-lodm-ipc10",
                "cifar10-lodm-ipc50", "cifar100-lodm-ipc1", "cifar100-lodm-ipc10", "tinyimagenet-lodm-ipc1",
                "tinyimagenet-lodm-ipc10", "mnist-lodm-ipc1-cpu", "cifar10-lodm-ipc1-cpu", "cifar10-lomtt-ipc1"]:
        assert row in names


@pytest.mark.parametrize("path", [p for p in CONFIGS if not p.stem.startswith("continual")], ids=lambda p: p.stem)
def test_config_validates(path: Path):
    cfg = RunConfig.from_dict(load_yaml_config(path), source=str(path))
    validate(cfg, SHAPES[cfg.data.dataset])


def test_paper_rows_store_the_expected_counts():
    from hf_lodc.engine.condenser import resolve_config

    def count(name):
        cfg = RunConfig.from_dict(load_yaml_config(REPO_ROOT / "recipes" / "configs" / f"{name}.yaml"))
        return resolve_config(cfg.condense, SHAPES[cfg.data.dataset])[2].images_per_class

    assert [count(f"cifar10-lodm-ipc{k}") for k in (1, 10, 50)] == [8, 80, 200]
    assert [count(f"mnist-lodm-ipc{k}") for k in (1, 10, 50)] == [7, 17, 87]
    assert [count(f"tinyimagenet-lodm-ipc{k}") for k in (1, 10)] == [8, 80]
    assert count("cifar10-lomtt-ipc1") == 8


def test_flat_and_nested_round_trip():
    cfg = RunConfig.from_flat({"dataset": "x/y", "method": "dm", "ipc": 10, "eval_models": "convnet,resnet18_bn"})
    assert cfg.eval.eval_models == ["convnet", "resnet18_bn"]
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_flat(cfg.to_flat()) == cfg
