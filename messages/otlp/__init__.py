"""OpenTelemetry (OTLP) export: frontend logs as LogRecords, metrics, both OTLP encodings."""

from __future__ import annotations

from messages.otlp.encoding import (
    LOGS_REQUEST,
    METRICS_REQUEST,
    PartialSuccess,
    decode_partial_success,
    encode,
)
from messages.otlp.mapping import OtlpResource, ServerAddress, logs_request
from messages.otlp.metrics import CounterPoint, HistogramPoint, metrics_request

__all__ = [
    "LOGS_REQUEST",
    "METRICS_REQUEST",
    "CounterPoint",
    "HistogramPoint",
    "OtlpResource",
    "PartialSuccess",
    "ServerAddress",
    "decode_partial_success",
    "encode",
    "logs_request",
    "metrics_request",
]
