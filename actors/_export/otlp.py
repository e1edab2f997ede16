"""The OTLP sink: a `Transport` that speaks OTLP/HTTP where the exporter speaks the Databricks API.

It stands in for the HTTP transport (as the file sink does), so the exporter's batching, breaker,
rate limit, backoff, accounting and shutdown deadline stay as they are. The exporter hands it
each chunk's records (`send_logs`, the outbox's `LogsTransport` seam), sent as one
`ExportLogsServiceRequest`, and the answer is told back in the exporter's terms: a partial
success as the count of logs taken (the rest drop as `otlp_partial_rejected`, never retried),
429/502/503/504 as retryable with their Retry-After, any other status as terminal. The metrics
go out after a settled batch, carrying the exporter's own accounts. The connection's own
credentials never go to the collector: only the operator's OTLP headers do. Confined to the
exporter's thread (the flag fetcher only GETs).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import urllib3

from actors._export.http import HttpOutcome, Transport, Urllib3Transport, new_pool_manager
from actors._export.otlp_metrics import DurationAccounts
from actors._export.otlp_signal import SignalOptions
from messages.commands import BatchSettled
from messages.config import TelemetrySettings
from messages.otlp import (
    LOGS_REQUEST,
    METRICS_REQUEST,
    OtlpResource,
    ServerAddress,
    decode_partial_success,
    encode,
    logs_request,
)
from messages.otlp.encoding import CONTENT_TYPES
from messages.otlp.mapping import batch_system, remember_namespaces
from messages.otlp.options import parse_resource_attributes
from messages.records import FrontendLog, SystemConfiguration
from messages.wire import TELEMETRY_FLAG_NAME, converter

__all__ = [
    "MAX_OTLP_BODY_BYTES",
    "PARTIAL_REJECTED",
    "OtlpTransport",
    "otlp_http",
    "otlp_outcome",
]

logger = logging.getLogger("actors.exporter")

# OTLP names these, and only these, as retryable; every other failure status is final.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Bodies stay within 4 MiB, the smallest default limit of a collector's OTLP receivers.
MAX_OTLP_BODY_BYTES = 4 * 1024 * 1024
MAX_ANSWER_BYTES = 64 * 1024
UNENCODABLE = "unencodable"
# The drop reason of the logs a collector's partial success rejects (never retried).
PARTIAL_REJECTED = "otlp_partial_rejected"
_MIN_METRICS_TIMEOUT_S = 0.05
_FLAG_BODY = json.dumps({"flags": [{"name": TELEMETRY_FLAG_NAME, "value": "true"}]}).encode()


def otlp_outcome(
    status: int | None,
    *,
    body: bytes = b"",
    retry_after_s: float | None = None,
    error: str | None = None,
) -> HttpOutcome:
    """An outcome classified by the OTLP rules: transport errors and 429/502/503/504 retry;
    every other failure (400, 500, a body we cannot encode) is final."""
    unencodable = error is not None and error.startswith(UNENCODABLE)
    retryable = not unencodable and (status is None or status in RETRYABLE_STATUSES)
    return HttpOutcome(
        status=status, body=body, retry_after_s=retry_after_s, error=error, retryable=retryable
    )


def _server_of(url: str) -> ServerAddress | None:
    try:
        parts = urllib.parse.urlsplit(url)
        return ServerAddress(host=parts.hostname, port=parts.port) if parts.hostname else None
    except ValueError:
        return None


def _first_system(logs: Sequence[FrontendLog]) -> SystemConfiguration | None:
    for frontend in logs:
        log = frontend.entry.sql_driver_log if frontend.entry else None
        if log is not None and log.system_configuration is not None:
            return log.system_configuration
    return None


def _answer(accepted: int) -> bytes:
    """The export answer the exporter reads: how many logs were taken."""
    return json.dumps({"numProtoSuccess": accepted, "errors": []}).encode()


def otlp_http(pool: urllib3.PoolManager, settings: TelemetrySettings) -> Urllib3Transport:
    """The HTTP calls of the OTLP sink over `pool`: OTLP timeouts, answers read up to 64 KiB.

    Each request passes its own signal's timeout; the pool's are the longest of the two.
    """
    longest_s = max(SignalOptions.of(settings, s).timeout_s for s in ("logs", "metrics"))
    return Urllib3Transport(
        pool,
        connect_timeout_s=min(settings.connect_timeout_s, longest_s),
        read_timeout_s=longest_s,
        max_body_bytes=MAX_ANSWER_BYTES,
    )


class OtlpTransport:
    """A `Transport` sending the exporter's batches to an OpenTelemetry collector."""

    def __init__(
        self,
        settings: TelemetrySettings,
        *,
        inner: Transport | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """Read the OTLP settings; `inner` makes the HTTP calls (by default `otlp_http`)."""
        self._logs = SignalOptions.of(settings, "logs")
        self._metrics_signal = SignalOptions.of(settings, "metrics")
        self._resource = OtlpResource(
            service_name=settings.otlp_service_name,
            attributes=parse_resource_attributes(settings.otlp_resource_attributes),
            db_system=settings.otlp_db_system,
        )
        self._inner = inner or otlp_http(new_pool_manager(num_pools=4, maxsize=4), settings)
        self._clock_ns = clock_ns
        self._metrics = DurationAccounts(start_ns=clock_ns(), resource=self._resource)
        self._metrics_interval_ns = int(settings.flush_interval_s * 1e9)
        self._metrics_due_ns = 0  # the first batch also sends metrics
        self._systems: dict[tuple[Any, ...], SystemConfiguration] = {}
        self._namespaces: dict[str, str] = {}
        self._metrics_wanted = False

    partial_reason = PARTIAL_REJECTED

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        """Send an export body's logs as OTLP (parsed back: `send_logs` is the cheap way).

        `headers` (Databricks auth) are never sent. Never raises.
        """
        if method == "GET":  # choosing a collector is the local decision to send: flag on
            return HttpOutcome(status=200, body=_FLAG_BODY)
        try:
            logs, systems = self._decode(body)
        except Exception as exc:  # a body we cannot carry is no reason to raise
            logger.debug("otlp: export body cannot be decoded: %s", type(exc).__name__)
            return otlp_outcome(None, error=f"{UNENCODABLE}_{type(exc).__name__}")
        return self.send_records(url, logs, systems=systems, timeout_s=timeout_s)

    def send_logs(
        self,
        url: str,
        *,
        logs: Sequence[FrontendLog],
        body: bytes,
        headers: Mapping[str, str],
        timeout_s: float | None,
    ) -> HttpOutcome:
        """The exporter's seam: one chunk's records, mapped as they are (`body` unused)."""
        return self.send_records(url, logs, timeout_s=timeout_s)

    def send_records(
        self,
        url: str,
        logs: Sequence[FrontendLog],
        *,
        systems: Sequence[SystemConfiguration | None] | None = None,
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        """POST `logs` as one `ExportLogsServiceRequest`; a 2xx says how many were taken.

        Never raises: logs that cannot be encoded are a terminal outcome (`unencodable`), and
        nothing after the collector's answer can change what that answer said.
        """
        server = _server_of(url)
        try:
            remember_namespaces(logs, self._namespaces)
            message = logs_request(
                logs,
                resource=self._resource,
                server=server,
                observed_ns=self._clock_ns(),
                systems=systems,
                namespaces=self._namespaces,
            )
            payload = self._logs.body(encode(message, LOGS_REQUEST, self._logs.protocol))
        except Exception as exc:
            logger.debug("otlp: logs cannot be encoded: %s", type(exc).__name__)
            return otlp_outcome(None, error=f"{UNENCODABLE}_{type(exc).__name__}")
        if len(payload) > MAX_OTLP_BODY_BYTES:
            return otlp_outcome(413, error="body_too_large")
        outcome = self._post(self._logs, payload, timeout_s)
        if not outcome.ok:
            return outcome
        accepted = max(0, min(len(logs), len(logs) - self._rejected(outcome.body, LOGS_REQUEST)))
        try:
            system = batch_system(systems) if systems is not None else _first_system(logs)
            self._metrics.record(logs, server, system=system, taken=accepted)
            self._metrics_wanted = True  # sent once the batch is settled, so it is counted
        except Exception as exc:
            logger.debug("otlp: metrics failed: %s", type(exc).__name__)
        return otlp_outcome(outcome.status, body=_answer(accepted))

    def settled(self, settled: BatchSettled, timeout_s: float | None = None) -> None:
        """Count a batch's settlement (the exporter's accounts); after a logs request taken,
        send the metrics within `timeout_s` (what is left of the drain deadline). Never raises."""
        try:
            self._metrics.settled(settled)
            if self._metrics_wanted:
                self._metrics_wanted = False
                self._maybe_send_metrics(timeout_s)
        except Exception as exc:
            logger.debug("otlp: settlement not counted: %s", type(exc).__name__)

    def _decode(
        self, body: bytes | None
    ) -> tuple[list[FrontendLog], list[SystemConfiguration | None]]:
        """The body's frontend logs, each system configuration decoded once per distinct value."""
        logs: list[FrontendLog] = []
        systems: list[SystemConfiguration | None] = []
        for text in json.loads(body or b"{}")["protoLogs"]:
            data = json.loads(text)
            driver_log = (data.get("entry") or {}).get("sql_driver_log")
            raw = driver_log.pop("system_configuration", None) if driver_log else None
            systems.append(self._system(raw))
            logs.append(converter.structure(data, FrontendLog))
        return logs, systems

    def _system(self, raw: Any) -> SystemConfiguration | None:
        if not isinstance(raw, dict):
            return None
        key = tuple(sorted(raw.items()))
        system = self._systems.get(key)
        if system is None:
            if len(self._systems) >= 64:
                self._systems.clear()
            system = self._systems[key] = converter.structure(raw, SystemConfiguration)
        return system

    def _post(self, signal: SignalOptions, payload: bytes, timeout_s: float | None) -> HttpOutcome:
        result = self._inner.request(
            "POST",
            signal.url,
            body=payload,
            headers=signal.headers,
            timeout_s=signal.timeout(timeout_s),
        )
        return otlp_outcome(
            result.status, body=result.body, retry_after_s=result.retry_after_s, error=result.error
        )

    def _rejected(self, answer: bytes, name: str) -> int:
        try:
            partial = decode_partial_success(answer, name, CONTENT_TYPES[self._logs.protocol])
        except ValueError:  # a 2xx we cannot read still took the request
            logger.debug("otlp: unreadable 2xx answer to %s", name)
            return 0
        if partial.rejected:
            logger.debug("otlp: collector rejected %d of a %s", partial.rejected, name)
        return partial.rejected

    def _maybe_send_metrics(self, timeout_s: float | None) -> None:
        """Cumulative metrics, at most once per flush interval and once more when draining."""
        now_ns = self._clock_ns()
        if timeout_s is None and now_ns < self._metrics_due_ns:
            return
        if timeout_s is not None and timeout_s < _MIN_METRICS_TIMEOUT_S:
            return  # the drain deadline is (nearly) reached: the logs came first
        self._metrics_due_ns = now_ns + self._metrics_interval_ns
        try:
            signal = self._metrics_signal
            payload = signal.body(
                encode(self._metrics.request(now_ns), METRICS_REQUEST, signal.protocol)
            )
        except Exception as exc:
            logger.debug("otlp: metrics cannot be encoded: %s", type(exc).__name__)
            return
        outcome = self._post(self._metrics_signal, payload, timeout_s)
        self._metrics.sent(ok=outcome.ok)

    def count_undelivered(self, logs: int, reason: str) -> None:
        """Count logs this sink could not deliver (when mirroring, which never retries)."""
        self._metrics.undelivered(logs, reason)

    @property
    def accounts(self) -> Mapping[str, Any]:
        """What this sink sent: logs taken, a mirror's undelivered ones, metrics requests."""
        return self._metrics.snapshot()
