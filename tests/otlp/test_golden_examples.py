"""Golden: requests shaped like opentelemetry-proto's `examples/logs.json` and `metrics.json`.

The examples are not shipped in the `opentelemetry-proto` wheel, so their content is mirrored
here as our message trees; each must encode (protobuf and JSON) to exactly the request the
official classes build from the same values.
"""

from __future__ import annotations

import json
from typing import Any

from _otlp_json import parse_otlp_json
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from messages.otlp import LOGS_REQUEST, METRICS_REQUEST, encode


def example_logs_tree() -> dict[str, Any]:
    """The content of opentelemetry-proto's examples/logs.json, as our message tree."""
    attributes = [
        {"key": "string.attribute", "value": {"string_value": "some string"}},
        {"key": "boolean.attribute", "value": {"bool_value": True}},
        {"key": "int.attribute", "value": {"int_value": 10}},
        {"key": "double.attribute", "value": {"double_value": 637.704}},
        {
            "key": "array.attribute",
            "value": {
                "array_value": {"values": [{"string_value": "many"}, {"string_value": "values"}]}
            },
        },
        {
            "key": "map.attribute",
            "value": {
                "kvlist_value": {
                    "values": [{"key": "some.map.key", "value": {"string_value": "some value"}}]
                }
            },
        },
    ]
    record = {
        "time_unix_nano": 1544712660300000000,
        "observed_time_unix_nano": 1544712660300000000,
        "severity_text": "Information",
        "trace_id": bytes.fromhex("5B8EFFF798038103D269B633813FC60C"),
        "span_id": bytes.fromhex("EEE19B7EC3C1B174"),
        "body": {"string_value": "Example log record"},
        "attributes": attributes,
    }
    return {
        "resource_logs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"string_value": "my.service"}}]
                },
                "scope_logs": [
                    {"scope": {"name": "my.library", "version": "1.0.0"}, "log_records": [record]}
                ],
            }
        ]
    }


def official_example_logs() -> logs_service_pb2.ExportLogsServiceRequest:
    """The same request, built with opentelemetry-proto's classes."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(
        key="service.name", value=common_pb2.AnyValue(string_value="my.service")
    )
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = "my.library", "1.0.0"
    record: logs_pb2.LogRecord = scope_logs.log_records.add()
    record.time_unix_nano = record.observed_time_unix_nano = 1544712660300000000
    record.severity_text = "Information"
    record.trace_id = bytes.fromhex("5B8EFFF798038103D269B633813FC60C")
    record.span_id = bytes.fromhex("EEE19B7EC3C1B174")
    record.body.string_value = "Example log record"
    add = record.attributes.add
    add(key="string.attribute", value=common_pb2.AnyValue(string_value="some string"))
    add(key="boolean.attribute", value=common_pb2.AnyValue(bool_value=True))
    add(key="int.attribute", value=common_pb2.AnyValue(int_value=10))
    add(key="double.attribute", value=common_pb2.AnyValue(double_value=637.704))
    array = add(key="array.attribute").value.array_value
    array.values.add(string_value="many")
    array.values.add(string_value="values")
    kvlist = add(key="map.attribute").value.kvlist_value
    kvlist.values.add(key="some.map.key", value=common_pb2.AnyValue(string_value="some value"))
    return request


def test_the_logs_example_encodes_to_what_the_official_classes_build() -> None:
    expected = official_example_logs()
    tree = example_logs_tree()

    protobuf = encode(tree, LOGS_REQUEST, "http/protobuf")
    assert logs_service_pb2.ExportLogsServiceRequest.FromString(protobuf) == expected
    parsed = parse_otlp_json(
        encode(tree, LOGS_REQUEST, "http/json"), logs_service_pb2.ExportLogsServiceRequest()
    )
    assert parsed == expected


def example_metrics_tree() -> dict[str, Any]:
    """examples/metrics.json's counter and histogram (its gauge and scope attributes are
    parts of OTLP this library never writes, so its schema leaves them out)."""
    at = 1544712660300000000
    counter = {
        "name": "my.counter",
        "unit": "1",
        "description": "I`m a Counter",
        "sum": {
            "aggregation_temporality": 1,
            "is_monotonic": True,
            "data_points": [
                {
                    "as_double": 5.0,
                    "start_time_unix_nano": at,
                    "time_unix_nano": at,
                    "attributes": [("my.counter.attr", "some value")],
                }
            ],
        },
    }
    histogram = {
        "name": "my.histogram",
        "unit": "1",
        "description": "I`m a Histogram",
        "histogram": {
            "aggregation_temporality": 1,
            "data_points": [
                {
                    "start_time_unix_nano": at,
                    "time_unix_nano": at,
                    "count": 3,
                    "sum": 3.0,
                    "bucket_counts": [1, 1, 1],
                    "explicit_bounds": [1.0],
                    "min": 1.0,
                    "max": 1.0,
                    "attributes": [("my.histogram.attr", "some value")],
                }
            ],
        },
    }
    return {
        "resource_metrics": [
            {
                "resource": {"attributes": [("service.name", "my.service")]},
                "scope_metrics": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "metrics": [counter, histogram],
                    }
                ],
            }
        ]
    }


def official_example_metrics() -> metrics_service_pb2.ExportMetricsServiceRequest:
    at = 1544712660300000000
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(
        key="service.name", value=common_pb2.AnyValue(string_value="my.service")
    )
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name, scope_metrics.scope.version = "my.library", "1.0.0"
    counter = scope_metrics.metrics.add(name="my.counter", unit="1", description="I`m a Counter")
    counter.sum.aggregation_temporality = 1
    counter.sum.is_monotonic = True
    point = counter.sum.data_points.add(as_double=5, start_time_unix_nano=at, time_unix_nano=at)
    point.attributes.add(
        key="my.counter.attr", value=common_pb2.AnyValue(string_value="some value")
    )
    histogram = scope_metrics.metrics.add(
        name="my.histogram", unit="1", description="I`m a Histogram"
    )
    histogram.histogram.aggregation_temporality = 1
    hp = histogram.histogram.data_points.add(
        start_time_unix_nano=at,
        time_unix_nano=at,
        count=3,
        sum=3,
        bucket_counts=[1, 1, 1],
        explicit_bounds=[1],
        min=1,
        max=1,
    )
    hp.attributes.add(key="my.histogram.attr", value=common_pb2.AnyValue(string_value="some value"))
    return request


def test_the_metrics_example_encodes_to_what_the_official_classes_build() -> None:
    expected = official_example_metrics()
    tree = example_metrics_tree()

    from_protobuf = metrics_service_pb2.ExportMetricsServiceRequest.FromString(
        encode(tree, METRICS_REQUEST, "http/protobuf")
    )
    from_json = parse_otlp_json(
        encode(tree, METRICS_REQUEST, "http/json"),
        metrics_service_pb2.ExportMetricsServiceRequest(),
    )

    assert from_protobuf == expected
    assert from_json == expected


def test_json_follows_the_otlp_json_rules() -> None:
    body = json.loads(encode(example_logs_tree(), LOGS_REQUEST, "http/json"))
    record = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]

    assert record["traceId"] == "5b8efff798038103d269b633813fc60c"  # hex, not base64
    assert record["spanId"] == "eee19b7ec3c1b174"
    assert record["timeUnixNano"] == "1544712660300000000"  # 64-bit ints as decimal strings
    assert record["attributes"][2]["value"] == {"intValue": "10"}
    assert "observedTimeUnixNano" in record and "observed_time_unix_nano" not in record
