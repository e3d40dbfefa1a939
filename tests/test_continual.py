"""Class-incremental GDumb with a condensed memory: task splits, no-leak condensation, resume, recipe."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from hf_lodc.continual import (
    ContinualConfig, gdumb_step, restrict, run_continual, split_classes, validate_continual,
)
from hf_lodc.engine.config import EvalConfig
from hf_lodc.errors import BudgetError, ConfigError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_LODC_LOCAL_HUB", str((REPO / ".." / "shared" / "hub").resolve()))

TINY = {  # real MNIST, 20 train images per class, 10 test images per class: seconds per step
    "dataset": "ylecun/mnist", "max_per_class": 20, "tasks": 2, "memory_ipc": 1, "seeds": 1, "rank": 2,
    "iterations": 2, "batch_real": 8, "eval_epochs": 2, "eval_runs": 1, "test_per_class": 10,
}


@pytest.fixture(scope="module")
def tiny_mnist():
    from hf_lodc import load_image_classification

    return load_image_classification("ylecun/mnist", max_per_class=20)


@pytest.fixture(scope="module")
def tiny_run(tiny_mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("continual")
    cfg = ContinualConfig.from_flat({**TINY, "methods": "random,herding,lodm", "output_dir": str(out)})
    return cfg, run_continual(cfg, data=tiny_mnist, log=lambda s: None)


# -- task splits -------------------------------------------------------------------------------

@pytest.mark.parametrize("K,T", [(10, 5), (10, 3), (100, 10), (7, 7)])
def test_split_is_a_seeded_partition_in_near_equal_chunks(K, T):
    a, b = split_classes(K, T, seed=3), split_classes(K, T, seed=3)
    assert a == b
    assert sorted(c for chunk in a.tasks for c in chunk) == list(range(K))
    assert [c for chunk in a.tasks for c in chunk] == list(a.order)
    sizes = [len(c) for c in a.tasks]
    assert len(sizes) == T and max(sizes) - min(sizes) <= 1
    seen = [len(a.seen(t)) for t in range(T)]
    assert seen == sorted(seen) and seen[-1] == K and len(set(seen)) == T
    assert len({split_classes(K, T, seed=s).order for s in range(5)}) > 1  # orders differ across seeds


@pytest.mark.parametrize("T", [0, 11, -1])
def test_split_refuses_impossible_task_counts(T):
    with pytest.raises(ConfigError, match="tasks"):
        split_classes(10, T, seed=0)


def test_restrict_holds_only_the_classes_rows_relabelled(tiny_mnist):
    classes = torch.tensor([7, 2, 5])
    sub = restrict(tiny_mnist, classes, test_per_class=4)
    glob = tiny_mnist.train.labels[sub.train_rows]
    assert set(glob.tolist()) == {7, 2, 5}
    assert int(torch.isin(tiny_mnist.train.labels, classes).sum()) == len(sub.train_rows) == len(sub.data.train)
    assert torch.equal(sub.to_global(sub.data.train.labels), glob)  # local j <-> classes[j]
    assert torch.equal(sub.data.train.images, tiny_mnist.train.images[sub.train_rows])
    assert sub.data.info.class_names == ["7", "2", "5"] and sub.data.num_classes == 3
    assert torch.bincount(sub.data.test.labels).tolist() == [4, 4, 4]
    assert torch.equal(sub.to_global(sub.data.test.labels), tiny_mnist.test.labels[sub.test_rows])
    with pytest.raises(ConfigError, match="distinct"):
        restrict(tiny_mnist, torch.tensor([1, 1]))


# -- the tiny end-to-end run ---------------------------------------------------------------------

def test_tiny_run_gives_an_accuracy_per_task_on_growing_class_sets(tiny_run):
    cfg, res = tiny_run
    assert len(res.steps) == len(cfg.methods) * cfg.tasks
    for method in cfg.methods:
        steps = sorted((s for s in res.steps if s.method == method), key=lambda s: s.task)
        assert [s.num_classes for s in steps] == [5, 10]  # monotone class counts
        assert set(steps[0].classes_seen) < set(steps[1].classes_seen)
        for s in steps:
            rec = s.evaluations["convnet"]
            assert rec.runs == 1 and all(0.0 <= a <= 100.0 for a in rec.accuracies)
        curve = res.summary["methods"][method]["models"]["convnet"]["curve"]
        assert [c["num_classes"] for c in curve] == [5, 10]
        assert res.summary["methods"][method]["models"]["convnet"]["final_accuracy"]["mean"] == curve[-1]["mean"]


def test_each_task_is_condensed_from_its_own_rows_only(tiny_run, tiny_mnist):
    cfg, res = tiny_run
    labels = tiny_mnist.train.labels
    split = res.splits[0]
    for method in cfg.methods:
        memories = res.memories[(0, method)]
        rows_per_task = [set(m.train_rows.tolist()) for m in memories]
        for t, m in enumerate(memories):
            task_classes = set(split.tasks[t])
            # the condenser was handed exactly the rows of this task's classes ...
            expected = set(torch.nonzero(torch.isin(labels, split.classes(t))).flatten().tolist())
            assert rows_per_task[t] == expected
            assert set(labels[m.train_rows].tolist()) == task_classes
            # ... and never another task's rows
            for u in range(len(memories)):
                if u != t:
                    assert rows_per_task[t].isdisjoint(rows_per_task[u])
            # the real images its initialisation picked are rows of this task
            assert m.init_rows is not None and set(m.init_rows.tolist()) <= rows_per_task[t]
            assert set(labels[m.init_rows].tolist()) == task_classes
            assert set(m.labels.tolist()) == task_classes


def test_lowrank_memory_fits_more_images_in_the_same_storage(tiny_run):
    _, res = tiny_run
    pixel, low = res.memories[(0, "random")][-1], res.memories[(0, "lodm")][-1]
    assert (pixel.budget.images_per_class, low.budget.images_per_class) == (1, 7)  # 28*28 // (2*(28+28))
    assert low.stored_numel <= pixel.stored_numel
    step = next(s for s in res.steps if s.method == "lodm" and s.task == 1)
    assert step.memory_images == 70


def test_outputs_are_written_and_a_rerun_resumes_every_task(tiny_run, tiny_mnist):
    cfg, res = tiny_run
    out = Path(cfg.output_dir)
    summary = json.loads((out / "continual.json").read_text())
    assert set(summary["methods"]) == set(cfg.methods)
    md = (out / "continual.md").read_text()
    assert all(f"| {m} |" in md for m in cfg.methods) and "avg. incremental" in md
    assert (out / "continual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for method in cfg.methods:
        for t in range(cfg.tasks):
            assert (out / "memories" / "seed0" / method / f"task{t}" / "synset.safetensors").is_file()
            assert (out / "steps" / "seed0" / method / f"task{t}.json").is_file()
    again = run_continual(cfg, data=tiny_mnist, log=lambda s: None)
    assert all(m.resumed for ms in again.memories.values() for m in ms)
    assert all(s.reused for s in again.steps)
    for a, b in zip(res.steps, again.steps):
        assert a.evaluations["convnet"].accuracies == b.evaluations["convnet"].accuracies
        assert torch.equal(res.memories[(0, a.method)][a.task].images, again.memories[(0, b.method)][b.task].images)


def test_a_saved_memory_made_with_other_settings_is_refused(tiny_run, tiny_mnist):
    cfg, _ = tiny_run
    with pytest.raises(ConfigError, match="iterations"):
        run_continual(cfg.replace(iterations=3), data=tiny_mnist, log=lambda s: None)


def test_gdumb_needs_a_memory_of_exactly_the_seen_classes(tiny_run, tiny_mnist):
    _, res = tiny_run
    memories = res.memories[(0, "random")]
    with pytest.raises(ValueError, match="memory holds classes"):
        gdumb_step(memories[:1], tiny_mnist, res.splits[0].seen(1), EvalConfig(eval_runs=1, eval_epochs=1), seed=0)


# -- config and recipe ---------------------------------------------------------------------------

@pytest.mark.parametrize("flat,error,match", [
    ({"ipc": 3}, ConfigError, "memory_ipc"),
    ({"method": "dm"}, ConfigError, "methods"),
    ({"bogus": 1}, ConfigError, "unknown option"),
    ({"tasks": "five"}, ConfigError, "tasks"),
])
def test_config_refuses_bad_options_by_name(flat, error, match):
    with pytest.raises(error, match=match):
        ContinualConfig.from_flat(flat)


def test_config_round_trips_and_sets_method_budget_and_seed_per_task():
    cfg = ContinualConfig.from_flat({"methods": "dm,lodm", "memory_ipc": 10, "rank": 8, "iterations": 5})
    assert ContinualConfig.from_dict(cfg.to_dict()) == cfg == ContinualConfig.from_flat(cfg.to_flat())
    assert cfg.eval.eval_runs == 3  # the paper's 3 GDumb models per step unless told otherwise
    a, b = cfg.task_condense_config("lodm", 0, 0), cfg.task_condense_config("dm", 0, 1)
    assert (a.method, a.ipc, a.rank, a.iterations) == ("lodm", 10, 8, 5) and b.method == "dm"
    assert a.seed != b.seed == cfg.task_condense_config("lodm", 0, 1).seed  # per task, shared by memory types


@pytest.mark.parametrize("extra,error,match", [
    ({"methods": "random,nope"}, UnknownNameError, "nope"),
    ({"methods": "lodm", "rank": 20}, BudgetError, "rank 20"),
    ({"tasks": 11}, ConfigError, "tasks=11"),
    # HaBa's shared hallucinators are budgeted over a task's classes (no "give num_classes"); it then needs experts
    ({"methods": "lohaba"}, ConfigError, "set expert_dir"),
])
def test_bad_runs_fail_before_anything_is_written(tiny_mnist, tmp_path, extra, error, match):
    cfg = ContinualConfig.from_flat({**TINY, **extra, "output_dir": str(tmp_path / "out")})
    with pytest.raises(error, match=match):
        run_continual(cfg, data=tiny_mnist, log=lambda s: None)
    assert not (tmp_path / "out").exists()


CONTINUAL_CONFIGS = sorted((REPO / "recipes" / "configs").glob("continual-*.yaml"))
SHAPES = {"ylecun/mnist": ((1, 28, 28), 10), "uoft-cs/cifar10": ((3, 32, 32), 10),
          "uoft-cs/cifar100": ((3, 32, 32), 100)}


@pytest.mark.parametrize("path", CONTINUAL_CONFIGS, ids=lambda p: p.stem)
def test_shipped_continual_configs_validate(path):
    from hf_lodc.engine.condenser import resolve_config
    from hf_lodc.engine.config import load_yaml_config

    cfg = ContinualConfig.from_dict(load_yaml_config(path), source=str(path))
    validate_continual(cfg)
    shape, K = SHAPES[cfg.data.dataset]
    split_classes(K, cfg.tasks, 0)
    for m in cfg.methods:
        resolve_config(cfg.task_condense_config(m, 0, 0), shape)


def test_paper_continual_configs_store_the_paper_memory():
    from hf_lodc.engine.condenser import resolve_config
    from hf_lodc.engine.config import load_yaml_config

    def lodm_count(stem):
        cfg = ContinualConfig.from_dict(load_yaml_config(REPO / "recipes" / "configs" / f"{stem}.yaml"))
        return resolve_config(cfg.task_condense_config("lodm", 0, 0), SHAPES[cfg.data.dataset][0])[2].images_per_class

    assert lodm_count("continual-cifar10-t5-k10") == 80  # 10 pixel images of 32x32 at rank 2
    assert lodm_count("continual-cifar100-t5-k20") == lodm_count("continual-cifar100-t10-k20") == 160
    assert lodm_count("continual-mnist-k1-cpu") == 7


def _recipe():
    spec = importlib.util.spec_from_file_location("continual_recipe", REPO / "recipes" / "continual.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_recipe_runs_from_yaml_with_cli_overrides(tmp_path, capsys):
    cfg_file = tmp_path / "cl.yaml"
    cfg_file.write_text("\n".join(f"{k}: {v}" for k, v in {**TINY, "methods": "[random]", "tasks": 5}.items()))
    out = tmp_path / "run"
    rc = _recipe().main(["--config", str(cfg_file), "--tasks", "2", "--output-dir", str(out), "--cpu"])
    assert rc == 0
    summary = json.loads((out / "continual.json").read_text())
    assert summary["tasks"] == 2 and list(summary["methods"]) == ["random"]
    assert "| random | 1 img (784 floats) |" in capsys.readouterr().out


def test_recipe_names_the_option_to_use(tmp_path, capsys):
    assert _recipe().main(["--dataset", "ylecun/mnist", "--ipc", "3", "--output-dir", str(tmp_path)]) == 2
    assert "memory_ipc" in capsys.readouterr().err
