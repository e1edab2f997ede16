"""FeatureFlagActor as a real actor: decides once per fetch, caches by TTL, never blocks anyone.

A `FakeTransport` answers the flag endpoint, a `ManualTimer` records the refresh (the test fires
it), a `FakeClock` makes `expires_in_s` exact, and a `Recorder` plays the aggregator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import pykka
import pytest

from actors._export.http import HttpOutcome
from actors._runtime.process import Holders
from actors.feature_flags import FAILURE_CACHE_S, FeatureFlagActor, FlagView, clamp_ttl_s
from messages.commands import (
    ConnectionContext,
    DumpState,
    FlagDecided,
    RefreshFlag,
    UseConnection,
)
from messages.config import TelemetrySettings
from messages.records import FeatureFlag, FeatureFlagResponse, SystemConfiguration
from messages.wire import (
    TELEMETRY_FLAG_NAME,
    encode_feature_flags,
)

if TYPE_CHECKING:
    from conftest import FakeClock, FakeTransport, ManualTimer, Recording

ASK_S = 2.0
BASE_URL = "https://host.example.com"
FLAG_URL = BASE_URL + "/api/2.0/connector-service/feature-flags/PYTHON/1.2.3"


def flag_answer(
    value: str | None = "true", ttl_s: object = 900, name: str = TELEMETRY_FLAG_NAME
) -> HttpOutcome:
    """A flag answer through the client's converter; a ttl that is no int is put in by hand."""
    flags = () if value is None else (FeatureFlag(name=name, value=value),)
    if ttl_s is None or (isinstance(ttl_s, int) and not isinstance(ttl_s, bool)):
        return HttpOutcome(
            status=200,
            body=encode_feature_flags(FeatureFlagResponse(flags=flags, ttl_seconds=ttl_s)),
        )
    body = json.loads(encode_feature_flags(FeatureFlagResponse(flags=flags)))
    body["ttl_seconds"] = ttl_s  # what a careless server may send: no record can carry it
    return HttpOutcome(status=200, body=json.dumps(body).encode())


def make_context(
    connection_id: int = 1, auth: Callable[[], Mapping[str, str]] | None = None
) -> ConnectionContext:
    return ConnectionContext(
        connection_id=connection_id,
        host="host.example.com",
        auth=auth,
        user_agent="TestDriver/1.2.3",
        system_configuration=SystemConfiguration(driver_name="TestDriver"),
    )


def bearer(token: str) -> Callable[[], Mapping[str, str]]:
    return lambda: {"Authorization": f"Bearer {token}"}


@attrs.define
class Harness:
    ref: pykka.ActorRef[Any]
    aggregator: Recording
    transport: FakeTransport
    timer: ManualTimer
    view: FlagView

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = self.ref.ask(DumpState(), timeout=ASK_S)
        json.dumps(state)
        return state

    def decisions(self, count: int = 1) -> list[FlagDecided]:
        return self.aggregator.wait_for(FlagDecided, count=count)

    def refresh_delays(self) -> list[float]:
        return [s.delay_s for s in self.timer.scheduled(RefreshFlag)]


@pytest.fixture
def start(
    recorder: Callable[[], Recording],
    transport: FakeTransport,
    manual_timer: ManualTimer,
    clock: FakeClock,
) -> Callable[..., Harness]:
    """Start a flag actor; `answers` are scripted before it starts fetching."""

    def start_(
        *answers: HttpOutcome,
        context: ConnectionContext | None = None,
        driver_version: str = "1.2.3",
        holders: Holders | None = None,
        **overrides: Any,
    ) -> Harness:
        transport.answer(*answers)
        aggregator = recorder()
        view = FlagView()
        ref = FeatureFlagActor.start(
            base_url=BASE_URL,
            settings=TelemetrySettings(**overrides),
            transport=transport,
            timer=manual_timer,
            aggregator=aggregator.ref,
            view=view,
            context=context or make_context(auth=bearer("token-1")),
            driver_version=driver_version,
            clock=clock,
            holders=holders,
        )
        return Harness(
            ref=ref, aggregator=aggregator, transport=transport, timer=manual_timer, view=view
        )

    return start_


def test_force_enable_decides_on_without_any_request(start: Callable[..., Harness]) -> None:
    flags = start(force_enable=True)

    (decided,) = flags.decisions()
    assert decided == FlagDecided(enabled=True)
    assert flags.snapshot()["source"] == "force_enable"
    state = flags.snapshot()
    assert (state["enabled"], state["source"], state["fetches"]) == (True, "force_enable", 0)
    assert state["expires_in_s"] is None
    assert flags.transport.requests == []
    assert flags.timer.scheduled(RefreshFlag) == []
    assert flags.view.enabled is True


