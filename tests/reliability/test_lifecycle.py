"""Lifecycle under churn: a lingering tree, exact accounts while trees drain, bounded leftovers.

Short-lived connections reuse a host's lingering tree; a draining tree stays in `dump_state()`
and `flush()`; finished trees fold into per-host totals; `shutdown()` leaves no socket, thread or
file of ours, and can be called mid-process again and again. No test holds a keeper connection.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _support import DRIVER, TOKEN, assert_balanced, bearer, closed_port, fast_settings, wait_until
from thread_names import OUR_THREAD_PREFIXES, threads_named

import actors
import actors.registry
from actors.tools.local_endpoint import LocalEndpoint
from messages import events as ev

Make = Callable[..., LocalEndpoint]


def posts(endpoint: LocalEndpoint) -> int:
    """Export requests the endpoint answered (flag fetches left out)."""
    requests: dict[str, dict[Any, int]] = endpoint.stats()["requests"]
    return sum(sum(by.values()) for route, by in requests.items() if "telemetry" in route)


def session(connection: actors.Connection, sid: str) -> int:
    """Tell a short session (open, close); returns how many events were told."""
    told = [
        ev.ConnectionOpened(session_id=sid, latency_ms=1.0),
        ev.ConnectionClosed(session_id=sid),
    ]
    return sum(1 for event in told if connection.tell(event) or True)


def own_threads() -> list[str]:
    """Names of telemetry's threads alive now."""
    return threads_named(OUR_THREAD_PREFIXES)


def port_of(endpoint: LocalEndpoint) -> int:
    return int(endpoint.host_port.rsplit(":", 1)[1])


