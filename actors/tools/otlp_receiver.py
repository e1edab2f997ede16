"""A loopback OTLP/HTTP receiver for the demo, and a local collector in front of it if installed.

The receiver counts the log records and metrics requests it is sent (protobuf, gzip or not;
JSON bodies are counted as requests) and answers 200. `start_collector` runs the `rotel` agent
(from the `rotel` package, when installed) forwarding to the receiver, so the demo shows the
path through a real collector.
"""

from __future__ import annotations

import collections
import gzip
import importlib.util
import json
import pathlib
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from messages.otlp.encoding import decode_fields

__all__ = ["OtlpDemo", "OtlpReceiver", "collector_binary", "start_collector"]


def _count_log_records(body: bytes) -> int:
    """Log records in an ExportLogsServiceRequest (resource_logs/scope_logs/log_records)."""
    count = 0
    for number, resource_logs in decode_fields(body):
        if number != 1 or not isinstance(resource_logs, bytes):
            continue
        for inner, scope_logs in decode_fields(resource_logs):
            if inner == 2 and isinstance(scope_logs, bytes):
                count += sum(1 for n, _ in decode_fields(scope_logs) if n == 2)
    return count


def _count_json_records(body: bytes) -> int:
    data = json.loads(body)
    return sum(
        len(scope.get("logRecords", []))
        for resource in data.get("resourceLogs", [])
        for scope in resource.get("scopeLogs", [])
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2.0
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.owner.count(self.path, body, "json" in self.headers.get("Content-Type", ""))
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Content-Type") or "")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: OtlpReceiver


class OtlpReceiver:
    """Counts what arrives on 127.0.0.1:<free port>: log records and requests per path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.log_records = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, path: str, body: bytes, is_json: bool) -> None:
        try:
            records = 0
            if path.endswith("/logs"):
                records = _count_json_records(body) if is_json else _count_log_records(body)
        except ValueError:
            records = 0
        with self._lock:
            self.requests[path] += 1
            self.log_records += records

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def collector_binary() -> pathlib.Path | None:
    """The rotel agent binary beside the installed `rotel` package, if any."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        return None
    binary = pathlib.Path(spec.origin).parent / "rotel-agent"
    return binary if binary.is_file() else None


def start_collector(forward_to: str, timeout_s: float = 5.0) -> tuple[str, Any] | None:
    """Start the rotel agent forwarding to `forward_to`; its URL and process, or None."""
    binary = collector_binary()
    if binary is None:
        return None
    http_port, grpc_port = _free_port(), _free_port()
    workdir = tempfile.mkdtemp(prefix="otlp-demo-")
    process = subprocess.Popen(
        [str(binary), "start", "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}", "--exporter", "otlp",
         "--otlp-exporter-endpoint", forward_to, "--otlp-exporter-protocol", "http",
         "--pid-file", f"{workdir}/rotel.pid", "--log-file", f"{workdir}/rotel.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline_s = time.monotonic() + timeout_s
    pause = threading.Event()
    while time.monotonic() < deadline_s and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
            return f"http://127.0.0.1:{http_port}", process
        except OSError:
            pause.wait(0.05)
    process.kill()
    process.wait(timeout=5.0)
    return None


class OtlpDemo:
    """The demo's OTLP side: a receiver, a collector in front of it if installed."""

    def __init__(self, receiver: OtlpReceiver, collector: tuple[str, Any] | None) -> None:
        self.receiver = receiver
        self.collector = collector

    @classmethod
    def start(cls, properties: dict[str, str]) -> OtlpDemo:
        """Start receiver and collector, and point `properties` at the nearer one."""
        receiver = OtlpReceiver()
        collector = start_collector(receiver.url)
        properties["telemetry.sink"] = "otlp"
        properties["telemetry.otlp.endpoint"] = collector[0] if collector else receiver.url
        return cls(receiver, collector)

    def finish(self, report: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        """Wait (bounded) for the exported logs to arrive, stop, and replace the store checks."""
        exported = sum(h["exported_logs"] for h in report["hosts"].values())
        deadline_s = time.monotonic() + timeout_s
        pause = threading.Event()
        while self.receiver.log_records < exported and time.monotonic() < deadline_s:
            pause.wait(0.05)
        if self.collector is not None:
            self.collector[1].terminate()
            self.collector[1].wait(timeout=5.0)
        self.receiver.close()
        received = self.receiver.log_records
        for host in report["hosts"].values():  # the local endpoints see no logs with OTLP
            host["store_matches_accounting"] = True
        unconfirmed = sum(
            h["accounting"].get("dropped", {}).get("shutdown_timeout", 0)
            for h in report["hosts"].values()
        )
        matches = exported <= received <= exported + unconfirmed
        report["otlp"] = {
            "via": "rotel collector" if self.collector else "loopback OTLP receiver",
            "log_records_received": received,
            "exported_logs": exported,
            "requests": dict(self.receiver.requests),
            "received_matches_accounting": matches,
        }
        balanced = all(h["accounting"].get("balanced") for h in report["hosts"].values())
        report["balanced"] = balanced and matches
        return report
