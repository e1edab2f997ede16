"""HTTP plumbing of the local endpoint: shared state, threading server, request handler."""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import socketserver
import struct
import threading
import time
from contextlib import suppress
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import attrs

from messages.records import ExportResponse, FeatureFlag, FeatureFlagResponse
from messages.wire import TELEMETRY_FLAG_NAME, encode_export_response, encode_feature_flags

from .faults import Fault
from .store import LogStore
from .validate import WireError, validate_request
from .web import Dashboard, PageReply, owns, write_reply

log = logging.getLogger(__name__)

FLAG_NAME = TELEMETRY_FLAG_NAME
FLAGS_ROUTE = "/api/2.0/connector-service/feature-flags"
TELEMETRY_ROUTES = ("/telemetry-ext", "/telemetry-unauth")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")
_LINGER_S = 1.0
_LINGER_BYTES = 8 << 20
_MALFORMED_BODY = b"<html><body>502 upstream hiccup: this is not JSON</body></html>"


@attrs.frozen(kw_only=True)
class EndpointConfig:
    """Settings fixed for an endpoint's lifetime."""

    store: LogStore
    token: str | None
    driver_name: str
    max_body_bytes: int
    request_timeout_s: float


class EndpointState:
    """What handler threads share; mutable fields are touched only under `lock`."""

    def __init__(
        self, config: EndpointConfig, fault: Fault | None, flag_enabled: bool, flag_ttl_s: int
    ) -> None:
        self.config = config
        self.lock = threading.Lock()
        self._all_closed = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.flag = (flag_enabled, flag_ttl_s)
        self.requests: dict[str, dict[int, int]] = {}
        self.counters = dict.fromkeys(
            (
                "flag_fetches",
                "flag_fetches_authorized",
                "bytes_received",
                "faults_injected",
                "logs_accepted",
            ),
            0,
        )
        self.connections: set[socket.socket] = set()
        self.page: Dashboard | None = None  # set once, before serving, by serve_page()
        self.set_fault(fault)

    def set_fault(self, fault: Fault | None) -> None:
        with self.lock:
            self.fault = fault
            self.fault_left = None if fault is None else fault.times
            self.fault_seen = 0

    def take_fault(self, *, for_flags: bool) -> Fault | None:
        """The fault to act out on this request, if any; consumes one of its `times`."""
        with self.lock:
            fault = self.fault
            if fault is None or fault.mode == "none" or (for_flags and not fault.applies_to_flags):
                return None
            if for_flags and fault.mode == "partial":
                return None
            if self.fault_left is not None:
                if self.fault_left <= 0:
                    return None
                self.fault_left -= 1
            seen, self.fault_seen = self.fault_seen, self.fault_seen + 1
            if fault.mode == "flap" and (seen // fault.period) % 2 == 0:
                return None  # the healthy half of the cycle comes first
            self.counters["faults_injected"] += 1
            return fault

    def count(self, name: str, amount: int = 1) -> None:
        with self.lock:
            self.counters[name] += amount

    def record(self, route: str, status: int) -> None:
        with self.lock:
            statuses = self.requests.setdefault(route, {})
            statuses[status] = statuses.get(status, 0) + 1

    def opened(self, connection: socket.socket) -> None:
        with self.lock:
            self.connections.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self.lock:
            self.connections.discard(connection)
            if not self.connections:
                self._all_closed.notify_all()

    def wait_all_closed(self, timeout_s: float) -> bool:
        """Wait until every handler has finished (and so counted its request); False on timeout."""
        with self.lock:
            return self._all_closed.wait_for(lambda: not self.connections, timeout_s)

    def disconnect_all(self) -> None:
        """Wake every handler blocked on a read (idle keep-alive, slow client) so it exits."""
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class EndpointServer(ThreadingHTTPServer):
    """Threading HTTP server whose handler threads are daemons and never print to stderr."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: EndpointState) -> None:
        self.state = state
        super().__init__(address, TelemetryHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a sandbox's DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("request from %s failed", client_address, exc_info=True)

    # A connection is counted open from its accept (on the serving thread, so none is missed once
    # `shutdown()` returns) to its close, which comes after its handler has finished.
    def process_request(self, request: Any, client_address: Any) -> None:
        self.state.opened(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.state.closed(request)
            raise

    def close_request(self, request: Any) -> None:
        try:
            super().close_request(request)
        finally:
            self.state.closed(request)


class TelemetryHandler(BaseHTTPRequestHandler):
    """One connection's requests; catches everything so the server never dies of a request."""

    protocol_version = "HTTP/1.1"
    server_version = "LocalTelemetryEndpoint/1"
    # An answer goes out as two writes (headers, body); with Nagle on, the body waits for the
    # client's delayed ACK of the headers: ~40 ms per request on a kept-alive connection.
    disable_nagle_algorithm = True
    server: EndpointServer

    def setup(self) -> None:
        super().setup()
        self.state = self.server.state
        self.config = self.state.config
        self.route, self.answered, self.body_read, self.linger = "other", False, False, False
        self.connection.settimeout(self.config.request_timeout_s)

    def finish(self) -> None:
        super().finish()
        if self.linger:
            self._discard_unread_body()

    def _discard_unread_body(self) -> None:
        """Lingering close: closing with unread input sends a reset, which can destroy the answer
        before the client reads it. Discard (never parse or store) a bounded tail instead."""
        deadline = time.monotonic() + _LINGER_S
        discarded = 0
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            while discarded < _LINGER_BYTES and time.monotonic() < deadline:
                self.connection.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                discarded += len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol errors found by http.server itself (bad request line, huge headers)."""
        self.route, self.body_read = "other", True
        self.request_version = "HTTP/1.1"  # an unparsable request would get a bare HTTP/0.9 body
        self._reply_json(code, {"error": message or HTTPStatus(code).phrase}, close=True)
        self.linger = True  # the rest of an oversized line or header block is still unread

    def _serve(self) -> None:
        self.route, self.answered, self.body_read = "other", False, False
        try:
            if self.state.stopping.is_set():
                self._drop()
                return
            path = urlsplit(self.path).path
            page = self.state.page
            if page is not None and owns(path):
                self._reply_page(page.respond(self.command, self.path, self.headers.get("Host")))
                return
            if path in TELEMETRY_ROUTES:
                self.route, method = path, "POST"
            elif path.startswith(FLAGS_ROUTE + "/"):
                self.route, method = FLAGS_ROUTE, "GET"
            else:
                self._reply_json(404, {"error": f"no such endpoint: {path[:200]}"})
                return
            if self.command != method:
                self._reply_json(405, {"error": f"use {method}"}, headers={"Allow": method})
            elif method == "POST":
                self._telemetry(path)
            else:
                self._flags(path)
        except OSError:
            self.close_connection = True  # the client went away or stalled past the timeout
        except Exception:
            log.debug("handler failed", exc_info=True)
            self.close_connection = True
            if not self.answered:
                with suppress(OSError):
                    self._reply_json(500, {"error": "internal error"}, close=True)

    def _telemetry(self, path: str) -> None:
        authorized = path == "/telemetry-ext"
        token = self.config.token
        if authorized and token is not None and not self._bearer_matches(token):
            self._reply_json(401, {"error": "missing or invalid bearer token"})
            return
        length = self._content_length()
        if length is None:
            return
        fault = self.state.take_fault(for_flags=False)
        if fault is not None and fault.mode == "drop":
            self._drop()  # before reading: the client sees a reset mid-body
            return
        body = self.rfile.read(length)
        self.body_read = True
        self.state.count("bytes_received", len(body))
        if len(body) < length:
            self._drop()  # the client hung up mid-body; nobody is left to answer
            return
        if fault is not None and self._misbehave(fault):
            return
        try:
            logs = validate_request(body, self.config.max_body_bytes)
        except WireError as error:
            self.config.store.add_rejection(
                host=self.headers.get("Host", ""),
                path=path,
                status=400,
                reason=error.reason,
                size_bytes=len(body),
            )
            self._reply_json(400, {"error": error.reason})
            return
        if fault is not None and fault.mode == "partial":
            logs = logs[: max(0, len(logs) - fault.k)]
        host = self.headers.get("Host", "")
        self.config.store.add(logs, host=host, path=path, authorized=authorized)
        self.state.count("logs_accepted", len(logs))
        # The answers are the service's JSON, so they come from the client's converter; what the
        # endpoint accepts is judged by `validate`, which is independent of it on purpose.
        self._reply(200, encode_export_response(ExportResponse(num_proto_success=len(logs))))

    def _flags(self, path: str) -> None:
        parts = path[len(FLAGS_ROUTE) + 1 :].split("/")
        if len(parts) != 2 or not all(parts):
            self._reply_json(404, {"error": "expected .../feature-flags/<DRIVER>/<version>"})
            return
        self.state.count("flag_fetches")
        token = self.config.token
        if token is not None and self._bearer_matches(token):
            self.state.count("flag_fetches_authorized")
        fault = self.state.take_fault(for_flags=True)
        if fault is not None and self._misbehave(fault):
            return
        with self.state.lock:
            enabled, ttl_s = self.state.flag
        flags: tuple[FeatureFlag, ...] = ()
        if parts[0] == self.config.driver_name:  # another driver's flag is simply absent: off
            flags = (FeatureFlag(name=FLAG_NAME, value="true" if enabled else "false"),)
        answer = FeatureFlagResponse(flags=flags, ttl_seconds=ttl_s)
        self._reply(200, encode_feature_flags(answer))

    def _misbehave(self, fault: Fault) -> bool:
        """Act out `fault`; True when the request is answered (or dropped) by it."""
        if fault.mode in ("status", "flap", "retry_after"):
            headers = {}
            if fault.mode == "retry_after" and fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            self._reply_json(fault.effective_status, {"error": f"injected {fault.mode}"}, headers)
        elif fault.mode == "malformed":
            self._reply(200, _MALFORMED_BODY)
        elif fault.mode in ("hang", "slow"):
            # Wait on the stop event, never sleep: stop() must release every handler.
            released = self.state.stopping.wait(None if fault.mode == "hang" else fault.delay_s)
            if not released:
                return False
            self._drop()
        elif fault.mode == "drop":
            self._drop()
        else:
            return False
        return True

    def _bearer_matches(self, token: str) -> bool:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.encode()
        )

    def _content_length(self) -> int | None:
        values = self.headers.get_all("Content-Length") or []
        if "Transfer-Encoding" in self.headers or not values:
            self._reply_json(411, {"error": "Content-Length is required (no chunked bodies)"})
            return None
        if len(set(values)) != 1 or not _CONTENT_LENGTH.fullmatch(values[0].strip()):
            self._reply_json(400, {"error": "invalid Content-Length"})
            return None
        length, limit = int(values[0]), self.config.max_body_bytes
        if length > limit:
            self._reply_json(413, {"error": f"body of {length} bytes exceeds {limit}"})
            return None
        return length

    def _drop(self) -> None:
        """Close without answering; a zero linger turns the close into a reset."""
        self.answered, self.close_connection, self.linger = True, True, False
        self.state.record(self.route, 0)
        with suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _reply_json(
        self,
        status: int,
        payload: object,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        self._reply(status, json.dumps(payload).encode(), headers, close=close)

    def _reply(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        self.answered = True
        self.state.record(self.route, int(status))  # http.server passes HTTPStatus members
        # An unread body would be parsed as the next request on this connection: close instead.
        headers_in = getattr(self, "headers", None)
        pending = (
            not self.body_read
            and headers_in is not None
            and (
                "Transfer-Encoding" in headers_in
                or headers_in.get("Content-Length", "0").strip() != "0"
            )
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close or pending or self.state.stopping.is_set():
            self.send_header("Connection", "close")
            self.linger = pending
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reply_page(self, reply: PageReply) -> None:
        """Answer a page route; page requests are not counted among the telemetry requests."""
        self.answered = True
        self.linger = write_reply(self, reply)
