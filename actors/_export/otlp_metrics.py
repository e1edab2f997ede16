"""The OTLP sink's cumulative metrics: operation durations and the exporter's own accounts.

The counters are the library's accounting as the exporter settles it (events exported, dropped
by reason, from each `BatchSettled`), not what the sink saw; only a mirror's undelivered logs
(`telemetry.sink=both`, outside the service's accounts) are the sink's own view. Actor-confined
(the exporter's thread): plain mutable totals, turned into frozen points for each request.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from messages.commands import BatchSettled
from messages.otlp import CounterPoint, HistogramPoint, OtlpResource, ServerAddress, metrics_request
from messages.otlp.mapping import log_kind, operation_name, resource_attributes
from messages.otlp.metrics import DURATION_BOUNDS_S, Attributes, bucket_index
from messages.records import FrontendLog, SystemConfiguration

__all__ = ["DurationAccounts"]

EXPORTED_METRIC = "driver_telemetry.events.exported"
DROPPED_METRIC = "driver_telemetry.events.dropped"
REJECTED_METRIC = "driver_telemetry.otlp.logs.rejected"


class _Totals:
    __slots__ = ("buckets", "count", "max_s", "min_s", "sum_s")

    def __init__(self) -> None:
        self.count = 0
        self.sum_s = 0.0
        self.min_s = float("inf")
        self.max_s = float("-inf")
        self.buckets = [0] * (len(DURATION_BOUNDS_S) + 1)

    def add(self, value_s: float) -> None:
        self.count += 1
        self.sum_s += value_s
        self.min_s = min(self.min_s, value_s)
        self.max_s = max(self.max_s, value_s)
        self.buckets[bucket_index(value_s)] += 1


class DurationAccounts:
    """Totals since `start_ns`: a histogram per operation, error type and server; accounts."""

    def __init__(self, *, start_ns: int, resource: OtlpResource) -> None:
        self._start_ns = start_ns
        self._resource = resource
        self._system: SystemConfiguration | None = None
        self._histogram: dict[Attributes, _Totals] = {}
        self._logs: collections.Counter[str] = collections.Counter()
        self._exported_events = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._requests: collections.Counter[str] = collections.Counter()

    def record(
        self,
        logs: Iterable[FrontendLog],
        server: ServerAddress | None,
        *,
        system: SystemConfiguration | None,
        taken: int,
    ) -> None:
        """Count one answered logs request (`taken` logs) and the durations its logs carry."""
        self._system = self._system or system
        self._logs["taken"] += taken
        for frontend in logs:
            log = frontend.entry.sql_driver_log if frontend.entry else None
            if log is None or log.operation_latency_ms is None:
                continue
            attributes = self._attributes(log, server)
            totals = self._histogram.get(attributes)
            if totals is None:
                totals = self._histogram[attributes] = _Totals()
            totals.add(log.operation_latency_ms / 1000.0)

    def _attributes(self, log: Any, server: ServerAddress | None) -> Attributes:
        pairs: list[tuple[str, str | int]] = [("db.system.name", self._resource.db_system)]
        operation = operation_name(log)
        if operation is not None:
            pairs.append(("db.operation.name", operation))
        if log_kind(log) == "error":
            pairs.append(("error.type", log.error_info.error_name or "_OTHER"))
        if server is not None:
            pairs.append(("server.address", server.host))
            if server.port is not None:
                pairs.append(("server.port", server.port))
        return tuple(pairs)

    def undelivered(self, logs: int, reason: str) -> None:
        """Count logs a mirror could not deliver to the collector, by reason."""
        self._logs[reason] += logs

    def settled(self, settled: BatchSettled) -> None:
        """Count one batch's settlement: the exporter's own accounts."""
        self._exported_events += settled.exported_events
        for reason, events in settled.dropped.items():
            self._dropped[reason] += events

    def sent(self, *, ok: bool) -> None:
        """Count one metrics request (lost ones cost nothing: the next carries the totals)."""
        self._requests["sent" if ok else "failed"] += 1

    def request(self, now_ns: int) -> dict[str, Any]:
        """The `ExportMetricsServiceRequest` with every total so far."""
        histogram = [
            HistogramPoint(
                attributes=attributes,
                count=t.count,
                sum_s=t.sum_s,
                bucket_counts=tuple(t.buckets),
                min_s=t.min_s,
                max_s=t.max_s,
            )
            for attributes, t in self._histogram.items()
        ]
        counters = [
            CounterPoint(
                name=EXPORTED_METRIC,
                description="Driver events the exporter settled as exported.",
                unit="{event}",
                attributes=(),
                value=self._exported_events,
            )
        ]
        counters += [
            CounterPoint(
                name=DROPPED_METRIC,
                description="Driver events the exporter settled as dropped, by reason.",
                unit="{event}",
                attributes=(("reason", reason),),
                value=count,
            )
            for reason, count in sorted(self._dropped.items())
        ]
        counters += [
            CounterPoint(
                name=REJECTED_METRIC,
                description="Logs a mirror could not deliver to the collector, by reason.",
                unit="{log}",
                attributes=(("reason", reason),),
                value=count,
            )
            for reason, count in sorted(self._logs.items())
            if reason != "taken"
        ]
        system = self._system
        return metrics_request(
            resource_attributes=resource_attributes(system, self._resource),
            scope=(
                (system.driver_name if system else None) or "driver-telemetry",
                system.driver_version if system else None,
            ),
            histogram=histogram,
            counters=counters,
            start_ns=self._start_ns,
            now_ns=now_ns,
        )

    def snapshot(self) -> dict[str, Any]:
        """Logs the collector took, a mirror's undelivered ones by reason, metrics requests."""
        undelivered = {k: v for k, v in self._logs.items() if k != "taken"}
        return {
            "logs_taken": self._logs["taken"],
            "mirror_undelivered": undelivered,
            "metrics_requests": dict(self._requests),
        }
