"""Prototype: the driver process only hands statement facts to another process, which folds,
encodes and exports them; what that leaves on the driver process, beside raw and today's ours.

`python bench/offload_proto.py [--quick]`. Not the library: a what-if for issue 13's item 4.
Four driver threads (`bench/_drivers.py`, `bench/_crew.py`), sqlite3 and pyodbc, four ways,
interleaved in a rotating order, medians over rounds:

- `raw`: the driver itself;
- `ours`: `actors.instrument`, shipped defaults, to the loopback endpoint (in-process pipeline);
- `otel`: OpenTelemetry's DB-API instrumentation, batch span processor, OTLP/HTTP to the
  bench's loopback sink, as in the headline (`real_path`);
- `offload`: a thin PEP 249 wrapper that, per statement, appends one small tuple (statement
  kind, latency ns, rows, ok) to its thread's list and, every `BATCH` statements, sends the
  list in one `marshal`led pipe write to a child process. The child builds each statement's
  frontend log (`messages.records`), encodes it (`messages.encode`), and posts requests of
  100 logs (`messages.wire.encode_request`) to the same endpoint over one keep-alive
  connection. The flush (inside the timing, as in the headline) sends what the lists hold and
  waits for the child to answer once every request of the run has been answered.

Reported per statement, added to raw: wall, process CPU (the driver process, every thread) and
the driver threads' own CPU; the child's CPU separately (read from the child at each flush).
"""

from __future__ import annotations

import argparse
import http.client
import json
import marshal
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

from _common import auth_headers, quiet_gc, wait_flags
from _crew import Crew
from _drivers import KINDS, THREADS, available, statement
from _endpoint import EndpointProcess
from _otlp_sink import SinkProcess

import actors
from messages.sysconfig import DriverInfo

BATCH = 100  # statements per hand-off: one pipe write per BATCH statements per thread
BATCH_AGE_MS = 50.0  # or sooner, once a list's first fact is this old (at a statement's end)
WAYS = ("raw", "ours", "offload", "otel")
_KIND = {"SELECT": 0, "INSERT": 1}  # the statement type, by the statement's first word


# --- the driver side: a thin wrapper and one send per batch ------------------------------------


class Handoff:
    """The driver process's half: per-thread lists and one pipe to the child.

    Each thread appends only to its own list (one writer); the pipe write is under a lock,
    taken once per `BATCH` statements. `flush` runs on the main thread while the driver
    threads are idle (after `Crew.run` returned), so it may read every list.
    """

    def __init__(self, pipe: Any, answers: Any, batch: int, age_ms: float) -> None:
        self._batch = batch
        self._age_ns = int(age_ms * 1e6)
        self._pipe = pipe
        self._answers = answers
        self._lock = threading.Lock()
        self._local = threading.local()
        self._lists: list[list[tuple[int, int, int, int]]] = []

    def _mine(self) -> list[tuple[int, int, int, int]]:
        try:
            return self._local.facts  # type: ignore[no-any-return]
        except AttributeError:
            facts: list[tuple[int, int, int, int]] = []
            self._local.facts = facts
            with self._lock:
                self._lists.append(facts)
            return facts

    def record(self, fact: tuple[int, int, int, int], now_ns: int) -> None:
        """Safe from any driver thread: append; one pipe write per batch or age."""
        facts = self._mine()
        if not facts:
            self._local.first_ns = now_ns
        facts.append(fact)
        if len(facts) >= self._batch or now_ns - self._local.first_ns >= self._age_ns:
            data = marshal.dumps(facts)
            facts.clear()
            with self._lock:
                self._pipe.send_bytes(data)

    def flush(self, timeout_s: float = 30.0) -> tuple[float, int] | None:
        """Send what every list holds, wait for the child's answer, or None after `timeout_s`.

        The answer: the child's CPU seconds so far and the logs the endpoint has accepted.
        """
        with self._lock:
            for facts in self._lists:
                if facts:
                    self._pipe.send_bytes(marshal.dumps(facts))
                    facts.clear()
            self._pipe.send_bytes(b"flush")
        if not self._answers.poll(timeout_s):
            return None
        answer: tuple[float, int] = self._answers.recv()
        return answer


