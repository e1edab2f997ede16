"""Events and commands are immutable data; messages/ stands alone; privacy allow-list holds."""

from __future__ import annotations

import ast
import pathlib
import types
import typing
from collections import Counter, abc
from collections.abc import Mapping

import attrs
import pytest

from messages import commands, events, snapshots
from messages import records as r
from messages.privacy import EXPORT_ALLOW_LIST, LogKind, apply_allow_list, strip_for_unauth
from messages.sysconfig import DriverInfo, system_configuration

EVENT_CLASSES = [getattr(events, name) for name in events.__all__ if name != "Event"]
COMMAND_CLASSES = [
    getattr(commands, name)
    for name in commands.__all__
    if attrs.has(getattr(commands, name, None))  # type: ignore[arg-type]
]


@pytest.mark.parametrize("cls", EVENT_CLASSES + COMMAND_CLASSES, ids=lambda c: c.__name__)
def test_every_message_is_frozen_slotted_and_keyword_only(cls: type) -> None:
    assert attrs.has(cls)
    assert "__slots__" in cls.__dict__
    assert all(a.kw_only for a in attrs.fields(cls))
    instance_fields = {a.name: a for a in attrs.fields(cls)}
    required = [n for n, a in instance_fields.items() if a.default is attrs.NOTHING]
    with pytest.raises(TypeError):  # positional arguments are refused
        cls(*(["x"] * max(1, len(required))))


def test_events_cannot_be_mutated() -> None:
    event = events.StatementStarted(statement_id="q", session_id="s")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.statement_id = "other"  # type: ignore[misc]


SNAPSHOT_CLASSES = [getattr(snapshots, name) for name in snapshots.__all__]
MESSAGE_CLASSES = [
    cls for cls in EVENT_CLASSES + COMMAND_CLASSES + SNAPSHOT_CLASSES if attrs.has(cls)
]


def test_sequences_in_messages_are_tuples_never_lists() -> None:
    for cls in MESSAGE_CLASSES:
        for field in attrs.fields(cls):
            assert "list[" not in str(field.type) and "dict[" not in str(field.type), (cls, field)


def _container_fields(cls: type) -> dict[str, object]:
    """For each tuple or mapping field of `cls`, a mutable value of that shape (list or dict)."""
    hints = typing.get_type_hints(cls)
    samples: dict[str, object] = {}
    for field in attrs.fields(cls):
        kinds = {
            typing.get_origin(t) or t
            for t in (hints[field.name], *typing.get_args(hints[field.name]))
        }
        if tuple in kinds:
            samples[field.name] = [1, 2]
        elif kinds & {Mapping, abc.Mapping, dict}:
            samples[field.name] = {"a": 1}
    return samples


def _immutable(value: object) -> bool:
    if isinstance(value, list | dict | set | bytearray):
        return False
    if isinstance(value, tuple):
        return all(_immutable(v) for v in value)
    if isinstance(value, Mapping):  # a read-only view is fine, its values must be too
        return isinstance(value, types.MappingProxyType) and all(
            _immutable(v) for v in value.values()
        )
    return True


CONTAINER_CLASSES = [cls for cls in MESSAGE_CLASSES if _container_fields(cls)]


def test_the_container_check_covers_the_messages_that_carry_containers() -> None:
    names = {cls.__name__ for cls in CONTAINER_CLASSES}
    assert {"ExportBatch", "BatchSettled", "Drained", "BreakerSnapshot", "TreeFinal"} <= names


@pytest.mark.parametrize("cls", CONTAINER_CLASSES, ids=lambda c: c.__name__)
def test_a_message_built_from_lists_and_dicts_holds_only_tuples_and_read_only_mappings(
    cls: type,
) -> None:
    given = _container_fields(cls)
    others = {
        a.name: None
        for a in attrs.fields(cls)
        if a.name not in given and a.default is attrs.NOTHING
    }
    message = cls(**given, **others)
    for name in given:
        assert _immutable(getattr(message, name)), (cls.__name__, name, getattr(message, name))
    for name, value in given.items():  # the sender keeps its own container: change it
        if isinstance(value, list):
            value.append(3)
        elif isinstance(value, dict):
            value["b"] = 2
        assert getattr(message, name) != value, (cls.__name__, name)


