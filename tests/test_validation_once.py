"""Every option of a run is checked in one place, and a bad value is one error that names it.

The options come from the dataclasses (``RunConfig.option_owners()``, which includes every registered
objective's options). Their checks live in declared tables: the config's own (``_RULES``,
``_NAME_CHECKS``, the objectives' ``RULES``: checked when a config is built), the validate step's
(``engine/validate.py``: ``validated_options()``, needing a method row, a network, the image size,
memory, the output or the Hub) and the loader's (names inside the dataset). Each option is in exactly
one table or declared free-form below with the reason. Bad values are derived from each rule where
they can be, and every one is run through the real entry points.
"""

from __future__ import annotations

import typing

import pytest

import hf_lodc
from hf_lodc import pipeline, preflight
from hf_lodc.engine.config import RunConfig, objective_option_owners
from hf_lodc.engine.config_checks import _NAME_CHECKS, _RULES, _coerce, _objective_rules
from hf_lodc.engine.validate import LOADER_CHECKED, RELATIONS, validated_options
from hf_lodc.errors import HfLodcError
from tests.datasets_factory import make_dataset

# options with no check beyond their type (which the config checks for every option), and why
FREE_FORM = {
    "seed": "any integer seeds the condensation", "holdout_seed": "any integer seeds the split",
    "eval_seed": "any integer (None: the condensation's)",
    "tf32": "on or off", "channels_last": "on or off (None: speed decides)", "compile": "on or off",
    "eval_dsa": "on or off", "eval_compile": "on or off (its backend: a relation)",
    "eval_channels_last": "on or off (its backend: a relation)", "skip_corrupt": "on or off",
    "drop_empty_classes": "on or off", "hub_private": "on or off", "hub_test_split": "on or off",
    "resume": "on or off (needs output_dir: a relation)", "hub_push_models": "on or off (a relation)",
    "net_update": "on or off", "match_bias": "on or off", "match_fc": "on or off",
    "shared_in_budget": "on or off",
    "fused_stem": "on or off (None: speed decides; a network it cannot fuse keeps the module path, said once)",
    "options": "the method's options object: each of its fields is an option of its own, listed here",
    "momentum_net": "IDC's inner-network momentum, as published (no range in its paper's code)",
    "weight_decay_net": "IDC's inner-network weight decay, as published (no range in its paper's code)",
}

# objective options handed on to a parameterisation's planner (``hf_lodc.plan_budget``, public: anyone may
# call it with unchecked arguments, so it checks its own); the only options checked at two places
PARAMETERISATION_ARGUMENTS = {"factor": "IDC's multi-formation factor", "hallucinators": "HaBa's hallucinator count"}

TINY_SHAPE, TINY_CLASSES = (3, 8, 8), 3


def _tables() -> dict[str, set[str]]:
    return {"config": set(_RULES) | set(_NAME_CHECKS) | set(_objective_rules()),
            "validate": set(validated_options()), "loader": set(LOADER_CHECKED), "free-form": set(FREE_FORM)}


def test_every_option_has_exactly_one_owner():
    options = set(RunConfig.option_owners())
    tables = _tables()
    for name, members in tables.items():
        assert members <= options, f"{name} table names options RunConfig does not have: {members - options}"
    for option in sorted(options):
        owners = [name for name, members in tables.items() if option in members]
        assert len(owners) == 1, f"option {option!r} is checked by {owners or 'nobody'}; give it one owner"
    for names, _ in RELATIONS:
        assert set(names) <= options


def _bad_value(option: str, ftype, rule) -> typing.Any:
    """A value of the option's type that its rule refuses (derived, not listed)."""
    pool = [-1, 0, 2, 10**12, -0.5, 0.5, 1.5, "", " ", "nope_not_a_name", [], [0], [-1]]
    for v in pool:
        try:
            v = _coerce(option, v, ftype, "test")
        except HfLodcError:
            continue
        if v is not None and not rule[0](v):
            return v
    raise AssertionError(f"no value in the pool breaks the rule of {option!r}")