class _Cursor:
    def __init__(self, cursor: Any, handoff: Handoff) -> None:
        self._cursor = cursor
        self._handoff = handoff
        self._fact: list[int] = [0, 0, 0, 1]
        self._end_ns = 0

    def execute(self, sql: str, params: Any = ()) -> _Cursor:
        start = time.perf_counter_ns()
        try:
            self._cursor.execute(sql, params)
        except Exception:
            self._fact[3] = 0
            raise
        finally:
            self._fact[0] = _KIND.get(sql[:6].upper(), 2)
            self._end_ns = time.perf_counter_ns()
            self._fact[1] = self._end_ns - start
        return self

    def executemany(self, sql: str, rows: Any) -> _Cursor:
        start = time.perf_counter_ns()
        self._cursor.executemany(sql, rows)
        self._fact[0] = _KIND.get(sql[:6].upper(), 2)
        self._end_ns = time.perf_counter_ns()
        self._fact[1] = self._end_ns - start
        return self

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        self._fact[2] += row is not None
        return row

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._cursor.fetchall()
        self._fact[2] += len(rows)
        return rows

    def close(self) -> None:
        self._cursor.close()
        f = self._fact
        self._handoff.record((f[0], f[1], f[2], f[3]), self._end_ns)


class _Connection:
    def __init__(self, conn: Any, handoff: Handoff) -> None:
        self._conn = conn
        self._handoff = handoff

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor(), self._handoff)

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


class OffloadModule:
    """A stand-in driver module whose `connect` wraps the driver's for the hand-off."""

    def __init__(self, connect: Any, handoff: Handoff) -> None:
        self._connect = connect
        self._handoff = handoff

    def connect(self, *args: Any, **kwargs: Any) -> _Connection:
        return _Connection(self._connect(*args, **kwargs), self._handoff)


# --- the child: fold, encode, export -------------------------------------------------------------


def _child(pipe: Any, answers: Any, host_port: str) -> None:
    """Build, encode and post every statement's log; answer each flush with this CPU time."""
    from actors._aggregate.statements import event_id
    from messages import records as r
    from messages.encode import encode_frontend_log
    from messages.enums import OperationType, StatementType
    from messages.wire import encode_request

    host, port = host_port.rsplit(":", 1)
    session = http.client.HTTPConnection(host, int(port), timeout=10.0)
    headers = {"Content-Type": "application/json", **auth_headers()}
    system = r.SystemConfiguration(driver_name="bench-offload", driver_version="1.0.0")
    kinds = (StatementType.QUERY, StatementType.UPDATE, StatementType.SQL)
    detail = r.OperationDetail(operation_type=OperationType.EXECUTE_STATEMENT)
    pending: list[str] = []
    accepted = [0]  # logs the endpoint took, reported at each flush

    def post() -> None:
        body = encode_request(pending, int(time.time() * 1000))
        pending.clear()
        session.request("POST", "/telemetry-ext", body=body, headers=headers)
        answer = json.loads(session.getresponse().read())
        accepted[0] += int(answer.get("numProtoSuccess", 0))

    while True:
        if not pipe.poll(60.0):
            return  # the parent is gone or idle for a minute: stop
        data = pipe.recv_bytes()
        if data == b"stop":
            return
        if data == b"flush":
            if pending:
                post()
            answers.send((time.process_time(), accepted[0]))
            continue
        now_ms = int(time.time() * 1000)
        for kind, latency_ns, _rows, ok in marshal.loads(data):
            log = r.FrontendLog(
                frontend_log_event_id=event_id(),
                context=r.FrontendLogContext(
                    client_context=r.ClientContext(timestamp_millis=now_ms, user_agent="bench")
                ),
                entry=r.FrontendLogEntry(
                    sql_driver_log=r.SqlDriverLog(
                        system_configuration=system,
                        sql_operation=r.SqlExecutionEvent(
                            statement_type=kinds[kind], operation_detail=detail
                        ),
                        operation_latency_ms=latency_ns // 1_000_000,
                        error_info=None if ok else r.DriverErrorInfo(error_name="Error"),
                    )
                ),
            )
            pending.append(encode_frontend_log(log))
            if len(pending) >= 100:
                post()


