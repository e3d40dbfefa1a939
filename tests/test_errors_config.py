"""Bad options: budget / rank / ipc / names (issue 6, case 7) and malformed or malicious YAML (case 13).

Each error is checked through the public API and through ``recipes/condense.py`` (exit code 2,
one line on stderr, no output directory created).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

import hf_lodc
from hf_lodc import BudgetError, ConfigError, UnknownNameError, plan_budget
from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, RunConfig, load_yaml_config
from tests.datasets_factory import make_dataset

REPO = Path(__file__).resolve().parents[1]


def _load_recipe():
    spec = importlib.util.spec_from_file_location("hf_lodc_recipe_condense", REPO / "recipes" / "condense.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


condense_recipe = _load_recipe()

METHOD_LIST = "dc, dm, dsa, haba, herding, idc, idc-i, lodc, lodm, lodsa, lohaba, loidc, lomtt, lorandom, mtt, random"


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LODC_CACHE", str(tmp_path / "hf_lodc_cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 classes of 8x8 RGB images (rank r costs 3*r*16 numbers, a pixel image 192)."""
    root = make_dataset(tmp_path_factory.mktemp("tiny") / "d", per_class={"train": 3, "test": 1})
    return root, hf_lodc.load_image_classification(str(root), cache=False)


# ---------------------------------------------------------------------------------------------
# 7. rank, budget, ipc, names -- public API


def test_rank_that_costs_as_much_as_pixels(tiny):
    _, d = tiny
    with pytest.raises(BudgetError, match=r"rank 4 is too high for 8x8 images: a factor image costs 192 numbers, "
                                          r"a pixel image 192\. Use rank < 4 \(or the pixel parameterisation\)"):
        hf_lodc.condense(d, method="lodm", ipc=1, rank=4, iterations=1, progress=False)
    assert hf_lodc.condense(d, method="lodm", ipc=1, rank=3, iterations=0, progress=False).budget.images_per_class == 1
    with pytest.raises(BudgetError, match=r"rank 1 is too high for 2x2 images: .* No rank is cheaper at this size; "
                                          r"use a pixel method"):
        plan_budget((3, 2, 2), ipc=5, rank=1)


def test_budget_that_buys_less_than_one_image_or_is_exceeded():
    # With an integer pixel budget a valid rank always buys >= 1 factor image (a factor image is
    # cheaper than a pixel image by construction), so "< 1 image" is exactly the rank error above;
    # storing more than the budget is refused instead of being reported under a smaller ipc.
    assert plan_budget((3, 32, 32), ipc=1, rank=15).images_per_class == 1
    with pytest.raises(BudgetError, match=r"images_per_class=9 at rank 2 stores 3456 numbers per class, over the "
                                          r"budget of ipc=1 pixel image\(s\) \(3072\); at most 8 fit\. .*set ipc=None"):
        plan_budget((3, 32, 32), ipc=1, rank=2, images_per_class=9)
    assert plan_budget((3, 32, 32), ipc=None, rank=2, images_per_class=9).ipc == pytest.approx(1.125)


@pytest.mark.parametrize("kw, match", [
    ({"ipc": 0}, r"ipc \(pixel images per class\) must be a positive integer, got 0"),
    ({"ipc": -2}, r"ipc \(pixel images per class\) must be a positive integer, got -2"),
    ({"ipc": None}, r"give the pixel budget ipc \(images per class\) or images_per_class"),
    ({"rank": 0}, r"rank must be a positive integer, got 0"),
    ({"images_per_class": 0}, r"images_per_class must be a positive integer, got 0"),
])
def test_bad_ipc_rank_and_count(tiny, kw, match):
    _, d = tiny
    with pytest.raises(BudgetError, match=match):
        hf_lodc.condense(d, **{"method": "lodm", "ipc": 1, "rank": 2, **kw}, iterations=1, progress=False)


