"""``speed``: what auto chooses on hardware with and without bf16 units and a compiler (both faked),
that user settings are kept, that exact computes today's bits, and that a resumed run follows its
checkpoint's path."""

from __future__ import annotations

import json

import pytest
import torch

import hf_lodc
from hf_lodc import pipeline
from hf_lodc.engine.config import RunConfig
from hf_lodc.engine.speed import COMPILE_PAYS_GFLOP, REAL_CHUNK, Hardware, default_speed
from hf_lodc.errors import ConfigError
from tests.datasets_factory import make_dataset

AMX = Hardware("cpu", True, "AMX-BF16 tiles")
PLAIN = Hardware("cpu", False, "no bf16 units")


def _works(device_type):
    return None


def _broken(device_type):
    return "torch.compile does not work here (no C++ compiler)"


def _never(device_type):
    raise AssertionError("the compiler was probed for a run that cannot repay a compile")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_dataset(tmp_path_factory.mktemp("speed") / "d", per_class={"train": 6, "test": 3})
    return str(path), hf_lodc.load_image_classification(str(path), cache=False)


def _cfg(path, **kw):
    return RunConfig.from_flat({"dataset": path, "method": "lodm", "ipc": 1, "rank": 2, "iterations": 2,
                                "batch_real": 4, "eval_runs": 1, "eval_epochs": 2, **kw})


# a CIFAR-sized run on the 3-class 8x8 toy: enough iterations/epochs to cross the compile threshold
BIG = {"iterations": 10**7, "eval_epochs": 10**6, "eval_runs": 5}


def test_auto_on_bf16_hardware_with_a_compiler_takes_the_whole_fast_path(tiny):
    path, data = tiny
    cfg, plan = pipeline.choose_speed(_cfg(path, speed="auto", **BIG), data, hardware=AMX, probe=_works)
    c, e = cfg.condense, cfg.eval
    assert (c.mixed_precision, c.channels_last, c.compile, c.real_chunk) == ("bf16", True, True, REAL_CHUNK)
    assert c.fused_stem is True  # on a CPU, with the compile
    assert (e.eval_mixed_precision, e.eval_channels_last, e.eval_compile) == ("bf16", True, True)
    rec = json.loads(json.dumps(plan.record()))  # results.json-able
    assert rec["speed"] == "auto" and rec["hardware"]["compiler"] == "works"
    assert rec["condense"]["chosen"]["compile"] is True and rec["condense"]["gflop"] >= COMPILE_PAYS_GFLOP["condense"]


def test_auto_without_bf16_units_keeps_float32_and_compiles_only(tiny):
    path, data = tiny
    cfg, plan = pipeline.choose_speed(_cfg(path, speed="auto", **BIG), data, hardware=PLAIN, probe=_works)
    c, e = cfg.condense, cfg.eval
    assert not c.mixed_precision and not c.channels_last and c.compile is True and c.real_chunk == REAL_CHUNK
    assert c.fused_stem is True  # it pays in float32 too
    assert not e.eval_mixed_precision and not e.eval_channels_last and e.eval_compile is True
    assert any("no bf16 units" in r for r in plan.record()["condense"]["why"])


def test_auto_without_a_compiler_stays_eager_and_says_why(tiny):
    path, data = tiny
    cfg, plan = pipeline.choose_speed(_cfg(path, speed="auto", **BIG), data, hardware=AMX, probe=_broken)
    assert not cfg.condense.compile and not cfg.eval.eval_compile and not cfg.condense.fused_stem
    # eager bf16 on a CPU is slower than float32 (its casts): float32 stays, and the plan says why
    assert not cfg.condense.mixed_precision and not cfg.eval.eval_mixed_precision
    assert plan.record()["hardware"]["compiler"].startswith("torch.compile does not work")
    assert any("no C++ compiler" in line for line in plan.lines())
    assert any("bf16 pays on a CPU only with compile" in line for line in plan.lines())
    # a GPU's bf16 units pay eagerly too
    gpu = Hardware("cuda", True, "bf16 supported")
    cfg, _ = pipeline.choose_speed(_cfg(path, speed="auto", **BIG), data, hardware=gpu, probe=_broken)
    assert cfg.condense.mixed_precision == "bf16" and cfg.eval.eval_mixed_precision == "bf16"
    # a GPU runs the first conv well: the fused stem is a CPU choice only
    cfg, _ = pipeline.choose_speed(_cfg(path, speed="auto", **BIG), data, hardware=gpu, probe=_works)
    assert cfg.condense.compile is True and not cfg.condense.fused_stem


