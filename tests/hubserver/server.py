"""A small Hugging Face Hub-compatible HTTP server for tests (Python stdlib only).

It speaks the subset of the Hub HTTP API that `huggingface_hub` / `datasets` use to create repos,
push (regular + git-LFS "basic" uploads, no Xet) and pull files, with real repo semantics (atomic
commits, branches, commit shas, auth, private repos) and a fault-injection API.

Usage::

    server = HubServer(tokens={"hf_alice": "alice", "hf_bob": "bob"}).start()
    server.endpoint  # "http://127.0.0.1:PORT"
    server.fail_next("commit", status=500)
    ...
    server.stop()

Every request is classified into an endpoint *kind* (see ``KINDS``); faults are matched on it.
Requests that match no route are answered 501 and recorded in ``server.unhandled``.
The server also acts as an HTTP proxy sink: a client configured with ``HTTP(S)_PROXY`` pointing
at it sends any non-127.0.0.1 request here, where it is answered (dataset viewer: 404) or refused
and recorded, so tests never leave the machine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.server
import json
import re
import secrets
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .store import (
    LFS_SIZE_THRESHOLD,
    URL_PREFIX,
    Commit,
    CommitError,
    Repo,
    Store,
    folder_oid,
    lfs_patterns,
    matches_lfs_patterns,
)

KINDS = (
    "whoami", "create", "delete_repo", "settings", "validate_yaml", "info", "preupload", "lfs_batch",
    "lfs_upload", "lfs_verify", "tree", "paths_info", "commits", "refs", "branch", "tag", "commit",
    "resolve", "dataset_viewer", "external",
)

_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX_TO_TYPE = {"datasets": "dataset", "spaces": "space"}


# ----------------------------------------------------------------------------------------------
# Records, faults


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # raw path, without query string
    query: str
    kind: str | None  # None: no route matched (answered 501)
    status: int | None  # None: connection dropped without response
    user: str | None
    fault: str | None = None  # e.g. "status:500", "drop", "truncate", "delay"
    headers: dict = field(default_factory=dict, compare=False, repr=False)  # lower-cased, minus credentials


@dataclass
class Fault:
    """A scheduled failure. See `HubServer.fail_next`."""

    kind: str
    mode: str = "status"  # "status" | "drop" | "truncate" | "delay"
    status: int = 500
    headers: dict = field(default_factory=dict)
    body: Any = None  # dict -> JSON body; str/bytes -> raw body; None -> {"error": message}
    times: int = 1
    when: str = "before"  # "before": the request has no effect; "after": it is applied, then fails
    method: str | None = None  # e.g. "GET" to hit only downloads, not HEAD
    path_contains: str | None = None
    delay: float = 0.0
    fired: int = 0

    def describe(self) -> str:
        return f"status:{self.status}" if self.mode == "status" else self.mode


class FaultPlan:
    """Thread-safe list of pending faults."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.fired: list[tuple[Fault, str, str]] = []  # (fault, method, path)

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown endpoint kind {fault.kind!r}; expected one of {KINDS}")
        if fault.mode not in ("status", "drop", "truncate", "delay"):
            raise ValueError(f"unknown fault mode {fault.mode!r}")
        if fault.when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        if fault.mode == "truncate":
            fault.when = "after"
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, kind: str, method: str, path: str, when: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.fired >= f.times or f.kind != kind or f.when != when:
                    continue
                if f.method is not None and f.method.upper() != method:
                    continue
                if f.path_contains is not None and f.path_contains not in unquote(path):
                    continue
                f.fired += 1
                self.fired.append((f, method, path))
                return f
        return None

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.fired < f.times]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass(frozen=True)
class RepoState:
    """Snapshot of a ref, for "remote unchanged" assertions. `files`: path -> (size, etag)."""

    head: str
    files: dict

    @property
    def paths(self) -> list[str]:
        return sorted(self.files)


# ----------------------------------------------------------------------------------------------
# HTTP plumbing


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict | None = None, content_type: str = "application/json"):
        h = {"Content-Type": content_type}
        h.update(headers or {})
        return cls(status, json.dumps(obj).encode(), h)


def _error_response(status: int, message: str, code: str | None = None, headers: dict | None = None) -> Response:
    h = {"X-Error-Message": message.encode("ascii", "replace").decode()[:500].replace("\n", " ")}
    if code:
        h["X-Error-Code"] = code
    h.update(headers or {})
    return Response.json({"error": message}, status=status, headers=h)


