"""`serve` and `show` subcommands: run a local telemetry endpoint, and read what it stored."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .faults import SPEC_HELP, Fault
from .server import LocalEndpoint
from .store import LogStore
from .web import is_loopback

DEFAULT_DB = "driver-telemetry.sqlite3"
_COLUMNS = ("time", "host", "kind", "session", "statement", "type", "latency", "error")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `serve` and `show`; each sets `func` to its `run_*` function."""
    serve = subparsers.add_parser(
        "serve", help="run a local telemetry endpoint, with a live page at /, until Ctrl-C"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    serve.add_argument("--db", default=DEFAULT_DB, help="SQLite file (default %(default)s)")
    serve.add_argument("--token", default="local-token", help="bearer token /telemetry-ext wants")
    serve.add_argument("--no-auth", action="store_true", help="accept /telemetry-ext without token")
    serve.add_argument("--flag", choices=("on", "off"), default="on", help="telemetry flag value")
    serve.add_argument("--ttl", type=int, default=900, help="flag ttl_seconds (default 900)")
    serve.add_argument("--driver-name", default="PYTHON", help="driver whose flag is served")
    serve.add_argument("--fault", metavar="SPEC", help=f"misbehave: {SPEC_HELP}")
    serve.add_argument("--no-page", action="store_true", help="do not serve the page at /")
    serve.set_defaults(func=run_serve)

    show = subparsers.add_parser("show", help="print the logs a local endpoint stored")
    show.add_argument("--db", default=DEFAULT_DB, help="SQLite file (default %(default)s)")
    show.add_argument("--host", help="only logs sent to this Host header (HOST:PORT)")
    show.add_argument("--limit", type=int, default=50, help="newest N logs (default 50)")
    show.set_defaults(func=run_show)


def on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM set `stop` (main thread only); return a function restoring the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def run_serve(args: argparse.Namespace, *, stop_event: threading.Event | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM (or until `stop_event` is set); return the exit code."""
    try:
        fault = Fault.parse(args.fault) if args.fault else None
        endpoint = LocalEndpoint(
            host=args.host,
            port=args.port,
            token=None if args.no_auth else args.token,
            db_path=args.db,
            flag_enabled=args.flag == "on",
            flag_ttl_s=args.ttl,
            driver_name=args.driver_name,
            fault=fault,
        )
        if not getattr(args, "no_page", False):
            endpoint.serve_page()
    except ValueError as error:
        print(f"serve: {error}", file=sys.stderr)
        return 2
    stop = stop_event or threading.Event()
    restore = on_sigterm(stop) if stop_event is None else (lambda: None)
    stats: dict[str, Any] = {"logs_accepted": 0, "flag_fetches": 0, "requests": {}}
    try:
        with endpoint:
            auth = "no auth" if args.no_auth else f"Authorization: Bearer {args.token}"
            print(
                f"telemetry endpoint on {endpoint.url} ({auth}; flag {args.flag}, "
                f"ttl {args.ttl}s; fault {args.fault or 'none'}; db {args.db})",
                flush=True,
            )
            if endpoint.page_url:
                print(f"page: {endpoint.page_url}", flush=True)
            if not is_loopback(args.host):
                print(
                    f"serve: {args.host} is not a loopback address: whoever reaches it can send "
                    "telemetry and read the page",
                    file=sys.stderr,
                )
            try:
                while not stop.wait(0.5):
                    pass
            finally:
                stats = endpoint.stats()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a foreground `serve` is meant to end
    except OSError as error:
        print(f"serve: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    finally:
        restore()
    print(
        f"stopped: {stats['logs_accepted']} logs accepted, {stats['flag_fetches']} flag "
        f"fetches, requests {stats['requests']}",
        flush=True,
    )
    return 0


def _short(value: str | None) -> str:
    return "-" if value is None else value[:8]


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    latency_ms = row["operation_latency_ms"]
    return (
        datetime.fromtimestamp(row["received_at_ms"] / 1000).strftime("%H:%M:%S.%f")[:-3],
        row["host"],
        row["kind"],
        _short(row["session_id"]),
        _short(row["sql_statement_id"]),
        row["statement_type"] or "-",
        "-" if latency_ms is None else f"{latency_ms} ms",
        row["error_name"] or "-",
    )


def _table(lines: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def format_rows(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Rows as one table per host, each session's and statement's logs together, oldest first."""
    first_seen: dict[tuple[Any, ...], int] = {}
    for row in sorted(rows, key=lambda row: int(row["id"])):
        first_seen.setdefault((row["host"], row["session_id"]), row["id"])
        first_seen.setdefault((row["host"], row["session_id"], row["sql_statement_id"]), row["id"])
    ordered = sorted(
        rows,
        key=lambda row: (
            row["host"],
            first_seen[(row["host"], row["session_id"])],
            first_seen[(row["host"], row["session_id"], row["sql_statement_id"])],
            row["id"],
        ),
    )
    lines: list[str] = []
    for host in dict.fromkeys(row["host"] for row in ordered):
        mine = [row for row in ordered if row["host"] == host]
        lines += ["", f"{host or '(no Host header)'}: {len(mine)} logs"]
        lines += _table([_COLUMNS, *(_cells(row) for row in mine)])
    return lines


def run_show(args: argparse.Namespace) -> int:
    """Print the newest stored logs grouped per host and statement, then totals; exit code."""
    if args.db != ":memory:" and not Path(args.db).is_file():
        print(f"show: no database at {args.db}", file=sys.stderr)
        return 1
    store = LogStore(args.db)
    try:
        rows = store.rows(host=args.host, limit=args.limit)
        host = args.host  # the totals are of the logs listed: one host's with --host
        total, kinds = store.count(host), store.counts_by_kind(host)
        errors, latency = (
            store.errors_by_name(host),
            store.latency_percentiles_by_statement_type(host),
        )
    finally:
        store.close()
    if not rows:
        print(f"no logs stored in {args.db}" + (f" for host {args.host}" if args.host else ""))
        return 0
    print("\n".join(format_rows(rows)))
    print(
        f"\nstored{f' for {args.host}' if args.host else ''}: {total} logs; kinds: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    )
    if errors:
        print("errors: " + ", ".join(f"{name} {n}" for name, n in sorted(errors.items())))
    for statement_type, p in sorted(latency.items()):
        print(
            f"latency {statement_type}: p50 {p['p50']:.0f} ms, p90 {p['p90']:.0f} ms, "
            f"p99 {p['p99']:.0f} ms"
        )
    return 0
