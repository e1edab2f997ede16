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
from actors.tools.local_endpoint import Fault, LocalEndpoint, LogStore
from actors.tools.local_endpoint.cli import DEFAULT_DB, on_sigterm
from actors.tools.otlp_receiver import OtlpDemo

__all__ = ["add_demo_arguments", "run_demo"]

TOKEN = "demo-token"
DRIVER = actors.DriverInfo(name="demo-sqlite-driver", version="1.0.0")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the `demo` command (also the default command)."""
    parser.add_argument("--threads", type=int, default=4, help="driver threads (default 4)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of workload")
    parser.add_argument("--hosts", type=int, default=3, choices=(1, 2, 3), help="endpoints")
    parser.add_argument("--fault", default=None, help="endpoint fault, e.g. status:503, hang")
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
        "--page-port", type=int, default=0, help="port of the first endpoint, which serves the page"
    )
    parser.add_argument(
        "--sink",
        default="http",
        choices=("http", "otlp"),
        help="`otlp`: to a local collector if one is installed, else a loopback OTLP receiver",
    )


def _workload(
    module: Any, stop_at: float, rng: random.Random, counters: dict[str, int], pause_s: float
) -> None:
    """One driver thread: connections that run queries, fetch in chunks, and sometimes fail."""
    while time.monotonic() < stop_at:
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


def _progress(out: TextIO, started: float, duration: float, counters: list[dict[str, int]]) -> None:
    done = min(1.0, (time.monotonic() - started) / duration)
    statements = sum(c["statements"] for c in counters)
    errors = sum(c["errors"] for c in counters)
    bar = "#" * int(done * 30)
    out.write(f"\r  [{bar:<30}] {done:4.0%}  statements {statements:6d}  errors {errors:5d}")
    out.flush()


def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the workload, shut down gracefully, and report; returns 0 if the accounts balance."""
    fault = Fault.parse(args.fault) if args.fault else None
    store = LogStore(args.db)
    endpoints = _start_endpoints(args, fault, store)
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
                modules[i % len(modules)],
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
    report = _report(endpoints, state, counters, clean, exit_s, args)
    report["page"] = page_url
    if otlp is not None:
        report = otlp.finish(report)
    if args.json:
        out.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        _print_report(report, out)
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


def _report(
    endpoints: list[LocalEndpoint],
    state: dict[str, Any],
    counters: list[dict[str, int]],
    clean: bool,
    exit_s: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    hosts = {}
    for ep in endpoints:
        host = state["hosts"].get(ep.host_port, {})
        accounting = host.get("accounting", {})
        generations = sorted(
            host.get("finished_generations", []), key=lambda g: g.get("generation", 0)
        )
        # every stopped tree is in the host's totals; only the last few finals are kept in full
        exported_logs = host.get("finished_exported_logs", 0)
        stored = ep.store.count(ep.host_port)
        # A request cut off by the shutdown deadline may still have been stored: such logs are
        # counted as dropped (shutdown_timeout) by the client, so the store may hold a few more.
        unconfirmed = accounting.get("dropped", {}).get("shutdown_timeout", 0)
        hosts[ep.host_port] = {
            "endpoint": {
                "stored_logs": stored,
                "by_kind": ep.store.counts_by_kind(ep.host_port),
                "latency_ms_by_statement_type": ep.store.latency_percentiles_by_statement_type(
                    ep.host_port
                ),
                "errors_by_class": ep.store.errors_by_name(ep.host_port),
                "requests": ep.stats()["requests"],
            },
            "accounting": accounting,
            "generations": host.get("finished_trees", len(generations)),
            "exported_logs": exported_logs,
            "store_matches_accounting": exported_logs <= stored <= exported_logs + unconfirmed,
            "final_dump": generations[-1] if generations else {},
        }
    return {
        "workload": {
            "threads": args.threads,
            "duration_s": args.duration,
            "fault": args.fault,
            "statements": sum(c["statements"] for c in counters),
            "driver_errors": sum(c["errors"] for c in counters),
            "connections": sum(c["connections"] for c in counters),
        },
        "shutdown": {"clean": clean, "seconds": round(exit_s, 3)},
        "store": args.db,
        "hosts": hosts,
        "balanced": all(
            h["accounting"].get("balanced") and h["store_matches_accounting"]
            for h in hosts.values()
        ),
    }


def _print_report(report: dict[str, Any], out: TextIO) -> None:
    w = report["workload"]
    out.write(
        f"\nworkload: {w['threads']} threads, {w['duration_s']} s, fault {w['fault'] or 'none'}: "
        f"{w['connections']} connections, {w['statements']} statements, "
        f"{w['driver_errors']} driver errors\n"
    )
    s = report["shutdown"]
    out.write(f"shutdown: {'clean' if s['clean'] else 'timed out'} in {s['seconds']:.3f} s\n")
    for host, h in report["hosts"].items():
        e, a = h["endpoint"], h["accounting"]
        out.write(f"\n== host {host}\n")
        out.write(f"  endpoint stored {e['stored_logs']} logs: {_kv(e['by_kind'])}\n")
        for stype, p in sorted(e["latency_ms_by_statement_type"].items()):
            out.write(
                f"    {stype:<10} latency ms  p50 {p['p50']:.0f}  p90 {p['p90']:.0f}"
                f"  p99 {p['p99']:.0f}\n"
            )
        out.write(f"  errors by class: {_kv(e['errors_by_class']) or 'none'}\n")
        out.write(f"  requests: {_kv({k: _kv(v) for k, v in e['requests'].items()})}\n")
        dropped = a.get("dropped", {})
        out.write(
            f"  accounting: told {a.get('told')} = exported {a.get('exported')} + dropped "
            f"{sum(dropped.values())} ({_kv(dropped) or 'none'}) + pending {a.get('pending')}"
            f"  -> {'balanced' if a.get('balanced') else 'NOT BALANCED'}\n"
        )
        match = "matches" if h["store_matches_accounting"] else "DOES NOT MATCH"
        out.write(f"  endpoint store {match} exported logs ({h['exported_logs']})\n")
        final = h["final_dump"]
        out.write(
            f"  trees started and stopped: {h['generations']}; final dump of the last one"
            f" (generation {final.get('generation')}):\n"
        )
        out.write("    " + json.dumps(final, indent=2).replace("\n", "\n    ") + "\n")
    if "otlp" in report:
        o = report["otlp"]
        match = "matches" if o["received_matches_accounting"] else "DOES NOT MATCH"
        out.write(f"\nOTLP via {o['via']}: {o['log_records_received']} log records received,")
        out.write(f" {match} exported logs ({o['exported_logs']}); requests {_kv(o['requests'])}\n")
    if report["store"] != ":memory:":
        out.write(f"\nthe endpoints stored the logs in {report['store']}: see them with `show`\n")
    out.write(
        f"\n{'OK: every event accounted for' if report['balanced'] else 'FAIL: accounts differ'}\n"
    )


def _kv(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(mapping.items()))
