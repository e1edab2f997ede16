"""The OTLP sink's transport contract: it never raises into the exporter, whatever breaks."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors._export import otlp as otlp_sink
from actors._export.classify import ErrorKind
from actors._export.http import HttpOutcome
from actors._export.mirror import MirrorTransport
from actors._export.otlp import OtlpTransport
from actors._export.retry import error_kind
from messages.commands import BatchSettled
from messages.config import TelemetrySettings
from messages.records import FrontendLog
from messages.wire import encode_frontend_log, encode_request

SETTINGS = TelemetrySettings(sink="otlp")


class Answering:
    """An inner transport answering every request with `status`, recording the URLs."""

    def __init__(self, status: int | None = 200) -> None:
        self.status = status
        self.urls: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> HttpOutcome:
        self.urls.append(url)
        if self.status is None:
            return HttpOutcome(status=None, error="ConnectionRefusedError")
        if "/v1/" not in url:  # the Databricks service of a mirror
            return HttpOutcome(status=self.status, body=b'{"numProtoSuccess": 2}')
        return HttpOutcome(status=self.status)


def body(count: int = 2) -> bytes:
    logs = [FrontendLog(frontend_log_event_id=f"e{n}") for n in range(count)]
    return encode_request([encode_frontend_log(log) for log in logs], 1)


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom")


def test_a_body_that_cannot_be_mapped_is_a_terminal_outcome_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = Answering()
    monkeypatch.setattr(otlp_sink, "logs_request", boom)

    outcome = OtlpTransport(SETTINGS, inner=inner).request(
        "POST", "https://h/telemetry-ext", body=body(), headers={}
    )

    assert error_kind(outcome) is ErrorKind.TERMINAL  # retrying would fail the same way
    assert inner.urls == []


def test_metrics_that_break_do_not_change_what_the_logs_answer_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = Answering()
    transport = OtlpTransport(SETTINGS, inner=inner)
    monkeypatch.setattr(transport._metrics, "record", boom)

    outcome = transport.request("POST", "https://h/telemetry-ext", body=body(), headers={})

    assert outcome.ok and b'"numProtoSuccess": 2' in outcome.body


def test_a_breaking_mirror_leaves_the_service_answer_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Answering()
    collector = OtlpTransport(SETTINGS, inner=Answering())
    monkeypatch.setattr(collector, "send_records", boom)
    tee = MirrorTransport(service, collector)

    outcome = tee.request("POST", "https://h/telemetry-ext", body=body(), headers={})

    assert outcome.ok and outcome.body == b'{"numProtoSuccess": 2}'


def test_a_refused_mirror_is_counted_and_the_service_answer_stands() -> None:
    collector = OtlpTransport(SETTINGS, inner=Answering(status=None))
    tee = MirrorTransport(Answering(), collector)

    outcome = tee.request("POST", "https://h/telemetry-ext", body=body(), headers={})

    assert outcome.ok
    assert collector.accounts["mirror_undelivered"] == {"export_failed": 2}


def test_metrics_while_draining_stay_within_the_same_deadline() -> None:
    class Slow(Answering):
        """Its logs request takes 200 ms (a slow collector), as a real one can."""

        def __init__(self) -> None:
            super().__init__()
            self.timeouts: list[float | None] = []

        def request(self, method: str, url: str, **kwargs: Any) -> HttpOutcome:
            self.timeouts.append(kwargs["timeout_s"])
            if url.endswith("/v1/logs"):
                threading.Event().wait(0.2)
            return super().request(method, url, **kwargs)

    inner = Slow()
    transport = OtlpTransport(SETTINGS, inner=inner)
    settled = BatchSettled(batch_id=1, exported_events=2, exported_logs=2, dropped={})

    transport.request("POST", "https://h/telemetry-ext", body=body(), headers={}, timeout_s=0.5)
    transport.settled(settled, 0.3)  # what the exporter has left of its drain deadline

    assert inner.timeouts == [0.5, 0.3]  # logs, then the final metrics, within what is left


def test_no_metrics_are_sent_once_the_drain_deadline_is_all_but_spent() -> None:
    inner = Answering()
    transport = OtlpTransport(SETTINGS, inner=inner)
    settled = BatchSettled(batch_id=1, exported_events=2, exported_logs=2, dropped={})

    transport.request("POST", "https://h/telemetry-ext", body=body(), headers={}, timeout_s=0.5)
    transport.settled(settled, 0.01)

    assert inner.urls == ["http://localhost:4318/v1/logs"]
