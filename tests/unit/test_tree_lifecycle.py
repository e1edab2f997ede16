"""Host trees through the facade: one tree per host, shared by refcount, stopped by the last close.

Most tests use an in-process `requests.Session`-like fake (no network, instant answers); the tests
that need a real server (draining to it, a flag endpoint that hangs) use a `LocalEndpoint` on
127.0.0.1:0.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest

import actors
from actors._runtime.hosts import HostAddress, normalise_host
from actors.tools.local_endpoint import Fault, LocalEndpoint
from messages import events as ev
from messages.config import TelemetrySettings
from messages.records import ExportResponse, FeatureFlag, FeatureFlagResponse
from messages.sysconfig import DriverInfo
from messages.wire import (
    TELEMETRY_FLAG_NAME,
    decode_request,
    encode_export_response,
    encode_feature_flags,
)

HOST = "host.example.com"
DRIVER = DriverInfo(name="TestDriver", version="1.0.0")
TOKEN = "local-token"
# These tests are about a tree's stop: no linger (0 restores stop-at-last-close).
SETTINGS = TelemetrySettings(
    idle_linger_ms=0,
    batch_size=10,
    flush_interval_ms=50,
    retry_delay_ms=10,
    shutdown_timeout_ms=1000,
    connect_timeout_ms=500,
    read_timeout_ms=1000,
)
PREFIXES = ("HostSupervisor-", "FeatureFlagActor-", "AggregatorActor-", "ExporterActor-")


def auth() -> Mapping[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# --- a requests.Session stand-in ----------------------------------------------------------------


@attrs.frozen
class FakeResponse:
    status_code: int
    content: bytes
    headers: Mapping[str, str] = attrs.field(factory=dict)


class FakeSession:
    """Answers the flag (on) and every export (all accepted, or `export_status`) at once.

    Counts what it got.
    """

    def __init__(self) -> None:
        self.export_status = 200
        self._lock = threading.Lock()
        self.flag_fetches = 0
        self.exported_logs = 0
        self.export_posts: list[tuple[str, dict[str, str]]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        allow_redirects: bool,
    ) -> FakeResponse:
        if method == "GET":
            with self._lock:
                self.flag_fetches += 1
            flag = FeatureFlag(name=TELEMETRY_FLAG_NAME, value="true")
            answer = FeatureFlagResponse(flags=(flag,), ttl_seconds=900)
            return FakeResponse(200, encode_feature_flags(answer))
        if self.export_status != 200:
            return FakeResponse(self.export_status, b"{}")
        logs = decode_request(data or b"").proto_logs
        with self._lock:
            self.exported_logs += len(logs)
            self.export_posts.append((url, dict(headers)))
        return FakeResponse(
            200, encode_export_response(ExportResponse(num_proto_success=len(logs)))
        )


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def connect(session: FakeSession) -> Iterator[Callable[..., actors.Connection]]:
    """`connect(host=HOST, **kw)` with the fake session and small settings; closes all after."""
    opened: list[actors.Connection] = []

    def connect_(host: str = HOST, **options: Any) -> actors.Connection:
        options.setdefault("driver", DRIVER)
        options.setdefault("auth", auth)
        options.setdefault("settings", SETTINGS)
        options.setdefault("session", session)
        connection = actors.connect(host, **options)
        opened.append(connection)
        return connection

    yield connect_
    for connection in opened:
        connection.close()


def thread_names() -> list[str]:
    return [t.name for t in threading.enumerate()]


def tree_census(key: str = HOST) -> collections.Counter[str]:
    """How many live threads of each kind a host's tree has (timers are named by host)."""
    census: collections.Counter[str] = collections.Counter()
    for name in thread_names():
        for prefix in PREFIXES:
            if name.startswith(prefix):
                census[prefix] += 1
        if name.startswith(f"telemetry-timer-{key}#"):
            census["timer"] += 1
    return census


def host_report(key: str = HOST) -> dict[str, Any]:
    state = actors.dump_state(2.0)
    json.dumps(state)
    report: dict[str, Any] = state["hosts"].get(key, {})
    return report


