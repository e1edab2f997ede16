"""The part of the OTLP protos this library writes: field numbers and types per message.

Also the few parts it never writes that opentelemetry-proto's examples use (scope attributes,
gauges, exponential histograms), so that those examples round-trip through our encoders.
"""

from __future__ import annotations

__all__ = ["SCHEMA"]

# (field number, type, sub-message name or "") per field, per message.
SCHEMA: dict[str, dict[str, tuple[int, str, str]]] = {
    "ExportLogsServiceRequest": {"resource_logs": (1, "message", "ResourceLogs")},
    "ResourceLogs": {
        "resource": (1, "message", "Resource"),
        "scope_logs": (2, "message", "ScopeLogs"),
        "schema_url": (3, "string", ""),
    },
    "Resource": {"attributes": (1, "message", "KeyValue")},
    "ScopeLogs": {
        "scope": (1, "message", "InstrumentationScope"),
        "log_records": (2, "message", "LogRecord"),
        "schema_url": (3, "string", ""),
    },
    "InstrumentationScope": {
        "name": (1, "string", ""),
        "version": (2, "string", ""),
        "attributes": (3, "message", "KeyValue"),
    },
    "LogRecord": {
        "time_unix_nano": (1, "fixed64", ""),
        "observed_time_unix_nano": (11, "fixed64", ""),
        "severity_number": (2, "enum", ""),
        "severity_text": (3, "string", ""),
        "body": (5, "message", "AnyValue"),
        "attributes": (6, "message", "KeyValue"),
        "trace_id": (9, "id", ""),
        "span_id": (10, "id", ""),
        "event_name": (12, "string", ""),
    },
    "KeyValue": {"key": (1, "string", ""), "value": (2, "message", "AnyValue")},
    "AnyValue": {
        "string_value": (1, "string", ""),
        "bool_value": (2, "bool", ""),
        "int_value": (3, "int64", ""),
        "double_value": (4, "double", ""),
        "array_value": (5, "message", "ArrayValue"),
        "kvlist_value": (6, "message", "KeyValueList"),
        "bytes_value": (7, "bytes", ""),
    },
    "ArrayValue": {"values": (1, "message", "AnyValue")},
    "KeyValueList": {"values": (1, "message", "KeyValue")},
    "ExportMetricsServiceRequest": {"resource_metrics": (1, "message", "ResourceMetrics")},
    "ResourceMetrics": {
        "resource": (1, "message", "Resource"),
        "scope_metrics": (2, "message", "ScopeMetrics"),
        "schema_url": (3, "string", ""),
    },
    "ScopeMetrics": {
        "scope": (1, "message", "InstrumentationScope"),
        "metrics": (2, "message", "Metric"),
        "schema_url": (3, "string", ""),
    },
    "Metric": {
        "name": (1, "string", ""),
        "description": (2, "string", ""),
        "unit": (3, "string", ""),
        "gauge": (5, "message", "Gauge"),
        "sum": (7, "message", "Sum"),
        "histogram": (9, "message", "Histogram"),
        "exponential_histogram": (10, "message", "ExponentialHistogram"),
    },
    "Gauge": {"data_points": (1, "message", "NumberDataPoint")},
    "Sum": {
        "data_points": (1, "message", "NumberDataPoint"),
        "aggregation_temporality": (2, "enum", ""),
        "is_monotonic": (3, "bool", ""),
    },
    "NumberDataPoint": {
        "attributes": (7, "message", "KeyValue"),
        "start_time_unix_nano": (2, "fixed64", ""),
        "time_unix_nano": (3, "fixed64", ""),
        "as_double": (4, "double", ""),
        "as_int": (6, "sfixed64", ""),
    },
    "Histogram": {
        "data_points": (1, "message", "HistogramDataPoint"),
        "aggregation_temporality": (2, "enum", ""),
    },
    "HistogramDataPoint": {
        "attributes": (9, "message", "KeyValue"),
        "start_time_unix_nano": (2, "fixed64", ""),
        "time_unix_nano": (3, "fixed64", ""),
        "count": (4, "fixed64", ""),
        "sum": (5, "double", ""),
        "bucket_counts": (6, "fixed64", ""),
        "explicit_bounds": (7, "double", ""),
        "min": (11, "double", ""),
        "max": (12, "double", ""),
    },
    "ExponentialHistogram": {
        "data_points": (1, "message", "ExponentialHistogramDataPoint"),
        "aggregation_temporality": (2, "enum", ""),
    },
    "ExponentialHistogramDataPoint": {
        "attributes": (1, "message", "KeyValue"),
        "start_time_unix_nano": (2, "fixed64", ""),
        "time_unix_nano": (3, "fixed64", ""),
        "count": (4, "fixed64", ""),
        "sum": (5, "double", ""),
        "scale": (6, "sint32", ""),
        "zero_count": (7, "fixed64", ""),
        "positive": (8, "message", "Buckets"),
        "negative": (9, "message", "Buckets"),
        "min": (12, "double", ""),
        "max": (13, "double", ""),
        "zero_threshold": (14, "double", ""),
    },
    "Buckets": {"offset": (1, "sint32", ""), "bucket_counts": (2, "uint64", "")},
}
