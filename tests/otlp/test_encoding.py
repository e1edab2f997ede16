"""Our OTLP encoders against the official `opentelemetry-proto` classes.

Property: for any message tree, our protobuf bytes parsed by opentelemetry-proto equal our JSON
parsed by `google.protobuf.json_format`. Golden: a request shaped like opentelemetry-proto's
`examples/logs.json` and `examples/metrics.json` (not shipped in its wheel, so mirrored here)
equals the same request built with the official classes, field for field.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from messages.otlp import LOGS_REQUEST, METRICS_REQUEST, decode_partial_success, encode
from messages.otlp.encoding import decode_fields


def _ids_as_base64(value: Any) -> Any:
    """OTLP/JSON writes traceId and spanId in hex where proto3 JSON has base64 (spec'd change)."""
    if isinstance(value, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode()
            if k in ("traceId", "spanId") and isinstance(v, str)
            else _ids_as_base64(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_ids_as_base64(v) for v in value]
    return value


def parse_otlp_json(body: bytes, message: Any) -> Any:
    """Parse OTLP/JSON with `json_format`, after undoing OTLP's one difference from proto3 JSON."""
    return json_format.Parse(json.dumps(_ids_as_base64(json.loads(body))), message)


I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
U64 = st.integers(min_value=0, max_value=2**64 - 1)
DOUBLE = st.floats(allow_nan=False)
TEXT = st.text(max_size=20)  # surrogates included: both encodings must agree on them

any_values = st.recursive(
    st.one_of(
        TEXT.map(lambda v: {"string_value": v}),
        st.booleans().map(lambda v: {"bool_value": v}),
        I64.map(lambda v: {"int_value": v}),
        DOUBLE.map(lambda v: {"double_value": v}),
        st.binary(max_size=8).map(lambda v: {"bytes_value": v}),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"array_value": {"values": v}}),
        st.lists(st.tuples(TEXT, inner), max_size=3).map(
            lambda v: {"kvlist_value": {"values": [{"key": k, "value": x} for k, x in v]}}
        ),
    ),
    max_leaves=6,
)
key_values = st.lists(st.builds(lambda k, v: {"key": k, "value": v}, TEXT, any_values), max_size=4)
log_records = st.fixed_dictionaries(
    {},
    optional={
        "time_unix_nano": U64,
        "observed_time_unix_nano": U64,
        "severity_number": st.integers(min_value=0, max_value=24),
        "severity_text": TEXT,
        "body": any_values,
        "attributes": key_values,
        "trace_id": st.binary(min_size=16, max_size=16),
        "span_id": st.binary(min_size=8, max_size=8),
        "event_name": TEXT,
    },
)
logs_requests = st.lists(
    st.builds(
        lambda attributes, name, records: {
            "resource": {"attributes": attributes},
            "scope_logs": [{"scope": {"name": name}, "log_records": records}],
        },
        key_values,
        TEXT,
        st.lists(log_records, max_size=3),
    ),
    max_size=2,
).map(lambda resource_logs: {"resource_logs": resource_logs})

