"""HTTP transports: one bounded attempt that always comes back as an HttpOutcome."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import responses
import urllib3

from actors._export.classify import ErrorKind
from actors._export.http import (
    HttpOutcome,
    SessionTransport,
    Transport,
    Urllib3Transport,
    new_pool_manager,
)
from actors._export.retry import error_kind

BIG_BODY = b"x" * 50_000


class LoopbackServer(ThreadingHTTPServer):
    """Test server on 127.0.0.1:0 that records hits and can be told to stall."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: list[str] = []
        self.client_ports: list[int] = []
        self.last_headers: dict[str, str] = {}
        self.last_body = b""
        self.release_slow = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that gave up (timeouts, capped reads) are expected here: stay quiet."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a dirty pooled connection would show
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def _reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.last_body = self.rfile.read(length)
        self._route()

    def _route(self) -> None:
        self.server.hits.append(self.path)
        self.server.client_ports.append(self.client_address[1])
        self.server.last_headers = dict(self.headers.items())
        if self.path == "/ok":
            body = json.dumps({"numProtoSuccess": 2, "errors": []}).encode()
            self._reply(200, body, {"Content-Type": "application/json"})
        elif self.path == "/throttle":
            self._reply(429, b"slow down", {"Retry-After": "3"})
        elif self.path == "/unavailable":
            self._reply(503, b"")
        elif self.path == "/redirect":
            self._reply(302, b"", {"Location": "/target"})
        elif self.path == "/slow":
            self.server.release_slow.wait(timeout=10)
            self._reply(200, b"late")
        elif self.path == "/big":
            self._reply(200, BIG_BODY)
        else:
            self._reply(404, b"")


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    thread = threading.Thread(
        target=srv.serve_forever, args=(0.05,), name="loopback-http", daemon=True
    )
    thread.start()
    try:
        yield srv
    finally:
        srv.release_slow.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    manager = new_pool_manager()
    try:
        yield manager
    finally:
        manager.clear()


@pytest.fixture
def transport(pool: urllib3.PoolManager) -> Urllib3Transport:
    return Urllib3Transport(pool, connect_timeout_s=2.0, read_timeout_s=2.0)


def get(transport: Transport, url: str, **kwargs: Any) -> HttpOutcome:
    return transport.request("GET", url, body=None, headers={}, **kwargs)


def test_outcome_ok_and_kind_follow_the_status() -> None:
    assert HttpOutcome(status=204).ok and error_kind(HttpOutcome(status=204)) is None
    assert error_kind(HttpOutcome(status=401)) is ErrorKind.TERMINAL
    assert error_kind(HttpOutcome(status=503)) is ErrorKind.RETRYABLE
    assert error_kind(HttpOutcome(status=302)) is ErrorKind.TERMINAL
    failed = HttpOutcome(status=None, error="ReadTimeoutError")
    assert not failed.ok and error_kind(failed) is ErrorKind.RETRYABLE


def test_new_pool_manager_verifies_tls() -> None:
    manager = new_pool_manager(num_pools=3, maxsize=2)
    assert manager.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"
    assert manager.connection_pool_kw["maxsize"] == 2


def test_urllib3_transport_returns_status_and_json_body(
    server: LoopbackServer, transport: Urllib3Transport
) -> None:
    outcome = transport.request(
        "POST",
        f"{server.base_url}/ok",
        body=b'{"items": []}',
        headers={"Content-Type": "application/json", "X-Test": "yes"},
    )
    assert outcome.ok and error_kind(outcome) is None and outcome.error is None
    assert json.loads(outcome.body) == {"numProtoSuccess": 2, "errors": []}
    assert server.last_body == b'{"items": []}'
    assert server.last_headers["X-Test"] == "yes"


def test_urllib3_transport_reports_429_with_retry_after(
    server: LoopbackServer, transport: Urllib3Transport
) -> None:
    outcome = get(transport, f"{server.base_url}/throttle")
    assert outcome.status == 429
    assert outcome.retry_after_s == 3.0
    assert error_kind(outcome) is ErrorKind.RETRYABLE


def test_urllib3_transport_reports_503_as_retryable(
    server: LoopbackServer, transport: Urllib3Transport
) -> None:
    outcome = get(transport, f"{server.base_url}/unavailable")
    assert outcome.status == 503 and outcome.retry_after_s is None
    assert error_kind(outcome) is ErrorKind.RETRYABLE


def test_urllib3_transport_does_not_follow_redirects(
    server: LoopbackServer, transport: Urllib3Transport
) -> None:
    outcome = get(transport, f"{server.base_url}/redirect")
    assert outcome.status == 302
    assert server.hits == ["/redirect"]


def test_urllib3_transport_read_timeout_is_a_retryable_outcome(
    server: LoopbackServer, pool: urllib3.PoolManager
) -> None:
    transport = Urllib3Transport(pool, connect_timeout_s=2.0, read_timeout_s=0.2)
    started = time.monotonic()
    outcome = get(transport, f"{server.base_url}/slow")
    assert time.monotonic() - started < 5.0
    assert outcome.status is None
    assert outcome.error == "ReadTimeoutError"
    assert error_kind(outcome) is ErrorKind.RETRYABLE


def test_urllib3_transport_per_call_timeout_shortens_the_configured_one(
    server: LoopbackServer, pool: urllib3.PoolManager
) -> None:
    transport = Urllib3Transport(pool, connect_timeout_s=30.0, read_timeout_s=30.0)
    started = time.monotonic()
    outcome = get(transport, f"{server.base_url}/slow", timeout_s=0.2)
    assert time.monotonic() - started < 5.0
    assert outcome.error == "ReadTimeoutError"