def finished(key: str, generations: int = 1) -> Callable[[], dict[str, Any] | None]:
    """A condition: the host has `generations` finished trees and nothing left pending."""

    def check() -> dict[str, Any] | None:
        report = host_report(key)
        done = len(report.get("finished_generations", [])) >= generations
        return report if done and not report.get("live") else None

    return check


def no_tree_threads() -> bool:
    return not any(name.startswith((*PREFIXES, "telemetry-timer-")) for name in thread_names())


# --- host normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "key", "scheme"),
    [
        ("host.example.com", "host.example.com", "https"),
        ("HTTPS://Host.Example.COM:443/sql/1.0?o=1#x", "host.example.com", "https"),
        ("host.example.com.", "host.example.com", "https"),
        ("  host.example.com\t", "host.example.com", "https"),
        ("host.example.com:443", "host.example.com", "https"),
        ("host.example.com:0443", "host.example.com", "https"),
        ("host.example.com:8443", "host.example.com:8443", "https"),
        ("host.example.com.:8443", "host.example.com:8443", "https"),
        ("http://host.example.com:80", "host.example.com", "http"),
        ("http://host.example.com:443", "host.example.com:443", "http"),
        ("https://host.example.com:80", "host.example.com:80", "https"),
        ("token:secret@host.example.com", "host.example.com", "https"),
        ("https://user:p@ss@host.example.com/path", "host.example.com", "https"),
        ("host.example.com?o=123", "host.example.com", "https"),
        ("127.0.0.1:8080", "127.0.0.1:8080", "https"),
        ("http://127.0.0.1:65535", "127.0.0.1:65535", "http"),
        ("under_score-1.example.com", "under_score-1.example.com", "https"),
        ("[::1]", "[::1]", "https"),
        ("[::1]:8443", "[::1]:8443", "https"),
        ("https://[2001:DB8::1]:443/", "[2001:db8::1]", "https"),
        ("[2001:0db8:0000:0000::0001]", "[2001:db8::1]", "https"),
        ("http://user@[::1]:80/x", "[::1]", "http"),
    ],
)
def test_hosts_are_normalised_to_one_key_per_server(given: str, key: str, scheme: str) -> None:
    address = normalise_host(given)
    assert address == HostAddress(key=key, scheme=scheme)
    assert address.base_url == f"{scheme}://{key}"


def test_default_scheme_applies_only_without_a_scheme() -> None:
    assert normalise_host("host:80", default_scheme="http").key == "host"
    assert normalise_host("https://host:80", default_scheme="http").key == "host:80"


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        None,
        123,
        b"host.example.com",
        "ftp://host.example.com",
        "://host.example.com",
        "https://",
        "host.example.com:0",
        "host.example.com:65536",
        "host.example.com:-1",
        "host.example.com:abc",
        "host.example.com:",
        "host.example.com:1:2",
        "host.example.com:\u0663",  # an Arabic-Indic digit is no port
        "ho st.example.com",
        "host..example.com",
        "host.example.com..",
        "-host.example.com",
        "höst.example.com",
        ".",
        "a" * 300,
        "[]",
        "[zz::1]",
        "[::1",
        "[::1]x",
        "[:::::]",
        "[fe80::1%25eth0]",
        "user@",
    ],
)
def test_bad_hosts_raise_value_error(given: Any) -> None:
    with pytest.raises(ValueError):
        normalise_host(given)


# --- one tree per host --------------------------------------------------------------------------


def test_first_connect_starts_one_tree_of_three_children_a_supervisor_and_a_timer(
    connect: Callable[..., actors.Connection],
) -> None:
    connection = connect()

    assert connection.host == HOST
    assert connection.enabled
    assert tree_census() == {prefix: 1 for prefix in (*PREFIXES, "timer")}
    report = host_report()
    assert (report["live"], report["refcount"]) == (True, 1)
    assert report["supervisor"]["children_alive"] == 3
    assert report["supervisor"]["timer_alive"] is True
    assert report["accounting"]["balanced"]


