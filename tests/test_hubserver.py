"""The fake Hub (tests/hubserver) against the real huggingface_hub / datasets clients."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hubserver import HubServer

# huggingface_hub's own LFS PUT (data=<file object>) triggers this httpx2 deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

datasets = pytest.importorskip("datasets")
from huggingface_hub import HfApi, hf_hub_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


def _status(err: BaseException) -> int | None:
    resp = getattr(err, "response", None)
    return getattr(resp, "status_code", None)


def _push_tiny(repo_id: str, token: str, **kwargs):
    ds = datasets.Dataset.from_dict({"x": [1, 2, 3], "label": [0, 1, 0]})
    return ds.push_to_hub(repo_id, token=token, **kwargs)


# ------------------------------------------------------------------------------------------------
# 1. repo creation, upload, listing, download


def test_create_upload_list_download(hub_server):
    api, server = hub_server.api, hub_server.server

    url = api.create_repo("alice/tiny", repo_type="dataset")
    assert url.repo_id == "alice/tiny" and url.repo_type == "dataset"
    assert url == f"{hub_server.endpoint}/datasets/alice/tiny"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("alice/tiny", repo_type="dataset")
    assert _status(exc.value) == 409
    assert api.create_repo("alice/tiny", repo_type="dataset", exist_ok=True).repo_id == "alice/tiny"

    readme = b"---\nlicense: mit\n---\n# tiny\n\nhello\n"
    info = api.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id="alice/tiny",
                           repo_type="dataset", commit_message="add readme")
    assert info.oid == server.repo_state("alice/tiny").head
    assert not server.is_lfs("alice/tiny", "README.md")

    blob = os.urandom(50_000)
    api.upload_file(path_or_fileobj=blob, path_in_repo="weights/model.bin", repo_id="alice/tiny", repo_type="dataset")
    assert server.is_lfs("alice/tiny", "weights/model.bin")  # *.bin -> LFS, uploaded through the batch API
    assert [r.status for r in server.requests("lfs_upload")] == [200]

    assert api.list_repo_files("alice/tiny", repo_type="dataset") == [".gitattributes", "README.md",
                                                                     "weights/model.bin"]
    server.tree_page_size = 1  # same listing through Link-header pagination
    n_tree = len(server.requests("tree"))
    assert api.list_repo_files("alice/tiny", repo_type="dataset") == [".gitattributes", "README.md",
                                                                     "weights/model.bin"]
    assert len(server.requests("tree")) - n_tree == 4  # 4 entries (incl. folder "weights"), 1 per page
    server.tree_page_size = 1000

    top = {e.path: type(e).__name__ for e in api.list_repo_tree("alice/tiny", repo_type="dataset")}
    assert top == {".gitattributes": "RepoFile", "README.md": "RepoFile", "weights": "RepoFolder"}
    expanded = list(api.list_repo_tree("alice/tiny", path_in_repo="weights", repo_type="dataset", expand=True))
    assert expanded[0].lfs.sha256 == hashlib.sha256(blob).hexdigest() and expanded[0].last_commit is not None

    p = hf_hub_download("alice/tiny", "README.md", repo_type="dataset")
    assert Path(p).read_bytes() == readme
    assert Path(p).is_relative_to(hub_server.hf_home)
    p = hf_hub_download("alice/tiny", "weights/model.bin", repo_type="dataset")
    assert Path(p).read_bytes() == blob

    ri = api.repo_info("alice/tiny", repo_type="dataset", files_metadata=True)
    assert ri.sha == server.repo_state("alice/tiny").head
    assert ri.card_data.license == "mit"
    assert {s.rfilename for s in ri.siblings} == {".gitattributes", "README.md", "weights/model.bin"}
    assert [c.title for c in api.list_repo_commits("alice/tiny", repo_type="dataset")] == [
        "Upload weights/model.bin with huggingface_hub", "add readme", "initial commit"]
    assert [p.path for p in api.get_paths_info("alice/tiny", ["README.md", "weights", "nope"],
                                               repo_type="dataset")] == ["README.md", "weights"]

    # a pinned (commit sha) revision, missing entries / revisions / repos
    first_sha = api.list_repo_commits("alice/tiny", repo_type="dataset")[-1].commit_id
    assert api.list_repo_files("alice/tiny", repo_type="dataset", revision=first_sha) == [".gitattributes"]
    assert not api.file_exists("alice/tiny", "missing.txt", repo_type="dataset")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/tiny", "missing.txt", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        api.repo_info("alice/tiny", repo_type="dataset", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("alice/nope", repo_type="dataset")


def test_private_repo_hidden_from_other_users(hub_server):
    api = hub_server.api
    api.create_repo("alice/secret", repo_type="dataset", private=True)
    assert api.repo_info("alice/secret", repo_type="dataset").private is True
    bob = HfApi(endpoint=hub_server.endpoint, token=hub_server.other_token)
    with pytest.raises(RepositoryNotFoundError):
        bob.repo_info("alice/secret", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        bob.list_repo_files("alice/secret", repo_type="dataset")
    api.update_repo_settings("alice/secret", repo_type="dataset", private=False)
    assert bob.repo_info("alice/secret", repo_type="dataset").private is False


# ------------------------------------------------------------------------------------------------
# 2. datasets.push_to_hub + load_dataset in a fresh process


_LOAD_BOTH_CONFIGS = """
import json, datasets
out = {}
for name in ("default", "other"):
    d = datasets.load_dataset("alice/tiny", name)
    out[name] = d["train"].to_dict()