def test_urllib3_transport_connection_refused_is_a_retryable_outcome(
    transport: Urllib3Transport,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = get(transport, f"http://127.0.0.1:{port}/ok")
    assert outcome.status is None
    assert outcome.error == "NewConnectionError"
    assert error_kind(outcome) is ErrorKind.RETRYABLE


def test_urllib3_transport_caps_an_oversize_body_and_keeps_the_pool_clean(
    server: LoopbackServer, pool: urllib3.PoolManager
) -> None:
    transport = Urllib3Transport(
        pool, connect_timeout_s=2.0, read_timeout_s=2.0, max_body_bytes=1000
    )
    outcome = get(transport, f"{server.base_url}/big")
    assert outcome.ok and outcome.body == BIG_BODY[:1000]
    follow_up = get(transport, f"{server.base_url}/ok")
    assert follow_up.ok and json.loads(follow_up.body)["numProtoSuccess"] == 2
    # The half-read connection was closed, not reused.
    assert len(set(server.client_ports)) == 2


def test_urllib3_transport_reuses_a_fully_read_connection(
    server: LoopbackServer, transport: Urllib3Transport
) -> None:
    for _ in range(3):
        assert get(transport, f"{server.base_url}/ok").ok
    assert server.hits == ["/ok"] * 3
    assert len(set(server.client_ports)) == 1


def test_urllib3_transport_turns_a_bad_url_into_an_outcome(transport: Urllib3Transport) -> None:
    outcome = get(transport, "http://[::1/broken")
    assert outcome.status is None and outcome.error is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect_timeout_s": 0.0, "read_timeout_s": 1.0},
        {"connect_timeout_s": 1.0, "read_timeout_s": -1.0},
        {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "max_body_bytes": -1},
    ],
)
def test_transports_reject_invalid_settings(
    pool: urllib3.PoolManager, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        Urllib3Transport(pool, **kwargs)
    with pytest.raises(ValueError):
        SessionTransport(requests.Session(), **kwargs)


URL = "https://example.invalid/telemetry-ext"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as sess:
        yield sess


@pytest.fixture
def session_transport(session: requests.Session) -> SessionTransport:
    return SessionTransport(session, connect_timeout_s=2.0, read_timeout_s=3.0)


@responses.activate
def test_session_transport_returns_status_and_body(
    session_transport: SessionTransport,
) -> None:
    responses.post(URL, json={"numProtoSuccess": 1}, status=200)
    outcome = session_transport.request("POST", URL, body=b"{}", headers={})
    assert outcome.ok and json.loads(outcome.body) == {"numProtoSuccess": 1}


@responses.activate
def test_session_transport_reports_503_with_retry_after(
    session_transport: SessionTransport,
) -> None:
    responses.post(URL, status=503, headers={"Retry-After": "7"})
    outcome = session_transport.request("POST", URL, body=b"{}", headers={})
    assert outcome.status == 503 and outcome.retry_after_s == 7.0
    assert error_kind(outcome) is ErrorKind.RETRYABLE


@responses.activate
def test_session_transport_turns_connection_error_into_an_outcome(
    session_transport: SessionTransport,
) -> None:
    responses.post(URL, body=requests.ConnectionError("refused"))
    outcome = session_transport.request("POST", URL, body=b"{}", headers={})
    assert outcome.status is None and outcome.error == "ConnectionError"
    assert error_kind(outcome) is ErrorKind.RETRYABLE


@responses.activate
def test_session_transport_passes_headers_and_body_through(
    session: requests.Session, session_transport: SessionTransport
) -> None:
    session.headers["Authorization"] = "Bearer session-owned"
    responses.post(URL, status=200)
    session_transport.request(
        "POST", URL, body=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    sent = responses.calls[0].request
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Authorization"] == "Bearer session-owned"  # the session's own auth
    assert sent.body == b'{"a": 1}'


@responses.activate
def test_session_transport_does_not_follow_redirects(
    session_transport: SessionTransport,
) -> None:
    target = responses.get("https://example.invalid/target", status=200)
    responses.get(URL, status=302, headers={"Location": "https://example.invalid/target"})
    outcome = session_transport.request("GET", URL, body=None, headers={})
    assert outcome.status == 302
    assert target.call_count == 0


class RecordingSession:
    """A session stand-in that records its call and answers with a fixed response."""

    def __init__(self, response: Any = None, raises: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.response = response
        self.raises = raises

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "url": url, **kwargs})
        if self.raises is not None:
            raise self.raises
        return self.response


class FixedResponse:
    status_code = 200
    content = b"y" * 5000
    headers: Mapping[str, str] = {}


def test_session_transport_sends_bounded_timeouts_and_no_redirects() -> None:
    fake = RecordingSession(FixedResponse())
    transport = SessionTransport(
        fake, connect_timeout_s=2.0, read_timeout_s=3.0, max_body_bytes=100
    )
    outcome = transport.request("POST", URL, body=b"b", headers={"H": "v"}, timeout_s=2.5)
    assert outcome.body == b"y" * 100
    (call,) = fake.calls
    assert call["timeout"] == (2.0, 2.5)
    assert call["allow_redirects"] is False
    assert call["data"] == b"b" and call["headers"] == {"H": "v"}
    transport.request("GET", URL, body=None, headers={}, timeout_s=0.0)
    assert fake.calls[1]["timeout"] == (0.05, 0.05)


def test_session_transport_never_raises() -> None:
    transport = SessionTransport(
        RecordingSession(raises=RuntimeError("session closed")),
        connect_timeout_s=1.0,
        read_timeout_s=1.0,
    )
    outcome = transport.request("GET", URL, body=None, headers={})
    assert outcome == HttpOutcome(status=None, error="RuntimeError")
