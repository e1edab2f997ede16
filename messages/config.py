"""Telemetry settings: validated value object, parsed gracefully from properties and environment."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from messages.mask import ERROR_TEXT_MODES
from messages.otlp.options import (
    COMPRESSIONS,
    PROTOCOLS,
    check_choice,
    check_list,
    check_non_empty,
    check_url,
    parse_headers,
    parse_resource_attributes,
)

__all__ = [
    "KILL_SWITCH_ENV",
    "SETTINGS_TABLE",
    "SettingSpec",
    "TelemetrySettings",
    "env_var_name",
    "settings_table_markdown",
]

_log = logging.getLogger(__name__)

KILL_SWITCH_ENV = "DATABRICKS_TELEMETRY_DISABLED"

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_SINKS = ("http", "file", "otlp", "both")
_ERROR_TEXTS = ERROR_TEXT_MODES
_INT_MAX = 2**31 - 1  # every int setting fits a 32-bit int, so *_s/*_ms maths cannot overflow

_Check = Callable[[str, object], None]


def env_var_name(key: str) -> str:
    """Map a property key `telemetry.x.y` to its environment variable `DATABRICKS_TELEMETRY_X_Y`."""
    return "DATABRICKS_" + key.upper().replace(".", "_")


def _show(value: object) -> str:
    """Return a short repr for messages; never raises, even for hostile objects."""
    try:
        text = repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


# Checks: one per rule, raising ValueError that names the setting's property key.


def _is_bool(key: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be a bool, got {_show(value)}")


def _int_in(low: int, high: int = _INT_MAX) -> _Check:
    wanted = {0: "a non-negative int", 1: "a positive int"}.get(low, f"an int >= {low}")

    def check(key: str, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{key} must be {wanted}, got {_show(value)}")
        if value > high:
            raise ValueError(f"{key} must be an int <= {high}, got {_show(value)}")

    return check


def _positive_float(key: str, value: object) -> None:
    if not (isinstance(value, float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{key} must be a finite positive number, got {_show(value)}")


def _is_sink(key: str, value: object) -> None:
    if value not in _SINKS:
        raise ValueError(f"{key} must be one of {', '.join(_SINKS)}, got {_show(value)}")


def _is_error_text(key: str, value: object) -> None:
    if value not in _ERROR_TEXTS:
        raise ValueError(f"{key} must be one of {', '.join(_ERROR_TEXTS)}, got {_show(value)}")


def _optional_str(key: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a str or None, got {_show(value)}")


# Parsers turn source strings into typed values; anything else passes through to the check.


def _parse_bool(raw: object) -> object:
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE_WORDS | _FALSE_WORDS:
            return word in _TRUE_WORDS
    return raw


def _parse_int(raw: object) -> object:
    if isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
        return int(raw.strip())  # ValueError past int_max_str_digits; the caller falls back
    return raw


def _to_float(raw: object) -> object:
    """Widen a non-bool int to float (also the attrs converter); leave anything else alone."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        try:
            return float(raw)
        except OverflowError:
            return raw
    return raw


def _parse_float(raw: object) -> object:
    return float(raw.strip()) if isinstance(raw, str) else _to_float(raw)


def _parse_word(raw: object) -> object:
    return raw.strip().lower() if isinstance(raw, str) else raw


def _parse_optional_str(raw: object) -> object:
    return (raw.strip() or None) if isinstance(raw, str) else raw


_Rule = tuple[Callable[[object], object], _Check]  # (parse from a source, check a value)
_BOOL: _Rule = (_parse_bool, _is_bool)
_POSITIVE_FLOAT: _Rule = (_parse_float, _positive_float)
_SINK: _Rule = (_parse_word, _is_sink)
_OPTIONAL_STR: _Rule = (_parse_optional_str, _optional_str)
_ERROR_TEXT: _Rule = (_parse_word, _is_error_text)


