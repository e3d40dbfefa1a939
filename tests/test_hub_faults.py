"""The Hub failing half-way, against the loopback server's fault injection (tests/hubserver): a push or pull
either ends with the right content or with one clear error, retries are bounded and said, and no commit
of the repo ever holds a card naming files that commit lacks (never half-published).

(500s, a connection dropped mid-upload or after the commit landed, 429 with Retry-After and the network
down are in tests/test_hub_push.py; this file adds 502, a revision that moves between read and commit,
a download cut short, and the card/files invariant over every commit.)
"""

from __future__ import annotations

import fnmatch

import pytest
import torch
import yaml

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
datasets = pytest.importorskip("datasets")

from hf_lodc import CondensedDataset  # noqa: E402
from hf_lodc.errors import HfLodcError, HubPushError  # noqa: E402
from tests.datasets_factory import make_dataset  # noqa: E402

REPO = "alice/faulty"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> CondensedDataset:
    data = make_dataset(tmp_path_factory.mktemp("hubfaults") / "data", per_class={"train": 6, "test": 2})
    cd = CondensedDataset(str(data))
    cd.condense(method="lodm", ipc=1, rank=2, iterations=1, batch_real=4)
    return cd


def assert_never_half_published(server, repo: str) -> None:
    """In every commit, each data_files pattern of the card matches a file of that commit, and each
    condensation the card lists has its record there."""
    for c in server.commits(repo):
        if "README.md" not in c.files:
            continue
        text = c.files["README.md"].data.decode()
        front = yaml.safe_load(text.split("---\n")[1]) if text.startswith("---\n") else {}
        files = list(c.files)
        for cfg in front.get("configs") or []:
            for f in cfg.get("data_files") or []:
                pattern = f["path"] if isinstance(f, dict) else f
                assert fnmatch.filter(files, pattern), f"commit {c.sha[:8]}: card names {pattern!r}, absent"
        for cond in front.get("condensation") or []:
            name = cond.get("config_name")
            assert f"condensations/{name}/hf_lodc.json" in files, f"commit {c.sha[:8]}: {name} has no record"


def test_502s_are_retried_and_said_then_the_push_lands_once(hub_server, tiny_set):
    server = hub_server.server
    said: list[str] = []
    server.fail_next("commit", status=502, times=2)
    res = tiny_set.push_to_hub(REPO, config_name="a", retry_wait=0.01, log=said.append)
    assert res.changed and res.commit_sha == server.repo_state(REPO).head
    assert [r.status for r in server.requests("commit")] == [502, 502, 200]
    assert sum("retrying" in m and "502" in m for m in said) == 2, said  # each retry is said
    assert_never_half_published(server, REPO)


def test_out_of_retries_is_one_error_and_the_repo_is_unchanged(hub_server, tiny_set):
    server = hub_server.server
    tiny_set.push_to_hub(REPO, config_name="a", retry_wait=0.01, log=None)
    before = server.repo_state(REPO)
    n0 = len(server.requests("commit"))
    server.fail_next("commit", status=502, times=10)
    with pytest.raises(HubPushError, match=r"failed after 3 attempt\(s\): 502: .*the remote repo is unchanged"):
        tiny_set.push_to_hub(REPO, config_name="b", max_retries=2, retry_wait=0.01, log=None)
    assert len(server.requests("commit")) - n0 == 3  # bounded: 1 + max_retries attempts, then one error
    assert server.repo_state(REPO) == before
    assert_never_half_published(server, REPO)


def test_a_revision_that_moved_between_read_and_commit_keeps_both_changes(hub_server, tiny_set, monkeypatch):
    """Someone commits after the push read the head and before its commit: the stale commit is refused
    (parent_commit), re-planned on the new head, and both the other change and the set end up there."""
    from huggingface_hub import HfApi

    server = hub_server.server
    tiny_set.push_to_hub(REPO, config_name="a", retry_wait=0.01, log=None)
    real = HfApi.create_commit
    moved = []

    def racing_commit(self, *args, **kwargs):
        if not moved:  # the rival's commit lands first, once
            moved.append(server.put_files(REPO, {"notes/rival.txt": b"the other writer"}, message="rival"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(HfApi, "create_commit", racing_commit)
    res = tiny_set.push_to_hub(REPO, config_name="b", retry_wait=0.01, log=None)
    files = server.repo_state(REPO).files
    assert "notes/rival.txt" in files and "condensations/b/hf_lodc.json" in files
    assert "condensations/a/hf_lodc.json" in files and res.commit_sha == server.repo_state(REPO).head
    assert [r.status for r in server.requests("commit")][-2:] == [412, 200]  # refused as stale, then re-planned
    assert_never_half_published(server, REPO)


def test_a_download_cut_short_gives_the_right_set_or_one_clear_error(hub_server, tiny_set):
    server = hub_server.server
    tiny_set.push_to_hub(REPO, config_name="a", retry_wait=0.01, log=None)
    server.fail_next("resolve", mode="truncate", times=1)
    try:
        back = CondensedDataset.from_hub(REPO)
    except HfLodcError as e:  # acceptable: one clear error naming the repo
        assert REPO in str(e) and "\n" not in str(e).strip()
    else:
        assert torch.equal(back.images(), tiny_set.images())
    server.fail_next("resolve", mode="drop", times=1)
    try:
        back = CondensedDataset.from_hub(REPO)
    except HfLodcError as e:
        assert REPO in str(e) and "\n" not in str(e).strip()
    else:
        assert torch.equal(back.images(), tiny_set.images())


def test_two_writers_at_once_both_end_up_in_the_repo_and_the_card(hub_server, tiny_set):
    """Two pushes of different condensations to one repo at the same time (threads, real HTTP): the commit
    built on a stale head is refused (parent_commit), re-planned on the other's commit, and neither card
    entry overwrites the other."""
    import threading

    server = hub_server.server
    tiny_set.push_to_hub(REPO, config_name="first", retry_wait=0.01, log=None)
    server.fail_next("commit", mode="delay", delay=1.0, times=2)  # both commits wait, so both read the same head
    results, errors = {}, []

    def push(name):
        try:
            results[name] = tiny_set.push_to_hub(REPO, config_name=name, retry_wait=0.01, log=None)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=push, args=(n,)) for n in ("writer-a", "writer-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    files = server.repo_state(REPO).files
    front = yaml.safe_load(server.read_file(REPO, "README.md").decode().split("---\n")[1])
    names = {c["config_name"] for c in front["condensation"]}
    assert {"first", "writer-a", "writer-b"} <= names, names
    assert all(f"condensations/{n}/hf_lodc.json" in files for n in ("first", "writer-a", "writer-b"))
    assert 412 in [r.status for r in server.requests("commit")]  # the race really happened
    assert_never_half_published(server, REPO)
