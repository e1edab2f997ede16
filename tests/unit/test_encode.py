"""The generated encoder writes, byte for byte, what the cattrs converter and `json` write."""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from messages import encode, records, wire
from messages.sysconfig import DriverInfo, system_configuration


def _reference(log: records.FrontendLog) -> str:
    """The definition: the converter's unstructured form, dumped compactly, non-ASCII kept."""
    return json.dumps(
        wire.converter.unstructure(log),
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


# Any code point, lone surrogates and JSON's escapes included.
_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40) | st.sampled_from(
    ["", '"', "\\", "\x00", "\u2028", "é", "\U0001f600", "{,}", ':"x"']
)
_INT = st.integers(min_value=-(2**70), max_value=2**70)


def _inner(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = (a for a in typing.get_args(hint) if a is not type(None))
        return inner
    return hint


def _records_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Random valid instances of a record class: every field unset or a value of its type."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        inner = _inner(hints[field.name])
        if attrs.has(inner):
            value: st.SearchStrategy[Any] = _records_of(inner)  # records nest without cycles
        elif inner is str:
            value = _TEXT
        elif inner is bool:
            value = st.booleans()
        elif inner is int:
            value = _INT
        elif isinstance(inner, type) and issubclass(inner, enum.Enum):
            value = st.sampled_from(list(inner))
        else:
            raise AssertionError(f"no strategy for {cls.__name__}.{field.name}: {inner!r}")
        fields[field.name] = value if field.default is attrs.NOTHING else st.none() | value
    return st.builds(cls, **fields)


@settings(max_examples=400, deadline=None)
@given(_records_of(records.FrontendLog))
def test_generated_encoder_matches_the_converter_byte_for_byte(log: records.FrontendLog) -> None:
    expected = _reference(log)
    assert encode.encode_frontend_log(log) == expected
    assert encode.encode_frontend_log(log) == expected  # again, from the memo
    assert wire.encode_frontend_log(log) == expected
    escaped = json.dumps(expected, ensure_ascii=False)  # as it stands in a request body
    assert encode.escaped_frontend_log(log) == escaped
    assert encode.escaped_frontend_log(log) == escaped  # from the memo


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_records_of(records.SystemConfiguration), min_size=1, max_size=3),
    st.lists(_records_of(records.FrontendLog), min_size=1, max_size=8),
    st.data(),
)
def test_logs_sharing_a_system_configuration_encode_like_the_converter(
    systems: list[records.SystemConfiguration],
    logs: list[records.FrontendLog],
    data: st.DataObject,
) -> None:
    for log in logs:
        system = data.draw(st.sampled_from(systems))
        driver_log = attrs.evolve(
            (log.entry and log.entry.sql_driver_log) or records.SqlDriverLog(),
            system_configuration=system,
        )
        shared = attrs.evolve(log, entry=records.FrontendLogEntry(sql_driver_log=driver_log))
        assert encode.encode_frontend_log(shared) == _reference(shared)
        assert encode.escaped_frontend_log(shared) == json.dumps(
            _reference(shared), ensure_ascii=False
        )


def test_a_typical_statement_log_encodes_like_the_wire() -> None:
    driver = DriverInfo(name="MyDriver", version="1.2.3")
    log = wire.decode_frontend_log(
        json.dumps(
            {
                "frontend_log_event_id": "00000000-0000-4000-8000-000000000000",
                "workspace_id": 1234567890123456,
                "context": {"client_context": {"timestamp_millis": 1, "user_agent": "A/1"}},
                "entry": {
                    "sql_driver_log": {
                        "session_id": "s-1",
                        "sql_statement_id": "q-1",
                        "operation_latency_ms": 42,
                        "sql_operation": {
                            "statement_type": "QUERY",
                            "is_compressed": False,
                            "retry_count": 0,
                            "chunk_details": {"total_chunks_present": 2},
                            "operation_detail": {"operation_type": "EXECUTE_STATEMENT"},
                        },
                    }
                },
            }
        )
    )
    assert log.entry is not None and log.entry.sql_driver_log is not None
    driver_log = attrs.evolve(
        log.entry.sql_driver_log, system_configuration=system_configuration(driver)
    )
    log = attrs.evolve(log, entry=records.FrontendLogEntry(sql_driver_log=driver_log))
    assert encode.encode_frontend_log(log) == wire.encode_frontend_log(log) == _reference(log)


def test_values_of_unexpected_types_still_encode_like_json() -> None:
    class Text(str):
        pass

    class Number(int):
        pass

    log = records.FrontendLog(
        frontend_log_event_id=Text("id"),
        workspace_id=Number(7),
        entry=records.FrontendLogEntry(
            sql_driver_log=records.SqlDriverLog(
                session_id=Text("s"),
                driver_connection_params=records.DriverConnectionParams(
                    host_info=records.HostInfo(port=True),  # a bool where an int is declared
                    use_proxy=1,  # type: ignore[arg-type]  # an int where a bool is declared
                ),
                operation_latency_ms=False,
            )
        ),
    )
    assert encode.encode_frontend_log(log) == _reference(log)


def test_an_empty_nested_record_is_written_as_an_empty_object() -> None:
    log = records.FrontendLog(
        frontend_log_event_id="x",
        context=records.FrontendLogContext(),
        entry=records.FrontendLogEntry(sql_driver_log=records.SqlDriverLog()),
    )
    assert encode.encode_frontend_log(log) == (
        '{"frontend_log_event_id":"x","context":{},"entry":{"sql_driver_log":{}}}'
    )
    assert encode.encode_frontend_log(log) == _reference(log)


def test_the_generated_source_names_every_proto_field() -> None:
    source = encode.generated_source()
    for cls in (records.FrontendLog, records.SqlDriverLog, records.SqlExecutionEvent):
        for field in attrs.fields(cls):
            assert f'"{field.name}":' in source