_OTLP_URL: _Rule = (_parse_optional_str, check_url(required=False))
_OTLP_BASE_URL: _Rule = (_parse_optional_str, check_url(required=True))
_OTLP_PROTOCOL: _Rule = (_parse_word, check_choice(PROTOCOLS))
_OTLP_COMPRESSION: _Rule = (_parse_word, check_choice(COMPRESSIONS))
_OTLP_HEADERS: _Rule = (_parse_optional_str, check_list(parse_headers))
_OTLP_RESOURCE: _Rule = (_parse_optional_str, check_list(parse_resource_attributes))
_OTLP_NAME: _Rule = (_parse_optional_str, check_non_empty)


def _ints(low: int, high: int = _INT_MAX) -> _Rule:
    return (_parse_int, _int_in(low, high))


def _or_none(rule: _Rule) -> _Rule:
    """The same rule, also accepting None (a per-signal setting left to the general one)."""
    parse, check = rule

    def check_or_none(key: str, value: object) -> None:
        if value is not None:
            check(key, value)

    return (parse, check_or_none)


_OTLP_SIGNAL_PROTOCOL = _or_none(_OTLP_PROTOCOL)
_OTLP_SIGNAL_HEADERS = _or_none(_OTLP_HEADERS)
_OTLP_SIGNAL_TIMEOUT = _or_none((_parse_int, _int_in(1, _INT_MAX)))
_OTLP_SIGNAL_COMPRESSION = _or_none(_OTLP_COMPRESSION)
_SECRET_RULES = (_OTLP_HEADERS, _OTLP_SIGNAL_HEADERS)  # header values are credentials


_SIGNAL_RULES: dict[str, tuple[_Rule, str]] = {
    "protocol": (_OTLP_SIGNAL_PROTOCOL, "PROTOCOL"),
    "headers": (_OTLP_SIGNAL_HEADERS, "HEADERS"),
    "timeout_ms": (_OTLP_SIGNAL_TIMEOUT, "TIMEOUT"),
    "compression": (_OTLP_SIGNAL_COMPRESSION, "COMPRESSION"),
}


def _signal_setting(signal: str, name: str) -> Any:
    """A signal's own OTLP protocol, headers, timeout or compression; None: the general one."""
    rule, variable = _SIGNAL_RULES[name]
    return _setting(
        f"telemetry.otlp.{signal}_{name}",
        None,
        rule,
        f"OTLP {name} for {signal} only; unset: `telemetry.otlp.{name}`",
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_{variable}",
    )


def _setting(
    key: str, default: object, rule: _Rule, description: str, otel: str | None = None
) -> Any:
    """Declare one setting: property key, default, rule, meaning, and its OTEL_* variable."""
    parse, check = rule

    def validate(_instance: object, _attribute: object, value: object) -> None:
        check(key, value)

    converter = _to_float if rule is _POSITIVE_FLOAT else None
    meta = {"key": key, "parse": parse, "check": check, "description": description, "otel": otel}
    secret = rule in _SECRET_RULES  # header values are credentials: kept out of repr()
    return attrs.field(
        default=default, validator=validate, converter=converter, metadata=meta, repr=not secret
    )


