"""A loopback OTLP/HTTP trace sink in a child process, so its CPU is never billed to ours.

`SinkProcess` starts a small HTTP/1.1 server on 127.0.0.1 (a free port) that takes
`POST /v1/traces` bodies (protobuf `ExportTraceServiceRequest`, as OpenTelemetry's OTLP/HTTP span
exporter sends them), parses each and counts its spans, and answers 200 with an empty
`ExportTraceServiceResponse`. It is steered over pipes: `stats`, `stop`; every call has a timeout.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _child import ChildProcess


class SinkProcess(ChildProcess):
    """The OTLP sink running in a child process."""

    name = "OTLP sink"

    def __init__(self, timeout_s: float = 10.0) -> None:
        super().__init__([__file__, "--child"], timeout_s)
        hello = self._read()
        self.url: str = hello["url"]

    def stats(self) -> dict[str, Any]:
        """`spans`, `requests`, `bytes_received`, `bad_requests` so far."""
        return self.call("stats")

    def __enter__(self) -> SinkProcess:
        return self


def _child() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    counts = {"spans": 0, "requests": 0, "bytes_received": 0, "bad_requests": 0}
    lock = threading.Lock()
    answer = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                request = ExportTraceServiceRequest.FromString(body)
                spans = sum(
                    len(scope.spans)
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                )
                status = 200
            except Exception:
                spans, status = 0, 400
            with lock:
                counts["requests"] += 1
                counts["bytes_received"] += length
                counts["spans"] += spans
                counts["bad_requests"] += status != 200
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = sys.stdout

    def reply(value: dict[str, Any]) -> None:
        out.write(json.dumps(value) + "\n")
        out.flush()

    reply({"url": f"http://127.0.0.1:{server.server_address[1]}/v1/traces"})
    for line in sys.stdin:
        command = json.loads(line)["cmd"]
        if command == "stats":
            with lock:
                reply(dict(counts))
        elif command == "stop":
            break
    server.shutdown()
    server.server_close()
    reply({"ok": True})


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--child":
        _child()