def test_messages_the_actors_build_hold_no_mutable_containers() -> None:
    settled = commands.BatchSettled(
        batch_id=1, exported_events=1, exported_logs=1, dropped=Counter(queue_full=2)
    )
    final = snapshots.TreeFinal(generation=1, snapshot={"dropped": {"x": 1}})
    assert _immutable(settled.dropped) and settled.dropped == {"queue_full": 2}
    assert isinstance(final.snapshot, types.MappingProxyType)


def test_messages_package_never_imports_pykka_or_actors() -> None:
    root = pathlib.Path(__file__).resolve().parents[2] / "messages"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("pykka", "actors")), (path.name, name)


def test_system_configuration_is_filled_from_the_interpreter_once() -> None:
    driver = DriverInfo(name="MyDriver", version="1.2.3")
    config = system_configuration(driver)
    assert config is system_configuration(DriverInfo(name="MyDriver", version="1.2.3"))
    assert config.driver_name == "MyDriver" and config.driver_version == "1.2.3"
    assert config.runtime_name and config.runtime_name.startswith("Python 3.")
    assert config.runtime_vendor == "CPython"
    assert config.os_name and config.os_arch and config.char_set_encoding and config.locale_name
    assert driver.user_agent == "MyDriver/1.2.3"


@pytest.mark.parametrize("bad", ["", "  ", None, 3])
def test_driver_info_rejects_an_empty_name_or_version(bad: object) -> None:
    with pytest.raises(ValueError):
        DriverInfo(name=bad, version="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DriverInfo(name="d", version=bad)  # type: ignore[arg-type]


def _full_log() -> r.SqlDriverLog:
    return r.SqlDriverLog(
        session_id="s",
        sql_statement_id="q",
        system_configuration=r.SystemConfiguration(driver_name="d", process_name="app"),
        driver_connection_params=r.DriverConnectionParams(
            http_path="/sql/1.0/warehouses/abc",
            host_info=r.HostInfo(host_url="secret-host.example.com", port=443),
        ),
        auth_type="pat",
        sql_operation=r.SqlExecutionEvent(retry_count=1),
        error_info=r.DriverErrorInfo(error_name="E"),
        operation_latency_ms=3,
    )


@pytest.mark.parametrize("kind", list(LogKind))
def test_allow_list_keeps_only_the_fields_of_each_log_kind(kind: LogKind) -> None:
    log = apply_allow_list(kind, _full_log())
    present = {a.name for a in attrs.fields(r.SqlDriverLog) if getattr(log, a.name) is not None}
    assert present <= EXPORT_ALLOW_LIST[kind]


def test_server_address_is_never_exported_in_connection_params() -> None:
    log = apply_allow_list(LogKind.CONNECTION, _full_log())
    assert log.driver_connection_params is not None
    assert log.driver_connection_params.host_info is None
    assert log.driver_connection_params.http_path == "/sql/1.0/warehouses/abc"


def test_unauthenticated_logs_carry_no_ids_workspace_or_connection_details() -> None:
    log = r.FrontendLog(
        frontend_log_event_id="e",
        workspace_id=42,
        entry=r.FrontendLogEntry(sql_driver_log=_full_log()),
    )
    stripped = strip_for_unauth(log)
    assert stripped.workspace_id is None
    assert stripped.entry is not None and stripped.entry.sql_driver_log is not None
    entry = stripped.entry.sql_driver_log
    assert entry.session_id is None and entry.sql_statement_id is None
    assert entry.driver_connection_params is None and entry.auth_type is None
    assert entry.system_configuration is not None
    assert entry.system_configuration.process_name is None
    assert entry.error_info == r.DriverErrorInfo(error_name="E")