# --- the measurement ------------------------------------------------------------------------------


def _timed(crew: Crew, job: Any, flush: Any) -> dict[str, float]:
    """`real_path._timed`, plus the wall time until the driver threads were done (`run_s`)."""
    with quiet_gc():
        driver0 = crew.cpu_ns()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        crew.run(job)
        run1 = time.perf_counter()
        flushed = flush()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        driver1 = crew.cpu_ns()
    if flushed is False:
        raise RuntimeError("flush did not finish in time")
    return {
        "wall_s": wall1 - wall0,
        "run_s": run1 - wall0,
        "cpu_s": cpu1 - cpu0,
        "driver_cpu_s": (driver1 - driver0) / 1e9,
    }


def _row(
    driver: Any, modules: dict[str, Any], flushes: dict[str, Any], job: Any, n: int, repeats: int
) -> dict[str, float]:
    def opener(module: Any) -> Any:
        return lambda index: {"conn": driver.open(module, index), "counter": 0}

    crews = {w: Crew(opener(modules[w]), lambda s: s["conn"].close(), THREADS) for w in WAYS}
    per: dict[str, list[float]] = {}
    child: dict[str, float | None] = {"last": None}

    def flush_offload() -> object:
        answer = flushes["offload"]()
        if answer is None:
            return False
        child["now"], child["accepted"] = answer
        return True

    flush = {**flushes, "raw": lambda: None, "offload": flush_offload}
    try:
        actors.flush(timeout_s=10.0)
        for way in WAYS:
            _timed(crews[way], job, flush[way])
        for rnd in range(repeats):
            order = WAYS[rnd % len(WAYS) :] + WAYS[: rnd % len(WAYS)]
            got = {}
            for way in order:
                if way == "offload":
                    flush_offload()  # untimed: the child's CPU and accepted logs so far
                    before, accepted = child["now"], child["accepted"]
                got[way] = _timed(crews[way], job, flush[way])
                if way == "offload":
                    per.setdefault("offload|child", []).append(
                        (child["now"] - before) / n * 1e6  # type: ignore[operator]
                    )
                    per.setdefault("offload|arrived", []).append(child["accepted"] - accepted)
            raw = got["raw"]
            per.setdefault("raw|wall", []).append(raw["wall_s"] / n * 1e6)
            per.setdefault("raw|cpu", []).append(raw["cpu_s"] / n * 1e6)
            for way in WAYS[1:]:
                for clock in ("wall", "run", "cpu", "driver_cpu"):
                    added = (got[way][f"{clock}_s"] - raw[f"{clock}_s"]) / n * 1e6
                    per.setdefault(f"{way}|{clock}", []).append(added)
                per.setdefault(f"{way}|x", []).append(got[way]["wall_s"] / raw["wall_s"])
    finally:
        for crew in crews.values():
            crew.close()
    return {key: statistics.median(values) for key, values in per.items()}


