"""A file sink: JSON Lines of exactly the frontend logs that would have been POSTed.

For offline debugging and air-gapped sites (``telemetry.sink=file``). It stands in for the HTTP
transport, so batching, accounting and shutdown behave as with a server; the feature flag is
answered locally as on, since choosing a file is the local decision to record.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors._export.http import HttpOutcome
from messages.records import ExportResponse, FeatureFlag, FeatureFlagResponse
from messages.wire import (
    TELEMETRY_FLAG_NAME,
    decode_request,
    encode_export_response,
    encode_feature_flags,
)

__all__ = ["FileTransport"]

_FLAG_BODY = encode_feature_flags(
    FeatureFlagResponse(
        flags=(FeatureFlag(name=TELEMETRY_FLAG_NAME, value="true"),), ttl_seconds=3600
    )
)


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
            logs = decode_request(body or b"{}").proto_logs
            with open(self._path, "a", encoding="utf-8") as out:
                out.write("".join(f"{line}\n" for line in logs))
        except Exception as exc:
            return HttpOutcome(status=None, error=type(exc).__name__)
        answer = ExportResponse(num_proto_success=len(logs))
        return HttpOutcome(status=200, body=encode_export_response(answer))