def test_unknown_method_init_and_models_list_the_valid_ones(tiny):
    _, d = tiny
    with pytest.raises(UnknownNameError, match=rf"unknown method 'lodmm'; valid methods: {METHOD_LIST}$"):
        hf_lodc.condense(d, method="lodmm", progress=False)
    with pytest.raises(UnknownNameError, match=r"unknown init 'pca'; valid inits: noise, real, svd$"):
        hf_lodc.condense(d, method="lodm", init="pca", progress=False)
    with pytest.raises(UnknownNameError, match=r"unknown eval model 'convnet9': not an hf_lodc alias nor a timm model\. "
                                               r"hf_lodc aliases: convnet \(lodc_convnet_d3_w128\), .*Did you mean"):
        hf_lodc.condense(d, method="lodm", matching_model="convnet9", iterations=1, batch_real=2, progress=False)
    r = hf_lodc.condense(d, method="lodm", iterations=0, progress=False)
    with pytest.raises(UnknownNameError, match=r"unknown eval model 'resnet9000'"):
        hf_lodc.evaluate_synthetic(r.images(), r.labels, d.test, d.mean, d.std, d.num_classes,
                                   EvalConfig(eval_models=["resnet9000"], eval_runs=1, eval_epochs=1))
    assert isinstance(UnknownNameError("x"), KeyError) and isinstance(UnknownNameError("x"), ConfigError)


# ---------------------------------------------------------------------------------------------
# 7. the same through recipes/condense.py: exit code 2, message on stderr, no output directory


