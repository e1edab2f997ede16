"""Our OTLP encoders against the official `opentelemetry-proto` classes.

Property: for any message tree, our protobuf bytes parsed by opentelemetry-proto equal our JSON
parsed by `google.protobuf.json_format`; partial-success answers the official classes write are
read back alike in both encodings. (The spec's examples are in `test_golden_examples.py`.)
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from _otlp_json import parse_otlp_json
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from messages.otlp import LOGS_REQUEST, METRICS_REQUEST, decode_partial_success, encode
from messages.otlp.encoding import decode_fields

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
