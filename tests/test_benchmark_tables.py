"""Benchmark tables. The cross-architecture table is filled by several processes at once (one per
dataset): each saves its cells by re-reading the table under a lock, so no process overwrites another's
cells. cpu_protocol.py records only runs whose config is its command's."""

import importlib.util
import json
import sys

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_cross_arch", ROOT / "benchmarks" / "bench_cross_arch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _table(command: str) -> dict:
    settings = {"ipc": 1, "rank": 2, "iterations": 2, "batch_real": 8, "eval_runs": 1, "eval_epochs": 1,
                "test_images": 0, "models": ["convnet"], "seed": 0, "matching_model": "ConvNet-3"}
    return {"settings": settings, "hardware": {"cpu": "x", "cores": 2, "torch": "t", "torch_threads": 1,
                                               "device": "CPU only", "niceness": 0},
            "commands": [command], "rows": []}


def _head(dataset: str, method: str) -> dict:
    return {"dataset": dataset, "method": method, "init": "svd", "rank": 2, "images_per_class": 7,
            "iterations": 2, "condense_s": 1.0, "synthetic_std": 1.0, "accuracy": {}}


def test_two_processes_with_stale_views_keep_each_others_cells(tmp_path):
    bench = _bench()
    out_json, out_md = tmp_path / "t.json", tmp_path / "t.md"
    rec = {"mean": 50.0, "std": 0.0, "runs": [50.0], "wall_s": 1.0}
    # both processes started from an empty table; each saves its own cells in turn
    a, b = _table("run a"), _table("run b")
    a = bench.save_cell(out_json, out_md, a, _head("mnist", "lodm"), "convnet", rec, "p")
    b = bench.save_cell(out_json, out_md, b, _head("cifar10", "lodm"), "convnet", {**rec, "mean": 30.0}, "p")
    b["settings"]["models"].append("vgg11_bn")
    a = bench.save_cell(out_json, out_md, a, _head("mnist", "lodm"), "convnet_bn", {**rec, "mean": 40.0}, "p")
    disk = json.loads(out_json.read_text())
    cells = {(r["dataset"], m): v["mean"] for r in disk["rows"] for m, v in r["accuracy"].items()}
    assert cells == {("mnist", "convnet"): 50.0, ("cifar10", "convnet"): 30.0, ("mnist", "convnet_bn"): 40.0}
    assert disk["commands"] == ["run a", "run b"]
    assert "| cifar10 | lodm |" in out_md.read_text() and "| mnist | lodm |" in out_md.read_text()
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no temporary file is left


def test_a_table_of_another_protocol_is_replaced_not_merged(tmp_path):
    bench = _bench()
    out_json, out_md = tmp_path / "t.json", tmp_path / "t.md"
    rec = {"mean": 50.0, "std": 0.0, "runs": [50.0], "wall_s": 1.0}
    old = _table("old")
    old["settings"]["eval_epochs"] = 25
    bench.save_cell(out_json, out_md, old, _head("mnist", "lodm"), "convnet", rec, "p")
    new = bench.save_cell(out_json, out_md, _table("new"), _head("mnist", "dm"), "convnet", rec, "p")
    disk = json.loads(out_json.read_text())
    assert disk["settings"] == new["settings"] and disk["settings"]["eval_epochs"] == 1
    assert [(r["dataset"], r["method"]) for r in disk["rows"]] == [("mnist", "dm")]


def test_a_cell_another_process_saved_counts_as_measured(tmp_path):
    bench = _bench()
    out_json, out_md = tmp_path / "t.json", tmp_path / "t.md"
    rec = {"mean": 50.0, "std": 0.0, "runs": [50.0], "wall_s": 1.0}
    mine = _table("mine")
    assert not bench.measured(out_json, mine, "mnist", "lodm", "convnet")  # no table yet
    bench.save_cell(out_json, out_md, _table("other"), _head("mnist", "lodm"), "convnet", rec, "p")
    assert bench.measured(out_json, mine, "mnist", "lodm", "convnet")
    assert not bench.measured(out_json, mine, "mnist", "lodm", "vgg11_bn")
    assert not bench.measured(out_json, mine, "cifar10", "lodm", "convnet")
    other_protocol = _table("x")
    other_protocol["settings"]["eval_runs"] = 3
    assert not bench.measured(out_json, other_protocol, "mnist", "lodm", "convnet")