def _config_cases():
    owners = RunConfig.option_owners()
    rules = {**_objective_rules(), **_RULES}
    for option in sorted(set(rules) | set(_NAME_CHECKS)):
        ftype = owners[option][1]
        bad = _bad_value(option, ftype, rules[option]) if option in rules else "nope_not_a_name"
        yield pytest.param(option, bad, id=option)


@pytest.mark.parametrize("option,bad", list(_config_cases()))
def test_config_owned_options_are_refused_when_the_config_is_built(option, bad):
    with pytest.raises(HfLodcError) as e:
        RunConfig.from_flat({option: bad})
    msg = str(e.value)
    assert "\n" not in msg and (option in msg or repr(bad) in msg or str(bad) in msg), msg


# the method is the one config-owned option the validate step must read (its row: budget, objective)
@pytest.mark.parametrize("option,bad", [c for c in _config_cases() if c.id != "method"])
def test_the_validate_step_does_not_check_config_owned_options_again(option, bad):
    """A config whose field was set past its check (the engine would never see one) goes through the
    validate step without an error about that option: the step does not re-check it."""
    method = "lodm"
    if option in _objective_rules():  # a method whose objective has the option; the bad value goes into
        objective = objective_option_owners()[option][0]  # the options object the objective is handed
        method = next(m for m in hf_lodc.METHODS.names() if hf_lodc.METHODS.get(m).objective == objective)
    cfg = RunConfig.from_flat({"method": method, "ipc": 1, "rank": 2, "eval_runs": 1, "output_dir": "out",
                               # the relations are met: an output dir, no expert run asked of trajectory
                               # matching, a budget that pays HaBa's shared hallucinators
                               **({"iterations": 0, "ipc": 10} if method != "lodm" else {})})
    section = RunConfig.option_owners()[option][0]
    target = getattr(cfg, section) if section != "top" else cfg
    if option in _objective_rules():
        target = cfg.condense.options
    object.__setattr__(target, option, bad)
    if option in PARAMETERISATION_ARGUMENTS:  # passed on to the parameterisation's public planner, which
        with pytest.raises(HfLodcError, match=option):  # checks what any caller hands it
            pipeline.validate(cfg, TINY_SHAPE, TINY_CLASSES, 10, 10)
        return
    pipeline.validate(cfg)
    pipeline.validate(cfg, TINY_SHAPE, TINY_CLASSES, 10, 10)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_dataset(tmp_path_factory.mktemp("once") / "d")
    return str(path), hf_lodc.load_image_classification(str(path), cache=False)


BASE = {"method": "lodm", "ipc": 1, "rank": 2, "iterations": 1, "batch_real": 4, "eval_runs": 1, "eval_epochs": 1}

# the validate step's options: a value the config accepts and the run refuses (before any work)
VALIDATE_BAD = {
    "ipc": {"ipc": 0},
    "rank": {"rank": 0},
    "images_per_class": {"images_per_class": 0},
    "matching_model": {"matching_model": "nosuchnet"},
    "eval_models": [{"eval_models": []}, {"eval_models": ["nosuchnet"]},
                    {"eval_models": ["vit_tiny_patch16_224"]}],  # cannot take 8x8 images
    "output_dir": {"output_dir": " "},
    "push_to_hub": {"push_to_hub": "not a repo id!"},
    "hub_config_name": {"push_to_hub": "alice/tiny", "hub_config_name": "bad name/"},
    "expert_dir": {"method": "lomtt", "iterations": 5},
    "affine": {"method": "haba", "affine": "diagonal", "iterations": 0, "expert_dir": "unused"},
}
LOADER_BAD = {"config_name": "nope", "revision": "nope", "train_split": "training", "eval_split": "train",
              "image_column": "photo", "label_column": "target"}