@dataclass
class Request:
    method: str
    raw_path: str
    segments: list[str]
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    user: str | None
    token: str | None

    def q(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[0] if vals else default

    def qbool(self, name: str) -> bool:
        return (self.q(name, "") or "").lower() in ("1", "true", "yes", "on")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise HttpError(400, f"Invalid JSON body: {e}") from None


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr, handler, hub: "HubServer"):
        self.hub = hub
        self._conns: set = set()
        self._conn_threads: set = set()
        self._track_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        def run():
            try:
                self.process_request_thread(request, client_address)
            finally:
                with self._track_lock:
                    self._conn_threads.discard(threading.current_thread())
                    self._conns.discard(request)

        t = threading.Thread(target=run, daemon=True, name="hubserver-conn")
        with self._track_lock:
            self._conn_threads.add(t)
            self._conns.add(request)
        t.start()

    def handle_error(self, request, client_address):  # noqa: D401 - silence "Exception happened" noise
        pass

    def close_all(self, timeout: float = 3.0) -> None:
        with self._track_lock:
            conns, threads = list(self._conns), list(self._conn_threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    server: _ThreadingServer

    def log_message(self, format, *args):  # silence stderr access log
        pass

    def do_GET(self):
        self.server.hub._dispatch(self)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_CONNECT = do_GET

    # -- low level helpers used by HubServer --

    def read_body(self, limit: int | None = None) -> bytes:
        """Read the request body (Content-Length or chunked). `limit`: read at most that many bytes."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                self.rfile.readline()
                chunks.append(chunk)
                total += len(chunk)
                if limit is not None and total >= limit:
                    break
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if limit is not None:
            n = min(n, limit)
        return self.rfile.read(n) if n > 0 else b""

    def body_length(self) -> int | None:
        cl = self.headers.get("Content-Length")
        return int(cl) if cl is not None else None

    def drop(self) -> None:
        """Close the connection abruptly, without any response."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send(self, resp: Response, head_only: bool = False, truncate: bool = False) -> None:
        self.send_response(resp.status)
        headers = dict(resp.headers)
        headers.setdefault("Content-Length", str(len(resp.body)))
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()
        if head_only:
            return
        if truncate:
            self.wfile.write(resp.body[: len(resp.body) // 2])
            self.drop()
            return
        self.wfile.write(resp.body)


# ----------------------------------------------------------------------------------------------
# The server


Route = tuple[str, Callable[..., Response], dict]


class HubServer:
    """Fake Hub. Thread-safe; one instance per test (cheap to start)."""

    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        orgs: dict[str, list[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tree_page_size: int = 1000,
    ):
        self.tokens: dict[str, str] = dict(tokens or {})  # token -> username
        self.orgs: dict[str, set[str]] = {k: set(v) for k, v in (orgs or {}).items()}  # org -> members
        self.store = Store()
        self.faults = FaultPlan()
        self.request_log: list[RequestRecord] = []
        self.unhandled: list[tuple[str, str]] = []  # (method, path) answered 501 / proxied elsewhere
        self.errors: list[str] = []  # tracebacks of server-side crashes (answered 500)
        self.tree_page_size = tree_page_size
        self.tree_page_size_expand = 50
        self._log_lock = threading.Lock()
        self._lfs_tickets: dict[str, tuple[str, str, str, int]] = {}  # ticket -> (type, id, oid, size)
        self._stopping = threading.Event()
        self._httpd = _ThreadingServer((host, port), _Handler, self)
        self.host, self.port = self._httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "HubServer":
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="hubserver"
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout)
        self._httpd.close_all(timeout=min(3.0, timeout))
        self._httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test-facing API ---------------------------------------------------------------------------

    def add_user(self, name: str, token: str | None = None) -> str:
        token = token or f"hf_{name}_{secrets.token_hex(8)}"
        self.tokens[token] = name
        return token

    def add_org(self, org: str, members: list[str]) -> None:
        self.orgs.setdefault(org, set()).update(members)

    def fail_next(
        self,
        kind: str,
        status: int = 500,
        *,
        mode: str = "status",
        headers: dict | None = None,
        body: Any = None,
        times: int = 1,
        when: str = "before",
        method: str | None = None,
        path_contains: str | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Schedule a fault on the next `times` requests of endpoint `kind`.

        mode:
          "status"   answer `status` (+ `headers`, JSON body {"error": ...} unless `body` given);
          "drop"     close the connection without any response (for uploads: after reading half the body);
          "truncate" send the real headers (full Content-Length) but only half the body, then close;
          "delay"    sleep `delay` seconds, then handle the request normally.
        when="after": the request is fully applied first (e.g. a commit lands), then the response is
        replaced by the fault ("response lost"). Default "before": the request has no effect.
        """
        return self.faults.add(
            Fault(
                kind=kind, mode=mode, status=status, headers=dict(headers or {}), body=body, times=times,
                when=when, method=method, path_contains=path_contains, delay=delay,
            )
        )

    def requests(self, kind: str | None = None, method: str | None = None) -> list[RequestRecord]:
        with self._log_lock:
            return [
                r for r in self.request_log
                if (kind is None or r.kind == kind) and (method is None or r.method == method)
            ]

    def clear_log(self) -> None:
        with self._log_lock:
            self.request_log.clear()

    def create_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False,
                    owner: str | None = None) -> Repo:
        return self.store.create_repo(repo_type, repo_id, owner or repo_id.split("/")[0], private)

    def put_files(self, repo_id: str, files: dict[str, bytes], repo_type: str = "dataset", message: str = "seed",
                  branch: str = "main", lfs: bool | None = None) -> str:
        """Commit files directly (no HTTP), e.g. to seed a dataset. Returns the commit sha."""
        repo = self._repo_or_raise(repo_type, repo_id)
        return self.store.put_files(repo, files, message, branch=branch, lfs=lfs).sha

    def repo_state(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> RepoState:
        repo = self._repo_or_raise(repo_type, repo_id)
        with self.store.lock:
            commit = repo.resolve(revision)
            if commit is None:
                raise KeyError(f"revision {revision!r} not found in {repo_type}s/{repo_id}")
            return RepoState(head=commit.sha, files={p: (e.size, e.etag) for p, e in commit.files.items()})

    def read_file(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = "main") -> bytes:
        repo = self._repo_or_raise(repo_type, repo_id)
        with self.store.lock:
            commit = repo.resolve(revision)
            if commit is None or path not in commit.files:
                raise KeyError(f"{path!r} not found at {revision!r} in {repo_type}s/{repo_id}")
            return commit.files[path].data

    def is_lfs(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = "main") -> bool:
        repo = self._repo_or_raise(repo_type, repo_id)
        with self.store.lock:
            return repo.resolve(revision).files[path].lfs

    def commits(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list[Commit]:
        repo = self._repo_or_raise(repo_type, repo_id)
        with self.store.lock:
            return repo.history(repo.resolve(revision).sha)

    def _repo_or_raise(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no such repo: {repo_type}s/{repo_id}")
        return repo

    # -- dispatch ----------------------------------------------------------------------------------

    def _record(self, h: _Handler, kind, status, user, fault=None):
        split = urlsplit(h.path)
        path = h.path if (h.command == "CONNECT" or h.path.startswith(("http://", "https://"))) else split.path
        headers = {k.lower(): v for k, v in h.headers.items() if k.lower() not in ("authorization", "cookie")}
        rec = RequestRecord(h.command, path, split.query, kind, status, user, fault, headers)
        with self._log_lock:
            self.request_log.append(rec)

    def _dispatch(self, h: _Handler) -> None:
        method = h.command
        # --- proxy sink: absolute-form request or CONNECT tunnel -> never leaves the machine
        if method == "CONNECT" or h.path.startswith(("http://", "https://")):
            self._handle_proxied(h)
            return

        split = urlsplit(h.path)
        raw_path = split.path
        segments = [unquote(s) for s in raw_path.split("/")[1:]]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments = segments[:-1]
        query = parse_qs(split.query, keep_blank_values=True)
        route = self._route(method, segments)

        if route is None:
            h.read_body()
            with self._log_lock:
                self.unhandled.append((method, h.path))
            self._record(h, None, 501, None)
            h.send(_error_response(501, f"FakeHub: no route for {method} {raw_path}"), head_only=method == "HEAD")
            return
        kind, func, params = route

        # --- faults applied before the request has any effect
        fault = self.faults.take(kind, method, raw_path, "before")
        note = None
        if fault is not None and fault.mode == "delay":
            self._stopping.wait(fault.delay)
            fault, note = None, "delay"
        if fault is not None:
            if fault.mode == "drop":
                n = h.body_length()
                if n:
                    h.read_body(limit=max(1, n // 2))
                self._record(h, kind, None, None, "drop")
                h.drop()
                return
            h.read_body()
            self._record(h, kind, fault.status, None, fault.describe())
            h.send(self._fault_response(fault, kind), head_only=method == "HEAD")
            return

        body = h.read_body()
        # --- auth: an invalid token is refused everywhere (the LFS upload URL is pre-signed)
        user, token = None, None
        auth = h.headers.get("Authorization") or ""
        if auth and kind not in ("lfs_upload",):
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or token not in self.tokens:
                resp = _error_response(401, "Invalid credentials in Authorization header")
                self._record(h, kind, 401, None)
                h.send(resp, head_only=method == "HEAD")
                return
            user = self.tokens[token]

        req = Request(method, raw_path, segments, query, h.headers, body, user, token)
        try:
            resp = func(req, **params)
        except HttpError as e:
            resp = _error_response(e.status, e.message, e.code, e.headers)
        except CommitError as e:
            resp = _error_response(e.status, e.message, e.error_code)
        except Exception:  # server bug: answer 500 and keep the traceback for the test report
            tb = traceback.format_exc()
            with self._log_lock:
                self.errors.append(tb)
            resp = _error_response(500, "FakeHub internal error: " + tb.strip().splitlines()[-1])

        # --- faults applied after the request took effect ("response lost")
        fault = self.faults.take(kind, method, raw_path, "after")
        if fault is not None:
            if fault.mode == "delay":
                self._stopping.wait(fault.delay)
                note = "delay"
            elif fault.mode == "drop":
                self._record(h, kind, None, user, "drop")
                h.drop()
                return
            if fault.mode == "truncate":
                self._record(h, kind, resp.status, user, "truncate")
                h.send(resp, head_only=method == "HEAD", truncate=method != "HEAD")
                return
            if fault.mode == "status":
                self._record(h, kind, fault.status, user, fault.describe())
                h.send(self._fault_response(fault, kind), head_only=method == "HEAD")
                return
        self._record(h, kind, resp.status, user, note)
        h.send(resp, head_only=method == "HEAD")

    def _fault_response(self, fault: Fault, kind: str) -> Response:
        message = f"FakeHub injected fault on {kind}"
        if fault.body is None:
            resp = _error_response(fault.status, message, headers=fault.headers)
        elif isinstance(fault.body, (dict, list)):
            resp = Response.json(fault.body, status=fault.status, headers=fault.headers)
        else:
            data = fault.body.encode() if isinstance(fault.body, str) else bytes(fault.body)
            resp = Response(fault.status, data, {"Content-Type": "text/plain", **fault.headers})
        return resp

    def _handle_proxied(self, h: _Handler) -> None:
        if h.command == "CONNECT":
            self._record(h, "external", 502, None)
            with self._log_lock:
                self.unhandled.append((h.command, h.path))
            h.send(Response(502, b"FakeHub refuses to tunnel outside 127.0.0.1", {"Content-Type": "text/plain"}))
            h.close_connection = True
            return
        h.read_body()
        host = urlsplit(h.path).hostname or ""
        if host.startswith("datasets-server."):
            # The dataset viewer (parquet export / info) is not emulated: answer like a missing dataset.
            kind = "dataset_viewer"
            fault = self.faults.take(kind, h.command, h.path, "before")
            resp = self._fault_response(fault, kind) if fault else _error_response(404, "FakeHub: no dataset viewer")
        else:
            kind = "external"
            with self._log_lock:
                self.unhandled.append((h.command, h.path))
            resp = Response(502, b"FakeHub refuses to proxy outside 127.0.0.1", {"Content-Type": "text/plain"})
        self._record(h, kind, resp.status, None)
        h.send(resp, head_only=h.command == "HEAD")

    # -- routing -------------------------------------------------------------------------------------

    def _route(self, method: str, s: list[str]) -> Route | None:  # noqa: C901 - a flat routing table
        n = len(s)
        if n >= 2 and s[0] == "api":
            if s[1:] == ["whoami-v2"] and method == "GET":
                return "whoami", self._h_whoami, {}
            if s[1:] == ["repos", "create"] and method == "POST":
                return "create", self._h_create, {}
            if s[1:] == ["repos", "delete"] and method == "DELETE":
                return "delete_repo", self._h_delete_repo, {}
            if s[1:] == ["validate-yaml"] and method == "POST":
                return "validate_yaml", self._h_validate_yaml, {}
            if n >= 4 and s[1] in _PLURAL:
                rt, rid = _PLURAL[s[1]], f"{s[2]}/{s[3]}"
                rest = s[4:]
                p = {"repo_type": rt, "repo_id": rid}
                if not rest and method == "GET":
                    return "info", self._h_info, {**p, "revision": None}
                if len(rest) == 2 and rest[0] == "revision" and method == "GET":
                    return "info", self._h_info, {**p, "revision": rest[1]}
                if len(rest) == 2 and rest[0] == "preupload" and method == "POST":
                    return "preupload", self._h_preupload, {**p, "revision": rest[1]}
                if len(rest) == 2 and rest[0] == "commit" and method == "POST":
                    return "commit", self._h_commit, {**p, "revision": rest[1]}
                if len(rest) >= 2 and rest[0] == "tree" and method == "GET":
                    return "tree", self._h_tree, {**p, "revision": rest[1], "path": "/".join(rest[2:])}
                if len(rest) == 2 and rest[0] == "paths-info" and method == "POST":
                    return "paths_info", self._h_paths_info, {**p, "revision": rest[1]}
                if len(rest) == 2 and rest[0] == "commits" and method == "GET":
                    return "commits", self._h_commits, {**p, "revision": rest[1]}
                if rest == ["refs"] and method == "GET":
                    return "refs", self._h_refs, p
                if len(rest) == 2 and rest[0] == "branch" and method in ("POST", "DELETE"):
                    return "branch", self._h_branch, {**p, "branch": rest[1]}
                if len(rest) == 2 and rest[0] == "tag" and method in ("POST", "DELETE"):
                    return "tag", self._h_tag, {**p, "name": rest[1]}
                if rest == ["settings"] and method == "PUT":
                    return "settings", self._h_settings, p
            return None
        if n == 3 and s[0] == "_lfs" and s[1] == "upload" and method == "PUT":
            return "lfs_upload", self._h_lfs_upload, {"ticket": s[2]}
        if n == 3 and s[0] == "_lfs" and s[1] == "verify" and method == "POST":
            return "lfs_verify", self._h_lfs_verify, {"ticket": s[2]}
        # git-lfs batch: /[datasets/|spaces/]ns/name.git/info/lfs/objects/batch
        rt = "model"
        t = s
        if n >= 1 and s[0] in _PREFIX_TO_TYPE:
            rt, t = _PREFIX_TO_TYPE[s[0]], s[1:]
        if len(t) == 6 and t[1].endswith(".git") and t[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            return "lfs_batch", self._h_lfs_batch, {"repo_type": rt, "repo_id": f"{t[0]}/{t[1][:-4]}"}
        if len(t) >= 5 and t[2] == "resolve" and method in ("GET", "HEAD"):
            return "resolve", self._h_resolve, {
                "repo_type": rt, "repo_id": f"{t[0]}/{t[1]}", "revision": t[3], "path": "/".join(t[4:]),
            }
        return None

    # -- permission helpers ------------------------------------------------------------------------

    def _can_write_namespace(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self.orgs.get(namespace, ()))

    def _read_repo(self, req: Request, repo_type: str, repo_id: str) -> Repo:
        repo = self.store.get(repo_type, repo_id)
        if repo is None or (repo.private and not self._can_write_namespace(req.user, repo.owner)):
            raise HttpError(404, "Repository not found", "RepoNotFound")
        return repo

    def _write_repo(self, req: Request, repo_type: str, repo_id: str) -> Repo:
        if req.user is None:
            raise HttpError(401, "You must be authenticated to write to this repo (missing token)")
        repo = self._read_repo(req, repo_type, repo_id)
        if not self._can_write_namespace(req.user, repo.owner):
            raise HttpError(403, f"You don't have write access to {repo_type}s/{repo_id} (user {req.user})")
        return repo

    @staticmethod
    def _resolve(repo: Repo, revision: str | None) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.endpoint}/{repo.url_path}"

    # -- handlers: account / repos ------------------------------------------------------------------

    def _h_whoami(self, req: Request) -> Response:
        if req.user is None:
            raise HttpError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": o} for o, members in sorted(self.orgs.items()) if req.user in members]
        return Response.json({
            "type": "user", "id": hashlib.sha1(req.user.encode()).hexdigest()[:24], "name": req.user,
            "fullname": req.user.title(), "email": f"{req.user}@example.invalid", "emailVerified": True,
            "isPro": False, "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        })

    def _h_create(self, req: Request) -> Response:
        if req.user is None:
            raise HttpError(401, "You must be authenticated to create a repo (missing token)")
        payload = req.json()
        name = payload.get("name")
        if not name or "/" in name:
            raise HttpError(400, f"Invalid repo name: {name!r}")
        namespace = payload.get("organization") or req.user
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HttpError(400, f"Invalid repo type: {repo_type!r}")
        if not self._can_write_namespace(req.user, namespace):
            raise HttpError(403, f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"')
        visibility = payload.get("visibility")
        private = bool(payload.get("private")) if visibility is None else visibility == "private"
        repo_id = f"{namespace}/{name}"
        with self.store.lock:
            existing = self.store.get(repo_type, repo_id)
            if existing is not None:
                message = f"You already created this {repo_type} repo"
                return Response.json({"error": message, "url": self._repo_url(existing)}, status=409,
                                     headers={"X-Error-Message": message})
            repo = self.store.create_repo(repo_type, repo_id, namespace, private)
        return Response.json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _h_delete_repo(self, req: Request) -> Response:
        payload = req.json()
        namespace = payload.get("organization") or req.user
        repo_id = f"{namespace}/{payload.get('name')}"
        self._write_repo(req, payload.get("type") or "model", repo_id)
        self.store.delete_repo(payload.get("type") or "model", repo_id)
        return Response.json({})

    def _h_settings(self, req: Request, repo_type: str, repo_id: str) -> Response:
        repo = self._write_repo(req, repo_type, repo_id)
        payload = req.json()
        with self.store.lock:
            if "visibility" in payload:
                repo.private = payload["visibility"] == "private"
            elif "private" in payload:
                repo.private = bool(payload["private"])
        return Response.json({})

    def _h_validate_yaml(self, req: Request) -> Response:
        payload = req.json()
        content = payload.get("content") or ""
        try:
            _front_matter(content, strict=True)
        except ValueError as e:
            return Response.json({"errors": [{"message": str(e)}], "warnings": []}, status=400)
        return Response.json({"errors": [], "warnings": []})

    def _h_info(self, req: Request, repo_type: str, repo_id: str, revision: str | None) -> Response:
        repo = self._read_repo(req, repo_type, repo_id)
        with self.store.lock:
            commit = self._resolve(repo, revision)
            files = commit.files
            blobs = req.qbool("blobs")
            siblings = []
            for path in sorted(files):
                entry = files[path]
                sib: dict = {"rfilename": path}
                if blobs:
                    sib.update({"size": entry.size, "blobId": entry.git_oid})
                    if entry.lfs:
                        sib["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
                siblings.append(sib)
            card = _front_matter(files["README.md"].data.decode("utf-8", "replace")) if "README.md" in files else None
            info: dict = {
                "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo.owner,
                "sha": commit.sha,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(e.size for e in files.values()),
            }
            if card is not None:
                info["cardData"] = card
            if repo_type == "model":
                info["modelId"] = repo_id
            elif repo_type == "space":
                info["sdk"] = "static"
        expand = req.query.get("expand") or req.query.get("expand[]")
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
        return Response.json(info)

    # -- handlers: upload --------------------------------------------------------------------------

    def _h_preupload(self, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
        repo = self._write_repo(req, repo_type, repo_id)
        payload = req.json()
        with self.store.lock:
            commit = self._resolve(repo, revision)
            files = commit.files
        gitattributes = files[".gitattributes"].data.decode("utf-8", "replace") if ".gitattributes" in files else ""
        patterns = lfs_patterns(gitattributes)
        out = []
        for f in payload.get("files") or []:
            path = f.get("path")
            size = int(f.get("size") or 0)
            try:
                sample = base64.b64decode(f.get("sample") or "")
            except (binascii.Error, ValueError):
                raise HttpError(400, f"Invalid base64 sample for {path}") from None
            is_lfs = matches_lfs_patterns(path, patterns) or size >= LFS_SIZE_THRESHOLD or b"\x00" in sample
            existing = files.get(path)
            out.append({
                "path": path,
                "uploadMode": "lfs" if is_lfs else "regular",
                "shouldIgnore": False,
                "oid": existing.remote_oid if existing is not None else None,
            })
        return Response.json({"files": out, "commitOid": commit.sha})

    def _h_lfs_batch(self, req: Request, repo_type: str, repo_id: str) -> Response:
        repo = self._write_repo(req, repo_type, repo_id)
        payload = req.json()
        if payload.get("operation") != "upload":
            raise HttpError(400, "FakeHub only supports the LFS 'upload' operation")
        objects = []
        for obj in payload.get("objects") or []:
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": oid, "size": size if isinstance(size, int) else 0,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            with self.store.lock:
                present = oid in repo.lfs_objects
                if not present:
                    ticket = secrets.token_urlsafe(16)
                    self._lfs_tickets[ticket] = (repo_type, repo_id, oid, size)
            entry: dict = {"oid": oid, "size": size, "authenticated": True}
            if not present:
                entry["actions"] = {
                    "upload": {"href": f"{self.endpoint}/_lfs/upload/{ticket}", "header": {}, "expires_in": 3600},
                    "verify": {"href": f"{self.endpoint}/_lfs/verify/{ticket}", "header": {}},
                }
            objects.append(entry)
        return Response.json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                             content_type="application/vnd.git-lfs+json")

    def _h_lfs_upload(self, req: Request, ticket: str) -> Response:
        with self.store.lock:
            t = self._lfs_tickets.get(ticket)
        if t is None:
            raise HttpError(403, "Invalid or expired upload URL")
        repo_type, repo_id, oid, size = t
        data = req.body
        if len(data) != size:
            raise HttpError(400, f"Size mismatch: expected {size}, got {len(data)}")
        if hashlib.sha256(data).hexdigest() != oid:
            raise HttpError(400, "sha256 mismatch")
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise HttpError(404, "Repository not found", "RepoNotFound")
        with self.store.lock:
            repo.lfs_objects[oid] = data
        return Response(200, b"", {"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def _h_lfs_verify(self, req: Request, ticket: str) -> Response:
        with self.store.lock:
            t = self._lfs_tickets.get(ticket)
        if t is None:
            raise HttpError(403, "Invalid or expired verify URL")
        repo = self._write_repo(req, t[0], t[1])
        payload = req.json()
        with self.store.lock:
            data = repo.lfs_objects.get(payload.get("oid"))
        if data is None or len(data) != payload.get("size"):
            raise HttpError(404, "LFS object not found")
        return Response.json({"success": True})

    def _h_commit(self, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
        repo = self._write_repo(req, repo_type, repo_id)
        header: dict = {}
        ops: list[tuple[str, dict]] = []
        # 1. parse + decode everything before touching the repo
        for lineno, line in enumerate(req.body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise HttpError(400, f"Invalid ndjson line {lineno}") from None
            if key == "header":
                header = value
                continue
            path = value.get("path") if isinstance(value, dict) else None
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
                raise HttpError(400, f"Invalid path in commit operation: {path!r}")
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HttpError(400, f"Unsupported encoding {value.get('encoding')!r}")
                try:
                    value = {**value, "data": base64.b64decode(value.get("content") or "", validate=True)}
                except (binascii.Error, ValueError):
                    raise HttpError(400, f"Invalid base64 content for {path}") from None
            elif key not in ("lfsFile", "deletedFile", "deletedFolder"):
                raise HttpError(400, f"Unknown commit operation key {key!r}")
            ops.append((key, value))
        summary = (header.get("summary") or "").strip()
        if not summary:
            raise HttpError(400, "Commit summary (header.summary) is required")
        # 2. target branch (or a new PR ref)
        pr_url = None
        with self.store.lock:
            branch = revision[len("refs/heads/"):] if revision.startswith("refs/heads/") else revision
            if req.qbool("create_pr"):
                base = self._resolve(repo, revision)
                repo.pr_count += 1
                branch = f"refs/pr/{repo.pr_count}"
                repo.branches[branch] = base.sha
                pr_url = f"{self._repo_url(repo)}/discussions/{repo.pr_count}"
            elif branch not in repo.branches:
                if repo.resolve(revision) is not None:
                    raise HttpError(400, f"Cannot commit to {revision}: not a branch")
                raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            # 3. atomic apply: new snapshot fully built, then the branch pointer moves
            try:
                commit = self.store.commit(
                    repo, branch, ops, summary, header.get("description") or "", req.user or "",
                    parent_commit=None if pr_url else header.get("parentCommit"),
                )
            except CommitError:
                if pr_url:  # no half-created pull request
                    repo.branches.pop(branch, None)
                    repo.pr_count -= 1
                raise
        return Response.json({
            "success": True,
            "commitOid": commit.sha,
            "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}",
            "commitMessage": summary,
            "hookOutput": "",
            "pullRequestUrl": pr_url,
        })

    # -- handlers: listing -------------------------------------------------------------------------

    def _entry_json(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        files = commit.files
        if path in files:
            e = files[path]
            out: dict = {"type": "file", "oid": e.git_oid, "size": e.size, "path": path}
            if e.lfs:
                out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
        else:
            out = {"type": "directory", "oid": folder_oid(files, path), "size": 0, "path": path}
        if expand:
            last = repo.last_commit_touching(commit.sha, path)
            if last is not None:
                out["lastCommit"] = {"id": last.sha, "title": last.title, "date": last.date}
            if out["type"] == "file":
                out["securityFileStatus"] = {
                    "status": "safe", "avScan": {"virusFound": False, "virusNames": None}, "pickleImportScan": None,
                }
        return out

    @staticmethod
    def _children(files: dict, folder: str, recursive: bool) -> list[str]:
        prefix = folder.rstrip("/") + "/" if folder else ""
        dirs, leafs = set(), set()
        for p in files:
            if not p.startswith(prefix):
                continue
            rel = p[len(prefix):]
            parts = rel.split("/")
            if recursive:
                leafs.add(p)
                for i in range(1, len(parts)):
                    dirs.add(prefix + "/".join(parts[:i]))
            elif len(parts) == 1:
                leafs.add(p)
            else:
                dirs.add(prefix + parts[0])
        return sorted(dirs) + sorted(leafs)

    def _h_tree(self, req: Request, repo_type: str, repo_id: str, revision: str, path: str) -> Response:
        repo = self._read_repo(req, repo_type, repo_id)
        recursive, expand = req.qbool("recursive"), req.qbool("expand")
        with self.store.lock:
            commit = self._resolve(repo, revision)
            path = path.strip("/")
            if path:
                if path in commit.files:
                    raise HttpError(404, f"{path} is a file, not a directory", "EntryNotFound")
                if not any(p.startswith(path + "/") for p in commit.files):
                    raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
            paths = self._children(commit.files, path, recursive)
            page_size = self.tree_page_size_expand if expand else self.tree_page_size
            try:
                start = int(req.q("cursor") or 0)
            except ValueError:
                raise HttpError(400, "Invalid cursor") from None
            page = paths[start:start + page_size]
            entries = [self._entry_json(repo, commit, p, expand) for p in page]
        headers = {}
        if start + page_size < len(paths):
            params = {"recursive": str(recursive).lower(), "expand": str(expand).lower(), "cursor": start + page_size}
            headers["Link"] = f'<{self.endpoint}{req.raw_path}?{urlencode(params)}>; rel="next"'
        return Response.json(entries, headers=headers)

    def _h_paths_info(self, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
        repo = self._read_repo(req, repo_type, repo_id)
        ctype = (req.headers.get("Content-Type") or "").lower()
        if "json" in ctype:
            payload = req.json()
            paths, expand = payload.get("paths") or [], bool(payload.get("expand"))
        else:
            form = parse_qs(req.body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand", ["false"])[0]).lower() in ("1", "true")
        if isinstance(paths, str):
            paths = [paths]
        with self.store.lock:
            commit = self._resolve(repo, revision)
            out = []
            for p in paths:
                p = p.strip("/")
                if p in commit.files or (p and any(f.startswith(p + "/") for f in commit.files)):
                    out.append(self._entry_json(repo, commit, p, expand))
        return Response.json(out)

    def _h_commits(self, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
        repo = self._read_repo(req, repo_type, repo_id)
        with self.store.lock:
            commit = self._resolve(repo, revision)
            out = [
                {"id": c.sha, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date}
                for c in repo.history(commit.sha)
            ]
        return Response.json(out)

    def _h_refs(self, req: Request, repo_type: str, repo_id: str) -> Response:
        repo = self._read_repo(req, repo_type, repo_id)
        with self.store.lock:
            branches = [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha}
                for b, sha in sorted(repo.branches.items()) if not b.startswith("refs/pr/")
            ]
            tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": sha} for t, sha in sorted(repo.tags.items())]
            out: dict = {"branches": branches, "tags": tags, "converts": []}
            if req.qbool("include_prs"):
                out["pullRequests"] = [
                    {"name": b, "ref": b, "targetCommit": sha}
                    for b, sha in sorted(repo.branches.items()) if b.startswith("refs/pr/")
                ]
        return Response.json(out)

    def _h_branch(self, req: Request, repo_type: str, repo_id: str, branch: str) -> Response:
        repo = self._write_repo(req, repo_type, repo_id)
        with self.store.lock:
            if req.method == "DELETE":
                if branch == "main":
                    raise HttpError(403, "Cannot delete the default branch")
                if repo.branches.pop(branch, None) is None:
                    raise HttpError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                return Response.json({})
            if branch in repo.branches:
                raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
            start = (req.json() or {}).get("startingPoint")
            repo.branches[branch] = self._resolve(repo, start).sha
        return Response.json({})

    def _h_tag(self, req: Request, repo_type: str, repo_id: str, name: str) -> Response:
        repo = self._write_repo(req, repo_type, repo_id)
        with self.store.lock:
            if req.method == "DELETE":
                if repo.tags.pop(name, None) is None:
                    raise HttpError(404, f"Invalid rev id: {name}", "RevisionNotFound")
                return Response.json({})
            tag = (req.json() or {}).get("tag")
            if not tag:
                raise HttpError(400, "Missing 'tag'")
            if tag in repo.tags:
                raise HttpError(409, f"Reference already exists: refs/tags/{tag}")
            repo.tags[tag] = self._resolve(repo, name).sha  # `name` is the revision to tag here
        return Response.json({})

    # -- handlers: download -------------------------------------------------------------------------

    def _h_resolve(self, req: Request, repo_type: str, repo_id: str, revision: str, path: str) -> Response:
        repo = self._read_repo(req, repo_type, repo_id)
        with self.store.lock:
            commit = self._resolve(repo, revision)
            entry = commit.files.get(path)
        if entry is None:
            raise HttpError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.sha})
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        }
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        data = entry.data
        rng = req.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if not m or (m.group(1) == "" and m.group(2) == ""):
                raise HttpError(416, f"Invalid range {rng!r}", headers={"Content-Range": f"bytes */{len(data)}"})
            if m.group(1) == "":  # suffix range
                start, end = max(0, len(data) - int(m.group(2))), len(data) - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
            if start >= len(data) or start > end:
                raise HttpError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return Response(206, data[start:end + 1], headers)
        return Response(200, data, headers)


def _front_matter(content: str, strict: bool = False) -> dict | None:
    """YAML metadata block of a README (uses PyYAML when importable; None when absent)."""
    if not content.startswith("---"):
        return None
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.S)
    if m is None:
        if strict:
            raise ValueError("Unterminated YAML metadata block")
        return None
    try:
        import yaml  # PyYAML: a dependency of datasets/huggingface_hub; optional here
    except ImportError:  # pragma: no cover
        return None
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        if strict:
            raise ValueError(f"Invalid YAML in README.md metadata: {e}") from None
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        if strict:
            raise ValueError("README.md metadata must be a YAML mapping")
        return None
    return data