def test_connections_to_one_host_in_any_spelling_share_its_tree(
    connect: Callable[..., actors.Connection],
) -> None:
    first = connect(HOST)
    generation = host_report()["generation"]
    second = connect("HTTPS://Host.Example.com:443/")
    assert host_report()["refcount"] == 2
    third = connect("host.example.com.")

    assert first.host == second.host == third.host == HOST
    report = host_report()
    assert (report["refcount"], report["generation"]) == (3, generation)
    assert tree_census() == {prefix: 1 for prefix in (*PREFIXES, "timer")}
    assert actors.dump_state()["registry"]["connects"] == 3


def test_different_hosts_get_different_trees(connect: Callable[..., actors.Connection]) -> None:
    connect("a.example.com")
    connect("b.example.com")
    connect("b.example.com:8443")

    hosts = actors.dump_state()["hosts"]
    assert sorted(hosts) == ["a.example.com", "b.example.com", "b.example.com:8443"]
    assert len({h["generation"] for h in hosts.values()}) == 3
    assert sum(tree_census("b.example.com").values()) == 5 * 3 - 2  # 3 trees, 1 timer named b


def test_last_close_drains_and_stops_the_tree_and_its_threads_end(
    connect: Callable[..., actors.Connection],
    session: FakeSession,
    wait_until: Callable[..., Any],
) -> None:
    first, second = connect(), connect()
    for i in range(3):
        assert first.tell(ev.ConnectionOpened(session_id=f"s-{i}"))
    first.close()
    assert host_report()["refcount"] == 1
    assert tree_census()["AggregatorActor-"] == 1

    second.close()
    wait_until(no_tree_threads, what="the tree's threads to end")
    report = wait_until(finished(HOST), what="the tree's final report")
    (final,) = report["finished_generations"]
    assert (final["received"], final["exported"], final["pending"]) == (3, 3, 0)
    account = report["accounting"]
    assert (account["told"], account["exported"], account["balanced"]) == (3, 3, True)
    assert session.exported_logs == 3
    assert all(url.endswith("/telemetry-ext") for url, _ in session.export_posts)


def test_a_connect_after_the_last_close_starts_a_fresh_generation(
    connect: Callable[..., actors.Connection], wait_until: Callable[..., Any]
) -> None:
    connect().close()
    first_generation = wait_until(finished(HOST))["finished_generations"][0]["generation"]

    connect()
    report = host_report()
    assert report["live"]
    assert report["generation"] > first_generation
    assert tree_census() == {prefix: 1 for prefix in (*PREFIXES, "timer")}


def test_the_next_tree_of_a_host_continues_from_the_breaker_its_last_tree_left_open(
    connect: Callable[..., actors.Connection],
    session: FakeSession,
    wait_until: Callable[..., Any],
) -> None:
    settings = attrs.evolve(SETTINGS, breaker_threshold=1, breaker_open_s=600, max_retries=0)
    session.export_status = 503
    first = connect(settings=settings)
    assert first.tell(ev.ConnectionOpened(session_id="s-1"))
    first.close()
    (final,) = wait_until(finished(HOST))["finished_generations"]
    assert final["exporter"]["breaker"]["state"] == "OPEN"

    session.export_status = 200
    connect(settings=settings)
    breaker = host_report()["exporter"]["breaker"]
    assert breaker["state"] == "OPEN"  # handed over, not a fresh CLOSED breaker
    assert breaker["transitions"] == {"CLOSED->OPEN": 1}
    assert 0 < breaker["reopens_in_s"] <= 600


def test_close_is_idempotent(connect: Callable[..., actors.Connection]) -> None:
    connection = connect()
    connection.close()
    connection.close()
    with connection:
        pass

    assert actors.dump_state()["registry"]["disconnects"] == 1
    assert not connection.enabled


def test_tell_after_close_returns_false_and_is_counted_as_after_close(
    connect: Callable[..., actors.Connection], wait_until: Callable[..., Any]
) -> None:
    connection = connect()
    assert connection.tell(ev.ConnectionOpened(session_id="s-1"))
    connection.close()
    assert connection.tell(ev.ConnectionOpened(session_id="s-2")) is False
    assert connection.tell(ev.ConnectionClosed(session_id="s-2")) is False

    report = wait_until(finished(HOST))
    account = report["accounting"]
    assert account["dropped"] == {"after_close": 2}
    assert (account["told"], account["exported"], account["pending"]) == (3, 1, 0)
    assert account["balanced"]


