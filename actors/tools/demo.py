"""The main job: a threaded sqlite3 workload, instrumented, against local telemetry endpoints.

It shows what a driver emits before it ever talks to a real workspace: the logs each endpoint
stored, the final actor state dump per host, and the accounting (told = exported + dropped by
reason + pending), optionally under an injected fault mode.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import threading
import time
from typing import Any, TextIO

import actors
from actors.dbapi import instrument
from actors.tools._demo_report import print_report, report_of
from actors.tools.local_endpoint import Fault, LocalEndpoint, LogStore
from actors.tools.local_endpoint.cli import DEFAULT_DB, on_sigterm
from actors.tools.otlp_receiver import OtlpDemo

__all__ = ["add_demo_arguments", "hosts_of_thread", "run_demo"]

TOKEN = "demo-token"
DRIVER = actors.DriverInfo(name="demo-sqlite-driver", version="1.0.0")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the `demo` command (also the default command)."""
    parser.add_argument(
        "--threads", type=_at_least_one, default=4, help="driver threads (default 4)"
    )
    parser.add_argument("--duration", type=_seconds, default=3.0, help="seconds of workload")
    parser.add_argument("--hosts", type=int, default=3, choices=(1, 2, 3), help="endpoints")
    parser.add_argument(
        "--fault", type=_fault, default=None, help="endpoint fault, e.g. status:503, hang"
    )
    parser.add_argument("--shutdown-timeout-ms", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--statement-ms",
        type=float,
        default=1.0,
        help="simulated network round trip per statement (default 1.0; 0 for raw sqlite3)",
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        help="SQLite file the endpoints store logs in, for `show` (default %(default)s;"
        " ':memory:' keeps nothing)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--stay",
        action="store_true",
        help="after the report, keep the endpoints and the page up until Ctrl-C",
    )
    parser.add_argument(
        "--page-port",
        type=_port,
        default=0,
        help="port of the first endpoint, which serves the page (default: any free one)",
    )
    parser.add_argument(
        "--sink",
        default="http",
        choices=("http", "otlp"),
        help="`otlp`: to a local collector if one is installed, else a loopback OTLP receiver",
    )


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text}")
    return value


def _fault(text: str) -> str:
    try:
        Fault.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port within 0..65535, not {value}")
    return value


def _workload(
    modules: list[Any],
    stop_at: float,
    rng: random.Random,
    counters: dict[str, int],
    pause_s: float,
) -> None:
    """One driver thread: connections that run queries, fetch in chunks, and sometimes fail.

    Its connections go to each of its hosts (`modules`) in turn."""
    turn = 0
    while time.monotonic() < stop_at:
        module = modules[turn % len(modules)]
        turn += 1
        with module.connect(":memory:") as conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
            conn.executemany(
                "INSERT INTO t (name, score) VALUES (?, ?)",
                [(f"user-{i}", rng.random()) for i in range(rng.randint(50, 400))],
            )
            for _ in range(rng.randint(3, 10)):
                time.sleep(pause_s)  # the driver's network round trip, which sqlite3 lacks
                counters["statements"] += 1
                choice = rng.random()
                try:
                    if choice < 0.6:
                        cursor = conn.execute(
                            "SELECT id, name, score FROM t WHERE score > ?", (0.3,)
                        )
                        while cursor.fetchmany(64):
                            pass
                    elif choice < 0.8:
                        conn.execute("UPDATE t SET score = score / 2 WHERE id % 7 = 0")
                    elif choice < 0.9:
                        conn.execute("SELECT * FROM missing_table").fetchall()
                    else:
                        conn.execute("INSERT INTO t (id, name) VALUES (1, 'duplicate')")
                except sqlite3.Error:
                    counters["errors"] += 1
        conn.close()
        counters["connections"] += 1


def hosts_of_thread(index: int, threads: int, hosts: list[Any]) -> list[Any]:
    """The hosts thread `index` of `threads` connects to: one host per thread when there are
    enough threads (a host's connections then overlap, and its tree lives on), else its share
    of them, so that no host is left without traffic."""
    if threads >= len(hosts):
        return [hosts[index % len(hosts)]]
    return hosts[index::threads]


