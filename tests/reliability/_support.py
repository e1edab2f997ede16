"""Shared helpers of the reliability tests: fast settings, a recording HTTP server, accounts.

Not a conftest: test files import it by name (`import _support`), so its helpers are explicit.
`RecordingServer` is a tiny loopback server that keeps every raw request (request line, headers,
body) and answers through a swappable `answer` function; unlike `LocalEndpoint` it lets a test
see headers and bytes exactly as they arrived and answer redirects or TLS.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from waiting import poll_until

import actors
from actors.tools.local_endpoint import FLAG_NAME, derive_kind
from messages.records import ExportResponse, FeatureFlag, FeatureFlagResponse
from messages.wire import encode_export_response, encode_feature_flags

DRIVER = actors.DriverInfo(name="ReliabilityDriver", version="6.0.0")
TOKEN = "reliability-token"
WAIT_S = 5.0

Identity = tuple[str, str | None, str | None]


def fast_settings(**overrides: Any) -> actors.TelemetrySettings:
    """Settings small enough that flushes, retries, breaker periods and drains fit a short test."""
    values: dict[str, Any] = {
        "flush_interval_ms": 50,
        "retry_delay_ms": 5,
        "retry_max_delay_ms": 20,
        "connect_timeout_ms": 200,
        "read_timeout_ms": 200,
        "breaker_open_s": 1,
        "shutdown_timeout_ms": 1000,
    }
    values.update(overrides)
    return actors.TelemetrySettings(**values)


def bearer(token: str) -> Callable[[], dict[str, str]]:
    """An auth provider answering `Authorization: Bearer <token>`."""
    return lambda: {"Authorization": f"Bearer {token}"}


def wait_until(
    condition: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition"
) -> Any:
    """Poll `condition` until it returns something truthy (returned), or fail at the deadline."""
    return poll_until(condition, timeout_s, what)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- accounts -----------------------------------------------------------------------------------


def stored_by_session(endpoint: Any) -> dict[str | None, Counter[str]]:
    """What a `LocalEndpoint` stored, per session id: {session_id: {kind: count}}."""
    found: dict[str | None, Counter[str]] = {}
    for row in endpoint.store.rows(limit=1000):
        found.setdefault(row["session_id"], Counter())[row["kind"]] += 1
    return found


def host_report(host: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """`dump_state()` of one host: its live actors (if any), finished generations, accounting."""
    hosts: dict[str, Any] = actors.dump_state(timeout_s)["hosts"]
    assert host in hosts, f"{host} not in dump_state: {sorted(hosts)}"
    return dict(hosts[host])


def account(host: str) -> dict[str, Any] | None:
    """The host's accounting now, or None if the host is unknown."""
    entry = actors.dump_state()["hosts"].get(host)
    return None if entry is None else dict(entry["accounting"])


def wait_settled(host: str, told: int, timeout_s: float = WAIT_S) -> dict[str, Any]:
    """Wait until all `told` events of `host` are exported or dropped (nothing pending)."""

    def settled() -> dict[str, Any] | None:
        found = account(host)
        return found if found and found["told"] == told and found["pending"] == 0 else None

    found: dict[str, Any] = wait_until(settled, timeout_s, f"{told} events of {host} to settle")
    return found


def assert_balanced(accounting: dict[str, Any], told: int) -> None:
    """told == exported + dropped by reason + pending, exactly, and the report is complete."""
    assert accounting["told"] == told, accounting
    assert accounting["complete"], accounting
    dropped = sum(accounting["dropped"].values())
    assert told == accounting["exported"] + dropped + accounting["pending"], accounting
    assert accounting["balanced"], accounting


def identity(log: dict[str, Any]) -> Identity:
    """A stored log's identity, derived the way the endpoint derives its columns."""
    entry = log["entry"]["sql_driver_log"]
    return derive_kind(log), entry.get("session_id"), entry.get("sql_statement_id")


def events_of(stored: list[dict[str, Any]], expected: dict[Identity, int]) -> int:
    """How many told events the stored logs stand for; every stored log is expected, once."""
    identities = [identity(log) for log in stored]
    unexpected = [i for i in identities if i not in expected]
    assert not unexpected, f"stored logs nobody told: {unexpected[:5]}"
    duplicates = [i for i, n in Counter(identities).items() if n > 1]
    assert not duplicates, f"logs stored twice: {duplicates[:5]}"
    return sum(expected[i] for i in identities)


# --- recording server ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RawRequest:
    """One request exactly as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    head: bytes
    body: bytes

    @property
    def raw(self) -> bytes:
        """Every byte received for this request: request line, headers and body."""
        return self.head + self.body

    def proto_logs(self) -> list[dict[str, Any]]:
        """The frontend logs of an export request, decoded."""
        return [json.loads(text) for text in json.loads(self.body)["protoLogs"]]


Answer = tuple[int, dict[str, str], bytes]


def healthy_answer(request: RawRequest) -> Answer:
    """What a healthy telemetry service answers: the flag on, every export accepted."""
    if request.method == "GET":
        flag = FeatureFlag(name=FLAG_NAME, value="true")
        return 200, {}, encode_feature_flags(FeatureFlagResponse(flags=(flag,), ttl_seconds=900))
    accepted = len(json.loads(request.body)["protoLogs"])  # read by hand: an independent oracle
    return 200, {}, encode_export_response(ExportResponse(num_proto_success=accepted))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2.0  # an idle keep-alive connection does not hold a handler thread for long
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        head = (self.requestline + "\r\n" + str(self.headers)).encode("latin-1", "replace")
        request = RawRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            head=head,
            body=body,
        )
        self.server.owner.record(request)
        try:
            status, headers, payload = self.server.owner.answer(request)
        except Exception:
            status, headers, payload = 500, {}, b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: RecordingServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed TLS handshake or a client that went away: nothing to report."""


class RecordingServer:
    """A loopback HTTP(S) server recording every request; `answer` decides each reply."""

    def __init__(
        self,
        answer: Callable[[RawRequest], Answer] = healthy_answer,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer
        self._lock = threading.Lock()
        self._requests: list[RawRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="recording-server",
            daemon=True,
        )
        self._thread.start()

    @property
    def host_port(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_port}"

    def record(self, request: RawRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RawRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def posts(self) -> list[RawRequest]:
        """The export requests received so far."""
        return [r for r in self.requests if r.method == "POST"]

    def stop(self) -> None:
        """Stop serving (bounded) and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
