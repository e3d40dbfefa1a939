"""Talking to the Hub over HTTP: what a failure means, retrying the transient ones, reading one file.

A client exception is classified into one of ``auth`` (401), ``forbidden`` (403), ``notfound`` (404),
``retry`` (408/409/412/429, 5xx, dropped connections) or ``fatal`` (any other status, a card the
validator rejects); anything else is no Hub error (a bug) and propagates unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import HubAuthError

__all__ = ["Failure", "GaveUp", "classify", "with_retries", "resolve_token", "read_remote", "whoami", "refusal"]

T = TypeVar("T")


@dataclass
class Failure:
    kind: str  # "auth" | "forbidden" | "notfound" | "retry" | "fatal"
    status: int | None
    wait: float | None  # the server's Retry-After, seconds
    message: str


class GaveUp(Exception):
    """A Hub call that failed for good: not retryable, or out of attempts."""

    def __init__(self, failure: Failure, attempts: int):
        super().__init__(failure.message)
        self.failure, self.attempts = failure, attempts


def _transport_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for mod in ("httpx2", "httpx"):
        with contextlib.suppress(Exception):
            errs.append(importlib.import_module(mod).TransportError)
    return tuple(errs)


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def classify(exc: BaseException) -> Failure | None:
    """Map a client exception to what to do; None when it is no Hub/network error (a bug: re-raise)."""
    from huggingface_hub.errors import HfHubHTTPError

    transport = _transport_errors()
    for e in _chain(exc):
        if isinstance(e, HfHubHTTPError) and getattr(e, "response", None) is not None:
            r = e.response
            status = r.status_code
            server_msg = " ".join((r.headers.get("X-Error-Message") or str(e)).split())[:400]
            wait = None
            with contextlib.suppress(TypeError, ValueError):
                wait = float(r.headers.get("Retry-After"))
            if status == 401:
                return Failure("auth", status, None, server_msg)
            if status == 403:
                return Failure("forbidden", status, None, server_msg)
            if status in (408, 409, 412, 429) or status >= 500:
                return Failure("retry", status, wait, f"{status}: {server_msg}")
            if status == 404:
                return Failure("notfound", status, None, server_msg)
            return Failure("fatal", status, None, f"{status}: {server_msg}")
        if isinstance(e, transport):
            return Failure("retry", None, None, f"connection failed ({type(e).__name__}: {e})")
    if isinstance(exc, ValueError) and "yaml" in str(exc).lower():  # card rejected by the validator
        return Failure("fatal", 400, None, str(exc))
    return None


def with_retries(attempt_fn: Callable[[int], T], *, max_retries: int, retry_wait: float,
                 say: Callable[[str], None]) -> T:
    """``attempt_fn(attempt)`` until it returns; transient failures are retried with exponential backoff
    (or the server's Retry-After). Raises :class:`GaveUp` for a failure that is not retried (auth,
    forbidden, fatal) or once ``max_retries`` retries failed; other exceptions propagate."""
    for attempt in range(1, max_retries + 2):
        try:
            return attempt_fn(attempt)
        except Exception as e:  # noqa: BLE001 - classified below, unknown errors re-raised
            failure = classify(e)
            if failure is None:
                raise
            if failure.kind != "retry" or attempt > max_retries:
                raise GaveUp(failure, attempt) from None
            wait = failure.wait if failure.wait is not None else min(retry_wait * 2 ** (attempt - 1), 60.0)
            say(f"[hf_lodc] push attempt {attempt} failed ({failure.message}); retrying in {wait:.1f} s")
            time.sleep(wait)
    raise AssertionError("unreachable")  # the last attempt returns or raises


def resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubAuthError(
            "no Hugging Face token found: set HF_TOKEN, run `hf auth login`, or pass token=...; "
            "nothing was pushed and the local artefact is untouched"
        )
    return token


def read_remote(api, repo_id: str, sha: str, path: str) -> bytes | None:
    """The bytes of ``path`` in dataset repo ``repo_id`` at commit ``sha``; None if it has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        p = hf_hub_download(repo_id, path, repo_type="dataset", revision=sha, token=api.token, endpoint=api.endpoint)
    except EntryNotFoundError:
        return None
    return Path(p).read_bytes()


def whoami(api) -> str:
    try:
        return api.whoami()["name"]
    except Exception:  # noqa: BLE001 - only used to word a message
        return "(unknown user)"


def refusal(failure: Failure, api, repo_id: str, repo_type: str, consequence: str) -> HubAuthError | None:
    """The error for a write the Hub refused (401: the token, 403: the namespace), ending with
    ``consequence`` (what was left undone); None for any other failure."""
    if failure.kind == "auth":
        return HubAuthError(
            f"the Hub at {api.endpoint} rejected the token (401: {failure.message}): it is invalid or expired. "
            f"Create a write token (Settings > Access Tokens), set HF_TOKEN or run `hf auth login`; {consequence}")
    if failure.kind == "forbidden":
        return HubAuthError(
            f"user {whoami(api)!r} may not write to {repo_type} repo {repo_id!r} (403: {failure.message}). "
            f"Push to a repo in your own namespace or ask its owner for write access; {consequence}")
    return None
