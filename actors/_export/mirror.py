"""Both sinks at once: the Databricks service keeps the accounts, a collector gets a mirror.

`telemetry.sink=both`. Each export goes to the service first; its answer is what the exporter
sees, so batching, retries, breaker and accounts follow the service exactly as with `http`.
After a 2xx, the logs the service took are mirrored to the collector in one attempt, within the
same deadline. The mirror never retries (a retry of the service's batch must not send a log
twice); logs it could not deliver are counted by reason in the OTLP sink's own counters
(`driver_telemetry.otlp.logs.rejected`) and in the exporter's `sink` entry of `dump_state()`,
not in the service's accounts. The exporter hands it each chunk's records (`send_logs`), so the
mirror never parses the service's body back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from actors._export.http import HttpOutcome, Transport
from actors._export.otlp import PARTIAL_REJECTED, OtlpTransport
from messages.commands import BatchSettled
from messages.records import FrontendLog
from messages.wire import converter, decode_export_response

__all__ = ["MirrorTransport"]

logger = logging.getLogger("actors.exporter")


class MirrorTransport:
    """A `Transport` sending to `primary` and mirroring what it took to an OTLP collector."""

    partial_reason = "partial_rejected"  # the service's partial success, as with `http`

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
        if method != "POST":
            return self._primary.request(
                method, url, body=body, headers=headers, timeout_s=timeout_s
            )
        try:
            texts = json.loads(body or b"{}")["protoLogs"]
            logs = [converter.structure(json.loads(t), FrontendLog) for t in texts]
        except Exception:  # not ours to judge: the service answers for it, nothing is mirrored
            logs = []
        return self.send_logs(
            url, logs=logs, body=body or b"", headers=headers, timeout_s=timeout_s
        )

    def send_logs(
        self,
        url: str,
        *,
        logs: Sequence[FrontendLog],
        body: bytes,
        headers: Mapping[str, str],
        timeout_s: float | None,
    ) -> HttpOutcome:
        """The exporter's seam: the body to the service, then the records it took to the mirror."""
        started = time.monotonic()
        outcome = self._primary.request(
            "POST", url, body=body, headers=headers, timeout_s=timeout_s
        )
        if outcome.ok:
            try:
                self._mirror_taken(url, logs, outcome, timeout_s, started)
            except Exception as exc:  # the service's answer stands whatever the mirror does
                logger.debug("otlp mirror: failed: %s", type(exc).__name__)
        return outcome

    def _mirror_taken(
        self,
        url: str,
        logs: Sequence[FrontendLog],
        outcome: HttpOutcome,
        timeout_s: float | None,
        started: float,
    ) -> None:
        try:
            taken = logs[: max(0, decode_export_response(outcome.body).num_proto_success)]
        except ValueError:
            return  # the exporter reads the same answer and decides
        if not taken:
            return
        remaining_s = None if timeout_s is None else timeout_s - (time.monotonic() - started)
        if remaining_s is not None and remaining_s <= 0:
            self._mirror.count_undelivered(len(taken), "shutdown_timeout")
            return
        mirrored = self._mirror.send_records(url, taken, timeout_s=remaining_s)
        if not mirrored.ok:
            reason = f"http_{mirrored.status}" if mirrored.status else "export_failed"
            logger.debug("otlp mirror: %d logs not delivered (%s)", len(taken), reason)
            self._mirror.count_undelivered(len(taken), reason)
            return
        try:
            delivered = decode_export_response(mirrored.body).num_proto_success
        except ValueError:
            return
        if delivered < len(taken):
            self._mirror.count_undelivered(len(taken) - delivered, PARTIAL_REJECTED)

    def settled(self, settled: BatchSettled, timeout_s: float | None = None) -> None:
        """The service's settlement, for the collector's metrics. Never raises."""
        self._mirror.settled(settled, timeout_s)

    @property
    def accounts(self) -> Mapping[str, Any]:
        """The mirror's own counts: logs the collector took, undelivered ones by reason."""
        return self._mirror.accounts
