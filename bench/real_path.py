"""The headline: what a statement costs on a real driver, beside OpenTelemetry, in one run.

Four ways of running the same statements, side by side, interleaved round by round (and the
raw driver once more, whose difference to the first raw run is the noise floor of the row):

- `raw`: the driver module itself;
- `enabled`: `actors.instrument(module, host=...)`, shipped defaults, exporting to the loopback
  endpoint (a child process; the light one, which parses each body and counts its logs);
- `disabled`: the same with ``telemetry.enabled=false``;
- `otel`: OpenTelemetry's DB-API instrumentation (`wrap_connect` on a stand-in module holding the
  driver's `connect`, so the driver itself stays unpatched for the other ways), a
  `TracerProvider` with a `BatchSpanProcessor` and the OTLP/HTTP span exporter posting to a
  loopback sink (another child process).

Drivers: sqlite3 (an in-memory database per thread), pyodbc over the SQLite ODBC driver (a file
per thread), psycopg 3 on a PostgreSQL server started for the run (skipped with the reason if
that cannot be done), and sqlite3 with a 1 ms sleep before each statement (a network round
trip). Statement kinds: a point select (`fetchone`), an insert, a 20-row select (`fetchall`),
each on a fresh cursor, as applications do. The ~1 ms row runs the three in turn. Two more rows:
churn (connect, one point select, close, per request; sqlite3 on a file) and a connect/close
cycle (no statement) while the tree is live.

Four driver threads per way, each with its own connection (opened before timing). A run is:
start the clocks, let the four threads each run their share, wait for them, then flush inside
the timed region (`actors.flush()` for ours, `provider.force_flush()` for OpenTelemetry; both
return once the HTTP requests are answered). Wall time is `perf_counter`; CPU is
`process_time` (every thread of this process; the endpoint and the sink are other processes).
Added cost per statement = (way - raw) / statements, per round; medians over rounds. After
each run (untimed) what arrived is counted: the endpoint's accepted logs and our own accounts,
the sink's spans.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import auth_headers, quiet_gc, summary, wait_flags
from _crew import Crew, Job
from _drivers import KINDS, THREADS, Driver, available, statement
from _endpoint import EndpointProcess
from _otlp_sink import SinkProcess

import actors
from messages.sysconfig import DriverInfo

# `raw_again` is the raw driver a second time: its difference to `raw` is the noise floor.
WAYS = ("raw", "enabled", "disabled", "otel", "raw_again")
# Statements per run of the burst rows: four times what the shipped defaults hold between two
# flushes with the rate limit spent, so the run passes only if what waits is merged in time.
BURST = 4_000


# --- the ways -------------------------------------------------------------------------------------


class Ways:
    """The modules of the four ways for one driver, and what flushes each inside the timing."""

    def __init__(self, driver: Driver, endpoint: EndpointProcess, provider: Any) -> None:
        from opentelemetry.instrumentation.dbapi import wrap_connect

        info = DriverInfo(name=f"bench-{driver.name}", version="1.0.0")
        common = {"host": endpoint.url, "driver": info, "auth": auth_headers}
        stand_in = types.SimpleNamespace(connect=driver.module.connect)
        wrap_connect(
            "bench.real_path", stand_in, "connect", driver.system, tracer_provider=provider
        )
        self.modules: dict[str, Any] = {
            "raw": driver.module,
            "raw_again": driver.module,
            "enabled": actors.instrument(driver.module.connect, **common),
            "disabled": actors.instrument(
                driver.module.connect, properties={"telemetry.enabled": "false"}, **common
            ),
            "otel": stand_in,
        }
        self.flush: dict[str, Callable[[], object]] = {
            "raw": lambda: None,
            "raw_again": lambda: None,
            "enabled": lambda: actors.flush(timeout_s=30.0),
            "disabled": lambda: None,
            "otel": lambda: provider.force_flush(30_000),
        }


class Counters:
    """What arrived, read between runs (untimed): the endpoint's, our accounts', the sink's."""

    def __init__(self, endpoint: EndpointProcess, sink: SinkProcess) -> None:
        self._endpoint = endpoint
        self._sink = sink

    def read(self) -> dict[str, int]:
        host = actors.dump_state(timeout_s=5.0)["hosts"].get(self._endpoint.host_port, {})
        aggregator = host.get("aggregator", {})
        emitted = aggregator.get("logs_emitted", {})
        dropped = host.get("accounting", {}).get("dropped", {})
        return {
            "accepted_logs": int(self._endpoint.stats().get("logs_accepted", 0)),
            "emitted_logs": int(sum(emitted.values())),
            "statement_logs": int(emitted.get("statement", 0)),
            "dropped_events": int(sum(dropped.values())),
            "spans": int(self._sink.stats().get("spans", 0)),
            **{f"dropped:{reason}": int(n) for reason, n in dropped.items()},
        }


