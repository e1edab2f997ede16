"""TelemetrySettings: explicit values are validated; properties and environment parse gracefully."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from messages.config import (
    KILL_SWITCH_ENV,
    SETTINGS_TABLE,
    SettingSpec,
    TelemetrySettings,
    env_var_name,
    settings_table_markdown,
)

LOGGER = "messages.config"
SPEC_IDS = [spec.key for spec in SETTINGS_TABLE]
# Supplied alongside every per-setting case so that sink=file is a valid alternative.
COMPANION_KEY = "telemetry.file_path"
COMPANION_PATH = "companion.jsonl"


def alternative_value(spec: SettingSpec) -> tuple[str, object]:
    """Return a valid non-default value for a setting as a source string and its parsed value."""
    default = spec.default
    if isinstance(default, bool):
        return ("TRUE" if not default else " off "), not default
    if isinstance(default, int):
        return f" {default + 1} ", default + 1
    if isinstance(default, float):
        return str(default * 2), default * 2
    by_field: dict[str, tuple[str, object]] = {
        "sink": (" FILE ", "file"),
        "file_path": (" spool/telemetry.jsonl ", "spool/telemetry.jsonl"),
        "error_text": (" Class_Only ", "class_only"),
        "otlp_endpoint": (" https://otel.example:4318 ", "https://otel.example:4318"),
        "otlp_logs_endpoint": ("http://127.0.0.1:1/logs", "http://127.0.0.1:1/logs"),
        "otlp_metrics_endpoint": ("http://127.0.0.1:1/m", "http://127.0.0.1:1/m"),
        "otlp_protocol": (" HTTP/JSON ", "http/json"),
        "otlp_headers": ("api-key=abc%3D", "api-key=abc%3D"),
        "otlp_compression": ("GZIP", "gzip"),
        "otlp_resource_attributes": ("team=db", "team=db"),
        "otlp_service_name": (" billing ", "billing"),
        "otlp_db_system": ("postgresql", "postgresql"),
        "otlp_logs_protocol": (" HTTP/JSON ", "http/json"),
        "otlp_logs_headers": ("a=b", "a=b"),
        "otlp_logs_timeout_ms": (" 250 ", 250),
        "otlp_logs_compression": ("GZIP", "gzip"),
        "otlp_metrics_protocol": ("http/json", "http/json"),
        "otlp_metrics_headers": ("c=d", "c=d"),
        "otlp_metrics_timeout_ms": ("300", 300),
        "otlp_metrics_compression": ("gzip", "gzip"),
    }
    assert spec.field in by_field, f"add an alternative value for new setting {spec.key}"
    return by_field[spec.field]


def invalid_explicit_value(spec: SettingSpec) -> Any:
    """Return a value that the setting's rule must reject when passed in code."""
    default = spec.default
    if isinstance(default, bool):
        return 1
    if isinstance(default, int):
        return -1
    if isinstance(default, float):
        return float("nan")
    by_field: dict[str, Any] = {
        "sink": "smtp",
        "file_path": 42,
        "error_text": "raw",
        "otlp_endpoint": "ftp://collector",
        "otlp_logs_endpoint": "collector:4318",
        "otlp_metrics_endpoint": 7,
        "otlp_protocol": "grpc",
        "otlp_headers": "no-equals-sign",
        "otlp_compression": "zstd",
        "otlp_resource_attributes": "=x",
        "otlp_service_name": 3,
        "otlp_db_system": " ",
        "otlp_logs_protocol": "grpc",
        "otlp_logs_headers": "no-equals-sign",
        "otlp_logs_timeout_ms": 0,
        "otlp_logs_compression": "zstd",
        "otlp_metrics_protocol": "http",
        "otlp_metrics_headers": "bad name=x",
        "otlp_metrics_timeout_ms": -5,
        "otlp_metrics_compression": "br",
    }
    assert spec.field in by_field, f"add an invalid value for new setting {spec.key}"
    return by_field[spec.field]


