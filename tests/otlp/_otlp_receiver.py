"""A loopback OTLP/HTTP receiver for the tests: records every request, answers as told.

It decodes what arrives with the official `opentelemetry-proto` classes (protobuf or JSON, gzip
or not), so a test checks what a real OTLP server would have parsed. `answer` decides each
reply: a status, headers and body; `hang` holds requests until released (bounded).
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

HANG_LIMIT_S = 10.0


@attrs.frozen(kw_only=True)
class OtlpRequest:
    """One request as it arrived (body already un-gzipped)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    wire_bytes: int

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("content-type", "")

    def decoded(self) -> Message:
        """The request parsed by opentelemetry-proto, by its path's signal."""
        cls: Any = (
            logs_service_pb2.ExportLogsServiceRequest
            if self.path.endswith("/logs")
            else metrics_service_pb2.ExportMetricsServiceRequest
        )
        if self.is_json:
            return json_format.Parse(self.body, cls())
        return cls.FromString(self.body)


Answer = tuple[int, dict[str, str], bytes]


def accept_all(request: OtlpRequest) -> Answer:
    """A healthy receiver: 200 with an empty response message, in the request's encoding."""
    if request.is_json:
        return 200, {"Content-Type": "application/json"}, b"{}"
    return 200, {"Content-Type": "application/x-protobuf"}, b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2.0
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        request = OtlpRequest(
            method="POST", path=self.path, headers=headers, body=body, wire_bytes=len(raw)
        )
        owner = self.server.owner
        owner.record(request)
        if owner.hang.is_set():
            owner.release.wait(HANG_LIMIT_S)
        try:
            status, extra, payload = owner.answer(request)
        except Exception:
            status, extra, payload = 500, {}, b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: OtlpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away: nothing to report."""


class OtlpReceiver:
    """A loopback OTLP/HTTP server on a free port."""

    def __init__(self, answer: Callable[[OtlpRequest], Answer] = accept_all) -> None:
        self.answer = answer
        self.hang = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[OtlpRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-receiver",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, request: OtlpRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def requests(self, signal: str = "") -> list[OtlpRequest]:
        """Requests so far whose path ends with `signal` (`logs`, `metrics`, or all)."""
        with self._lock:
            return [r for r in self._requests if r.path.endswith(signal)]

    def log_records(self) -> list[Any]:
        """Every LogRecord received so far (with its resource and scope), decoded."""
        found = []
        for request in self.requests("logs"):
            for resource_logs in request.decoded().resource_logs:  # type: ignore[attr-defined]
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        found.append((resource_logs.resource, scope_logs.scope, record))
        return found

    def stop(self) -> None:
        """Stop serving (bounded), releasing any held request."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
