"""One bounded HTTP attempt that returns an outcome value and never raises."""

from __future__ import annotations

import inspect
import math
import queue
from collections.abc import Mapping
from typing import Any, Protocol

import urllib3

from actors._export.backoff import parse_retry_after
from actors._export.reply_body import read_capped
from messages.transport import HttpOutcome, Transport

__all__ = [
    "HttpOutcome",
    "SessionLike",
    "SessionTransport",
    "Transport",
    "Urllib3Transport",
    "new_pool_manager",
]

_MIN_TIMEOUT_S = 0.05


class ResponseLike(Protocol):
    """The parts of a ``requests.Response`` that ``SessionTransport`` reads."""

    @property
    def status_code(self) -> int:
        """HTTP status of the answer."""
        ...

    @property
    def content(self) -> bytes:
        """The whole response body."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers (case-insensitive in requests)."""
        ...


class SessionLike(Protocol):
    """The part of a ``requests.Session`` that ``SessionTransport`` calls."""

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        allow_redirects: bool,
    ) -> ResponseLike:
        """Send one request."""
        ...


def _validate_timeouts(connect_timeout_s: float, read_timeout_s: float, max_body: int) -> None:
    if not connect_timeout_s > 0:
        raise ValueError(f"connect_timeout_s must be > 0, got {connect_timeout_s!r}")
    if not read_timeout_s > 0:
        raise ValueError(f"read_timeout_s must be > 0, got {read_timeout_s!r}")
    if max_body < 0:
        raise ValueError(f"max_body_bytes must be >= 0, got {max_body!r}")


def _effective(configured_s: float, timeout_s: float | None) -> float:
    if timeout_s is None or math.isnan(timeout_s):
        return configured_s
    return max(_MIN_TIMEOUT_S, min(configured_s, timeout_s))


class _QuietPool(urllib3.HTTPConnectionPool):
    """urllib3's pool, but a socket returned to a full pool is closed without a WARNING."""

    def _put_conn(self, conn: Any) -> None:
        try:
            self.pool.put(conn, block=False)  # type: ignore[union-attr]
            return
        except (AttributeError, queue.Full):  # closed, or full: more trees than sockets kept
            pass
        if conn:
            conn.close()


class _QuietHTTPSPool(_QuietPool, urllib3.HTTPSConnectionPool):
    """The same for https."""


def new_pool_manager(num_pools: int = 32, maxsize: int = 32) -> urllib3.PoolManager:
    """Create a pool manager of our own, verifying TLS against the default CA store.

    `maxsize` bounds the idle sockets kept per host. Each of a host's trees (a draining one and
    its successors can overlap) holds one socket at a time; when more trees than that return
    theirs at once, the extra sockets are closed. urllib3 would log a WARNING ("Connection pool
    is full") into the application's logs for each; our pools close them quietly. (A blocking
    pool would not do: at exit, urllib3's own finalizer may empty it before our drain.)
    """
    manager = urllib3.PoolManager(num_pools=num_pools, maxsize=maxsize, cert_reqs="CERT_REQUIRED")
    manager.pool_classes_by_scheme = {"http": _QuietPool, "https": _QuietHTTPSPool}
    return manager


class Urllib3Transport:
    """``Transport`` over a urllib3 pool: no retries, no redirects, explicit timeouts."""

    def __init__(
        self,
        pool: urllib3.PoolManager,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_body_bytes: int = 1_048_576,
    ) -> None:
        """Reject explicitly invalid settings at once, before any request."""
        _validate_timeouts(connect_timeout_s, read_timeout_s, max_body_bytes)
        self._pool = pool
        self._connect_timeout_s = float(connect_timeout_s)
        self._read_timeout_s = float(read_timeout_s)
        self._max_body_bytes = max_body_bytes

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        """Send one request, reading at most ``max_body_bytes`` of the answer; never raises."""
        try:
            timeout = urllib3.Timeout(
                connect=_effective(self._connect_timeout_s, timeout_s),
                read=_effective(self._read_timeout_s, timeout_s),
            )
            response = self._pool.request(
                method,
                url,
                body=body,
                headers=dict(headers),
                retries=False,
                redirect=False,
                timeout=timeout,
                preload_content=False,
            )
            drained = False
            try:
                data, drained = read_capped(
                    lambda n: response.read1(n, decode_content=False),
                    self._max_body_bytes,
                    response.headers.get("Content-Encoding"),
                    budget_s=timeout.read_timeout,
                )
                return HttpOutcome(
                    status=response.status,
                    body=data,
                    retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
                )
            finally:
                if not drained:
                    # Unread or half-read body: close so the pool never reuses the socket.
                    response.close()
                response.release_conn()
        except BaseException as exc:  # urllib3 logs through the application's handlers, which
            # may raise anything on our thread; pykka would stop every actor for a BaseException
            return HttpOutcome(status=None, error=type(exc).__name__)


def _accepts(function: object, name: str) -> bool:
    """Whether `function` takes a keyword argument `name` (or any keyword)."""
    try:
        parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class SessionTransport:
    """``Transport`` over a ``requests.Session``-like object, reusing its auth, proxies, TLS."""

    def __init__(
        self,
        session: SessionLike,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_body_bytes: int = 1_048_576,
    ) -> None:
        """Reject explicitly invalid settings at once, before any request."""
        _validate_timeouts(connect_timeout_s, read_timeout_s, max_body_bytes)
        self._session = session
        # A requests.Session streams when asked, so its body is read with the cap below; a
        # session-like object whose request() takes no `stream` is called as before.
        self._stream = _accepts(session.request, "stream")
        self._connect_timeout_s = float(connect_timeout_s)
        self._read_timeout_s = float(read_timeout_s)
        self._max_body_bytes = max_body_bytes

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        """Send one request through the session without following redirects; never raises.

        The session is user code: whatever it raises, `BaseException` included, is an outcome.
        """
        try:
            read_s = _effective(self._read_timeout_s, timeout_s)
            response = self._session.request(
                method,
                url,
                data=body,
                headers=dict(headers),
                timeout=(_effective(self._connect_timeout_s, timeout_s), read_s),
                allow_redirects=False,
                **({"stream": True} if self._stream else {}),
            )
            try:
                return HttpOutcome(
                    status=int(response.status_code),
                    body=self._body(response, read_s),
                    retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
                )
            finally:
                close = getattr(response, "close", None)
                if callable(close):
                    close()
        except BaseException as exc:  # user code on our thread: contained (see _runtime.contain)
            return HttpOutcome(status=None, error=type(exc).__name__)

    def _body(self, response: ResponseLike, budget_s: float) -> bytes:
        raw: Any = getattr(response, "raw", None)
        read = getattr(raw, "read1", None) or getattr(raw, "read", None)
        if callable(read):  # a requests.Response: its urllib3 response
            data, _ = read_capped(
                lambda n: bytes(read(n, decode_content=False)),
                self._max_body_bytes,
                response.headers.get("Content-Encoding"),
                budget_s=budget_s,
            )
            return data
        return bytes(response.content or b"")[: self._max_body_bytes]
