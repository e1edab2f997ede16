"""Input given in code is checked at once: `ValueError` with a clear message, no thread started.

Values that arrive at run time (connection properties' values, the environment) still fall back
to defaults; these are the arguments a programmer wrote, so a mistake fails loudly and early.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
from _support import DRIVER, fast_settings

import actors
from actors import DriverInfo

TREE_PREFIXES = ("RegistryActor-", "HostSupervisor-", "AggregatorActor-", "ExporterActor-")


def tree_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(TREE_PREFIXES)]


@pytest.mark.parametrize(
    "properties",
    [["telemetry.enabled", "true"], "telemetry.enabled=true", 3, ("a", "b"), object()],
    ids=["list", "str", "int", "tuple", "object"],
)
def test_connect_with_properties_that_are_not_a_mapping_raises_value_error_naming_them(
    properties: Any,
) -> None:
    with pytest.raises(ValueError, match="properties must be a mapping"):
        actors.connect("example.com", properties, driver=DRIVER)
    assert tree_threads() == []


def test_instrument_with_properties_that_are_not_a_mapping_raises_value_error_at_setup() -> None:
    with pytest.raises(ValueError, match="properties must be a mapping"):
        actors.instrument(sqlite3, host="example.com", properties=["telemetry.enabled"])  # type: ignore[arg-type]


def test_connect_with_a_non_str_http_path_or_a_session_without_request_raises_value_error() -> None:
    with pytest.raises(ValueError, match="http_path must be a str"):
        actors.connect("example.com", driver=DRIVER, http_path=123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"session must be a requests\.Session-like"):
        actors.connect("example.com", driver=DRIVER, session=object())  # type: ignore[arg-type]
    assert tree_threads() == []


def test_connect_with_a_mapping_of_garbage_values_still_falls_back_without_raising() -> None:
    connection = actors.connect(
        "example.com",
        {"telemetry.batch_size": "many", 3: object()},
        driver=DRIVER,
        settings=fast_settings(enabled=False),
    )
    assert connection.tell(object()) is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"client_app_name": 123}, "client_app_name must be a str or None"),
        ({"client_app_name": "app\x00name"}, "client_app_name must not contain control"),
        ({"client_app_name": "app\u202ename"}, "client_app_name must not contain control"),
        ({"client_app_name": "x" * 257}, "client_app_name must be at most 256"),
        ({"client_app_name": "  "}, "client_app_name must not be empty"),
        ({"name": "Driver\r\nX-Injected: 1"}, "name must be printable ASCII"),
        ({"name": "Dr\u00efver"}, "name must be printable ASCII"),
        ({"name": "D" * 129}, "name must be at most 128"),
        ({"version": b"1.0"}, "version must be a str"),
        ({"version": "1.0\t"}, "version must be printable ASCII"),
    ],
)
def test_driver_info_rejects_bad_fields_at_construction(
    fields: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {"name": "Driver", "version": "1.0", **fields}
    with pytest.raises(ValueError, match=message):
        DriverInfo(**values)


def test_driver_info_accepts_real_driver_names_versions_and_unicode_app_names() -> None:
    info = DriverInfo(
        name="psycopg2", version="2.9.9 (dt dec pq3 ext lo64)", client_app_name="Отчёты 报表"
    )
    assert info.user_agent == "psycopg2/2.9.9 (dt dec pq3 ext lo64)"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth_type": 123}, "auth_type must be a short str"),
        ({"auth_type": "x" * 65}, "auth_type must be a short str"),
        ({"connection_params": {"http_path": "/x"}}, "connection_params must be"),
    ],
)
def test_instrument_rejects_bad_auth_type_or_connection_params_at_setup(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        actors.instrument(sqlite3, host="example.com", **options)


def test_instrument_connection_rejects_a_session_id_that_is_not_a_str() -> None:
    raw = sqlite3.connect(":memory:")
    try:
        with pytest.raises(ValueError, match="session_id must be a non-empty str"):
            actors.instrument_connection(raw, host="example.com", session_id=5)  # type: ignore[arg-type]
    finally:
        raw.close()
