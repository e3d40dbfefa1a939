"""A condensation killed (SIGKILL, SIGTERM) in a checkpoint write, the evaluation and the final save, resumed
with ``--resume`` after each kill, ends bit-identical to an uninterrupted run, with no debris and no
resume refused for a dead run's lock (benchmarks/chaos_resume.py runs the same with 20+ random kills)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import chaos_resume
from hf_lodc.atomic import sweep_dead
from tests.datasets_factory import make_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("chaos") / "data", per_class={"train": 6, "test": 2})


def test_kills_in_a_checkpoint_the_evaluation_and_the_save_resume_to_the_same_bits(tiny, tmp_path):
    rec = chaos_resume.chaos(tiny, tmp_path / "runs", kills=3, iterations=4, eval_runs=1, eval_epochs=40,
                             phases=("checkpoint", "eval", "save"), log=print)
    assert rec["kills"] == 3
    assert rec["bit_identical"], [ep["identical_diffs"] for ep in rec["episodes"]]
    assert rec["debris"] == []
    assert not rec["lock_refused"]
    # the kills that were sent (an aim the run outran, "exited before the signal", is retried, not counted)
    killed = [k for ep in rec["episodes"] for k in ep["kills"] if k["sent"]]
    assert killed[0]["signal"] == "SIGKILL" and killed[0]["exit"] == -9
    # SIGTERM in the evaluation: the set is saved un-evaluated with its final checkpoint, and --resume finishes it
    assert killed[1]["signal"] == "SIGTERM" and killed[1]["exit"] in (0, 130)


def test_the_leftovers_of_a_killed_writer_are_swept_and_a_cut_swap_is_undone(tmp_path):
    target = tmp_path / "out"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / f".out.tmp{dead}-abc").mkdir()  # an artefact being written
    (tmp_path / f".out.tmp{dead}").write_text("x")  # a file being written
    (tmp_path / f".out.old{dead}").mkdir()  # the previous artefact, moved away just before the kill
    (tmp_path / f".out.old{dead}" / "config.json").write_text("{}")
    alive = tmp_path / ".out.tmp1-xyz"  # pid 1 runs: not ours to remove
    alive.mkdir()
    removed = sweep_dead(target)
    assert sorted(p.name for p in removed) == sorted([f".out.tmp{dead}-abc", f".out.tmp{dead}"])
    assert (target / "config.json").is_file()  # the swap cut between its renames is undone
    assert alive.is_dir()