def _refused_before_work(flat: dict, data, monkeypatch, tmp_path) -> str:
    def no_work(*a, **k):
        raise AssertionError("the run started condensing")

    monkeypatch.setattr(pipeline, "condense", no_work)
    cfg = RunConfig.from_flat(flat)  # the config itself accepts the value
    with pytest.raises(HfLodcError) as e:
        pipeline.run_experiment(cfg, data=data, progress=False, log=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_the_validate_step_owns_its_options(tiny, monkeypatch, tmp_path):
    assert set(VALIDATE_BAD) == set(validated_options())
    path, data = tiny
    for option, cases in VALIDATE_BAD.items():
        for case in cases if isinstance(cases, list) else [cases]:
            msg = _refused_before_work({**BASE, "dataset": path, **case}, data, monkeypatch, tmp_path)
            values = [x for v in case.values() for x in (v if isinstance(v, list) else [v])]
            named = option in msg or any(str(v) in msg for v in values if str(v).strip())
            assert named or (option == "output_dir" and "--output-dir" in msg), (option, msg)


def test_the_loader_owns_the_names_inside_the_dataset(tiny, monkeypatch, tmp_path):
    assert set(LOADER_BAD) == set(LOADER_CHECKED)
    path, _ = tiny
    for option, bad in LOADER_BAD.items():
        if option == "revision":  # a local folder has no revisions: said, not refused (a Hub repo refuses it)
            with pytest.warns(Warning, match="revision 'nope' ignored"):
                pipeline.load_data(RunConfig.from_flat({"dataset": path, option: bad}).data)
            continue
        msg = _refused_before_work({**BASE, "dataset": path, option: bad}, None, monkeypatch, tmp_path)
        assert bad in msg or option in msg, (option, msg)


def test_relations_are_refused_naming_the_options(tiny, monkeypatch, tmp_path):
    path, data = tiny
    cases = [({"method": "lodm", "rank": None}, "rank"), ({"ipc": None}, "ipc"),
             ({"resume": True}, "output-dir"), ({"checkpoint_every": 2}, "output-dir"),
             ({"eval_backend": "vmap", "eval_compile": True}, "eval_compile"),
             ({"hub_push_models": True}, "push_models")]
    assert {n for names, _ in RELATIONS for n in names} >= {k for c, _ in cases for k in c}
    for case, word in cases:
        assert word in _refused_before_work({**BASE, "dataset": path, **case}, data, monkeypatch, tmp_path)


def test_a_run_checks_each_network_and_the_memory_once(tiny, monkeypatch, tmp_path):
    """Before the condensation each evaluation model is built twice at most (its name before the data is
    read, then once at the image size) and the memory is checked once; the evaluation re-checks nothing."""
    path, data = tiny
    calls: dict[str, int] = {"memory": 0, "eval_models_at_size": 0}
    builds: list[str] = []
    started = []
    real_memory, real_models, real_create = preflight.check_memory, preflight.check_eval_models, \
        hf_lodc.models.create_eval_model
    real_condense = pipeline.condense

    def memory(*a, **k):
        calls["memory"] += 1
        return real_memory(*a, **k)

    def models(*a, **k):
        calls["eval_models_at_size"] += 1
        return real_models(*a, **k)

    def create(name, *a, **k):
        if not started:
            builds.append(name)
        return real_create(name, *a, **k)

    def condense(*a, **k):
        started.append(True)
        return real_condense(*a, **k)

    monkeypatch.setattr(preflight, "check_memory", memory)
    monkeypatch.setattr(preflight, "check_eval_models", models)
    monkeypatch.setattr(hf_lodc.models, "create_eval_model", create)
    monkeypatch.setattr(pipeline, "condense", condense)
    cfg = RunConfig.from_flat({**BASE, "dataset": path, "eval_models": "convnet", "eval_backend": "sequential"})
    art = pipeline.run_experiment(cfg, data=data, progress=False, log=lambda s: None)
    assert art.results["evaluations"]["convnet"]["runs"] == 1
    assert calls == {"memory": 1, "eval_models_at_size": 1}
    assert builds.count("convnet") == 2, builds