@pytest.mark.parametrize("value", ["true", "TRUE", "True", " true "])
def test_server_flag_true_in_any_case_turns_telemetry_on(
    start: Callable[..., Harness], value: str
) -> None:
    flags = start(flag_answer(value))

    (decided,) = flags.decisions()
    assert decided == FlagDecided(enabled=True)
    assert flags.snapshot()["source"] == "server"
    assert flags.view.enabled is True
    assert flags.snapshot()["last_status"] == 200


@pytest.mark.parametrize(
    "answer",
    [
        flag_answer("false"),
        flag_answer("yes"),
        flag_answer(""),
        flag_answer(None),
        flag_answer("true", name="some.other.flag"),
    ],
    ids=["false", "yes", "empty", "missing", "other-flag"],
)
def test_server_flag_false_or_missing_turns_telemetry_off(
    start: Callable[..., Harness], answer: HttpOutcome
) -> None:
    flags = start(answer)

    (decided,) = flags.decisions()
    assert decided == FlagDecided(enabled=False)
    assert flags.snapshot()["source"] == "server"
    assert flags.view.enabled is False
    assert flags.snapshot()["failures"] == 0


@pytest.mark.parametrize(
    ("ttl", "expected_s"),
    [(5, 60), (60, 60), (900, 900), (3600, 3600), (99999, 3600), (None, 900), ("600", 600)],
)
def test_server_ttl_is_clamped_to_one_minute_to_one_hour(
    start: Callable[..., Harness], ttl: object, expected_s: int
) -> None:
    flags = start(flag_answer("true", ttl_s=ttl))

    flags.decisions()
    assert flags.snapshot()["expires_in_s"] == expected_s
    (delay_s,) = flags.refresh_delays()
    assert expected_s - 30 <= delay_s < expected_s  # refreshed shortly before expiry


def test_ttl_default_comes_from_settings_when_the_server_gives_none(
    start: Callable[..., Harness],
) -> None:
    flags = start(flag_answer("true", ttl_s=None), feature_flag_ttl_s=120)
    flags.decisions()
    assert flags.snapshot()["expires_in_s"] == 120


@pytest.mark.parametrize(("raw", "expected"), [(True, 900), (-5, 60), (0, 60), (61, 61)])
def test_clamp_ttl_rejects_bools_and_clamps_ints(raw: object, expected: int) -> None:
    assert clamp_ttl_s(raw, 900) == expected


def test_expiry_counts_down_with_the_clock(start: Callable[..., Harness], clock: FakeClock) -> None:
    flags = start(flag_answer("true", ttl_s=600))
    flags.decisions()
    clock.advance(100.5)
    assert flags.snapshot()["expires_in_s"] == 499.5


def test_not_found_means_off_and_is_not_asked_again_before_the_ttl(
    start: Callable[..., Harness],
) -> None:
    flags = start(HttpOutcome(status=404, body=b"{}"), feature_flag_ttl_s=900)

    (decided,) = flags.decisions()
    assert decided == FlagDecided(enabled=False)
    assert flags.snapshot()["source"] == "not_found"
    state = flags.snapshot()
    assert (state["fetches"], state["failures"], state["expires_in_s"]) == (1, 1, 900)
    (delay_s,) = flags.refresh_delays()
    assert delay_s >= 870
    assert len(flags.transport.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        HttpOutcome(status=500, body=b"{}"),
        HttpOutcome(status=503, body=b"{}", retry_after_s=1.0),
        HttpOutcome(status=401, body=b"{}"),
        HttpOutcome(status=None, error="ConnectTimeoutError"),
        HttpOutcome(status=200, body=b"<html>"),
        HttpOutcome(status=200, body=b'{"flags": "nope"}'),
    ],
    ids=["500", "503", "401", "transport-error", "not-json", "bad-shape"],
)
def test_failed_fetch_means_off_cached_for_sixty_seconds(
    start: Callable[..., Harness], answer: HttpOutcome
) -> None:
    flags = start(answer)

    (decided,) = flags.decisions()
    assert decided == FlagDecided(enabled=False)
    assert flags.snapshot()["source"] == "fetch_failed"
    assert flags.view.enabled is False
    state = flags.snapshot()
    assert state["expires_in_s"] == FAILURE_CACHE_S
    (delay_s,) = flags.refresh_delays()
    assert 30 <= delay_s < FAILURE_CACHE_S
    assert len(flags.transport.requests) == 1