@attrs.frozen(kw_only=True)
class TelemetrySettings:
    """Telemetry configuration; explicit invalid values raise ValueError at construction."""

    enabled: bool = _setting("telemetry.enabled", True, _BOOL, "Send telemetry")
    force_enable: bool = _setting(
        "telemetry.force_enable", False, _BOOL, "Send without fetching the server feature flag"
    )
    batch_size: int = _setting(
        "telemetry.batch_size", 100, _ints(1, 10_000), "Logs per export batch (max 10000)"
    )
    flush_interval_ms: int = _setting(
        "telemetry.flush_interval_ms", 5000, _ints(1), "Periodic flush interval"
    )
    max_retries: int = _setting(
        "telemetry.max_retries", 3, _ints(0), "Retries per batch after the first attempt"
    )
    retry_delay_ms: int = _setting(
        "telemetry.retry_delay_ms", 100, _ints(0), "First retry backoff; doubles each retry"
    )
    retry_max_delay_ms: int = _setting(
        "telemetry.retry_max_delay_ms", 1000, _ints(0), "Cap on the doubling retry backoff"
    )
    retry_after_max_s: int = _setting(
        "telemetry.retry_after_max_s", 60, _ints(0), "Cap on a server Retry-After"
    )
    breaker_enabled: bool = _setting(
        "telemetry.circuit_breaker.enabled", True, _BOOL, "Use the circuit breaker"
    )
    breaker_threshold: int = _setting(
        "telemetry.circuit_breaker.threshold", 5, _ints(1), "Consecutive failed batches to open"
    )
    breaker_open_s: int = _setting(
        "telemetry.circuit_breaker.open_s", 60, _ints(1), "Seconds OPEN before HALF_OPEN"
    )
    breaker_success_threshold: int = _setting(
        "telemetry.circuit_breaker.success_threshold", 2, _ints(1), "HALF_OPEN successes to close"
    )
    feature_flag_ttl_s: int = _setting(
        "telemetry.feature_flag_ttl_s", 900, _ints(60, 3600), "Feature flag cache lifetime"
    )
    max_pending_statements: int = _setting(
        "telemetry.max_pending_statements", 1000, _ints(1), "Statements aggregated at once"
    )
    max_queued_logs: int = _setting(
        "telemetry.max_queued_logs", 1000, _ints(1), "Logs buffered before export"
    )
    max_pending_batches: int = _setting(
        "telemetry.max_pending_batches", 20, _ints(1), "Exporter batches, incl. awaiting retry"
    )
    lane_capacity: int = _setting(
        "telemetry.lane_capacity",
        10_000,
        _ints(1),
        "Driver events waiting for the aggregator; more are dropped as `queue_full`",
    )
    shutdown_timeout_ms: int = _setting(
        "telemetry.shutdown_timeout_ms",
        2000,
        _ints(0, 60_000),
        "Bound on the final flush at exit (max 60000)",
    )
    idle_linger_ms: int = _setting(
        "telemetry.idle_linger_ms",
        3000,
        _ints(0, 600_000),
        "How long a host's tree stays after its last close for the next connect; 0 stops at once",
    )
    rate_limit_per_s: float = _setting(
        "telemetry.rate_limit_per_s", 10.0, _POSITIVE_FLOAT, "HTTP requests/s per host (refill)"
    )
    rate_limit_burst: int = _setting(
        "telemetry.rate_limit_burst", 20, _ints(1), "HTTP request burst per host"
    )
    connect_timeout_ms: int = _setting(
        "telemetry.http.connect_timeout_ms", 2000, _ints(1), "HTTP connect timeout"
    )
    read_timeout_ms: int = _setting(
        "telemetry.http.read_timeout_ms", 5000, _ints(1), "HTTP read timeout"
    )
    error_text: str = _setting(
        "telemetry.error_text",
        "masked",
        _ERROR_TEXT,
        "Error text sent: `masked` message, or `class_only` (class and code); never raw",
    )
    sink: str = _setting(
        "telemetry.sink", "http", _SINK, "Where logs go: `http`, `file`, `otlp` or `both`"
    )
    file_path: str | None = _setting(
        "telemetry.file_path", None, _OPTIONAL_STR, "JSON-lines file; required for sink `file`"
    )
    otlp_endpoint: str = _setting(
        "telemetry.otlp.endpoint",
        "http://localhost:4318",
        _OTLP_BASE_URL,
        "OTLP/HTTP base URL; `/v1/logs`, `/v1/metrics` appended",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    otlp_logs_endpoint: str | None = _setting(
        "telemetry.otlp.logs_endpoint",
        None,
        _OTLP_URL,
        "OTLP logs URL, used as given",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    )
    otlp_metrics_endpoint: str | None = _setting(
        "telemetry.otlp.metrics_endpoint",
        None,
        _OTLP_URL,
        "OTLP metrics URL, used as given",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    )
    otlp_protocol: str = _setting(
        "telemetry.otlp.protocol",
        "http/protobuf",
        _OTLP_PROTOCOL,
        "`http/protobuf` or `http/json`",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    )
    otlp_headers: str | None = _setting(
        "telemetry.otlp.headers",
        None,
        _OTLP_HEADERS,
        "Extra OTLP request headers, `k=v,k2=v2`",
        "OTEL_EXPORTER_OTLP_HEADERS",
    )
    otlp_timeout_ms: int = _setting(
        "telemetry.otlp.timeout_ms",
        10000,
        _ints(1),
        "OTLP request timeout",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    )
    otlp_compression: str = _setting(
        "telemetry.otlp.compression",
        "none",
        _OTLP_COMPRESSION,
        "`none` or `gzip`",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    )
    otlp_logs_protocol: str | None = _signal_setting("logs", "protocol")
    otlp_logs_headers: str | None = _signal_setting("logs", "headers")
    otlp_logs_timeout_ms: int | None = _signal_setting("logs", "timeout_ms")
    otlp_logs_compression: str | None = _signal_setting("logs", "compression")
    otlp_metrics_protocol: str | None = _signal_setting("metrics", "protocol")
    otlp_metrics_headers: str | None = _signal_setting("metrics", "headers")
    otlp_metrics_timeout_ms: int | None = _signal_setting("metrics", "timeout_ms")
    otlp_metrics_compression: str | None = _signal_setting("metrics", "compression")
    otlp_resource_attributes: str | None = _setting(
        "telemetry.otlp.resource_attributes",
        None,
        _OTLP_RESOURCE,
        "Extra resource attributes, `k=v,k2=v2`",
        "OTEL_RESOURCE_ATTRIBUTES",
    )
    otlp_service_name: str | None = _setting(
        "telemetry.otlp.service_name",
        None,
        _OPTIONAL_STR,
        "Resource `service.name`",
        "OTEL_SERVICE_NAME",
    )
    otlp_db_system: str = _setting(
        "telemetry.otlp.db_system",
        "databricks",
        _OTLP_NAME,
        "`db.system.name` on logs and metrics",
    )

    def __attrs_post_init__(self) -> None:
        if self.sink == "file" and not self.file_path:
            raise ValueError("telemetry.file_path is required when telemetry.sink is 'file'")

    @property
    def active(self) -> bool:
        """False when telemetry is off in configuration (`force_enable` wins over `enabled`;
        the kill switch turns both off): then no actor starts and no request is made."""
        return self.enabled or self.force_enable

    @property
    def flush_interval_s(self) -> float:
        """Periodic flush interval in seconds."""
        return self.flush_interval_ms / 1000

    @property
    def shutdown_timeout_s(self) -> float:
        """Bound on the final flush in seconds."""
        return self.shutdown_timeout_ms / 1000

    @property
    def idle_linger_s(self) -> float:
        """How long an idle tree lingers, in seconds."""
        return self.idle_linger_ms / 1000

    @property
    def connect_timeout_s(self) -> float:
        """HTTP connect timeout in seconds."""
        return self.connect_timeout_ms / 1000

    @property
    def read_timeout_s(self) -> float:
        """HTTP read timeout in seconds."""
        return self.read_timeout_ms / 1000

    @classmethod
    def from_sources(
        cls,
        properties: Mapping[str, object] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> TelemetrySettings:
        """Resolve each setting as property > environment > default; never raises."""
        env: Mapping[str, object] = os.environ if environ is None else environ
        props = _telemetry_properties(properties or {})
        resolved = {field.name: _resolve(field, props, env) for field in attrs.fields(cls)}
        values = {name: value for name, (value, _rank) in resolved.items()}
        _yield_signals_to_our_own(values, resolved)
        if values["sink"] == "file" and not values["file_path"]:
            _log.debug("telemetry.sink is 'file' without telemetry.file_path; using 'http'")
            values["sink"] = "http"
        kill = env.get(KILL_SWITCH_ENV, "")
        if isinstance(kill, str) and str.strip(kill).lower() in _TRUE_WORDS:
            _log.debug("%s is set; telemetry forced off", KILL_SWITCH_ENV)
            values["enabled"] = values["force_enable"] = False
        return cls(**values)


def _telemetry_properties(properties: Mapping[str, object]) -> dict[str, object]:
    """Return known telemetry properties keyed by lower-cased key; log unknown telemetry keys."""
    found: dict[str, object] = {}
    for name, raw in properties.items():
        # str.strip, not name.strip: a str subclass may override it (to raise)
        key = str.strip(name).lower() if isinstance(name, str) else ""
        if key in _KEYS:
            found[key] = raw
        elif key.startswith("telemetry."):
            _log.debug("ignoring unknown telemetry property %s", _show(name))
    return found


def _yield_signals_to_our_own(
    values: dict[str, Any], resolved: Mapping[str, tuple[Any, int]]
) -> None:
    """A signal's OTEL_EXPORTER_OTLP_{LOGS,METRICS}_* variable beats the general OTEL_* one,
    never our own general property or variable: a per-signal value from a lower source than
    its general setting's is left unset (the general one applies)."""
    for signal in ("logs", "metrics"):
        for name in _SIGNAL_RULES:
            own, general = f"otlp_{signal}_{name}", f"otlp_{name}"
            if resolved[general][1] < resolved[own][1]:
                values[own] = None


_DEFAULT_RANK = 3  # property 0, our environment variable 1, the OpenTelemetry one 2


def _resolve(
    field: attrs.Attribute[Any], props: Mapping[str, object], env: Mapping[str, object]
) -> tuple[Any, int]:
    """The first valid value among property, environment variable and default, and its rank."""
    key: str = field.metadata["key"]
    sources = [("property", key, props), ("environment", env_var_name(key), env)]
    if field.metadata["otel"]:  # the OpenTelemetry variable, below our own
        sources.append(("environment", field.metadata["otel"], env))
    for rank, (source, name, mapping) in enumerate(sources):
        if name not in mapping:
            continue
        raw = mapping[name]
        try:  # values come from the host and the operator: arbitrary objects, never fatal
            value = field.metadata["parse"](raw)
            field.metadata["check"](key, value)
        except Exception as error:
            _log.debug("ignoring %s %s=%s: %s", source, name, _show(raw), error)
            continue
        return value, rank
    return field.default, _DEFAULT_RANK


@attrs.frozen(kw_only=True)
class SettingSpec:
    """One documented setting: property key, attribute name, default and meaning."""

    key: str
    field: str
    default: object
    description: str
    otel_env: str | None = None

    @property
    def env_var(self) -> str:
        """Environment variable that sets this setting when no property does."""
        return env_var_name(self.key)


SETTINGS_TABLE: tuple[SettingSpec, ...] = tuple(
    SettingSpec(
        key=field.metadata["key"],
        field=field.name,
        default=field.default,
        description=field.metadata["description"],
        otel_env=field.metadata["otel"],
    )
    for field in attrs.fields(TelemetrySettings)
)
_KEYS = frozenset(spec.key for spec in SETTINGS_TABLE)


def _markdown_default(value: object) -> str:
    if value is None:
        return "(unset)"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def settings_table_markdown() -> str:
    """Render SETTINGS_TABLE as a Markdown table (key | env var | default | meaning)."""
    rows = ["| key | env var | default | meaning |", "|---|---|---|---|"]
    rows += [
        f"| `{s.key}` | `{s.env_var}`{f', then `{s.otel_env}`' if s.otel_env else ''} "
        f"| {_markdown_default(s.default)} | {s.description} |"
        for s in SETTINGS_TABLE
    ]
    return "\n".join(rows) + "\n"
