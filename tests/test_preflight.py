"""Up-front checks (hf_lodc/preflight.py): each refuses with one line naming the option, value and remedy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hf_lodc import preflight
from hf_lodc.errors import (
    ArtifactError,
    ConfigError,
    HfLodcError,
    HubAuthError,
    MemoryBudgetError,
    OutputDirLockedError,
    UnknownNameError,
)

REPO = Path(__file__).resolve().parents[1]


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert isinstance(e.value, HfLodcError) and "\n" not in msg and msg
    return msg


# ---------------------------------------------------------------------------------------------
# output directory


def test_output_dir_resolved_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert preflight.resolve_output_dir(None) is None
    assert preflight.resolve_output_dir("~/runs/a") == tmp_path / "home" / "runs" / "a"
    assert preflight.resolve_output_dir("rel/out") == tmp_path / "rel" / "out"
    assert preflight.resolve_output_dir(Path("x/../y")) == tmp_path / "y"
    for bad in ("", "   "):
        with pytest.raises(ConfigError, match=r"--output-dir is empty \(.*\): name a directory") as e:
            preflight.resolve_output_dir(bad)
        _one_line(e)
    with pytest.raises(ConfigError, match=r"--output-dir '/' resolves to '/', which cannot be an artefact"):
        preflight.resolve_output_dir("/")
    with pytest.raises(ConfigError, match=r"--output-dir must be a path, got 3 \(int\)"):
        preflight.resolve_output_dir(3)
    assert not (tmp_path / "home").exists() and not (tmp_path / "rel").exists()  # nothing created


def test_output_dir_file_parent_file_and_writable(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(ArtifactError, match=rf"--output-dir '{f}' is an existing file; choose a directory") as e:
        preflight.check_output_dir(f)
    _one_line(e)
    with pytest.raises(ArtifactError, match=rf"lies under the file '{f}'"):
        preflight.check_output_dir(f / "sub" / "out")
    preflight.check_output_dir(tmp_path / "new" / "deep")  # fine, and creates nothing
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_output_dir_on_a_read_only_mount(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(ro)], capture_output=True).returncode == 0
    if not mounted:
        ro.chmod(0o555)
    try:
        if os.geteuid() == 0 and not mounted:
            pytest.skip("root without CAP_SYS_ADMIN: permissions do not stop root and no read-only mount is possible")
        with pytest.raises(ArtifactError, match=rf"--output-dir '{ro}/out': '{ro}' is not writable") as e:
            preflight.check_output_dir(ro / "out")
        _one_line(e)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(ro)], capture_output=True)
        else:
            ro.chmod(0o755)


def test_lock_is_exclusive_named_and_released(tmp_path):
    out = tmp_path / "run"
    lock = preflight.lock_output_dir(out, command=["python", "recipes/condense.py", "--output-dir", str(out)])
    assert preflight.lock_path(out) == tmp_path / ".run.hf_lodc.lock" and not out.exists()
    with pytest.raises(OutputDirLockedError, match=rf"--output-dir '{out}' is in use by process {os.getpid()} "
                                                   r"\(python recipes/condense\.py --output-dir .*run\); wait for "
                                                   "it to finish") as e:
        preflight.lock_output_dir(out)  # a second open file description in the same process conflicts too
    _one_line(e)
    lock.release()
    assert not preflight.lock_path(out).exists()
    with preflight.lock_output_dir(out):  # free again
        pass
    with preflight.locked_output_dir(tmp_path / "other") as held:
        assert held.fd is not None
    assert held.fd is None
    with preflight.locked_output_dir(None) as nothing:
        assert nothing is None


def test_lock_held_by_another_process_names_it_and_dies_with_it(tmp_path):
    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        import sys, time, types
        pkg = types.ModuleType("hf_lodc")  # the package without its __init__ (torch): starts in ~0.1 s
        pkg.__path__ = [{str(REPO / "hf_lodc")!r}]
        sys.modules["hf_lodc"] = pkg
        from hf_lodc.preflight import lock_output_dir
        lock = lock_output_dir(__import__("pathlib").Path({str(out)!r}))
        print("locked", flush=True)
        time.sleep(float(sys.argv[1]))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", code, "60"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(OutputDirLockedError, match=rf"is in use by process {p.pid} \(.*-c 60\)"):
            preflight.lock_output_dir(out)
    finally:
        p.kill()  # a killed holder never runs release(): the kernel drops its lock
        p.wait()
    t0 = time.time()
    preflight.lock_output_dir(out).release()
    assert time.time() - t0 < 2


# ---------------------------------------------------------------------------------------------
# Hub


def test_repo_id_validated_offline():
    assert preflight.check_repo_id("alice/mnist-lodm") == "alice/mnist-lodm"
    assert preflight.check_repo_id("mnist-lodm") == "mnist-lodm"
    for bad in ("not a repo!!", "a/b/c", "alice/", "alice/-x-", "a" * 100):
        with pytest.raises(ConfigError, match=rf"--push-to-hub '{bad}' is not a valid Hub repo id \(.*\); use "
                                              "'owner/name'") as e:
            preflight.check_repo_id(bad)
        _one_line(e)
    with pytest.raises(ConfigError, match=r"--push-to-hub must be a repo id like 'alice/mnist-lodm', got 5"):
        preflight.check_repo_id(5)


def test_token_presence_without_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    with pytest.raises(HubAuthError, match=r"--push-to-hub needs a Hub token and none is set: run `hf auth login`, "
                                           "set HF_TOKEN") as e:
        preflight.check_token()
    _one_line(e)
    assert preflight.check_token("hf_explicit") == "hf_explicit"
    (tmp_path / "token").write_text("hf_saved\n")
    assert preflight.check_token() == "hf_saved"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert preflight.check_token() == "hf_env"


# ---------------------------------------------------------------------------------------------
# names and models


def test_strategy_names():
    for ok in ("none", "", "color_crop", "color_crop_cutout_flip_scale_rotate", "NONE"):
        assert preflight.check_strategy(ok, "--eval-dsa-strategy") == ok
    assert preflight.check_strategy(None) == "none"
    with pytest.raises(UnknownNameError, match=r"--eval-dsa-strategy 'color_crop_cutoutt': unknown DSA family "
                                               r"'cutoutt'; valid families: color, crop, cutout, flip, scale, "
                                               r"rotate, joined by '_' \(or 'none'\)") as e:
        preflight.check_strategy("color_crop_cutoutt", "--eval-dsa-strategy")
    _one_line(e)
    with pytest.raises(ConfigError, match=r"dsa_strategy must be a string"):
        preflight.check_strategy(3)


def test_eval_models_built_at_the_image_size():
    preflight.check_eval_models(["convnet"], (3, 8, 8), num_classes=3)
    preflight.check_eval_models(["convnet"], (1, 28, 28), num_classes=10)
    with pytest.raises(ConfigError, match=r"eval_models: model 'vit_tiny_patch16_224' cannot take images of shape "
                                          r"\(3, 8, 8\) \(C, H, W\) \(.*\); choose a model for this size") as e:
        preflight.check_eval_models(["convnet", "vit_tiny_patch16_224"], (3, 8, 8), num_classes=3)
    _one_line(e)
    with pytest.raises(UnknownNameError, match="nosuchnet"):
        preflight.check_eval_models(["nosuchnet"], (3, 8, 8))


# ---------------------------------------------------------------------------------------------
# memory


def test_memory_estimate_arithmetic():
    # pixel set: 3 classes x 2 images of (3, 8, 8) = 1152 numbers; params+grad+momentum+images = 4 copies
    assert preflight.estimate_memory_bytes(3, 2, (3, 8, 8)) == 4 * (3 * 1152 + 1152)
    # rank 2 factors: 3*2*(8+8) = 96 numbers per image instead of 192
    assert preflight.estimate_memory_bytes(3, 2, (3, 8, 8), rank=2) == 4 * (3 * 6 * 96 + 1152)
    # real data: uint8 + a float32 copy
    assert preflight.estimate_memory_bytes(1, 0, (1, 2, 2), num_real=10, num_test=5) == 15 * 4 * 5


def test_memory_check_refuses_what_cannot_fit():
    avail = preflight.available_memory_bytes()
    assert avail is not None and avail > 0
    preflight.check_memory(1000, "a tiny set", available=10_000)
    with pytest.raises(MemoryBudgetError, match=r"--ipc 1000000: .* needs about 9\.5 MiB of memory, 9\.5 MiB is "
                                                r"available; lower ipc") as e:
        preflight.check_memory(10_000_000, "--ipc 1000000: 3000000 images", available=9_999_999)
    _one_line(e)
    assert isinstance(e.value, MemoryError) and isinstance(e.value, ConfigError)
    need = preflight.estimate_memory_bytes(3, 100_000_000, (3, 8, 8))  # `--ipc 100000000` of the issue
    with pytest.raises(MemoryBudgetError, match=r"needs about \d+\.\d GiB"):
        preflight.check_memory(need, "--ipc 100000000")


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_line(tmp_path, capsys):
    out = tmp_path / "run"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    preflight.lock_path(out).write_text(f"{dead} python recipes/condense.py --output-dir {out}\n")  # never released
    with preflight.lock_output_dir(out):
        err = capsys.readouterr().err
        assert f"taking over the stale lock of {str(out)!r}: it was held by process {dead}" in err
        assert "no longer running" in err
    with preflight.lock_output_dir(out):  # released normally: nothing to say
        assert "stale" not in capsys.readouterr().err