def test_defaults_are_the_documented_values() -> None:
    settings = TelemetrySettings.from_sources(None, environ={})

    assert settings == TelemetrySettings()
    assert settings.enabled is True
    assert settings.force_enable is False
    assert settings.batch_size == 100
    assert settings.flush_interval_ms == 5000
    assert settings.max_retries == 3
    assert (settings.retry_delay_ms, settings.retry_max_delay_ms) == (100, 1000)
    assert settings.retry_after_max_s == 60
    assert settings.breaker_enabled is True
    assert (settings.breaker_threshold, settings.breaker_open_s) == (5, 60)
    assert settings.breaker_success_threshold == 2
    assert settings.feature_flag_ttl_s == 900
    assert (settings.max_pending_statements, settings.max_queued_logs) == (1000, 1000)
    assert settings.max_pending_batches == 20
    assert settings.shutdown_timeout_ms == 2000
    assert settings.rate_limit_per_s == 10.0
    assert settings.rate_limit_burst == 20
    assert (settings.connect_timeout_ms, settings.read_timeout_ms) == (2000, 5000)
    assert (settings.sink, settings.file_path) == ("http", None)


def test_settings_table_covers_every_field_with_its_default() -> None:
    defaults = TelemetrySettings()

    assert [spec.field for spec in SETTINGS_TABLE] == [
        field.name for field in attrs.fields(TelemetrySettings)
    ]
    for spec in SETTINGS_TABLE:
        assert getattr(defaults, spec.field) == spec.default
        assert spec.key.startswith("telemetry.")
        assert spec.description


def test_seconds_properties_convert_from_milliseconds() -> None:
    settings = TelemetrySettings(
        flush_interval_ms=1500, shutdown_timeout_ms=250, connect_timeout_ms=2000, read_timeout_ms=1
    )

    assert settings.flush_interval_s == 1.5
    assert settings.shutdown_timeout_s == 0.25
    assert settings.connect_timeout_s == 2.0
    assert settings.read_timeout_s == 0.001


def test_environment_variable_names_follow_the_property_keys() -> None:
    assert env_var_name("telemetry.batch_size") == "DATABRICKS_TELEMETRY_BATCH_SIZE"
    assert (
        env_var_name("telemetry.circuit_breaker.threshold")
        == "DATABRICKS_TELEMETRY_CIRCUIT_BREAKER_THRESHOLD"
    )
    assert (
        env_var_name("telemetry.http.read_timeout_ms")
        == "DATABRICKS_TELEMETRY_HTTP_READ_TIMEOUT_MS"
    )


def test_property_strings_are_parsed_into_typed_settings() -> None:
    properties = {"telemetry.enabled": "false", "telemetry.batch_size": "50"}

    settings = TelemetrySettings.from_sources(properties, environ={})

    assert settings.enabled is False
    assert settings.batch_size == 50


def test_property_keys_match_case_insensitively() -> None:
    properties = {"Telemetry.Batch_Size": "7", "TELEMETRY.CIRCUIT_BREAKER.ENABLED": "No"}

    settings = TelemetrySettings.from_sources(properties, environ={})

    assert settings.batch_size == 7
    assert settings.breaker_enabled is False


def test_already_typed_property_values_are_accepted() -> None:
    properties = {
        "telemetry.enabled": False,
        "telemetry.batch_size": 25,
        "telemetry.rate_limit_per_s": 3,
    }

    settings = TelemetrySettings.from_sources(properties, environ={})

    assert settings.enabled is False
    assert settings.batch_size == 25
    assert settings.rate_limit_per_s == 3.0
    assert isinstance(settings.rate_limit_per_s, float)


def test_explicit_int_rate_limit_is_stored_as_float() -> None:
    settings = TelemetrySettings(rate_limit_per_s=4)

    assert settings.rate_limit_per_s == 4.0
    assert isinstance(settings.rate_limit_per_s, float)


@pytest.mark.parametrize("text", ["5.0", "1e3", "0x10", "1_000", "ten", "", "   "])
def test_non_decimal_int_strings_fall_back_to_default(text: str) -> None:
    settings = TelemetrySettings.from_sources({"telemetry.batch_size": text}, environ={})

    assert settings.batch_size == 100


def test_invalid_property_uses_default() -> None:
    properties = {"telemetry.batch_size": "0", "telemetry.enabled": "maybe"}

    settings = TelemetrySettings.from_sources(properties, environ={})

    assert settings.batch_size == 100
    assert settings.enabled is True


