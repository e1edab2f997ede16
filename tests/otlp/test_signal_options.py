"""Each OTLP signal's own settings: per-signal variables over the general ones, ours over both."""

from __future__ import annotations

from typing import Any

from test_mapping import frontend, statement

from actors._export.http import HttpOutcome
from actors._export.otlp import OtlpTransport
from actors._export.otlp_signal import SignalOptions
from messages.commands import BatchSettled
from messages.config import TelemetrySettings
from messages.wire import encode_frontend_log, encode_request


def test_per_signal_otel_variables_win_over_the_general_ones_for_their_signal() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "tenant=all",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "tenant=logs",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "900",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "gzip",
    }

    settings = TelemetrySettings.from_sources({}, environ)
    logs, metrics = (SignalOptions.of(settings, s) for s in ("logs", "metrics"))

    assert (logs.protocol, metrics.protocol) == ("http/json", "http/protobuf")
    assert (logs.headers["tenant"], metrics.headers["tenant"]) == ("logs", "all")
    assert (logs.timeout_s, metrics.timeout_s) == (0.9, 2.5)
    assert (logs.gzip, metrics.gzip) == (False, True)
    assert metrics.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in logs.headers


def test_our_general_settings_win_over_the_per_signal_otel_variables() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "9000",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "gzip",
        "DATABRICKS_TELEMETRY_OTLP_COMPRESSION": "none",
    }
    properties = {"telemetry.otlp.protocol": "http/protobuf", "telemetry.otlp.timeout_ms": "700"}

    settings = TelemetrySettings.from_sources(properties, environ)
    logs, metrics = (SignalOptions.of(settings, s) for s in ("logs", "metrics"))

    assert logs.protocol == metrics.protocol == "http/protobuf"
    assert logs.timeout_s == metrics.timeout_s == 0.7
    assert logs.gzip is metrics.gzip is False
    assert settings.otlp_logs_protocol is settings.otlp_metrics_timeout_ms is None


def test_our_per_signal_property_wins_over_everything_for_its_signal() -> None:
    environ = {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}
    properties = {
        "telemetry.otlp.protocol": "http/protobuf",
        "telemetry.otlp.metrics_protocol": "http/json",
    }

    settings = TelemetrySettings.from_sources(properties, environ)

    assert SignalOptions.of(settings, "metrics").protocol == "http/json"
    assert SignalOptions.of(settings, "logs").protocol == "http/protobuf"


def test_the_sink_sends_each_signal_with_its_own_protocol_headers_and_timeout() -> None:
    sent: list[tuple[str, dict[str, str], float | None]] = []

    class Inner:
        def request(self, method: str, url: str, **kwargs: Any) -> Any:
            sent.append((url, dict(kwargs["headers"]), kwargs["timeout_s"]))
            return HttpOutcome(status=200)

    settings = TelemetrySettings(
        sink="otlp",
        otlp_headers="tenant=all",
        otlp_metrics_protocol="http/json",
        otlp_metrics_headers="tenant=metrics",
        otlp_logs_timeout_ms=400,
    )
    transport = OtlpTransport(settings, inner=Inner())
    body = encode_request([encode_frontend_log(frontend(statement()))], 1)

    transport.request("POST", "https://h/telemetry-ext", body=body, headers={})
    transport.settled(BatchSettled(batch_id=1, exported_events=1, exported_logs=1, dropped={}))

    (logs_url, logs_headers, logs_timeout), (metrics_url, metrics_headers, metrics_timeout) = sent
    assert logs_url.endswith("/v1/logs") and metrics_url.endswith("/v1/metrics")
    assert logs_headers["Content-Type"] == "application/x-protobuf"
    assert metrics_headers["Content-Type"] == "application/json"
    assert (logs_headers["tenant"], metrics_headers["tenant"]) == ("all", "metrics")
    assert (logs_timeout, metrics_timeout) == (0.4, 10.0)