def _run_main(argv, capsys):
    """``recipes/condense.py``'s main() in this process; Accelerate's process-wide state (fixed by
    the first Accelerator) is reset around it so other tests can choose their own."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    try:
        code = condense_recipe.main(argv)
    finally:
        AcceleratorState._reset_state(True)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra, stderr", [
    (["--method", "nope"], rf"error: unknown method 'nope'; valid methods: {METHOD_LIST}"),
    (["--init", "pca"], r"error: unknown init 'pca'; valid inits: noise, real, svd"),
    (["--ipc", "0"], r"error: ipc \(pixel images per class\) must be a positive integer, got 0"),
    (["--rank", "4"], r"error: rank 4 is too high for 8x8 images: a factor image costs 192 numbers"),
    (["--matching-model", "convnet9"], r"error: matching_model: unknown eval model 'convnet9'"),
    (["--eval-models", "convnet,resnet9000"], r"error: unknown eval model 'resnet9000'"),
    (["--batch-real", "0"], r"error: config: option 'batch_real' must be > 0, got 0"),
])
def test_recipe_refuses_bad_options_without_creating_the_output_dir(tiny, tmp_path, capsys, extra, stderr):
    root, _ = tiny
    out = tmp_path / "runs" / "x"
    code, err = _run_main(["--dataset", str(root), "--iterations", "1", "--eval-runs", "1", "--eval-epochs", "1",
                           "--output-dir", str(out), *extra], capsys)
    assert code == 2
    assert err.splitlines()[-1].startswith("error: ") and re.search(stderr, err), err
    assert not out.exists() and not out.parent.exists()


def test_recipe_exit_code_in_a_real_process(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "condense.py"), "--method", "nope",
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: unknown method 'nope'; valid methods: {METHOD_LIST}"
    assert "Traceback" not in proc.stderr and not out.exists()


def test_recipe_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        condense_recipe.main(["--ipc", "ten"])
    assert exc.value.code == 2 and "argument --ipc: invalid int value: 'ten'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        condense_recipe.main(["--ipcc", "1"])
    assert exc.value.code == 2 and "unrecognized arguments: --ipcc 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# 13. YAML configs: safe loading only, unknown keys and wrong types named


def _yaml(tmp_path: Path, text: str | bytes, name: str = "run.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


@pytest.mark.parametrize("payload, tag", [
    ("!!python/object/apply:os.system ['touch PWNED']", r"!!python/object/apply:os\.system"),
    ("!!python/name:os.system", r"!!python/name:os\.system"),
    ("!!python/object:hf_lodc.engine.config.RunConfig {}", r"!!python/object:hf_lodc\.engine\.config\.RunConfig"),
])
def test_python_object_tags_are_refused(tmp_path, monkeypatch, payload, tag):
    monkeypatch.chdir(tmp_path)
    p = _yaml(tmp_path, f"method: lodm\nipc: {payload}\n")
    with pytest.raises(ConfigError, match=rf"config file '.*run\.yaml': refused the YAML tag {tag} \(line 2, column 6\): "
                                          r"configs are read with safe loading, which never builds Python objects"):
        load_yaml_config(p)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("text, match", [
    ("method: lodm\nipc: 1\nipc: 10\n", r"duplicate key 'ipc' \(line 3, column 1\)"),
    ("method: [lodm\n", r"expected ',' or '\]', but got '<stream end>' \(line 2, column 1\)"),
    ("- method\n- lodm\n", r"must be a mapping of option names to values, got list"),
    (b"method: lod\xff\n", r"is not UTF-8 text \(invalid start byte at byte 11\)"),
])
def test_malformed_yaml(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_yaml_config(_yaml(tmp_path, text))
    assert load_yaml_config(_yaml(tmp_path, "")) == {}
    with pytest.raises(ConfigError, match=r"cannot read config file '.*nope\.yaml': No such file or directory"):
        load_yaml_config(tmp_path / "nope.yaml")


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"run\.yaml: unknown option\(s\) \['evl_runs', 'ipcc'\]; valid options: .*"
                                          r"batch_real, .*eval_runs"):
        RunConfig.from_dict(load_yaml_config(_yaml(tmp_path, "method: lodm\nipcc: 1\nevl_runs: 2\n")), source="run.yaml")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['colour'\]"):
        RunConfig.from_dict({"data": {"dataset": "x", "colour": "red"}})


@pytest.mark.parametrize("d, match", [
    ({"ipc": "ten"}, r"option 'ipc' must be an integer, got 'ten' \(str\)"),
    ({"ipc": 1.5}, r"option 'ipc' must be an integer, got 1\.5 \(float\)"),
    ({"skip_corrupt": "yes"}, r"option 'skip_corrupt' must be true/false, got 'yes' \(str\)"),
    ({"lr": float("nan")}, r"option 'lr' must be a finite number, got nan \(float\)"),
    ({"eval_models": 5}, r"option 'eval_models' must be a list, got 5 \(int\)"),
    ({"eval_models": ["convnet", 3]}, r"option 'eval_models' must be a string, got 3 \(int\)"),
    ({"dataset": ["a"]}, r"option 'dataset' must be a string, got \['a'\] \(list\)"),
    ({"mixed": "maybe"}, r"option 'mixed' must be one of 'convert', 'error', got 'maybe'"),
    ({"holdout_fraction": 1.5}, r"option 'holdout_fraction' must be in \(0, 1\), got 1\.5"),
    ({"log_every": 0}, r"option 'log_every' must be > 0, got 0"),
    ({"condense": "lodm"}, r"section 'condense' must be a mapping of option names to values, got 'lodm'"),
    ({"data": {"ipc": 1}}, r"option 'ipc' belongs to section 'condense', not 'data'"),
    ({"ipc": 1, "condense": {"ipc": 2}}, r"option 'ipc' is given twice"),
])
def test_wrong_types_and_values_are_named(d, match):
    with pytest.raises(ConfigError, match=rf"^run\.yaml: {match}"):
        RunConfig.from_dict(d, source="run.yaml")


def test_python_construction_is_checked_too():
    with pytest.raises(ConfigError, match=r"^CondenseConfig: option 'batch_real' must be > 0, got 0$"):
        CondenseConfig(batch_real=0)
    with pytest.raises(ConfigError, match=r"^DataConfig: option 'image_mode' must be one of 'L', 'RGB', got 'CMYK'$"):
        DataConfig(image_mode="CMYK")
    with pytest.raises(ConfigError, match=r"^EvalConfig: option 'eval_epochs' must be an integer, got '10' \(str\)$"):
        EvalConfig(eval_epochs="10")
    assert CondenseConfig(lr=1).lr == 1.0 and isinstance(CondenseConfig(lr=1).lr, float)
    cfg = RunConfig.from_dict({"condense": {"method": "lodm", "batch-real": 8}, "eval": None, "eval_runs": 2})
    assert (cfg.condense.batch_real, cfg.eval.eval_runs) == (8, 2)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_recipe_with_a_malicious_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    p = _yaml(tmp_path, "method: !!python/object/apply:os.system ['touch PWNED']\noutput_dir: out\n")
    code, err = _run_main(["--config", str(p)], capsys)
    assert code == 2 and "refused the YAML tag !!python/object/apply:os.system (line 1, column 9)" in err
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()
    p = _yaml(tmp_path, "method: lodm\nbatch_reel: 8\n", "typo.yaml")
    code, err = _run_main(["--config", str(p)], capsys)
    assert code == 2 and f"error: {p}: unknown option(s) ['batch_reel']" in err