def test_environment_is_used_when_no_property_is_given() -> None:
    environ = {"DATABRICKS_TELEMETRY_BATCH_SIZE": "42", "DATABRICKS_TELEMETRY_ENABLED": "off"}

    settings = TelemetrySettings.from_sources({}, environ=environ)

    assert settings.batch_size == 42
    assert settings.enabled is False


def test_property_takes_priority_over_environment() -> None:
    environ = {"DATABRICKS_TELEMETRY_BATCH_SIZE": "42"}

    settings = TelemetrySettings.from_sources({"telemetry.batch_size": "7"}, environ=environ)

    assert settings.batch_size == 7


def test_invalid_property_falls_back_to_environment_then_default() -> None:
    properties = {"telemetry.batch_size": "-5", "telemetry.max_retries": "lots"}
    environ = {"DATABRICKS_TELEMETRY_BATCH_SIZE": "42", "DATABRICKS_TELEMETRY_MAX_RETRIES": "x"}

    settings = TelemetrySettings.from_sources(properties, environ=environ)

    assert settings.batch_size == 42
    assert settings.max_retries == 3


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_TELEMETRY_BATCH_SIZE", "33")
    monkeypatch.delenv(KILL_SWITCH_ENV, raising=False)

    assert TelemetrySettings.from_sources().batch_size == 33


@pytest.mark.parametrize("spec", SETTINGS_TABLE, ids=SPEC_IDS)
def test_every_setting_is_parsed_from_a_property_string(spec: SettingSpec) -> None:
    text, expected = alternative_value(spec)
    assert expected != spec.default
    properties = {COMPANION_KEY: COMPANION_PATH, spec.key: text}

    settings = TelemetrySettings.from_sources(properties, environ={})

    assert getattr(settings, spec.field) == expected


@pytest.mark.parametrize("spec", SETTINGS_TABLE, ids=SPEC_IDS)
def test_every_setting_is_parsed_from_its_environment_variable(spec: SettingSpec) -> None:
    text, expected = alternative_value(spec)
    environ = {env_var_name(COMPANION_KEY): COMPANION_PATH, spec.env_var: text}

    settings = TelemetrySettings.from_sources({}, environ=environ)

    assert getattr(settings, spec.field) == expected


@pytest.mark.parametrize("spec", SETTINGS_TABLE, ids=SPEC_IDS)
def test_every_setting_rejects_an_invalid_explicit_value(spec: SettingSpec) -> None:
    with pytest.raises(ValueError, match=spec.key):
        TelemetrySettings(**{spec.field: invalid_explicit_value(spec)})


def test_invalid_explicit_value_message_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"^telemetry\.batch_size must be a positive int, got 0$"):
        TelemetrySettings(batch_size=0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_size": 10_001},
        {"batch_size": True},
        {"batch_size": "50"},
        {"feature_flag_ttl_s": 59},
        {"feature_flag_ttl_s": 3601},
        {"enabled": "yes"},
        {"force_enable": 0},
        {"rate_limit_per_s": float("inf")},
        {"rate_limit_per_s": 0},
        {"rate_limit_per_s": True},
        {"rate_limit_per_s": 10**400},
        {"flush_interval_ms": 2**31},
        {"sink": "file"},
        {"sink": "file", "file_path": ""},
    ],
    ids=repr,
)
def test_out_of_range_or_wrong_type_explicit_values_raise(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="telemetry"):
        TelemetrySettings(**overrides)


def test_file_sink_with_a_path_is_accepted() -> None:
    settings = TelemetrySettings(sink="file", file_path="out.jsonl")

    assert (settings.sink, settings.file_path) == ("file", "out.jsonl")


