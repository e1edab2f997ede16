"""Both sinks at once: the Databricks service keeps the accounts, a collector gets a mirror.

`telemetry.sink=both`. Each export goes to the service first; its answer is what the exporter
sees, so batching, retries, breaker and accounts follow the service exactly as with `http`.
After a 2xx, the logs the service took are mirrored to the collector in one attempt, within the
same deadline. The mirror never retries (a retry of the service's batch must not send a log
twice), and logs it could not deliver are counted by reason in the OTLP sink's own counters
(`driver_telemetry.otlp.logs.rejected`), not in the service's accounts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

from actors._export.http import HttpOutcome, Transport
from actors._export.otlp import OtlpTransport
from messages.wire import decode_export_response, encode_request

__all__ = ["MirrorTransport"]

logger = logging.getLogger("actors.exporter")


class MirrorTransport:
    """A `Transport` sending to `primary` and mirroring what it took to an OTLP collector."""

    def __init__(self, primary: Transport, mirror: OtlpTransport) -> None:
        self._primary = primary
        self._mirror = mirror

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        """The service's outcome; the collector gets the logs it accepted. Never raises."""
        started = time.monotonic()
        outcome = self._primary.request(
            method, url, body=body, headers=headers, timeout_s=timeout_s
        )
        if method == "POST" and outcome.ok:
            try:
                self._mirror_taken(url, body, outcome, timeout_s, started)
            except Exception as exc:  # the service's answer stands whatever the mirror does
                logger.debug("otlp mirror: failed: %s", type(exc).__name__)
        return outcome

    def _mirror_taken(
        self,
        url: str,
        body: bytes | None,
        outcome: HttpOutcome,
        timeout_s: float | None,
        started: float,
    ) -> None:
        try:
            taken = decode_export_response(outcome.body).num_proto_success
            logs = json.loads(body or b"{}")["protoLogs"][: max(0, taken)]
        except (ValueError, KeyError, TypeError):
            return  # the exporter reads the same answer and decides
        if not logs:
            return
        remaining_s = None if timeout_s is None else timeout_s - (time.monotonic() - started)
        if remaining_s is not None and remaining_s <= 0:
            self._mirror.count_undelivered(len(logs), "shutdown_timeout")
            return
        mirrored = self._mirror.request(
            "POST", url, body=encode_request(logs, 0), headers={}, timeout_s=remaining_s
        )
        if not mirrored.ok:
            reason = f"http_{mirrored.status}" if mirrored.status else "export_failed"
            logger.debug("otlp mirror: %d logs not delivered (%s)", len(logs), reason)
            self._mirror.count_undelivered(len(logs), reason)
