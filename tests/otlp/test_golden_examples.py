"""Golden: opentelemetry-proto's own OTLP/JSON examples against our encoders.

`examples/` beside this file holds unchanged copies of `logs.json`, `events.json` and
`metrics.json` from opentelemetry-proto's `examples/` folder (origin and commit in its README).
For each file, the official request class parses it (`json_format`, after OTLP's hex ids); a
helper walks the set fields of that message into our message tree (a field our schema lacks
fails the test: the examples' gauge, exponential histogram and scope attributes are in it for
this); our writer encodes the tree, and:

(a) our protobuf bytes, parsed by the official class, equal the official parse of the file;
(b) our JSON, parsed by `json_format` into the official class, equals it too;
(c) our JSON, as a JSON object, equals the file's JSON object after this normalisation:
    trace and span ids in lowercase hex (OTLP/JSON reads either case; we write lowercase);
    object keys in any order (objects compare as dicts; arrays keep their order); numbers by
    value (`5` and `5.0` are one JSON number); and a field the file writes at its proto3
    default although it has no presence (`"scale": 0`, `"zeroThreshold": 0`) is dropped, since
    proto3 reads it as absent and our writer, like protobuf's, leaves it out. Fields with
    presence (`"min": 0`, a oneof's `"intValue": "0"`) are kept and must be written.

Each file runs twice: with every KeyValue as a dict, and with scalar ones as `(key, scalar)`
pairs, the form the mapping writes attributes in (our writer's fast path).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from _otlp_json import parse_otlp_json
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from messages.otlp import LOGS_REQUEST, METRICS_REQUEST, encode
from messages.otlp._schema import SCHEMA

EXAMPLES = pathlib.Path(__file__).with_name("examples")

# file -> (our request name, the official request class)
CASES: dict[str, tuple[str, type[Message]]] = {
    "logs.json": (LOGS_REQUEST, logs_service_pb2.ExportLogsServiceRequest),
    "events.json": (LOGS_REQUEST, logs_service_pb2.ExportLogsServiceRequest),
    "metrics.json": (METRICS_REQUEST, metrics_service_pb2.ExportMetricsServiceRequest),
}
_SCALAR_ANY_VALUES = ("string_value", "bool_value", "int_value", "double_value")


def official(file: str) -> Message:
    """The file, parsed by opentelemetry-proto's class (unknown fields refused)."""
    return parse_otlp_json((EXAMPLES / file).read_bytes(), CASES[file][1]())


def our_tree(message: Any, *, pairs: bool = False) -> Any:
    """Our message tree of an official message: its set fields, walked by their descriptors.

    With `pairs`, a KeyValue holding a string, bool, int or double becomes `(key, scalar)`.
    """
    name = message.DESCRIPTOR.name
    if pairs and name == "KeyValue":
        kind = message.value.WhichOneof("value")
        if kind in _SCALAR_ANY_VALUES:
            return (message.key, getattr(message.value, kind))
    tree: dict[str, Any] = {}
    for field, value in message.ListFields():
        assert field.name in SCHEMA[name], f"our schema has no {name}.{field.name}"
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                tree[field.name] = [our_tree(item, pairs=pairs) for item in value]
            else:
                tree[field.name] = our_tree(value, pairs=pairs)
        else:
            tree[field.name] = list(value) if field.is_repeated else value
    return tree


def normalised(value: Any, descriptor: Descriptor) -> Any:
    """A JSON object of `descriptor`'s message in the form (c) compares (module docstring)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = descriptor.fields_by_camelcase_name[key]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = field.message_type
            if field.is_repeated:
                out[key] = [normalised(v, sub) for v in item]
            else:
                out[key] = normalised(item, sub)
        elif key in ("traceId", "spanId"):
            out[key] = item.lower()
        elif field.is_repeated or field.has_presence or item not in (0, "0", "", False):
            out[key] = item
    return out


@pytest.fixture(params=sorted(CASES))
def example(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["key_value_dicts", "key_scalar_pairs"])
def pairs(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_our_protobuf_parses_to_the_official_parse_of_the_example(
    example: str, pairs: bool
) -> None:
    name, request_class = CASES[example]
    expected = official(example)

    body = encode(our_tree(expected, pairs=pairs), name, "http/protobuf")

    assert request_class.FromString(body) == expected


def test_our_json_parses_to_the_official_parse_of_the_example(example: str, pairs: bool) -> None:
    name, request_class = CASES[example]
    expected = official(example)

    body = encode(our_tree(expected, pairs=pairs), name, "http/json")

    assert parse_otlp_json(body, request_class()) == expected


def test_our_json_is_the_example_file(example: str, pairs: bool) -> None:
    name, request_class = CASES[example]
    descriptor = request_class.DESCRIPTOR
    file = json.loads((EXAMPLES / example).read_bytes())

    body = json.loads(encode(our_tree(official(example), pairs=pairs), name, "http/json"))

    assert normalised(body, descriptor) == body  # nothing to normalise in what we write
    assert body == normalised(file, descriptor)


def test_the_normalisation_drops_only_defaults_without_presence() -> None:
    metrics = normalised(
        json.loads((EXAMPLES / "metrics.json").read_bytes()),
        metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR,
    )
    exponential = metrics["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][3]
    point = exponential["exponentialHistogram"]["dataPoints"][0]
    logs = normalised(
        json.loads((EXAMPLES / "logs.json").read_bytes()),
        logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR,
    )
    record = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]

    assert "scale" not in point and "zeroThreshold" not in point  # proto3 defaults: absent
    assert point["min"] == 0 and point["positive"]["offset"] == 1  # presence, or not default
    assert record["traceId"] == "5b8efff798038103d269b633813fc60c"


def test_json_follows_the_otlp_json_rules() -> None:
    body = json.loads(encode(our_tree(official("logs.json")), LOGS_REQUEST, "http/json"))
    record = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]

    assert record["traceId"] == "5b8efff798038103d269b633813fc60c"  # hex, not base64
    assert record["spanId"] == "eee19b7ec3c1b174"
    assert record["timeUnixNano"] == "1544712660300000000"  # 64-bit ints as decimal strings
    assert record["severityNumber"] == 10  # enums as integers
    assert record["attributes"][2]["value"] == {"intValue": "10"}
    assert "observedTimeUnixNano" in record and "observed_time_unix_nano" not in record


def test_our_schema_numbers_every_field_of_the_examples_like_the_official_protos() -> None:
    def check(message: Message) -> None:
        for field, value in message.ListFields():
            number, _kind, _sub = SCHEMA[message.DESCRIPTOR.name][field.name]
            assert number == field.number, (message.DESCRIPTOR.name, field.name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value if field.is_repeated else [value]:
                    check(item)

    for file in CASES:
        check(official(file))