def test_a_small_run_is_not_charged_for_a_compile(tiny):
    path, data = tiny
    cfg, plan = pipeline.choose_speed(_cfg(path, speed="auto"), data, hardware=AMX, probe=_never)
    assert not cfg.condense.compile and not cfg.eval.eval_compile
    assert plan.record()["hardware"]["compiler"].startswith("not probed")
    assert not cfg.condense.mixed_precision and not cfg.condense.channels_last  # eager: float32 is faster
    assert cfg.condense.real_chunk is None and not cfg.condense.fused_stem
    # a compile the user asked for brings bf16 and the compiled path's chunks and fused first block with it
    cfg, _ = pipeline.choose_speed(_cfg(path, speed="auto", compile=True), data, hardware=AMX, probe=_never)
    assert cfg.condense.mixed_precision == "bf16" and not cfg.eval.eval_mixed_precision
    assert cfg.condense.real_chunk == REAL_CHUNK and cfg.condense.fused_stem is True
    # and a compile the user turned off takes them away, however large the run
    cfg, _ = pipeline.choose_speed(_cfg(path, speed="auto", compile=False, **BIG), data, hardware=AMX, probe=_works)
    assert cfg.condense.real_chunk is None and not cfg.condense.fused_stem and not cfg.condense.mixed_precision


def test_exact_and_user_settings_are_never_changed(tiny):
    path, data = tiny
    cfg, plan = pipeline.choose_speed(_cfg(path, speed="exact", **BIG), data, hardware=AMX, probe=_never)
    assert cfg.to_flat() == _cfg(path, speed="exact", **BIG).to_flat()
    assert plan.options() == {}
    user = _cfg(path, speed="auto", mixed_precision="no", eval_compile=False, **BIG)
    cfg, plan = pipeline.choose_speed(user, data, hardware=AMX, probe=_works)
    assert cfg.condense.mixed_precision == "no" and cfg.eval.eval_compile is False
    assert cfg.condense.channels_last is True and cfg.condense.compile is True  # unset: chosen
    assert not cfg.eval.eval_mixed_precision  # the user's eager evaluation stays float32
    assert plan.record()["condense"]["set_by_user"] == {"mixed_precision": "no"}


def test_auto_is_measured_for_distribution_matching_and_convnets_only(tiny):
    path, data = tiny
    cfg, plan = pipeline.choose_speed(_cfg(path, speed="auto", method="lodc", eval_models=["mlp"], **BIG), data,
                                      hardware=AMX, probe=_works)
    assert plan.options() == {}
    why = " ".join(plan.lines())
    assert "distribution matching only" in why and "ConvNet evaluation models only" in why


def test_unset_speed_takes_the_environment_default(tiny, monkeypatch):
    path, data = tiny
    monkeypatch.delenv("HF_LODC_SPEED")
    assert default_speed() == "auto"
    cfg, _ = pipeline.choose_speed(_cfg(path), data, hardware=PLAIN, probe=_never)
    assert cfg.speed == "auto"
    monkeypatch.setenv("HF_LODC_SPEED", "fast")
    with pytest.raises(ConfigError, match="HF_LODC_SPEED='fast' is not a speed"):
        pipeline.choose_speed(_cfg(path), data)
    with pytest.raises(ConfigError, match="speed"):
        _cfg(path, speed="fast")


def test_exact_computes_the_bits_of_the_plain_engine(tiny, tmp_path):
    """speed=exact through the pipeline equals the engine called with the options' own defaults."""
    path, data = tiny
    cfg = _cfg(path, speed="exact", eval_runs=0, output_dir=str(tmp_path / "run"))
    art = pipeline.run_experiment(cfg, data=data, progress=False, log=lambda s: None)
    ref = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=2, batch_real=4, progress=False)
    for k, v in ref.synset.state_dict().items():
        assert torch.equal(art.synset.state_dict()[k], v), k
    assert art.results["speed"]["speed"] == "exact"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["speed"]["condense"]["why"] == ["speed=exact"]


