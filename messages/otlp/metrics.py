"""OTLP metrics: the `db.client.operation.duration` histogram and the exporter's own counters.

Cumulative temporality: every request carries the totals since the series started, so a lost
metrics request loses nothing that the next one does not carry again.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import attrs

from messages.otlp.mapping import Message, key_values

__all__ = [
    "DURATION_BOUNDS_S",
    "DURATION_METRIC",
    "CounterPoint",
    "HistogramPoint",
    "bucket_index",
    "metrics_request",
]

# The semantic conventions' advice for db.client.operation.duration, in seconds.
DURATION_BOUNDS_S: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
DURATION_METRIC = "db.client.operation.duration"
CUMULATIVE = 2

Attributes = tuple[tuple[str, str | int], ...]


def bucket_index(value_s: float) -> int:
    """The histogram bucket of a value: bucket i holds (bounds[i-1], bounds[i]]."""
    return bisect.bisect_left(DURATION_BOUNDS_S, value_s)


@attrs.frozen(kw_only=True)
class HistogramPoint:
    """Totals of one attribute set of the duration histogram since `start_ns`."""

    attributes: Attributes
    count: int
    sum_s: float
    bucket_counts: tuple[int, ...]
    min_s: float
    max_s: float


@attrs.frozen(kw_only=True)
class CounterPoint:
    """A monotonic count since `start_ns` (a metric name, its attributes, its value)."""

    name: str
    description: str
    attributes: Attributes
    value: int
    unit: str = "{log}"


def _histogram(points: Iterable[HistogramPoint], start_ns: int, now_ns: int) -> Message:
    data = [
        {
            "attributes": key_values(p.attributes),
            "start_time_unix_nano": start_ns,
            "time_unix_nano": now_ns,
            "count": p.count,
            "sum": p.sum_s,
            "bucket_counts": list(p.bucket_counts),
            "explicit_bounds": list(DURATION_BOUNDS_S),
            "min": p.min_s,
            "max": p.max_s,
        }
        for p in points
    ]
    return {
        "name": DURATION_METRIC,
        "description": "Duration of database client operations.",
        "unit": "s",
        "histogram": {"data_points": data, "aggregation_temporality": CUMULATIVE},
    }


def _counters(points: list[CounterPoint], start_ns: int, now_ns: int) -> list[Message]:
    metrics: dict[str, Message] = {}
    for p in points:
        metric = metrics.setdefault(
            p.name,
            {
                "name": p.name,
                "description": p.description,
                "unit": p.unit,
                "sum": {"data_points": [], "aggregation_temporality": CUMULATIVE},
            },
        )
        metric["sum"]["is_monotonic"] = True
        metric["sum"]["data_points"].append(
            {
                "attributes": key_values(p.attributes),
                "start_time_unix_nano": start_ns,
                "time_unix_nano": now_ns,
                "as_int": p.value,
            }
        )
    return list(metrics.values())


def metrics_request(
    *,
    resource_attributes: list[tuple[str, object]],
    scope: tuple[str, str | None],
    histogram: Iterable[HistogramPoint],
    counters: Iterable[CounterPoint],
    start_ns: int,
    now_ns: int,
) -> Message:
    """An `ExportMetricsServiceRequest` with the duration histogram and the counters."""
    points = list(histogram)
    metrics = [_histogram(points, start_ns, now_ns)] if points else []
    metrics += _counters(list(counters), start_ns, now_ns)
    return {
        "resource_metrics": [
            {
                "resource": {"attributes": key_values(resource_attributes)},
                "scope_metrics": [
                    {"scope": {"name": scope[0], "version": scope[1]}, "metrics": metrics}
                ],
            }
        ]
    }