def test_refresh_before_expiry_fetches_again_and_updates_the_view(
    start: Callable[..., Harness],
) -> None:
    flags = start(flag_answer("true"), flag_answer("false"), flag_answer("true"))
    flags.decisions()
    assert flags.view.enabled is True

    flags.timer.fire(RefreshFlag)
    assert flags.decisions(2)[-1] == FlagDecided(enabled=False)
    assert flags.snapshot()["source"] == "server"
    assert flags.view.enabled is False

    flags.timer.fire(RefreshFlag)
    assert flags.decisions(3)[-1].enabled is True
    assert flags.view.enabled is True
    assert len(flags.transport.requests) == 3
    assert flags.snapshot()["fetches"] == 3


def test_stopping_cancels_the_scheduled_refresh(start: Callable[..., Harness]) -> None:
    flags = start(flag_answer("true"))
    flags.decisions()
    (refresh,) = flags.timer.scheduled(RefreshFlag)

    flags.ref.stop(timeout=ASK_S)
    assert refresh.handle.cancelled


def test_fetch_uses_the_flag_url_and_the_connections_auth(start: Callable[..., Harness]) -> None:
    flags = start(flag_answer("true"), context=make_context(auth=bearer("token-1")))

    (request,) = flags.transport.wait_requests(1)
    assert (request.method, request.url, request.body) == ("GET", FLAG_URL, None)
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["User-Agent"] == "TestDriver/1.2.3"
    assert request.headers["Accept"] == "application/json"
    assert flags.snapshot()["url"] == FLAG_URL


def test_driver_version_is_quoted_into_one_path_segment(start: Callable[..., Harness]) -> None:
    flags = start(flag_answer("true"), driver_version="1.2.3+local/../x y")

    (request,) = flags.transport.wait_requests(1)
    assert request.url == BASE_URL + (
        "/api/2.0/connector-service/feature-flags/PYTHON/1.2.3%2Blocal%2F..%2Fx%20y"
    )


def test_use_connection_switches_an_unauthenticated_fetcher_to_an_authed_connection(
    start: Callable[..., Harness],
) -> None:
    flags = start(HttpOutcome(status=401, body=b"{}"), context=make_context(1, auth=None))
    flags.decisions()
    assert "Authorization" not in flags.transport.requests[0].headers

    flags.ref.tell(UseConnection(context=make_context(2, auth=bearer("token-2"))))
    flags.ref.tell(UseConnection(context=make_context(3, auth=None)))  # keeps the authed one
    flags.timer.fire(RefreshFlag)

    assert flags.decisions(2)[-1].enabled is True
    assert flags.transport.requests[1].headers["Authorization"] == "Bearer token-2"


def test_use_connection_moves_to_the_newest_authed_connection(
    start: Callable[..., Harness],
) -> None:
    flags = start(flag_answer("true"))
    flags.decisions()
    flags.ref.tell(UseConnection(context=make_context(2, auth=bearer("token-2"))))
    flags.timer.fire(RefreshFlag)

    requests = flags.transport.wait_requests(2)
    assert [r.headers["Authorization"] for r in requests] == ["Bearer token-1", "Bearer token-2"]


def test_a_fetch_uses_the_newest_connection_that_joined_through_the_published_lease(
    start: Callable[..., Harness],
) -> None:
    holders = Holders()
    flags = start(flag_answer("true"), flag_answer("true"), flag_answer("true"), holders=holders)
    flags.decisions()
    holders.latest = make_context(2, auth=bearer("token-2"))
    flags.timer.fire(RefreshFlag)
    flags.decisions(2)
    holders.latest = make_context(3, auth=None)  # an unauthenticated one never replaces it
    flags.timer.fire(RefreshFlag)

    requests = flags.transport.wait_requests(3)
    assert [r.headers["Authorization"] for r in requests] == [
        "Bearer token-1",
        "Bearer token-2",
        "Bearer token-2",
    ]


def test_an_auth_provider_that_raises_still_fetches_without_auth(
    start: Callable[..., Harness],
) -> None:
    def broken() -> Mapping[str, str]:
        raise RuntimeError("token expired")

    flags = start(flag_answer("true"), context=make_context(auth=broken))

    assert flags.decisions()[0].enabled is True
    (request,) = flags.transport.requests
    assert "Authorization" not in request.headers
    assert flags.snapshot()["handler_errors"] == 0


def test_unexpected_messages_are_ignored(start: Callable[..., Harness]) -> None:
    flags = start(flag_answer("true"))
    flags.ref.tell("what is this")
    flags.ref.tell(object())
    flags.decisions()
    state = flags.snapshot()
    assert (state["handler_errors"], state["fetches"]) == (0, 1)