def test_cpu_protocol_records_only_runs_made_by_its_command(tmp_path):
    """benchmarks/cpu_protocol.py --from-run: a run folder whose config is the cell's YAML with the stated
    changes is recorded beside the paper's figure; any other config is refused, naming what differs."""
    import yaml

    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("cpu_protocol", ROOT / "benchmarks" / "cpu_protocol.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cell = next(c for c in mod.CELLS if c.name == "mnist-lodm-ipc1")
    flat = {**yaml.safe_load((ROOT / "recipes" / "configs" / cell.config).read_text()), "iterations": 30,
            **mod.FAST_CONFIG}
    run = tmp_path / "run"
    run.mkdir()
    from hf_lodc.engine.config import RunConfig

    flat.pop("output_dir", None)  # written as a run writes it: the nested RunConfig
    (run / "config.json").write_text(json.dumps({"run": RunConfig.from_flat(flat).to_dict()}))
    rec = {"accuracy_mean": 90.0, "accuracy_std": 0.5, "runs": 20, "epochs": 1000, "wall_time_s": 600.0}
    (run / "results.json").write_text(json.dumps({
        "evaluations": {"convnet": rec}, "evaluations_uint8": {"convnet": {**rec, "accuracy_mean": 89.5}},
        "condensation": {"iterations_per_s": 2.0, "wall_time_s": 15.0, "device": {}}}))
    row = mod.row_of(cell, 30, True, mod.check_run(run, cell, 30, True), mod.command(cell, 30, True, str(run)))
    assert row["gap"] == round(90.0 - cell.paper_mean, 2) and row["seconds_per_iteration"] == 0.5
    assert row["eval_wall_s"] == 1200.0 and "--mixed-precision bf16" in row["command"]
    table = "\n".join(mod.render([row]))
    assert "| mnist-lodm-ipc1 | 30 (20000) | yes | 90.00 ± 0.50 (20 × 1000 ep) | 89.50 ± 0.50" in table
    with pytest.raises(SystemExit, match="'iterations': \\(30, 31\\)"):
        mod.check_run(run, cell, 31, True)
    with pytest.raises(SystemExit, match="'init': \\('svd', 'noise'\\)"):  # flags the run did not have
        mod.check_run(run, cell, 30, True, ["--init", "noise", "--compile"])
    assert mod.flag_options(["--init", "noise", "--compile", "--real-chunk", "256"]) == {
        "init": "noise", "compile": True, "real_chunk": 256}
    cfg = json.loads((run / "config.json").read_text())  # a plain run recorded as the fast one: refused
    cfg["run"]["condense"]["mixed_precision"] = "no"
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match="mixed_precision"):
        mod.check_run(run, cell, 30, True)


def _update_readme():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "benchmarks" / "update_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_result_pages_hold_the_latest_tables():
    """docs/results.md and docs/speed.md carry the tables of benchmarks/results/*.md, as update_readme.py
    writes them (its --check is what this asserts); README.md only links to them."""
    mod = _update_readme()
    assert mod.main(["--check"]) == 0
    results = (ROOT / "docs" / "results.md").read_text()
    assert {"core_cpu", "cpu_protocol", "gpu_table1", "cross_arch_150"} <= set(mod.blocks(results))
    assert "speed_iteration_amx" in mod.blocks((ROOT / "docs" / "speed.md").read_text())
    assert mod.blocks((ROOT / "README.md").read_text()) == []


def test_update_readme_check_fails_on_a_stale_page_and_the_rewrite_fixes_it(tmp_path, capsys):
    mod = _update_readme()
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "results.md"
    page.write_text("# R\n\n<!-- results:core_cpu -->\nold numbers\n<!-- /results:core_cpu -->\n\nafter\n")
    assert mod.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/results.md out of date" in capsys.readouterr().err
    assert mod.main(["--root", str(tmp_path)]) == 0
    text = page.read_text()
    assert "old numbers" not in text and (ROOT / "benchmarks" / "results" / "core_cpu.md").read_text().strip() in text
    assert text.endswith("<!-- /results:core_cpu -->\n\nafter\n")
    assert mod.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "README.md").write_text("<!-- results:core_cpu -->\n<!-- /results:core_cpu -->\n")
    with pytest.raises(SystemExit, match="results:core_cpu is on both docs/results.md and README.md"):
        mod.main(["--check", "--root", str(tmp_path)])


def test_side_by_side_speed_rounds_run_in_the_order_a_b_b_a_and_render_their_means():
    """benchmarks/reference_side_by_side.py: each side once per round, A B B A, so a drifting machine
    weighs on both; the table shows the means and every round."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("side_by_side", ROOT / "benchmarks" / "reference_side_by_side.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.speed_order(1) == [(0, "reference"), (0, "hf_lodc")]
    assert mod.speed_order(2) == [(0, "reference"), (0, "hf_lodc"), (1, "hf_lodc"), (1, "reference")]
    runs = [{"command": "x", "seconds_per_iteration": 3.0}, {"command": "y", "seconds_per_iteration": 3.5}]
    assert mod._mean_run(runs) == {"command": "x", "seconds_per_iteration": 3.25}
    missing = [{"seconds_per_iteration": 3.0}, {"seconds_per_iteration": None}]
    assert mod._mean_run(missing)["seconds_per_iteration"] is None
    saved = json.loads((ROOT / "benchmarks" / "results" / "reference_side_by_side.json").read_text())
    text = "\n".join(mod.render(saved))
    sp = saved["speed"]
    if len(sp.get("rounds") or []) > 1:
        assert f"in the order {sp['order']}" in text
        assert all(f"{x['reference']} / {x['hf_lodc']}" in text for x in sp["rounds"])