def _timed(crew: Crew, job: Job, flush: Callable[[], object]) -> dict[str, float]:
    with quiet_gc():
        driver0 = crew.cpu_ns()  # read outside the timing
        wall0, cpu0 = time.perf_counter(), time.process_time()
        crew.run(job)
        flushed = flush()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        driver1 = crew.cpu_ns()
    if flushed is False:
        raise RuntimeError("flush did not finish in time")
    # The driver threads' share; the rest of the process CPU is background threads (our actors,
    # OpenTelemetry's export thread) and the main thread's flush. A driver thread's CPU read
    # after the timing may include a few µs of its going back to wait: alike for every way.
    driver_s = (driver1 - driver0) / 1e9 if driver0 >= 0 and driver1 >= 0 else None
    return {"wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "driver_cpu_s": driver_s}


def _rounds(
    crews: dict[str, Crew],
    ways: dict[str, Callable[[], object]],
    job: Job,
    statements: int,
    repeats: int,
    counters: Counters,
) -> dict[str, Any]:
    """Warm up, then `repeats` rounds of the four ways in a rotating order; counts what arrived."""
    for way in WAYS:
        _timed(crews[way], job, ways[way])
    rounds = []
    arrived: dict[str, Any] = dict.fromkeys(
        ("statements", "ours", "ours_emitted", "ours_statement_logs", "ours_dropped", "otel"), 0
    )
    arrived["ours_dropped_by"] = {}
    for r in range(repeats):
        order = WAYS[r % len(WAYS) :] + WAYS[: r % len(WAYS)]
        result: dict[str, dict[str, float]] = {}
        for way in order:
            before = counters.read() if way in ("enabled", "otel") else None
            result[way] = _timed(crews[way], job, ways[way])
            if before is not None:
                after = counters.read()
                delta = {k: after[k] - before.get(k, 0) for k in after}
                if way == "enabled":
                    by = arrived["ours_dropped_by"]
                    for key, n in delta.items():
                        if key.startswith("dropped:") and n:
                            by[key[8:]] = by.get(key[8:], 0) + n
                    arrived["ours"] += delta["accepted_logs"]
                    arrived["ours_emitted"] += delta["emitted_logs"]
                    arrived["ours_statement_logs"] += delta["statement_logs"]
                    arrived["ours_dropped"] += delta["dropped_events"]
                else:
                    arrived["otel"] += delta["spans"]
        arrived["statements"] += statements
        rounds.append(result)
    return {"statements_per_run": statements, "rounds": rounds, "arrived": arrived}


# --- rows -----------------------------------------------------------------------------------------


def _statement_job(driver: Driver, kind: str, per_thread: int, pause_s: float) -> Job:
    kinds = KINDS if kind == "mix" else (kind,)

    def job(state: dict[str, Any]) -> None:
        conn, sql = state["conn"], driver.sql
        base = state["counter"]
        state["counter"] = base + per_thread
        for i in range(base, base + per_thread):
            if pause_s:
                time.sleep(pause_s)
            statement(conn, sql, kinds[i % len(kinds)], i)
        conn.commit()

    return job


def _driver_crews(driver: Driver, ways: Ways) -> dict[str, Crew]:
    def opener(module: Any) -> Callable[[int], dict[str, Any]]:
        def open_(index: int) -> dict[str, Any]:
            return {"conn": driver.open(module, index), "counter": 0}

        return open_

    def closer(state: dict[str, Any]) -> None:
        state["conn"].close()

    return {way: Crew(opener(ways.modules[way]), closer, THREADS) for way in WAYS}


def _close_all(crews: dict[str, Crew]) -> None:
    for crew in crews.values():
        crew.close()


def _run_driver(
    driver: Driver,
    kinds: dict[str, tuple[int, float]],
    context: dict[str, Any],
) -> dict[str, Any]:
    ways = Ways(driver, context["endpoint"], context["provider"])
    crews = _driver_crews(driver, ways)
    try:
        actors.flush(timeout_s=10.0)  # the connection logs, untimed
        out = {}
        for kind, (per_thread, pause_s) in kinds.items():
            job = _statement_job(driver, kind, per_thread, pause_s)
            out[kind] = _rounds(
                crews,
                ways.flush,
                job,
                per_thread * THREADS,
                context["repeats"],
                context["counters"],
            )
            out[kind]["pause_s"] = pause_s
        return out
    finally:
        _close_all(crews)


def _run_connects(driver: Driver, per_thread: dict[str, int], context: dict[str, Any]) -> Any:
    """Churn (connect, one point select, close) and the bare connect/close cycle."""
    ways = Ways(driver, context["endpoint"], context["provider"])

    def opener(module: Any) -> Callable[[int], dict[str, Any]]:
        return lambda index: {"module": module, "args": driver.open_args(index), "counter": 0}

    crews = {way: Crew(opener(ways.modules[way]), lambda state: None, THREADS) for way in WAYS}
    # A connection held open for the whole row keeps the host's tree live, as in an application.
    keeper = ways.modules["enabled"].connect(
        *driver.open_args(0),
    )

    def churn(state: dict[str, Any]) -> None:
        module, args = state["module"], state["args"]
        for i in range(per_thread["churn"]):
            conn = module.connect(
                *args,
            )
            statement(conn, driver.sql, "point", i)
            conn.close()

    def cycle(state: dict[str, Any]) -> None:
        module, args = state["module"], state["args"]
        for _ in range(per_thread["cycle"]):
            module.connect(
                *args,
            ).close()

    try:
        actors.flush(timeout_s=10.0)
        out = {}
        for name, job in (("churn", churn), ("cycle", cycle)):
            out[name] = _rounds(
                crews,
                ways.flush,
                job,
                per_thread[name] * THREADS,
                context["repeats"],
                context["counters"],
            )
        return out
    finally:
        keeper.close()
        _close_all(crews)


def _run_burst(driver: Driver, threads: int, context: dict[str, Any]) -> dict[str, Any]:
    """`BURST` point selects back to back, as fast as `threads` driver threads go, per run."""
    ways = Ways(driver, context["endpoint"], context["provider"])

    def opener(module: Any) -> Callable[[int], dict[str, Any]]:
        return lambda index: {"conn": driver.open(module, index), "counter": 0}

    def closer(state: dict[str, Any]) -> None:
        state["conn"].close()

    crews = {way: Crew(opener(ways.modules[way]), closer, threads) for way in WAYS}
    try:
        actors.flush(timeout_s=10.0)
        job = _statement_job(driver, "point", BURST // threads, 0.0)
        block = _rounds(crews, ways.flush, job, BURST, context["repeats"], context["counters"])
        block["threads"] = threads
        return block
    finally:
        _close_all(crews)


def _figures(block: dict[str, Any]) -> dict[str, Any]:
    """Added µs per statement per way and ratios to OpenTelemetry, per round, then summaries."""
    n = block["statements_per_run"]
    per: dict[str, list[float | None]] = {}
    for r in block["rounds"]:
        raw = r["raw"]
        for way in ("enabled", "disabled", "otel", "raw_again"):
            for clock in ("wall", "cpu"):
                added = (r[way][f"{clock}_s"] - raw[f"{clock}_s"]) / n * 1e6
                per.setdefault(f"{way}_{clock}_us", []).append(added)
        for clock in ("wall", "cpu"):
            ours = (r["enabled"][f"{clock}_s"] - raw[f"{clock}_s"]) / n
            theirs = (r["otel"][f"{clock}_s"] - raw[f"{clock}_s"]) / n
            per.setdefault(f"ratio_{clock}", []).append(ours / theirs if theirs > 0 else None)
        for way in ("enabled", "otel"):
            if r[way].get("driver_cpu_s") is None or raw.get("driver_cpu_s") is None:
                continue
            driver = (r[way]["driver_cpu_s"] - raw["driver_cpu_s"]) / n * 1e6
            total = (r[way]["cpu_s"] - raw["cpu_s"]) / n * 1e6
            per.setdefault(f"{way}_driver_cpu_us", []).append(driver)
            per.setdefault(f"{way}_background_cpu_us", []).append(total - driver)
        per.setdefault("raw_wall_us", []).append(raw["wall_s"] / n * 1e6)
        per.setdefault("raw_cpu_us", []).append(raw["cpu_s"] / n * 1e6)
        per.setdefault("enabled_wall_x", []).append(r["enabled"]["wall_s"] / raw["wall_s"])
        per.setdefault("otel_wall_x", []).append(r["otel"]["wall_s"] / raw["wall_s"])
    return {key: summary(v for v in values if v is not None) for key, values in per.items()}


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """Every row, four ways each; raw timings per round, figures, and what arrived."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # At most 1,000 statements per run: what the shipped defaults hold between two flushes
    # (1,000 queued logs, 20 batches of 100) even with the rate limit spent.
    repeats = 5 if quick else 9
    per_thread = 150 if quick else 250
    slow_per_thread = 75 if quick else 150
    connects = {"churn": 50 if quick else 100, "cycle": 150 if quick else 250}
    out: dict[str, Any] = {"threads": THREADS, "repeats": repeats, "rows": {}, "skipped": {}}
    kinds = {kind: (per_thread, 0.0) for kind in KINDS}
    with (
        EndpointProcess(flag=True, validate=False) as endpoint,
        SinkProcess() as sink,
        tempfile.TemporaryDirectory(prefix="bench-real-") as tmp,
    ):
        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink.url)))
        context = {
            "endpoint": endpoint,
            "provider": provider,
            "repeats": repeats,
            "counters": Counters(endpoint, sink),
        }
        holder = actors.connect(
            endpoint.url, driver=DriverInfo(name="bench", version="1"), auth=auth_headers
        )
        if not wait_flags({endpoint.host_port: True}, 10.0):
            raise RuntimeError("feature flag not fetched within 10 s")
        drivers = available(Path(tmp), out["skipped"])
        churn_db = Driver(
            "sqlite3",
            sqlite3,
            "sqlite",
            "?",
            lambda i: (str(Path(tmp) / f"churn-{i}.db"),),
            databases="per_thread",
        )
        try:
            for name, driver in drivers.items():
                driver.prepare()
                if name == "sqlite3 ~1 ms":
                    rows = _run_driver(driver, {"mix": (slow_per_thread, 0.001)}, context)
                else:
                    rows = _run_driver(driver, kinds, context)
                for kind, block in rows.items():
                    out["rows"][f"{name}|{kind}"] = block
            churn_db.prepare()
            for name, block in _run_connects(churn_db, connects, context).items():
                out["rows"][f"sqlite3|{name}"] = block
            for threads, kind in ((1, "burst"), (THREADS, f"burst{THREADS}")):
                out["rows"][f"sqlite3|{kind}"] = _run_burst(drivers["sqlite3"], threads, context)
        finally:
            for driver in drivers.values():
                if driver.server is not None:
                    driver.server.stop()
            holder.close()
        for block in out["rows"].values():
            block["figures"] = _figures(block)
        provider.shutdown()
        actors.shutdown(2.0)
    return out