def _progress(out: TextIO, started: float, duration: float, counters: list[dict[str, int]]) -> None:
    done = min(1.0, (time.monotonic() - started) / duration) if duration > 0 else 1.0
    statements = sum(c["statements"] for c in counters)
    errors = sum(c["errors"] for c in counters)
    bar = "#" * int(done * 30)
    out.write(f"\r  [{bar:<30}] {done:4.0%}  statements {statements:6d}  errors {errors:5d}")
    out.flush()


def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the workload, shut down gracefully, and report; returns 0 if the accounts balance."""
    fault = Fault.parse(args.fault) if args.fault else None
    try:
        store = LogStore(args.db)
    except (sqlite3.Error, OSError) as error:
        err.write(f"demo: cannot open the store {args.db}: {error}\n")
        return 2
    try:
        endpoints = _start_endpoints(args, fault, store)
    except OSError as error:
        store.close()
        err.write(f"demo: cannot start the endpoints (--page-port {args.page_port}): {error}\n")
        return 2
    page_url = endpoints[0].page_url
    if not args.json:
        err.write(f"page: {page_url} (live while the demo runs)\n")
    properties = {
        "telemetry.flush_interval_ms": "500",
        "telemetry.shutdown_timeout_ms": str(args.shutdown_timeout_ms),
        "telemetry.circuit_breaker.open_s": "1",
        "telemetry.http.read_timeout_ms": "1000",
    }
    otlp = OtlpDemo.start(properties) if args.sink == "otlp" else None
    modules = [
        instrument(
            sqlite3,
            host=ep.url,
            driver=DRIVER,
            auth=lambda: {"Authorization": f"Bearer {TOKEN}"},
            properties=properties,
        )
        for ep in endpoints
    ]
    counters = [{"statements": 0, "errors": 0, "connections": 0} for _ in range(args.threads)]
    started = time.monotonic()
    stop_at = started + args.duration
    threads = [
        threading.Thread(
            target=_workload,
            args=(
                hosts_of_thread(i, args.threads, modules),
                stop_at,
                random.Random(args.seed + i),
                counters[i],
                args.statement_ms / 1000.0,
            ),
            name=f"driver-{i}",
        )
        for i in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if not args.json:
            _progress(err, started, args.duration, counters)
        for thread in threads:
            thread.join(timeout=0.2)
    if not args.json:
        _progress(err, started, args.duration, counters)
        err.write("\n")
    exit_started = time.monotonic()
    clean = actors.shutdown(args.shutdown_timeout_ms / 1000.0)
    exit_s = time.monotonic() - exit_started
    state = actors.dump_state()
    report = report_of(endpoints, state, counters, clean, exit_s, args)
    report["page"] = page_url
    if otlp is not None:
        report = otlp.finish(report)
    if args.json:
        out.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        print_report(report, out)
    if getattr(args, "stay", False):
        _stay(page_url, err)
    for ep in endpoints:
        ep.close()
    store.close()
    return 0 if report["balanced"] else 1


def _start_endpoints(
    args: argparse.Namespace, fault: Fault | None, store: LogStore
) -> list[LocalEndpoint]:
    """One endpoint per host, sharing `store`; the first also serves the page, with the client's
    accounting (the page runs in the client's process)."""
    ports = [getattr(args, "page_port", 0)] + [0] * (args.hosts - 1)
    endpoints = [LocalEndpoint(token=TOKEN, fault=fault, store=store, port=p) for p in ports]
    endpoints[0].serve_page(endpoints=tuple(endpoints), client_state=_client_state)
    for ep in endpoints:
        ep.start()
    return endpoints


def _client_state() -> dict[str, Any]:
    return actors.dump_state(0.5)


def _stay(page_url: str | None, err: TextIO) -> None:
    """Keep serving the page until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    restore = on_sigterm(stop)
    err.write(f"page stays up at {page_url}: Ctrl-C to stop\n")
    err.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --stay is meant to end
    finally:
        restore()