def test_disabled_telemetry_starts_no_threads_and_tell_returns_false(
    connect: Callable[..., actors.Connection],
) -> None:
    before = set(threading.enumerate())
    connection = connect(settings=TelemetrySettings(enabled=False))

    assert connection.tell(ev.ConnectionOpened(session_id="s-1")) is False
    assert connection.enabled is False
    assert set(threading.enumerate()) - before == set()
    assert actors.dump_state()["hosts"] == {}
    connection.close()


def test_the_kill_switch_environment_variable_disables_telemetry(
    connect: Callable[..., actors.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_TELEMETRY_DISABLED", "yes")
    before = set(threading.enumerate())
    connection = connect(settings=None, properties={"telemetry.force_enable": "true"})

    assert connection.enabled is False
    assert connection.tell(ev.ConnectionOpened(session_id="s-1")) is False
    assert set(threading.enumerate()) - before == set()


def test_bad_explicit_input_raises_before_any_thread_starts() -> None:
    before = set(threading.enumerate())
    with pytest.raises(ValueError):
        actors.connect("ftp://host", driver=DRIVER)
    with pytest.raises(ValueError):
        actors.connect(HOST, driver="TestDriver")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        actors.connect(HOST, driver=DRIVER, auth="Bearer x")  # type: ignore[arg-type]
    assert set(threading.enumerate()) - before == set()


def test_dump_state_is_json_serialisable_and_balanced_while_live_and_after_stop(
    connect: Callable[..., actors.Connection], wait_until: Callable[..., Any]
) -> None:
    connection = connect()
    connection.tell(ev.ConnectionOpened(session_id="s-1"))
    connection.tell(ev.StatementStarted(statement_id="st-1", session_id="s-1"))
    connection.tell("not an event")

    live = host_report()
    assert live["aggregator"]["balanced"]
    assert live["accounting"]["balanced"]
    assert live["accounting"]["told"] == 3
    for part in ("supervisor", "feature_flags", "aggregator", "exporter"):
        assert "error" not in live[part], live[part]

    connection.close()
    report = wait_until(finished(HOST))
    assert report["accounting"]["balanced"]
    assert report["accounting"]["dropped"] == {"invalid_event": 1}
    assert actors.shutdown(2.0)
    after = actors.dump_state()
    json.dumps(after)
    assert after["hosts"][HOST]["accounting"]["balanced"]


# --- against a real local endpoint --------------------------------------------------------------


@pytest.fixture
def endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(token=TOKEN, stop_timeout_s=2.0) as started:
        yield started


def test_last_close_drains_queued_logs_to_a_real_endpoint(
    endpoint: LocalEndpoint, wait_until: Callable[..., Any]
) -> None:
    settings = attrs.evolve(SETTINGS, flush_interval_ms=60_000, batch_size=100)
    connection = actors.connect(endpoint.url, driver=DRIVER, auth=auth, settings=settings)
    key = connection.host
    wait_until(
        lambda: host_report(key).get("aggregator", {}).get("flag") == "on", what="the flag on"
    )
    for i in range(5):
        assert connection.tell(ev.ConnectionOpened(session_id=f"s-{i}"))
    assert endpoint.store.count() == 0  # the flush interval is a minute away

    connection.close()
    wait_until(lambda: endpoint.store.count() == 5, what="the drained logs at the endpoint")
    wait_until(no_tree_threads, what="the tree's threads to end")
    report = wait_until(finished(key))
    assert report["accounting"]["exported"] == 5
    assert {row["path"] for row in endpoint.store.rows()} == {"/telemetry-ext"}


def test_connect_never_waits_for_a_flag_endpoint_that_hangs(
    wait_until: Callable[..., Any],
) -> None:
    hanging = Fault(mode="hang", applies_to_flags=True)
    with LocalEndpoint(token=TOKEN, fault=hanging, stop_timeout_s=2.0) as endpoint:
        settings = attrs.evolve(SETTINGS, read_timeout_ms=30_000, shutdown_timeout_ms=200)
        started = time.monotonic()
        connection = actors.connect(endpoint.url, driver=DRIVER, auth=auth, settings=settings)
        assert time.monotonic() - started < 1.0
        assert connection.enabled  # flag not known yet: not off
        assert connection.tell(ev.ConnectionOpened(session_id="s-1"))
        wait_until(
            lambda: endpoint.stats()["flag_fetches"] == 1, what="the flag fetch to be hanging"
        )

        started = time.monotonic()
        state = actors.dump_state(0.3)
        assert time.monotonic() - started < 1.0
        json.dumps(state)
        report = state["hosts"][connection.host]
        assert report["feature_flags"] == {"error": "Timeout"}
        assert report["aggregator"]["flag"] == "unknown"
        assert report["accounting"]["balanced"]

        second = actors.connect(endpoint.url, driver=DRIVER, auth=auth, settings=settings)
        assert time.monotonic() - started < 2.0
        assert second.enabled
        second.close()
        connection.close()


# --- connect racing the last close --------------------------------------------------------------


@pytest.mark.slow
def test_connects_racing_last_closes_never_deadlock_or_leak_trees(
    session: FakeSession, wait_until: Callable[..., Any]
) -> None:
    threads_n, rounds = 16, 200
    settings = attrs.evolve(SETTINGS, force_enable=True, shutdown_timeout_ms=500)
    barrier = threading.Barrier(threads_n, timeout=5.0)
    failures: list[str] = []
    leases: list[tuple[float, float, int]] = []  # (bound at, closing at, generation)
    unbound = 0
    lock = threading.Lock()

    def churn(n: int) -> None:
        nonlocal unbound
        try:
            for i in range(rounds):
                if i % 2 == 0:  # all at once: last closes, then connects racing their stop
                    barrier.wait()
                host = HOST if i % 2 == 0 else "HTTPS://HOST.example.com:443"
                connection = actors.connect(
                    host, driver=DRIVER, auth=auth, settings=settings, session=session
                )
                bound_at = time.monotonic()
                told = connection.tell(ev.ConnectionOpened(session_id=f"s-{n}-{i}"))
                closing_at = time.monotonic()
                connection.close()
                with lock:
                    unbound += not told
                    # the tree generation this lease is on (private: nothing public says)
                    leases.append((bound_at, closing_at, connection._generation))
        except Exception as exc:  # reported below, never lost in a thread
            failures.append(repr(exc))

    workers = [threading.Thread(target=churn, args=(n,), daemon=True) for n in range(threads_n)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(0.1, 60.0 - (time.monotonic() - started)))
    assert not [w for w in workers if w.is_alive()], "a connect/close deadlocked"
    assert failures == []
    assert unbound == 0, "some connect() timed out and came back unbound"
    # Two connections open at the same moment must hold the same (the only live) tree.
    leases.sort()
    for i, (_, closing_at, generation) in enumerate(leases):
        for bound_at, _, other in leases[i + 1 :]:
            if bound_at >= closing_at:
                break
            assert other == generation, "two live trees for one host at once"

    def all_stopped() -> dict[str, Any] | None:
        state = actors.dump_state(2.0)
        report = state["hosts"].get(HOST, {})
        return state if not report.get("live") and not state["registry"]["stopping"] else None

    state = wait_until(all_stopped, timeout_s=10.0, what="every tree to stop")
    report = state["hosts"][HOST]
    assert list(state["hosts"]) == [HOST]
    generations = [g["generation"] for g in report["finished_generations"]]
    assert len(generations) == len(set(generations))
    account = report["accounting"]
    assert account["told"] == threads_n * rounds
    assert account["balanced"] and account["pending"] == 0
    assert state["registry"]["connects"] == threads_n * rounds
    assert state["registry"]["disconnects"] == threads_n * rounds

    assert actors.shutdown(2.0)
    wait_until(no_tree_threads, what="no tree thread after shutdown")