def established_to(port: int) -> int:
    """Sockets of this process ESTABLISHED to `port` on loopback (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/self/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def test_a_connect_within_the_linger_reuses_the_tree_and_one_after_zero_linger_does_not(
    make_endpoint: Make,
) -> None:
    endpoint = make_endpoint()
    lingering = fast_settings(idle_linger_ms=5000)
    first = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=lingering)
    first.close()
    report = actors.dump_state()["hosts"][endpoint.host_port]
    assert (report["live"], report["refcount"], report["lingering"]) == (True, 0, True)
    second = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=lingering)
    again = actors.dump_state()["hosts"][endpoint.host_port]
    assert again["generation"] == report["generation"]
    assert (again["refcount"], again["lingering"]) == (1, False)
    second.close()
    assert actors.shutdown(2.0)  # the exit path drains a lingering tree too
    assert actors.dump_state()["hosts"][endpoint.host_port]["finished_trees"] == 1

    at_once = fast_settings(idle_linger_ms=0)
    third = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=at_once)
    generation = actors.dump_state()["hosts"][endpoint.host_port]["generation"]
    third.close()
    wait_until(
        lambda: not actors.dump_state()["hosts"][endpoint.host_port]["live"],
        what="a tree without linger to stop at its last close",
    )
    fourth = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=at_once)
    assert actors.dump_state()["hosts"][endpoint.host_port]["generation"] > generation
    fourth.close()


def test_a_hundred_short_connections_share_one_tree_and_hold_the_rate_limit(
    make_endpoint: Make,
) -> None:
    endpoint = make_endpoint()
    settings = fast_settings(rate_limit_per_s=10.0, rate_limit_burst=5)
    told = 0
    for n in range(100):
        connection = actors.connect(
            endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings
        )
        told += session(connection, f"short.{n}")
        connection.close()
    host = endpoint.host_port
    report = actors.dump_state()["hosts"][host]
    assert report["live"] and report["finished_trees"] == 0  # one tree served all hundred
    assert actors.flush(5.0)
    accounting = actors.dump_state()["hosts"][host]["accounting"]
    assert_balanced(accounting, told)
    assert accounting["exported"] == told
    assert posts(endpoint) <= 5 + 10  # the burst, and far fewer than one POST per connection


def test_dump_state_keeps_a_draining_host_with_exact_accounts_and_flush_waits_for_it(
    make_endpoint: Make,
) -> None:
    endpoint = make_endpoint("slow:0.3")
    settings = fast_settings(
        idle_linger_ms=0, flush_interval_ms=60_000, shutdown_timeout_ms=3000, read_timeout_ms=2000
    )
    connection = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)
    told = sum(session(connection, f"drain.{n}") for n in range(5))
    connection.close()  # the last close: the tree drains through a slow server
    for _ in range(3):
        accounting = actors.dump_state()["hosts"][endpoint.host_port]["accounting"]
        assert_balanced(accounting, told)
    assert actors.flush(5.0)
    stored = endpoint.store.count()  # right when flush returns
    assert stored > 0
    rep = actors.dump_state()["hosts"][endpoint.host_port]
    assert stored == rep["finished_exported_logs"]
    assert_balanced(actors.dump_state()["hosts"][endpoint.host_port]["accounting"], told)


def test_flush_returns_false_when_a_draining_tree_cannot_finish(make_endpoint: Make) -> None:
    endpoint = make_endpoint("hang")
    settings = fast_settings(idle_linger_ms=0, read_timeout_ms=5000, shutdown_timeout_ms=3000)
    connection = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)
    session(connection, "hang.1")
    connection.close()
    assert actors.flush(0.3) is False


def test_finished_trees_fold_into_bounded_host_totals_and_process_totals_stay_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(actors.registry, "MAX_HOSTS_REMEMBERED", 5)
    settings = fast_settings(idle_linger_ms=0, force_enable=True, max_retries=0)
    ports = [closed_port() for _ in range(3)]
    told = 0
    sizes = []
    for n in range(60):
        host = f"127.0.0.1:{ports[n % 3]}" if n < 40 else f"127.0.0.{n}:{ports[0]}"
        connection = actors.connect(f"http://{host}", driver=DRIVER, settings=settings)
        told += session(connection, f"fold.{n}")
        connection.close()
        if n in (9, 39):
            assert actors.flush(5.0)
            sizes.append(len(json.dumps(actors.dump_state())))
    assert actors.shutdown(5.0)
    dump = actors.dump_state()
    hosts = dump["hosts"]
    assert len(hosts) <= 5 + 1
    assert all(len(entry["finished_generations"]) <= 4 for entry in hosts.values())
    assert sizes[1] <= sizes[0] * 1.5  # 30 more trees on the same hosts: no growth per tree
    forgotten = dump["registry"]["forgotten"]
    process_told = forgotten["received"] + sum(e["accounting"]["told"] for e in hosts.values())
    assert process_told == told
    assert dump["registry"]["hosts_forgotten"] == 23 - len(hosts)


def test_after_shutdown_no_socket_or_thread_of_ours_remains(make_endpoint: Make) -> None:
    endpoint = make_endpoint()
    connection = actors.connect(
        endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=fast_settings()
    )
    told = session(connection, "sockets.1")
    assert actors.flush(5.0)
    assert established_to(port_of(endpoint)) >= 1  # the pooled keep-alive socket
    connection.close()
    assert actors.shutdown(3.0)
    assert established_to(port_of(endpoint)) == 0
    assert own_threads() == []
    assert_balanced(actors.dump_state()["hosts"][endpoint.host_port]["accounting"], told)


def test_connect_tell_shutdown_rounds_from_several_threads_end_at_the_baseline_exactly(
    make_endpoint: Make,
) -> None:
    endpoint = make_endpoint()
    settings = fast_settings(shutdown_timeout_ms=1000)
    baseline = threading.active_count()
    unrouted_before = actors.dump_state()["dropped_without_registry"]  # earlier tests' drops
    told = [0] * 4
    errors: list[BaseException] = []

    def rounds(index: int) -> None:
        try:
            for n in range(40):
                connection = actors.connect(
                    endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings
                )
                told[index] += session(connection, f"r{index}.{n}")
                if n % 2:
                    connection.close()
                actors.shutdown(1.0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=rounds, args=(i,), daemon=True) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60.0)
    assert not errors and not any(w.is_alive() for w in workers)
    assert actors.shutdown(3.0)
    assert own_threads() == []
    wait_until(lambda: threading.active_count() <= baseline, what="the baseline thread count")
    dump = actors.dump_state()
    accounting = dump["hosts"][endpoint.host_port]["accounting"]
    total = accounting["told"] + dump["dropped_without_registry"] - unrouted_before
    assert total == sum(told), (accounting, dump["dropped_without_registry"])
    assert accounting["balanced"] and accounting["pending"] == 0


def test_the_readme_pattern_at_40_connections_a_second_drops_nothing_at_the_defaults(
    make_endpoint: Make,
) -> None:
    """A connection per request, an auth lambda each, 12 events each (bench/churn.py: 15 s)."""
    endpoint = make_endpoint()
    told, n = 0, 0
    pause = threading.Event()
    start = time.monotonic()
    while n < 60:  # 1.5 s at 40/s
        connection = actors.connect(
            endpoint.url, driver=DRIVER, auth=lambda: {"Authorization": f"Bearer {TOKEN}"}
        )
        sid = f"pattern.{n}"
        connection.tell(ev.ConnectionOpened(session_id=sid, latency_ms=1.0))
        for k in range(5):
            connection.tell(ev.StatementStarted(session_id=sid, statement_id=f"{sid}.{k}"))
            connection.tell(ev.StatementCompleted(statement_id=f"{sid}.{k}"))
        connection.tell(ev.ConnectionClosed(session_id=sid))
        connection.close()
        told, n = told + 12, n + 1
        pause.wait(max(0.0, start + n / 40 - time.monotonic()))
    assert actors.flush(5.0)
    accounting = actors.dump_state()["hosts"][endpoint.host_port]["accounting"]
    assert_balanced(accounting, told)
    assert accounting["dropped"] == {} and accounting["exported"] == told
    assert posts(endpoint) <= 20  # the burst: batches shared across connections


def test_settings_resolved_for_a_connect_follow_the_environment_at_each_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from actors._runtime.startup import settings_of

    monkeypatch.setenv("DATABRICKS_TELEMETRY_BATCH_SIZE", "7")
    assert settings_of({"telemetry.flush_interval_ms": "300"}).batch_size == 7
    assert settings_of({"telemetry.flush_interval_ms": "300"}).flush_interval_ms == 300
    monkeypatch.setenv("DATABRICKS_TELEMETRY_BATCH_SIZE", "9")
    assert settings_of({"telemetry.flush_interval_ms": "300"}).batch_size == 9
    monkeypatch.setenv("DATABRICKS_TELEMETRY_DISABLED", "1")  # the kill switch
    assert settings_of({"telemetry.flush_interval_ms": "300"}).enabled is False
    assert settings_of({"unhashable": ["x"]}).batch_size == 9  # resolved without the cache


def test_failing_driver_connects_share_one_lingering_tree(make_endpoint: Make) -> None:
    """A driver whose connect keeps failing (a wrong path here) starts no tree per attempt."""
    import sqlite3

    endpoint = make_endpoint()
    db = actors.instrument(sqlite3, host=endpoint.url, auth=bearer(TOKEN))
    for _ in range(20):
        with pytest.raises(sqlite3.OperationalError):
            db.connect("/nonexistent-dir/x.db")
    report = actors.dump_state()["hosts"][endpoint.host_port]
    assert report["live"] and report["finished_trees"] == 0 and report["lingering"]
    assert actors.flush(5.0)
    accounting = actors.dump_state()["hosts"][endpoint.host_port]["accounting"]
    assert accounting["told"] > 0 and accounting["exported"] == accounting["told"]


def test_after_shutdown_no_file_of_ours_is_open(tmp_path: Any) -> None:
    path = str(tmp_path / "telemetry.jsonl")
    settings = fast_settings(sink="file", file_path=path, force_enable=True)
    connection = actors.connect("https://file-sink.example", driver=DRIVER, settings=settings)
    told = session(connection, "file.1")
    connection.close()
    assert actors.shutdown(3.0)
    open_files = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            open_files.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    assert path not in open_files
    assert own_threads() == []
    assert_balanced(actors.dump_state()["hosts"]["file-sink.example"]["accounting"], told)
    with open(path, encoding="utf-8") as written:
        assert sum(1 for _ in written) >= 1
