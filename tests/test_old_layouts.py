"""Records written before a run config held only its method's objective options still load, evaluate,
continue and resume, bit for bit; what is written now holds the method's options only, nested."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_lodc.errors import ConfigError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_ARTEFACT = FIXTURES / "old_layout_lodm"
OLD_DM_OPTIONS = {"real_chunk": None, "compile": False, "classes_per_iteration": None}  # LoDM's when the fixture was made
DM_OPTIONS = {**OLD_DM_OPTIONS, "syn_chunk": None, "fused_stem": None}  # LoDM's today, resolved
FOREIGN = ("outer_loop", "expert_dir", "cutmix_p", "hallucinators", "match_steps")  # other objectives'


def _same_tensors(state: dict, expected: dict) -> None:
    assert sorted(state) == sorted(expected)
    for k in expected:
        assert torch.equal(state[k], expected[k]), k


def test_the_old_artefact_is_flat_and_reads_as_its_methods_options():
    from hf_lodc.engine.condense_options import flat_condense_record
    from hf_lodc.engine.identity import identity_diff, run_identity
    from hf_lodc.export.artifact import load_artifact

    art = load_artifact(OLD_ARTEFACT)
    assert art.method == "lodm" and "options" not in art.condense_config
    assert all(k in art.condense_config for k in FOREIGN)  # the old layout: every objective's options, flat
    flat = flat_condense_record(art.condense_config)
    assert {k: flat[k] for k in OLD_DM_OPTIONS} == OLD_DM_OPTIONS and not any(k in flat for k in FOREIGN)
    # the same run recorded now: nested, the method's options only; the identities are equal
    from hf_lodc.engine.config import CondenseConfig

    new = CondenseConfig(**{k: v for k, v in flat.items()}).to_dict()
    assert new["options"] == DM_OPTIONS and not any(k in new for k in FOREIGN)
    assert identity_diff(run_identity(art.condense_config), run_identity(new)) == {}
    assert identity_diff(run_identity(art.run_config["condense"]), run_identity(new)) == {}


def test_the_old_artefact_evaluates_and_continues_bit_for_bit_and_is_saved_in_the_new_layout(shared_hub, tmp_path):
    from hf_lodc import CondensedDataset

    cd = CondensedDataset.from_disk(OLD_ARTEFACT)
    recs = cd.evaluate(models=["convnet"], runs=1, epochs=1, uint8=False)
    assert recs["convnet"].runs == 1 and 0.0 <= recs["convnet"].accuracy_mean <= 100.0
    with pytest.raises(ConfigError, match="cannot continue the current set: batch_real=8"):
        cd.condense(iterations=1, batch_real=8, continue_from_current=True)  # the old record is compared
    cd.condense(iterations=1)  # continues the loaded set (old record) from iteration 2
    _same_tensors(cd.artifact.synset.state_dict(), load_file(FIXTURES / "old_layout_lodm_continued.safetensors"))
    cond = cd.config["condense"]
    assert cond["iterations"] == 3 and cond["options"] == DM_OPTIONS and not any(k in cond for k in FOREIGN)
    out = tmp_path / "saved"
    cd.save_to_disk(out)
    record = json.loads((out / "config.json").read_text())
    for section in (record["condense"], record["run"]["condense"]):
        assert section["method"] == "lodm" and section["options"] == DM_OPTIONS
        assert not any(k in section or k in section["options"] for k in FOREIGN)
    assert not any(k in (out / "README.md").read_text() for k in ("cutmix_p", "outer_loop"))
    again = CondensedDataset.from_disk(out)  # the new layout reads back and continues too
    assert again.config["condense"]["options"] == DM_OPTIONS


def test_an_old_checkpoint_resumes_bit_for_bit(shared_hub, tmp_path):
    import hf_lodc
    from hf_lodc.engine.checkpoint import latest_checkpoint, read_checkpoint
    from hf_lodc.engine.identity import identity_diff

    shutil.copytree(FIXTURES / "old_layout_checkpoint", tmp_path / "ck")
    old = read_checkpoint(tmp_path / "ck" / "iter_0000001")
    assert "cutmix_p" in old["config"] and "cutmix_p" in old["identity"]  # the old layout
    data = hf_lodc.load_image_classification("ylecun/mnist", max_per_class=5)
    r = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=2, batch_real=4, seed=0, checkpoint_every=1,
                         checkpoint_dir=tmp_path / "ck", resume=True, progress=False)
    _same_tensors(r.synset.state_dict(), load_file(OLD_ARTEFACT / "synset.safetensors"))
    hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=2, batch_real=4, seed=0, checkpoint_every=1,
                     checkpoint_dir=tmp_path / "new", progress=False)  # a checkpoint written now
    new = read_checkpoint(latest_checkpoint(tmp_path / "new"))
    assert identity_diff(new["identity"], old["identity"]) == {}  # the same run, either layout
    assert new["config"]["options"] == DM_OPTIONS and not any(k in new["config"] for k in FOREIGN)
    assert not any(k in new["identity"] for k in FOREIGN)
    # another run is still refused, old layout or not
    with pytest.raises(ConfigError, match="seed"):
        hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=3, batch_real=4, seed=1,
                         checkpoint_dir=tmp_path / "ck", resume=True, progress=False)


def test_an_option_the_method_does_not_have_is_refused_by_name():
    from hf_lodc.engine.config import CondenseConfig, RunConfig

    with pytest.raises(ConfigError, match=r"method 'lodm' \(objective 'dm'\) has no option 'cutmix_p' "
                                          r"\(methods that have it: idc, idc-i, loidc\)"):
        CondenseConfig(method="lodm", cutmix_p=0.3)
    with pytest.raises(ConfigError, match=r"run\.yaml: method 'dc' .* has no option 'expert_dir'"):
        RunConfig.from_dict({"condense": {"method": "dc", "expert_dir": "x"}}, "run.yaml")
    with pytest.raises(ConfigError, match=r"has no option 'real_chunk'"):
        CondenseConfig(method="dc", options={"real_chunk": 4096})
    # the nested form (as recorded) and the flat form build the same config, and a method change drops
    # the old method's options left at their defaults
    run = RunConfig.from_dict({"condense": {"method": "dc", "options": {"outer_loop": 2}}})
    assert run == RunConfig.from_dict({"method": "dc", "outer_loop": 2}) == RunConfig.from_dict(run.to_dict())
    assert run.condense.outer_loop == 2 and run.to_dict()["condense"]["options"]["outer_loop"] == 2
    assert RunConfig.from_dict({"method": "dc"}).replace(method="lodm").condense.options == CondenseConfig().options
    with pytest.raises(ConfigError, match=r"method 'lodm' .* has no option 'outer_loop'"):
        run.replace(method="lodm")  # one set to another value is not dropped silently
    assert CondenseConfig(method="random").options is None  # a coreset has no objective options


def test_an_old_run_record_reads_back_as_a_run_config():
    from hf_lodc.engine.config import RunConfig

    record = json.loads((OLD_ARTEFACT / "config.json").read_text())["run"]
    with pytest.raises(ConfigError, match=r"method 'lodm' .* has no option"):
        RunConfig.from_dict(record)  # as a config given by a user: other objectives' options are refused
    run = RunConfig.from_record(record)  # as a record: they were recorded for every run, and are left out
    assert run.condense.method == "lodm" and run.condense.batch_real == 4 and run.data.max_per_class == 5
    assert RunConfig.from_record(run.to_dict()) == run == RunConfig.from_dict(run.to_dict())
