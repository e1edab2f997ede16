"""Short-lived connections: a connect/close cycle on a lingering tree, the README's embedding
pattern at 40 connections/s, and 100,000 cycles over 100 hosts with RSS/threads/fds/dump flat.

Run alone: ``python bench/churn.py [--quick]``; it prints one line per figure and a JSON dump.
The endpoint runs in a child process (so its threads and memory are not counted here).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from typing import Any

from _common import TOKEN, rss_bytes
from _endpoint import EndpointProcess

import actors
from messages import events as ev
from messages.sysconfig import DriverInfo

DRIVER = DriverInfo(name="BenchDriver", version="1.0.0")
OURS = ("RegistryActor-", "HostSupervisor-", "FeatureFlagActor-", "AggregatorActor-")
OURS += ("ExporterActor-", "telemetry-timer-")


def _threads() -> int:
    return sum(t.name.startswith(OURS) for t in threading.enumerate())


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def cycle_cost(url: str, cycles: int) -> dict[str, Any]:
    """Median µs of one connect + close while the host's tree lingers (after a warm-up)."""
    actors.connect(url, driver=DRIVER, auth=lambda: {"Authorization": f"Bearer {TOKEN}"}).close()
    samples = []
    for _ in range(cycles):
        t0 = time.perf_counter_ns()
        actors.connect(
            url, driver=DRIVER, auth=lambda: {"Authorization": f"Bearer {TOKEN}"}
        ).close()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return {
        "cycles": cycles,
        "median_us": statistics.median(samples),
        "p99_us": samples[int(len(samples) * 0.99)],
    }


def readme_pattern(url: str, per_s: int, seconds: float, events: int = 12) -> dict[str, Any]:
    """`per_s` connections a second, each with its own auth lambda and `events` events."""
    host = url.split("://", 1)[1]
    before = actors.dump_state()["hosts"].get(host, {}).get("accounting", {"told": 0})["told"]
    told = 0
    start = time.monotonic()
    n = 0
    pause = threading.Event()
    while time.monotonic() - start < seconds:
        connection = actors.connect(  # a lambda per connection, as in the README's driver
            url, driver=DRIVER, auth=lambda: {"Authorization": f"Bearer {TOKEN}"}
        )
        sid = f"p{n}"
        connection.tell(ev.ConnectionOpened(session_id=sid, latency_ms=1.0))
        for k in range((events - 2) // 2):  # a statement each: started, completed
            connection.tell(ev.StatementStarted(session_id=sid, statement_id=f"{sid}.{k}"))
            connection.tell(ev.StatementCompleted(statement_id=f"{sid}.{k}"))
        connection.tell(ev.ConnectionClosed(session_id=sid))
        connection.close()
        told += events
        n += 1
        pause.wait(max(0.0, start + n / per_s - time.monotonic()))
    flushed = actors.flush(10.0)
    accounting = actors.dump_state()["hosts"][host]["accounting"]
    return {
        "connections": n,
        "events": told,
        "seconds": round(time.monotonic() - start, 2),
        "flushed": flushed,
        "told": accounting["told"] - before,
        "exported": accounting["exported"],
        "dropped": accounting["dropped"],
        "pending": accounting["pending"],
    }


def _closed_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
    return ports


def bounded(cycles: int, hosts: int) -> dict[str, Any]:
    """`cycles` connect/tell/close cycles over `hosts` hosts, each cycle a whole tree (no
    linger); samples RSS, our threads, fds and the dump's size ten times."""
    settings = actors.TelemetrySettings(
        idle_linger_ms=0, force_enable=True, max_retries=0, connect_timeout_ms=200
    )
    urls = [f"http://127.0.0.1:{port}" for port in _closed_ports(hosts)]
    start = actors.dump_state()
    before = sum(e["accounting"]["told"] for e in start["hosts"].values())
    samples = []
    told = 0
    for n in range(cycles):
        connection = actors.connect(urls[n % hosts], driver=DRIVER, settings=settings)
        connection.tell(ev.ConnectionOpened(session_id=f"b{n}", latency_ms=1.0))
        connection.close()
        told += 1
        if (n + 1) % (cycles // 10) == 0:
            actors.flush(10.0)
            dump = actors.dump_state(5.0)
            samples.append(
                {
                    "cycles": n + 1,
                    "rss_mb": round(rss_bytes() / 2**20, 1),
                    "threads": _threads(),
                    "fds": _fds(),
                    "dump_kb": round(len(json.dumps(dump)) / 1024, 1),
                }
            )
    actors.shutdown(5.0)
    dump = actors.dump_state()
    counted = sum(e["accounting"]["told"] for e in dump["hosts"].values())
    return {
        "samples": samples,
        "told": told,
        "counted": counted + dump["registry"]["forgotten"]["received"] - before,
        "after_shutdown": {"threads": _threads(), "fds": _fds()},
    }


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """All three figures."""
    with EndpointProcess(flag=True) as endpoint:
        cost = cycle_cost(endpoint.url, 500 if quick else 5000)
        pattern = readme_pattern(endpoint.url, 40, 3.0 if quick else 15.0)
        actors.shutdown(5.0)
    memory = bounded(10_000 if quick else 100_000, 100)
    return {"cycle": cost, "readme_pattern": pattern, "bounded": memory}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    result = run(parser.parse_args().quick)
    cost, pattern, memory = result["cycle"], result["readme_pattern"], result["bounded"]
    print(f"connect/close on a lingering tree: median {cost['median_us']:.1f} µs (≤ 50)")
    print(
        f"README pattern 40/s for {pattern['seconds']} s: {pattern['connections']} connections, "
        f"told {pattern['told']}, exported {pattern['exported']}, dropped {pattern['dropped']}"
    )
    for sample in memory["samples"]:
        print("bounded:", sample)
    print(
        "after shutdown:",
        memory["after_shutdown"],
        "told",
        memory["told"],
        "counted",
        memory["counted"],
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
