"""Every shipped recipe config parses, has only known keys, and fits its dataset's budget."""

from pathlib import Path

import pytest

from hf_lodc.engine.config import RunConfig, load_yaml_config
from hf_lodc.errors import ConfigError, UnknownNameError
from hf_lodc.pipeline import validate
from tests.conftest import REPO_ROOT

SHAPES = {"ylecun/mnist": (1, 28, 28), "uoft-cs/cifar10": (3, 32, 32), "uoft-cs/cifar100": (3, 32, 32),
          "zh-plus/tiny-imagenet": (3, 64, 64)}
CLASSES = {"ylecun/mnist": 10, "uoft-cs/cifar10": 10, "uoft-cs/cifar100": 100, "zh-plus/tiny-imagenet": 200}
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
    validate(cfg, SHAPES[cfg.data.dataset], CLASSES[cfg.data.dataset])


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


# ---------------------------------------------------------------------------------------------
# objectives own their options; the flat config and the CLI are composed from them (issue 10)


def test_objective_options_are_owned_by_the_objectives_and_composed_flat():
    from dataclasses import fields

    from hf_lodc.engine.condenser import resolve_config
    from hf_lodc.engine.config import CondenseConfig, objective_option_owners
    from hf_lodc.objectives import OBJECTIVES, GMOptions, TMOptions, options_for

    owners = objective_option_owners()
    assert {k for k, v in owners.items() if v[0] == "gm"} == {f.name for f in fields(GMOptions)}
    assert {k for k, v in owners.items() if v[0] == "tm"} == {f.name for f in fields(TMOptions)}
    assert OBJECTIVES.get("gm").Options is GMOptions
    # DM owns speed knobs and the class sampling that bounds a many-class step
    assert [f.name for f in fields(OBJECTIVES.get("dm").Options)] == ["real_chunk", "compile", "classes_per_iteration",
                                                                  "syn_chunk", "fused_stem"]
    assert {k for k, v in owners.items() if v[0] == "dm"} == {"real_chunk", "compile", "classes_per_iteration", "syn_chunk",
                                                             "fused_stem"}
    # every objective's options are flat names (CLI, YAML, keywords); a config holds its method's options only
    names = {n for n, *_ in CondenseConfig.flat_fields()}
    assert set(owners) <= names and CondenseConfig(method="mtt").expert_dir is None
    assert CondenseConfig(method="dc").lr_net == 0.01
    # the objective resolves its own defaults against the budget (DC/DSA loops by IPC)
    _, resolved, _ = resolve_config(CondenseConfig(method="dc", ipc=10), (1, 28, 28))
    assert (resolved.outer_loop, resolved.inner_loop) == (10, 50)
    opts = options_for("gm", resolved)
    assert isinstance(opts, GMOptions) and (opts.outer_loop, opts.inner_loop, opts.batch_train) == (10, 50, 256)
    _, given, _ = resolve_config(CondenseConfig(method="dc", ipc=10, outer_loop=2), (1, 28, 28))
    assert (given.outer_loop, given.inner_loop) == (2, 50)
    # range rules travel with the options, under the flat name
    with pytest.raises(ConfigError, match=r"option 'outer_loop' must be > 0, got 0"):
        CondenseConfig(outer_loop=0)
    with pytest.raises(ConfigError, match=r"GMOptions: option 'lr_net' must be > 0, got -1"):
        GMOptions(lr_net=-1)
    # the expert_dir check, in one place, before any data is read
    with pytest.raises(ConfigError, match="set expert_dir"):
        resolve_config(CondenseConfig(method="lomtt", iterations=5), (1, 28, 28))
    assert resolve_config(CondenseConfig(method="lomtt", iterations=0), (1, 28, 28))[1].expert_dir is None


def test_registry_backed_options_ask_the_registry():
    from hf_lodc.engine.config import CondenseConfig, EvalConfig
    from hf_lodc.synset.contrast import CONTRASTS

    with pytest.raises(UnknownNameError, match=r"unknown contrast 'bright'; valid contrasts: class_std, none"):
        CondenseConfig(contrast="bright")
    with pytest.raises(UnknownNameError, match=r"unknown DSA augmentation family 'colour'"):
        EvalConfig(eval_dsa_strategy="colour")
    with pytest.raises(UnknownNameError, match=r"valid evaluation backends: auto, sequential, vmap"):
        EvalConfig(eval_backend="gpu")
    CONTRASTS.add("test_registered_contrast", CONTRASTS.get("none"))  # a newly registered contrast is accepted
    try:
        assert CondenseConfig(contrast="test_registered_contrast").contrast == "test_registered_contrast"
    finally:
        CONTRASTS._items.pop("test_registered_contrast")


@pytest.mark.parametrize("recipe", ["condense", "continual"])
def test_documented_none_values_are_accepted_on_the_command_line(recipe):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{recipe}_recipe", REPO_ROOT / "recipes" / f"{recipe}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--contrast", "none", "--dsa-strategy", "none", "--eval-dsa-strategy", "none", "--init", "none"]
    if recipe == "condense":  # one method's options per run: gradient matching's, then trajectory matching's
        cfg, _ = mod.config_from_args([*argv, "--method", "dc", "--outer-loop", "3"])
        other, _ = mod.config_from_args([*argv, "--method", "mtt", "--expert-dir", "experts/x"])
        outer_loop, expert_dir = cfg.condense.outer_loop, other.condense.expert_dir
    else:  # the memory types' options, each reaching the memory types that have it
        cfg, _ = mod.config_from_args([*argv, "--methods", "dc,mtt", "--outer-loop", "3", "--expert-dir", "experts/x"])
        outer_loop = cfg.task_condense_config("dc", 0, 0).outer_loop
        expert_dir = cfg.task_condense_config("mtt", 0, 0).expert_dir
    assert (cfg.condense.contrast, cfg.condense.dsa_strategy, cfg.eval.eval_dsa_strategy) == ("none",) * 3
    assert cfg.condense.init is None and (outer_loop, expert_dir) == (3, "experts/x")


def test_experts_recipe_options_come_from_the_config_dataclasses():
    import importlib.util

    spec = importlib.util.spec_from_file_location("experts_recipe", REPO_ROOT / "recipes" / "experts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data, cfg, out, _ = mod.configs_from_args(["--dataset", "ylecun/mnist", "--max-per-class", "5", "--output-dir",
                                               "x", "--epochs", "3", "--dsa-strategy", "none"])
    assert (data.dataset, data.max_per_class, out, cfg.epochs, cfg.dsa_strategy) == ("ylecun/mnist", 5, "x", 3, "none")
    with pytest.raises(ConfigError, match="set --output-dir"):
        mod.configs_from_args(["--dataset", "ylecun/mnist"])