histogram_points = st.builds(
    lambda attributes, start, count, total, buckets, low, high: {
        "attributes": attributes,
        "start_time_unix_nano": start,
        "time_unix_nano": start,
        "count": count,
        "sum": total,
        "bucket_counts": buckets,
        "explicit_bounds": [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
        "min": low,
        "max": high,
    },
    key_values,
    U64,
    U64,
    DOUBLE,
    st.lists(U64, min_size=10, max_size=10),
    DOUBLE,
    DOUBLE,
)
number_points = st.builds(
    lambda attributes, value: {"attributes": attributes, "as_int": value}, key_values, I64
)
metrics_requests = st.builds(
    lambda hist, sums: {
        "resource_metrics": [
            {
                "scope_metrics": [
                    {
                        "metrics": [
                            {"name": "h", "unit": "s", "histogram": {"data_points": hist}},
                            {
                                "name": "c",
                                "sum": {
                                    "data_points": sums,
                                    "aggregation_temporality": 2,
                                    "is_monotonic": True,
                                },
                            },
                        ]
                    }
                ]
            }
        ]
    },
    st.lists(histogram_points, max_size=2),
    st.lists(number_points, max_size=2),
)


@settings(max_examples=80, deadline=None)
@given(logs_requests)
def test_protobuf_and_json_of_any_logs_request_decode_to_the_same_message(
    tree: dict[str, Any],
) -> None:
    from_protobuf = logs_service_pb2.ExportLogsServiceRequest.FromString(
        encode(tree, LOGS_REQUEST, "http/protobuf")
    )
    from_json = parse_otlp_json(
        encode(tree, LOGS_REQUEST, "http/json"), logs_service_pb2.ExportLogsServiceRequest()
    )

    assert from_protobuf == from_json


@settings(max_examples=60, deadline=None)
@given(metrics_requests)
def test_protobuf_and_json_of_any_metrics_request_decode_to_the_same_message(
    tree: dict[str, Any],
) -> None:
    from_protobuf = metrics_service_pb2.ExportMetricsServiceRequest.FromString(
        encode(tree, METRICS_REQUEST, "http/protobuf")
    )
    from_json = parse_otlp_json(
        encode(tree, METRICS_REQUEST, "http/json"),
        metrics_service_pb2.ExportMetricsServiceRequest(),
    )

    assert from_protobuf == from_json


SCALARS = st.one_of(TEXT, st.booleans(), I64, DOUBLE)
_FIELD = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value"}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(TEXT, SCALARS), max_size=6))
def test_attributes_as_key_scalar_pairs_encode_like_full_key_values(
    pairs: list[tuple[str, Any]],
) -> None:
    as_pairs = {"resource_logs": [{"resource": {"attributes": pairs}}]}
    as_messages = {
        "resource_logs": [
            {
                "resource": {
                    "attributes": [{"key": k, "value": {_FIELD[type(v)]: v}} for k, v in pairs]
                }
            }
        ]
    }
    for protocol in ("http/protobuf", "http/json"):
        twice = encode(as_pairs, LOGS_REQUEST, protocol), encode(as_pairs, LOGS_REQUEST, protocol)
        assert twice[0] == twice[1] == encode(as_messages, LOGS_REQUEST, protocol)


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


def test_json_follows_the_otlp_json_rules() -> None:
    body = json.loads(encode(example_logs_tree(), LOGS_REQUEST, "http/json"))
    record = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]

    assert record["traceId"] == "5b8efff798038103d269b633813fc60c"  # hex, not base64
    assert record["spanId"] == "eee19b7ec3c1b174"
    assert record["timeUnixNano"] == "1544712660300000000"  # 64-bit ints as decimal strings
    assert record["attributes"][2]["value"] == {"intValue": "10"}
    assert "observedTimeUnixNano" in record and "observed_time_unix_nano" not in record


def test_json_sends_enums_as_integers_and_doubles_as_numbers() -> None:
    tree = {
        "resource_metrics": [
            {
                "scope_metrics": [
                    {
                        "metrics": [
                            {
                                "name": "d",
                                "histogram": {
                                    "aggregation_temporality": 2,
                                    "data_points": [
                                        {"count": 3, "sum": 0.5, "bucket_counts": [1, 2]}
                                    ],
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    body = json.loads(encode(tree, METRICS_REQUEST, "http/json"))
    histogram = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["histogram"]

    assert histogram["aggregationTemporality"] == 2
    assert histogram["dataPoints"][0] == {"count": "3", "sum": 0.5, "bucketCounts": ["1", "2"]}


def test_repeated_numbers_are_packed_in_protobuf() -> None:
    tree = {
        "resource_metrics": [
            {
                "scope_metrics": [
                    {
                        "metrics": [
                            {
                                "name": "d",
                                "histogram": {"data_points": [{"bucket_counts": [1, 2, 3]}]},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    official = metrics_service_pb2.ExportMetricsServiceRequest()
    metric = official.resource_metrics.add().scope_metrics.add().metrics.add(name="d")
    metric.histogram.data_points.add(bucket_counts=[1, 2, 3])

    assert encode(tree, METRICS_REQUEST, "http/protobuf") == official.SerializeToString()


@given(st.integers(min_value=0, max_value=2**63 - 1), st.text(max_size=30))
def test_partial_success_is_read_from_official_answers_in_both_encodings(
    rejected: int, message: str
) -> None:
    answer = logs_service_pb2.ExportLogsServiceResponse()
    answer.partial_success.rejected_log_records = rejected
    answer.partial_success.error_message = message.encode("utf-8", "replace").decode()

    from_protobuf = decode_partial_success(
        answer.SerializeToString(), LOGS_REQUEST, "application/x-protobuf"
    )
    from_json = decode_partial_success(
        json_format.MessageToJson(answer).encode(), LOGS_REQUEST, "application/json"
    )

    assert from_protobuf.rejected == from_json.rejected == rejected
    assert from_protobuf.error_message == answer.partial_success.error_message


@given(st.binary(max_size=64))
def test_any_bytes_as_an_answer_either_parse_or_raise_value_error(data: bytes) -> None:
    for content_type in ("application/x-protobuf", "application/json"):
        with contextlib.suppress(ValueError):  # anything else escaping fails the test
            decode_partial_success(data, LOGS_REQUEST, content_type)


def test_truncated_protobuf_is_refused() -> None:
    answer = logs_service_pb2.ExportLogsServiceResponse()
    answer.partial_success.error_message = "x" * 40
    data = answer.SerializeToString()

    try:
        decode_fields(data[:-5])
    except ValueError as exc:
        assert "truncated" in str(exc)
    else:
        raise AssertionError("a truncated field was accepted")


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