def test_file_sink_without_a_path_falls_back_to_http(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    settings = TelemetrySettings.from_sources({"telemetry.sink": "file"}, environ={})

    assert settings.sink == "http"
    assert any("file_path" in record.getMessage() for record in caplog.records)
    assert all(record.levelno <= logging.DEBUG for record in caplog.records)


@pytest.mark.parametrize("value", ["1", "true", "YES", "on", " On "])
def test_kill_switch_forces_telemetry_off(value: str) -> None:
    properties = {"telemetry.enabled": "true", "telemetry.force_enable": "true"}

    settings = TelemetrySettings.from_sources(properties, environ={KILL_SWITCH_ENV: value})

    assert settings.enabled is False
    assert settings.force_enable is False


@pytest.mark.parametrize("value", ["0", "", "no", "off", "false", "disabled"])
def test_non_kill_values_leave_telemetry_on(value: str) -> None:
    properties = {"telemetry.force_enable": "true"}

    settings = TelemetrySettings.from_sources(properties, environ={KILL_SWITCH_ENV: value})

    assert settings.enabled is True
    assert settings.force_enable is True


def test_kill_switch_overrides_force_enable_from_the_environment() -> None:
    environ = {KILL_SWITCH_ENV: "1", "DATABRICKS_TELEMETRY_FORCE_ENABLE": "1"}

    settings = TelemetrySettings.from_sources({}, environ=environ)

    assert (settings.enabled, settings.force_enable) == (False, False)


def test_fallback_is_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    TelemetrySettings.from_sources({"telemetry.batch_size": "zero"}, environ={})

    messages = [record.getMessage() for record in caplog.records if record.name == LOGGER]
    assert any("telemetry.batch_size" in message for message in messages)
    assert all(record.levelno <= logging.DEBUG for record in caplog.records)


def test_unknown_telemetry_property_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    settings = TelemetrySettings.from_sources({"telemetry.batchsize": "5"}, environ={})

    assert settings == TelemetrySettings()
    assert any("telemetry.batchsize" in record.getMessage() for record in caplog.records)
    assert all(record.levelno <= logging.DEBUG for record in caplog.records)


def test_non_telemetry_properties_are_ignored_silently(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    properties: dict[str, object] = {"http_path": "/sql/1.0", "catalog": None, "batch_size": "x"}

    settings = TelemetrySettings.from_sources(properties, environ={})

    assert settings == TelemetrySettings()
    assert caplog.records == []


class _Hostile:
    """A property value whose repr and str raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


GARBAGE: list[object] = [
    None,
    object(),
    _Hostile(),
    "9" * 100_000,
    "nan",
    float("nan"),
    float("inf"),
    -1,
    -1.5,
    10**400,
    True,
    b"5",
    [1],
    {"a": 1},
]


@pytest.mark.parametrize("spec", SETTINGS_TABLE, ids=SPEC_IDS)
def test_garbage_values_never_raise_from_sources(
    spec: SettingSpec, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    for garbage in GARBAGE:
        for text in ("9" * 100_000, "nan", "-inf", "-1", "\x00", "1e999"):
            settings = TelemetrySettings.from_sources(
                {spec.key: garbage}, environ={spec.env_var: text}
            )

            assert isinstance(settings, TelemetrySettings)
    assert all(record.levelno <= logging.DEBUG for record in caplog.records)


def test_garbage_for_ints_and_floats_falls_back_to_defaults() -> None:
    numeric = [s for s in SETTINGS_TABLE if type(s.default) in (int, float)]
    for garbage in (None, True, -1, float("nan"), "9" * 100_000, object()):
        properties = {spec.key: garbage for spec in numeric}

        assert TelemetrySettings.from_sources(properties, environ={}) == TelemetrySettings()


def test_huge_ints_from_sources_fall_back_so_seconds_never_overflow() -> None:
    properties: dict[str, object] = {"telemetry.flush_interval_ms": 10**400}
    environ = {"DATABRICKS_TELEMETRY_SHUTDOWN_TIMEOUT_MS": "9" * 30}

    settings = TelemetrySettings.from_sources(properties, environ=environ)

    assert settings.flush_interval_s == 5.0
    assert settings.shutdown_timeout_s == 2.0


def test_settings_table_markdown_lists_every_key_and_env_var() -> None:
    markdown = settings_table_markdown()

    assert markdown.splitlines()[0] == "| key | env var | default | meaning |"
    for spec in SETTINGS_TABLE:
        assert f"`{spec.key}`" in markdown
        assert f"`{spec.env_var}`" in markdown
    assert len(markdown.splitlines()) == len(SETTINGS_TABLE) + 2