print("RESULT=" + json.dumps(out))
"""


def test_push_to_hub_then_load_in_subprocess(hub_server):
    server = hub_server.server
    _push_tiny("alice/tiny", hub_server.token)
    ds_other = datasets.Dataset.from_dict({"x": [10, 20], "label": [1, 1]})
    ds_other.push_to_hub("alice/tiny", token=hub_server.token, config_name="other")

    state = server.repo_state("alice/tiny")
    assert set(state.paths) == {".gitattributes", "README.md", "data/train-00000-of-00001.parquet",
                                "other/train-00000-of-00001.parquet"}
    assert server.is_lfs("alice/tiny", "data/train-00000-of-00001.parquet")
    assert not server.is_lfs("alice/tiny", "README.md")

    import yaml

    card = server.read_file("alice/tiny", "README.md").decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert [c["config_name"] for c in meta["configs"]] == ["default", "other"]
    assert meta["configs"][1]["data_files"] == [{"split": "train", "path": "other/train-*"}]

    start = len(server.request_log)
    proc = hub_server.run_python(_LOAD_BOTH_CONFIGS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.split("RESULT=", 1)[1])
    assert result == {"default": {"x": [1, 2, 3], "label": [0, 1, 0]}, "other": {"x": [10, 20], "label": [1, 1]}}
    # the subprocess had an empty cache of its own and really downloaded from the server
    downloads = [r for r in server.request_log[start:] if r.kind == "resolve" and r.method == "GET"]
    assert any(r.path.endswith("data/train-00000-of-00001.parquet") for r in downloads)
    assert any(r.path.endswith("other/train-00000-of-00001.parquet") for r in downloads)
    assert (Path(hub_server.env["HF_HOME"]) / "hub").is_dir()


# ------------------------------------------------------------------------------------------------
# 3. Image feature round trip


def test_push_image_dataset_roundtrip(hub_server):
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, size=(4, 5, 3), dtype=np.uint8) for _ in range(3)]
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in arrays], "label": [0, 1, 2]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])}),
    )
    ds.push_to_hub("alice/imgs", token=hub_server.token)
    loaded = datasets.load_dataset("alice/imgs", split="train")
    assert loaded.features["label"].names == ["a", "b", "c"]
    assert isinstance(loaded.features["image"], datasets.Image)
    assert loaded["label"] == [0, 1, 2]
    for got, want in zip(loaded["image"], arrays):
        assert np.array_equal(np.asarray(got.convert("RGB")), want)


# ------------------------------------------------------------------------------------------------
# 4. faults, auth


def test_commit_500_leaves_remote_unchanged(hub_server):
    server = hub_server.server
    _push_tiny("alice/tiny", hub_server.token)
    before = server.repo_state("alice/tiny")

    server.fail_next("commit", status=500)
    with pytest.raises(HfHubHTTPError) as exc:
        datasets.Dataset.from_dict({"x": [7], "label": [1]}).push_to_hub("alice/tiny", token=hub_server.token)
    assert _status(exc.value) == 500
    assert server.repo_state("alice/tiny") == before
    assert [r.status for r in server.requests("commit")][-1] == 500

    datasets.Dataset.from_dict({"x": [7], "label": [1]}).push_to_hub("alice/tiny", token=hub_server.token)
    assert server.repo_state("alice/tiny").head != before.head


def test_commit_connection_dropped_before_or_after_apply(hub_server):
    """mode="drop": no HTTP response at all -> the client raises a transport error (not HfHubHTTPError).
    Default when="before": the commit is not applied; when="after": it lands, the response is lost."""
    import httpx2

    api, server = hub_server.api, hub_server.server
    api.create_repo("alice/tiny", repo_type="dataset")
    before = server.repo_state("alice/tiny")
    server.fail_next("commit", mode="drop")
    with pytest.raises(httpx2.TransportError):
        api.upload_file(path_or_fileobj=b"hi\n", path_in_repo="a.txt", repo_id="alice/tiny", repo_type="dataset")
    assert server.repo_state("alice/tiny") == before

    server.fail_next("commit", mode="drop", when="after")
    with pytest.raises(httpx2.TransportError):
        api.upload_file(path_or_fileobj=b"hi\n", path_in_repo="a.txt", repo_id="alice/tiny", repo_type="dataset")
    after = server.repo_state("alice/tiny")
    assert after.head != before.head and "a.txt" in after.files
    assert [r.status for r in server.requests("commit")] == [None, None]
    assert [r.fault for r in server.requests("commit")] == ["drop", "drop"]


def test_parent_commit_mismatch_is_412(hub_server):
    from huggingface_hub import CommitOperationAdd

    api, server = hub_server.api, hub_server.server
    api.create_repo("alice/tiny", repo_type="dataset")
    old = server.repo_state("alice/tiny").head
    api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="alice/tiny", repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit("alice/tiny", [CommitOperationAdd("b.txt", b"2")], commit_message="stale",
                          repo_type="dataset", parent_commit=old)
    assert _status(exc.value) == 412
    assert "b.txt" not in server.repo_state("alice/tiny").files


def test_429_on_preupload_is_retried_and_on_commit_surfaced(hub_server):
    """Client behaviour: preupload goes through http_backoff -> retried after Retry-After + 1 s;
    commit is a plain POST -> HfHubHTTPError(429) surfaces immediately (no retry)."""
    api, server = hub_server.api, hub_server.server
    api.create_repo("alice/tiny", repo_type="dataset")
    server.fail_next("preupload", status=429, headers={"Retry-After": "1"}, times=1)
    t0 = time.monotonic()
    api.upload_file(path_or_fileobj=b"x\n", path_in_repo="a.txt", repo_id="alice/tiny", repo_type="dataset")
    assert time.monotonic() - t0 >= 1.5  # waited Retry-After (1 s) + 1 s
    assert [r.status for r in server.requests("preupload")] == [429, 200]
    assert "a.txt" in server.repo_state("alice/tiny").files

    before = server.repo_state("alice/tiny")
    server.fail_next("commit", status=429, headers={"Retry-After": "1"})
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"y\n", path_in_repo="b.txt", repo_id="alice/tiny", repo_type="dataset")
    assert _status(exc.value) == 429
    assert [r.status for r in server.requests("commit")][-1:] == [429]
    assert server.repo_state("alice/tiny") == before


def test_dropped_lfs_upload_is_retried(hub_server):
    api, server = hub_server.api, hub_server.server
    api.create_repo("alice/tiny", repo_type="dataset")
    server.fail_next("lfs_upload", mode="drop")
    blob = os.urandom(200_000)
    api.upload_file(path_or_fileobj=blob, path_in_repo="x.parquet", repo_id="alice/tiny", repo_type="dataset")
    assert [r.status for r in server.requests("lfs_upload")] == [None, 200]
    assert server.read_file("alice/tiny", "x.parquet") == blob


def test_truncated_download_is_retried(hub_server):
    api, server = hub_server.api, hub_server.server
    api.create_repo("alice/tiny", repo_type="dataset")
    blob = os.urandom(100_000)
    server.put_files("alice/tiny", {"data/x.parquet": blob})
    server.fail_next("resolve", mode="truncate", method="GET", path_contains="x.parquet")
    p = hf_hub_download("alice/tiny", "data/x.parquet", repo_type="dataset")
    assert Path(p).read_bytes() == blob
    gets = [r for r in server.requests("resolve", method="GET")]
    assert [r.fault for r in gets] == ["truncate", None]
    # the retry asks for the rest with a Range header only if the partial chunk reached the file
    # (httpx buffers 10 MB chunks, so a 50 kB prefix is usually lost and the file is fetched again)
    assert "range" not in gets[0].headers
    assert gets[1].headers.get("range", "bytes=0-") in {"bytes=0-", "bytes=50000-"}, gets[1].headers


def test_invalid_token_is_401(hub_server):
    bad = HfApi(endpoint=hub_server.endpoint, token="hf_not_a_valid_token")
    with pytest.raises(HfHubHTTPError) as exc:
        bad.whoami()
    assert _status(exc.value) == 401
    with pytest.raises(HfHubHTTPError) as exc:
        bad.create_repo("alice/tiny", repo_type="dataset")
    assert _status(exc.value) == 401
    with pytest.raises(HfHubHTTPError) as exc:
        _push_tiny("alice/tiny", "hf_not_a_valid_token")
    assert _status(exc.value) == 401
    assert hub_server.api.whoami()["name"] == "alice"
    assert HfApi(endpoint=hub_server.endpoint, token=hub_server.other_token).whoami()["name"] == "bob"


def test_writing_into_another_namespace_is_403(hub_server):
    api, server = hub_server.api, hub_server.server
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("bob/stolen", repo_type="dataset")
    assert _status(exc.value) == 403
    with pytest.raises(HfHubHTTPError) as exc:
        _push_tiny("bob/stolen", hub_server.token)
    assert _status(exc.value) == 403

    server.create_repo("bob/data", repo_type="dataset")  # exists, public, owned by bob
    before = server.repo_state("bob/data")
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="bob/data", repo_type="dataset")
    assert _status(exc.value) == 403
    assert server.repo_state("bob/data") == before
    # bob can, and alice can read it
    HfApi(endpoint=hub_server.endpoint, token=hub_server.other_token).upload_file(
        path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="bob/data", repo_type="dataset")
    assert "x.txt" in api.list_repo_files("bob/data", repo_type="dataset")


def test_unknown_routes_are_answered_501_and_recorded(hub_server):
    import httpx2 as httpx  # the HTTP client huggingface_hub uses

    r = httpx.get(f"{hub_server.endpoint}/api/datasets/alice/tiny/not-an-endpoint", trust_env=False)
    assert r.status_code == 501
    assert hub_server.server.unhandled == [("GET", "/api/datasets/alice/tiny/not-an-endpoint")]
    hub_server.allow_unhandled()  # otherwise the fixture fails the test at teardown
    with pytest.raises(ValueError):
        hub_server.server.fail_next("no-such-kind")


# ------------------------------------------------------------------------------------------------
# 5. cross-check against olah serving a local git repo (offline mirror mode)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _export_git_mirror(server: HubServer, repo_id: str, dest: Path) -> str:
    """Write the fake-Hub repo head as a git repo laid out like the Hub (LFS pointers + .git/lfs/objects)."""
    from tests.hubserver.store import lfs_pointer

    state = server.repo_state(repo_id)
    dest.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(dest.parent)}
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True, env=env)
    lfs_objects = {}
    for path in state.paths:
        data = server.read_file(repo_id, path)
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if server.is_lfs(repo_id, path):
            oid = hashlib.sha256(data).hexdigest()
            target.write_bytes(lfs_pointer(oid, len(data)))
            lfs_objects[oid] = data
        else:
            target.write_bytes(data)
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(dest), "commit", "-q", "-m", "mirror"], check=True, env=env)
    for oid, data in lfs_objects.items():
        obj = dest / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(data)
    return subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


_LOAD_PINNED = """
import json, sys, datasets
d = datasets.load_dataset("alice/tiny", revision=sys.argv[1], split="train")
print("RESULT=" + json.dumps({"rows": d.to_dict(), "features": d.features.to_dict()}))
"""


def test_olah_offline_mirror_serves_the_same_dataset(hub_server, tmp_path):
    olah_cli = Path(sys.executable).with_name("olah-cli")
    if shutil.which("git") is None or not olah_cli.exists():
        pytest.skip("olah cross-check needs `git` and the `olah-cli` entry point")
    server = hub_server.server
    _push_tiny("alice/tiny", hub_server.token)
    ours = datasets.load_dataset("alice/tiny", split="train")  # in-process, from the fake Hub

    mirrors = tmp_path / "olah" / "mirrors"
    sha = _export_git_mirror(server, "alice/tiny", mirrors / "datasets" / "alice" / "tiny")
    port = _free_port()
    olah_dir = tmp_path / "olah"
    (olah_dir / "olah.toml").write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{olah_dir / "cache"}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        # upstream = a closed loopback port: offline mode must never need it
        'hf-scheme = "http"\nhf-netloc = "127.0.0.1:9"\nhf-lfs-netloc = "127.0.0.1:9"\n'
        f'mirror-netloc = "127.0.0.1:{port}"\nmirror-lfs-netloc = "127.0.0.1:{port}"\n'
        "[accessibility]\noffline = true\n"
    )
    olah_env = hub_server.subprocess_env()  # proxies -> fake Hub sink: an escape would be recorded
    log = open(olah_dir / "olah.out", "wb")
    proc = subprocess.Popen([str(olah_cli), "-c", str(olah_dir / "olah.toml")], cwd=olah_dir, env=olah_env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        olah_endpoint = f"http://127.0.0.1:{port}"
        import httpx2 as httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{olah_endpoint}/api/datasets/alice/tiny/revision/{sha}", trust_env=False,
                             timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("olah did not start:\n" + (olah_dir / "olah.out").read_text(errors="replace")[-3000:])
            time.sleep(0.2)

        home = tmp_path / "olah_client_home"
        extra = {"HF_ENDPOINT": olah_endpoint, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
                 "HF_DATASETS_CACHE": str(home / "datasets"), "HF_ASSETS_CACHE": str(home / "assets"),
                 "HF_XET_CACHE": str(home / "xet"), "HF_TOKEN_PATH": str(home / "token")}
        run = subprocess.run([sys.executable, "-c", _LOAD_PINNED, sha], env=hub_server.subprocess_env(extra),
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-4000:]
        theirs = json.loads(run.stdout.split("RESULT=", 1)[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
    assert theirs["rows"] == ours.to_dict() == {"x": [1, 2, 3], "label": [0, 1, 0]}
    assert theirs["features"] == ours.features.to_dict()


def test_more_hfapi_operations(hub_server, tmp_path):
    """upload_folder / snapshot_download / delete / copy / branches / tags / HfFileSystem / model repos."""
    from huggingface_hub import CommitOperationCopy, HfFileSystem, snapshot_download

    api, server = hub_server.api, hub_server.server
    api.create_repo("alice/folder", repo_type="dataset")
    src = tmp_path / "src"
    files = {"README.md": b"# f\n", "a/b/c.txt": b"c" * 10, "a/d.parquet": os.urandom(3000), "e.json": b"{}"}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    api.upload_folder(folder_path=src, repo_id="alice/folder", repo_type="dataset")
    snap = Path(snapshot_download("alice/folder", repo_type="dataset"))
    for rel, data in files.items():
        assert (snap / rel).read_bytes() == data

    # re-uploading identical content is a no-op (preupload reports the remote oids)
    head = server.repo_state("alice/folder").head
    api.upload_folder(folder_path=src, repo_id="alice/folder", repo_type="dataset")
    assert server.repo_state("alice/folder").head == head

    api.create_commit("alice/folder", [CommitOperationCopy("a/d.parquet", "copy/d.parquet")],
                      commit_message="copy", repo_type="dataset")
    assert server.read_file("alice/folder", "copy/d.parquet") == files["a/d.parquet"]
    api.delete_file("e.json", repo_id="alice/folder", repo_type="dataset")
    api.delete_folder("a/b", repo_id="alice/folder", repo_type="dataset")
    assert server.repo_state("alice/folder").paths == [".gitattributes", "README.md", "a/d.parquet",
                                                       "copy/d.parquet"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("nope.txt", repo_id="alice/folder", repo_type="dataset")

    api.create_branch("alice/folder", branch="dev", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"dev\n", path_in_repo="dev.txt", repo_id="alice/folder",
                    repo_type="dataset", revision="dev")
    api.create_tag("alice/folder", tag="v1", revision="dev", repo_type="dataset")
    refs = api.list_repo_refs("alice/folder", repo_type="dataset")
    assert sorted(b.name for b in refs.branches) == ["dev", "main"] and [t.name for t in refs.tags] == ["v1"]
    assert "dev.txt" in api.list_repo_files("alice/folder", repo_type="dataset", revision="v1")
    assert "dev.txt" not in api.list_repo_files("alice/folder", repo_type="dataset")
    assert Path(hf_hub_download("alice/folder", "dev.txt", repo_type="dataset", revision="dev")).read_bytes() == b"dev\n"

    fs = HfFileSystem(endpoint=hub_server.endpoint, token=hub_server.token)
    assert sorted(fs.ls("datasets/alice/folder/a", detail=False)) == ["datasets/alice/folder/a/d.parquet"]
    with fs.open("datasets/alice/folder/a/d.parquet", "rb", block_size=1000) as f:
        f.seek(1500)
        assert f.read(100) == files["a/d.parquet"][1500:1600]
    assert fs.info("datasets/alice/folder/a/d.parquet")["size"] == 3000

    # model repo (no URL prefix), e.g. for published weights
    api.create_repo("alice/model")
    api.upload_file(path_or_fileobj=b"\x00" * 64, path_in_repo="model.safetensors", repo_id="alice/model")
    assert server.is_lfs("alice/model", "model.safetensors", repo_type="model")
    assert Path(hf_hub_download("alice/model", "model.safetensors")).read_bytes() == b"\x00" * 64
    assert api.model_info("alice/model").sha == server.repo_state("alice/model", repo_type="model").head