def test_a_resumed_run_follows_its_checkpoint_path(tiny, tmp_path):
    """A run checkpointed eagerly and resumed with many more iterations (which alone would compile)
    continues eagerly instead of being refused for a different identity."""
    path, data = tiny
    out = tmp_path / "run"
    ck = out / "checkpoints" / "iter_0000002"
    ck.mkdir(parents=True)  # what an eager float32 run's checkpoint records (compile, channels_last off: omitted)
    torch.save({"identity": {"method": "lodm", "mixed_precision": "no", "real_chunk": None}, "iteration": 2,
                "synset": {}, "momentum": {}, "history": []}, ck / "condenser_state.pt")
    longer = _cfg(path, speed="auto", iterations=10**7, eval_runs=0, output_dir=str(out), resume=True)
    cfg, plan = pipeline.choose_speed(longer, data, hardware=PLAIN, probe=_works)
    assert cfg.condense.compile is False and cfg.condense.real_chunk is None and not cfg.condense.fused_stem
    assert any("resuming iter_" in line for line in plan.lines())


def test_a_compiled_run_from_before_the_fused_stem_resumes_without_it(tiny, tmp_path):
    """A checkpoint of the compiled path written before ``fused_stem`` existed (its identity omits it: off)
    continues with the module's first block, the path that wrote it."""
    path, data = tiny
    out = tmp_path / "run"
    ck = out / "checkpoints" / "iter_0000002"
    ck.mkdir(parents=True)
    torch.save({"identity": {"method": "lodm", "mixed_precision": "bf16", "channels_last": True, "compile": True,
                             "real_chunk": REAL_CHUNK}, "iteration": 2, "synset": {}, "momentum": {}, "history": []},
               ck / "condenser_state.pt")
    longer = _cfg(path, speed="auto", iterations=10**7, eval_runs=0, output_dir=str(out), resume=True)
    cfg, plan = pipeline.choose_speed(longer, data, hardware=AMX, probe=_works)
    assert cfg.condense.compile is True and cfg.condense.mixed_precision == "bf16"
    assert cfg.condense.fused_stem is False
    assert any("fused_stem=False" in line for line in plan.lines())


def test_the_api_chooses_the_evaluation_path_of_a_held_set(tiny):
    path, data = tiny
    art = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=1, batch_real=4, progress=False)
    ec = hf_lodc.EvalConfig(eval_runs=5, eval_epochs=10**7)
    fast = pipeline.choose_eval_speed(ec, art, "auto", hardware=AMX, probe=_works)
    assert (fast.eval_mixed_precision, fast.eval_channels_last, fast.eval_compile) == ("bf16", True, True)
    assert pipeline.choose_eval_speed(ec, art, "exact", hardware=AMX, probe=_never) == ec
    with pytest.raises(ConfigError, match="speed must be one of"):
        pipeline.choose_eval_speed(ec, art, "fast", hardware=AMX, probe=_never)


def test_auto_on_a_cpu_keeps_freed_host_memory_and_exact_leaves_the_allocator_alone(tiny):
    from hf_lodc.training.device import keep_freed_host_memory

    path, data = tiny
    _, auto = pipeline.choose_speed(_cfg(path, speed="auto"), data, hardware=PLAIN, probe=_never)
    _, exact = pipeline.choose_speed(_cfg(path, speed="exact"), data, hardware=PLAIN, probe=_never)
    _, gpu = pipeline.choose_speed(_cfg(path, speed="auto"), data, hardware=Hardware("cuda", True, "bf16"),
                                   probe=_never)
    assert auto.keep_host_memory and not exact.keep_host_memory and not gpu.keep_host_memory
    done = keep_freed_host_memory()
    assert auto.record()["hardware"]["host_memory"] == (done or "unchanged (the C library is not glibc)")
    assert any("host memory" in line for line in auto.lines())
    assert exact.record()["hardware"]["host_memory"].startswith("as the C library")
    assert not any("host memory" in line for line in exact.lines())
    import platform
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert done and "glibc" in done and keep_freed_host_memory() == done  # idempotent


@pytest.mark.parametrize("flags, units, why", [
    ({"avx512f", "amx_bf16", "avx512_bf16"}, True, "AMX-BF16 tiles"),
    ({"avx512f", "avx512_bf16"}, True, "AVX512-BF16 units"),  # e.g. a Zen 4 EPYC: bf16 convolutions ~2x fp32
    ({"avx512f", "avx2"}, False, "no bf16 units"),
])
def test_cpu_bf16_units_are_amx_tiles_or_avx512_bf16(monkeypatch, flags, units, why):
    from hf_lodc.engine.speed import probe_hardware
    from hf_lodc.training import device as dev

    monkeypatch.setattr(dev, "cpu_flags", lambda: set(flags))
    hw = probe_hardware("cpu")
    assert hw.bf16_units is units and hw.bf16_why.startswith(why)
