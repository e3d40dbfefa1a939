"""A fast subset of the fault catalogue (benchmarks/fault_catalogue.py): each case must end in a clean error.

One case per class of issue 12 (resume, knowable-late errors, damaged artefacts, misleading
messages, the API, disk full) and a few of the catalogue's own (YAML, options, data). Signals during
evaluation and the output-dir lock (classes 3 and 4) are tested directly in tests/test_reliability.py
(the catalogue's cases for them start a second run, too slow for this subset). The cases run
exactly as in the catalogue: CLI cases as the recipe's ``__main__`` in a process of their own, API
cases in a forked child, each classified from exit code, stderr, exception and files on disk.

Cases that fail today are listed in ``KNOWN_OPEN`` with the class they fall in: they are strict
xfails, so fixing one makes this test fail until its entry is removed. Nothing is skipped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import fault_catalogue as fc

SUBSET = [
    "resume-other-dataset",       # 1. resume accepts another dataset of the same shape
    "late-output-dir-empty",      # 2. --output-dir '' exits 0, saves nothing
    "late-vit-small-images",      # 2. eval model that cannot take 8 px, found after condensing
    "artefact-nan-factors",       # 5. NaN factors evaluate to a number
    "artefact-missing-dot-path",  # 5. ./path taken for a Hub id
    "msg-missing-dot-path",       # 6. a missing local path is a path error
    "msg-local-hub-missing",      # 6. HF_LODC_LOCAL_HUB naming a missing folder is named
    "api-condense-str-path",      # 7. condense("a/path")
    "api-eval-nan",               # 7. a NaN set evaluated
    "api-load-pathlib",           # 7. a pathlib.Path dataset
    "disk-fsize-checkpoint",      # 8. write failure while checkpointing
    "yaml-unknown",               # own: unknown YAML key
    "opt-lr-nan",                 # own: --lr nan
    "data-corrupt-image",         # own: corrupt image, named by row
    "api-load-corrupt",           # own: same through the API
    "resume-other-momentum",      # 1. another momentum is refused by the identity check
    "late-push-no-token-no-dir",  # 2. a push without a token is refused before the work
    "late-bad-repo-id",           # 2. an invalid repo id is refused before the work
    "artefact-truncated",         # 5. truncated safetensors: ArtifactError from the reader
    "artefact-config-list",       # 5. config.json of the wrong type
    "artefact-labels-out-of-range",  # 5. labels outside the classes
    "artefact-no-synset",         # 5. an artefact missing synset.safetensors is refused, not read as a bare repo copy
    "msg-eval-runs-zero",         # 6. --eval-runs 0 saves an un-evaluated artefact
    "msg-rank-pixel-method",      # 6. --rank with a pixel method is refused
    "api-eval-label-count",       # 7. evaluate_synthetic with a wrong label count names the argument
    "api-eval-numpy-images",      # 7. numpy images accepted
    "api-budget-types",           # 7. plan_budget with swapped arguments
    "resume-truncated-rng",       # a truncated random_states_0.pkl is named, not ignored
    "resume-finished-artefact",   # --resume into a finished artefact without a checkpoint keeps it
    "artefact-missing-nested",    # evaluate.py a/b/c: no such folder, not the Hub id validator
    "artefact-missing-bare-name",  # evaluate.py name: no such folder, not a connection failure
    "artefact-shape-mismatch",    # a factor of another shape: file, tensor and both shapes named
    "msg-local-hub-file",         # HF_LODC_LOCAL_HUB naming a file says so
    "api-cd-from-hub-nested",     # from_hub('a/b/c'): a path error
    "data-truncated-shard",       # a truncated parquet shard is named
    "data-label-out-of-range",    # a label outside the ClassLabel names its row
    "data-shards-disagree",       # shards of one split with other columns are named
    "api-pull-card-dotdot",       # a card whose data_files leave the repo is refused
    "artefact-pt-runs-code",      # a .pt whose pickle would run a command is refused, and nothing runs
    "resume-state-wrong-content",  # a checkpoint state that is a valid pickle of something else is named
    "resume-missing-rng",         # a checkpoint without random_states_0.pkl is refused, not resumed with fresh RNG
    "artefact-labels-float",      # float class ids are refused, not truncated to other classes
    "api-load-empty-shard",       # an empty parquet shard is named (datasets cannot read it)
    "eval-opt-hf-set-temperature",  # a foreign-set option on an hf_lodc artefact says so
    "hub-pull-500-download",      # a 500 on one file of a Hub repo is retried (loopback Hub server)
    "hub-push-two-writer-processes",  # two real processes push to one repo at once: both entries kept (a 412 raced)
]

# case id -> what it is today (the class the catalogue gives it); remove an entry once it is fixed
KNOWN_OPEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    cases = [c for c in fc.all_cases() if c.id in SUBSET]
    assert sorted(c.id for c in cases) == sorted(SUBSET)
    ws = tmp_path_factory.mktemp("faults")
    saved = dict(os.environ)
    try:
        fx, env = fc.prepare(ws, runs=fc.needs_runs(cases))
        rows = fc.run_catalogue(cases, ws, fx, env, jobs=2, log=lambda s: None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {r["id"]: r for r in rows}


def test_known_open_is_a_subset():
    assert set(KNOWN_OPEN) <= set(SUBSET)
    assert set(KNOWN_OPEN.values()) <= set(fc.CLASSES) - set(fc.PASSING)


@pytest.mark.parametrize("case_id", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=f"issue 12, open: {KNOWN_OPEN[c]}"))
    if c in KNOWN_OPEN else c
    for c in SUBSET
])
def test_case_ends_cleanly(outcomes, case_id):
    row = outcomes[case_id]
    detail = f"{case_id}: {row['result']} {row['flags']} rc={row['rc']} message={row['message']!r}"
    assert row["result"] in fc.PASSING, detail


def test_known_open_cases_fail_as_listed(outcomes):
    """An open case that changes class (e.g. a traceback that became lost work) must update KNOWN_OPEN."""
    changed = {c: outcomes[c]["result"] for c, cls in KNOWN_OPEN.items()
               if outcomes[c]["result"] not in (cls, *fc.PASSING)}
    assert not changed, f"update KNOWN_OPEN: {changed}"


def test_catalogue_size_and_classes():
    cases = fc.all_cases()
    assert len(cases) >= 280
    assert {c.kind for c in cases} == {"cli", "api"}
    groups = {c.group for c in cases}
    assert {"resume", "late", "signal", "two-runs", "artefact", "message", "api", "disk", "hub", "untrusted",
            "data"} <= groups
    assert all(c.expect in ("clean_error", "ok") for c in cases)
