"""A file sink: JSON Lines of exactly the frontend logs that would have been POSTed.

For offline debugging and air-gapped sites (``telemetry.sink=file``). It stands in for the HTTP
transport, so batching, accounting and shutdown behave as with a server; the feature flag is
answered locally as on, since choosing a file is the local decision to record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from actors._export.http import HttpOutcome
from messages.wire import TELEMETRY_FLAG_NAME

__all__ = ["FileTransport"]

_FLAG_BODY = json.dumps(
    {"flags": [{"name": TELEMETRY_FLAG_NAME, "value": "true"}], "ttl_seconds": 3600}
).encode()


class FileTransport:
    """A `Transport` that appends each exported frontend log as one line of `path`."""

    def __init__(self, path: str) -> None:
        self._path = path

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        """Write the request's `protoLogs`, one per line; never raises."""
        if method == "GET":
            return HttpOutcome(status=200, body=_FLAG_BODY)
        try:
            logs = json.loads(body or b"{}")["protoLogs"]
            with open(self._path, "a", encoding="utf-8") as out:
                out.write("".join(f"{line}\n" for line in logs))
        except Exception as exc:
            return HttpOutcome(status=None, error=type(exc).__name__)
        answer = {
            "errors": [],
            "numSuccess": 0,
            "numProtoSuccess": len(logs),
            "numRealtimeSuccess": 0,
        }
        return HttpOutcome(status=200, body=json.dumps(answer).encode())
