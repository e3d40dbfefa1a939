"""pytest plugin: a fake Hugging Face Hub (tests/hubserver) wired into huggingface_hub / datasets.

Load it from tests/conftest.py with ``pytest_plugins = ["tests.conftest_hub"]``.

Fixture ``hub_server`` -> ``HubServerHandle``:
    .endpoint      "http://127.0.0.1:PORT"
    .token         write token of user "alice"    (.user == "alice")
    .other_token   write token of user "bob"      (.other_user == "bob")
    .server        the HubServer (faults: .fail_next(...), .request_log, .repo_state(...), .unhandled)
    .api           HfApi(endpoint=..., token=alice)
    .env           env vars for a *subprocess* (empty HF_HOME of its own, HF_ENDPOINT, HF_TOKEN, no Xet, ...)
    .hf_home       in-process HF_HOME (already active in this process)
    .run_python(code, ...)  run `python -c code` with .env and return the CompletedProcess
    .allow_unhandled()      don't fail the test on requests the server could not route

In-process, the fixture points huggingface_hub / datasets at the server: env vars via monkeypatch AND the
module-level constants they read at import time (huggingface_hub.constants.ENDPOINT & co,
datasets.config.HF_ENDPOINT & co). All proxies point at the server too (NO_PROXY=127.0.0.1), so any
request to another host (e.g. the dataset viewer at datasets-server.<endpoint host>) is answered by it
instead of leaving the machine.

At teardown the test fails if the server saw requests it could not route (answered 501) or crashed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hubserver import HubServer

REPO_ROOT = Path(__file__).resolve().parents[1]

ALICE = "alice"
BOB = "bob"
ALICE_TOKEN = "hf_test_alice_write_token"
BOB_TOKEN = "hf_test_bob_write_token"

# Variables that would make clients bypass the test server or pick up foreign credentials.
_UNSET = (
    "HF_OIDC_RESOURCE", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_CO_STAGING", "HF_HUB_ENABLE_HF_TRANSFER",
    "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_IMPLICIT_TOKEN", "HF_XET_HIGH_PERFORMANCE",
    "HF_DATASETS_DOWNLOADED_DATASETS_PATH", "HF_DATASETS_EXTRACTED_DATASETS_PATH", "HF_MODULES_CACHE",
)


def hub_env(endpoint: str, token: str, hf_home: Path) -> dict[str, str]:
    """Environment for a process that must talk to the fake Hub only."""
    hf_home = Path(hf_home)
    no_proxy = "127.0.0.1,localhost,::1"
    return {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_DATASETS_CACHE": str(hf_home / "datasets"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",  # datasets would otherwise HEAD an S3 URL on each load
        "DO_NOT_TRACK": "1",
        # Everything that is not 127.0.0.1 goes to the fake Hub (which refuses/records it).
        "HTTP_PROXY": endpoint,
        "HTTPS_PROXY": endpoint,
        "ALL_PROXY": endpoint,
        "http_proxy": endpoint,
        "https_proxy": endpoint,
        "all_proxy": endpoint,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


@dataclass
class HubServerHandle:
    server: HubServer
    endpoint: str
    token: str
    other_token: str
    env: dict
    hf_home: Path
    api: object
    user: str = ALICE
    other_user: str = BOB
    _allow_unhandled: bool = field(default=False, repr=False)

    def allow_unhandled(self) -> None:
        self._allow_unhandled = True

    def subprocess_env(self, extra: dict | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _UNSET}
        env.update(self.env)
        env.update(extra or {})
        return env

    def run_python(self, code: str, timeout: float = 120, extra_env: dict | None = None,
                   cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code], env=self.subprocess_env(extra_env), capture_output=True, text=True,
            timeout=timeout, cwd=cwd or self.hf_home.parent,
        )


def _patch_clients(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path) -> None:
    """Point the already-imported huggingface_hub / datasets modules at `endpoint` and `hf_home`."""
    from huggingface_hub import constants

    set_ = monkeypatch.setattr
    set_(constants, "ENDPOINT", endpoint)
    set_(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    if hasattr(constants, "HF_URL_HOSTS"):
        set_(constants, "HF_URL_HOSTS", frozenset(constants.HF_URL_HOSTS) | {"127.0.0.1"})
    set_(constants, "HF_HUB_OFFLINE", False)
    set_(constants, "HF_HUB_DISABLE_XET", True)
    set_(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    for name, value in {
        "HF_HOME": hf_home,
        "HF_HUB_CACHE": hf_home / "hub",
        "HUGGINGFACE_HUB_CACHE": hf_home / "hub",
        "HF_ASSETS_CACHE": hf_home / "assets",
        "HUGGINGFACE_ASSETS_CACHE": hf_home / "assets",
        "HF_XET_CACHE": hf_home / "xet",
        "HF_TOKEN_PATH": hf_home / "token",
        "HF_STORED_TOKENS_PATH": hf_home / "stored_tokens",
        "CHECK_FOR_UPDATE_DONE_PATH": hf_home / ".check_for_update_done",
    }.items():
        if hasattr(constants, name):
            set_(constants, name, str(value))
    try:  # origins whose redirects keep the auth header (computed at import time)
        from huggingface_hub.utils import _http

        if hasattr(_http, "_HUB_ORIGINS"):
            set_(_http, "_HUB_ORIGINS", frozenset(_http._HUB_ORIGINS) | {_http._url_origin(endpoint)})
    except ImportError:  # pragma: no cover
        pass

    try:
        import datasets.config as dconfig
    except ImportError:  # pragma: no cover - datasets not installed
        return
    set_(dconfig, "HF_ENDPOINT", endpoint)
    set_(dconfig, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
    set_(dconfig, "HF_HUB_OFFLINE", False)
    set_(dconfig, "HF_DATASETS_OFFLINE", False)
    set_(dconfig, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    set_(dconfig, "HF_CACHE_HOME", str(hf_home))
    set_(dconfig, "HF_DATASETS_CACHE", hf_home / "datasets")
    set_(dconfig, "HF_MODULES_CACHE", hf_home / "modules")
    set_(dconfig, "DOWNLOADED_DATASETS_PATH", hf_home / "datasets" / "downloads")
    set_(dconfig, "EXTRACTED_DATASETS_PATH", hf_home / "datasets" / "downloads" / "extracted")


def _reset_client_state() -> None:
    """Drop pooled connections/cached filesystems bound to a previous endpoint or proxy setting."""
    from huggingface_hub import close_session

    close_session()  # the shared httpx client reads proxy env vars when (re)created
    try:
        from huggingface_hub import HfFileSystem

        HfFileSystem.clear_instance_cache()
    except Exception:  # pragma: no cover
        pass


@pytest.fixture
def hub_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import HfApi

    server = HubServer(tokens={ALICE_TOKEN: ALICE, BOB_TOKEN: BOB}).start()
    handle = None
    try:
        endpoint = server.endpoint
        inproc_home = tmp_path / "hf_home"
        subproc_home = tmp_path / "hf_home_subprocess"
        inproc_home.mkdir()
        subproc_home.mkdir()

        for name in _UNSET:
            monkeypatch.delenv(name, raising=False)
        for name, value in hub_env(endpoint, ALICE_TOKEN, inproc_home).items():
            monkeypatch.setenv(name, value)
        _patch_clients(monkeypatch, endpoint, inproc_home)
        _reset_client_state()

        sub_env = hub_env(endpoint, ALICE_TOKEN, subproc_home)
        # the repo root, so that a fresh `python -c` can import the project and `tests.*`
        sub_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        handle = HubServerHandle(
            server=server, endpoint=endpoint, token=ALICE_TOKEN, other_token=BOB_TOKEN,
            env=sub_env, hf_home=inproc_home,
            api=HfApi(endpoint=endpoint, token=ALICE_TOKEN),
        )
        yield handle
    finally:
        _reset_client_state()
        server.stop()
    problems = []
    if server.errors:
        problems.append("fake Hub crashed while handling requests:\n" + "\n".join(server.errors))
    if server.unhandled and not (handle is not None and handle._allow_unhandled):
        problems.append(
            "fake Hub received requests it does not implement (answered 501/502):\n"
            + "\n".join(f"  {m} {p}" for m, p in server.unhandled)
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