def _job(driver: Any, kinds: tuple[str, ...], per_thread: int, pause_s: float) -> Any:
    def job(state: dict[str, Any]) -> None:
        conn, base = state["conn"], state["counter"]
        state["counter"] = base + per_thread
        for i in range(base, base + per_thread):
            if pause_s:
                time.sleep(pause_s)
            statement(conn, driver.sql, kinds[i % len(kinds)], i)
        conn.commit()

    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--batch", type=int, default=BATCH, help="statements per hand-off")
    parser.add_argument(
        "--age-ms", type=float, default=BATCH_AGE_MS, help="hand off a list once this old"
    )
    args = parser.parse_args()
    repeats, per_thread, slow = (5, 150, 75) if args.quick else (9, 250, 150)
    started, load = time.monotonic(), os.getloadavg()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.dbapi import wrap_connect
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    context = multiprocessing.get_context("spawn")
    with (
        EndpointProcess(flag=True, validate=False) as endpoint,
        SinkProcess() as sink,
        tempfile.TemporaryDirectory(prefix="bench-offload-") as tmp,
    ):
        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink.url)))
        child_in, parent_out = context.Pipe(duplex=False)  # (reader, writer)
        parent_in, child_out = context.Pipe(duplex=False)
        proc = context.Process(
            target=_child, args=(child_in, child_out, endpoint.host_port), daemon=True
        )
        proc.start()
        handoff = Handoff(parent_out, parent_in, args.batch, args.age_ms)
        info = DriverInfo(name="bench-proto", version="1.0.0")
        holder = actors.connect(endpoint.url, driver=info, auth=auth_headers)
        if not wait_flags({endpoint.host_port: True}, 10.0):
            raise RuntimeError("feature flag not fetched within 10 s")
        skipped: dict[str, str] = {}
        drivers = available(Path(tmp), skipped, ("sqlite3", "sqlite3 ~1 ms", "pyodbc"))
        flushes = {
            "ours": lambda: actors.flush(timeout_s=30.0),
            "offload": handoff.flush,
            "otel": lambda: provider.force_flush(30_000),
        }
        rows = {
            "sqlite3: point select": ("sqlite3", ("point",), per_thread, 0.0),
            "sqlite3: mix": ("sqlite3", KINDS, per_thread, 0.0),
            "sqlite3 ~1 ms: mix": ("sqlite3 ~1 ms", KINDS, slow, 0.001),
            "pyodbc: point select": ("pyodbc", ("point",), per_thread, 0.0),
        }
        head = f"{'+wall':>6} {'+run':>6} {'+CPU':>6} {'(drv)':>6} {'x':>6}"
        print(
            f"{'row':21} {'raw µs':>6} | ours {head} | offload {head} {'child':>6} arrived | "
            f"otel {head}"
        )
        for label, (name, kinds, count, pause_s) in rows.items():
            driver = drivers.get(name)
            if driver is None:
                print(f"{label}: skipped ({skipped.get(name, 'not available')})")
                continue
            driver.prepare()
            modules = {
                "raw": driver.module,
                "ours": actors.instrument(
                    driver.module.connect, host=endpoint.url, driver=info, auth=auth_headers
                ),
                "offload": OffloadModule(driver.module.connect, handoff),
                "otel": types.SimpleNamespace(connect=driver.module.connect),
            }
            wrap_connect(
                "bench.offload", modules["otel"], "connect", driver.system, tracer_provider=provider
            )
            job = _job(driver, kinds, count, pause_s)
            f = _row(driver, modules, flushes, job, count * THREADS, repeats)
            cells = [
                f"{f[w + '|wall']:6.1f} {f[w + '|run']:6.1f} {f[w + '|cpu']:6.1f} "
                f"({f[w + '|driver_cpu']:4.1f}) {f[w + '|x']:6.3f}"
                for w in WAYS[1:]
            ]
            print(
                f"{label:21} {f['raw|wall']:6.1f} | ours {cells[0]} | offload {cells[1]} "
                f"{f['offload|child']:6.1f} {f['offload|arrived']:.0f}/{count * THREADS} | "
                f"otel {cells[2]}"
            )
        holder.close()
        provider.shutdown()
        actors.shutdown(2.0)
        parent_out.send_bytes(b"stop")
        proc.join(5.0)
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
    print(
        f"\nµs per statement added to raw: wall with the flush, wall until the driver threads "
        f"were done (+run), process CPU, the driver threads' own CPU (drv); x = wall ÷ raw; "
        f"child = the child's CPU; medians of {repeats} rounds, {THREADS} threads, "
        f"batch {args.batch} or {args.age_ms:g} ms; "
        f"{os.cpu_count()} CPUs, load {' '.join(f'{x:.2f}' for x in load)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; "
        f"{time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
