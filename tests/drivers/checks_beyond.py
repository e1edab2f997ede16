"""The equivalence checks beyond the standard surface: result sets, procedures, query forms,
server-side cursors, copies, catalog functions and threads (see `checks` for the rules)."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable
from typing import Any

from .checks import Check, needs, people, rows
from .conftest import Env

THREADS = 8
JOIN_TIMEOUT_S = 30.0


def check_nextset(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        cur = conn.cursor()
        text = "SELECT id FROM people WHERE id < 2 ORDER BY id"
        cur.execute(f"{text}; SELECT name FROM people WHERE id = 5" if env.has("multi") else text)
        first = rows(cur.fetchall())
        more = cur.nextset()
        second = rows(cur.fetchall()) if more else None
        return first, more, second, cur.nextset()
    finally:
        conn.close()


def check_callproc_and_a_failing_callproc(db: Any, env: Env) -> Any:
    conn = env.connect(db)
    try:
        cur = conn.cursor()
        if env.has("callproc"):
            cur.execute(
                "CREATE FUNCTION double_it(x integer) RETURNS integer"
                " AS 'SELECT x * 2' LANGUAGE sql"
            )
        returned = cur.callproc("double_it", (21,))
        result = rows(cur.fetchall())
        try:
            cur.callproc("no_such_procedure_q9", (1,))
        except Exception as exc:
            failure = (type(exc), str(exc))
        return returned, result, failure
    finally:
        conn.close()


def check_bytes_queries(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        cur = conn.cursor()
        cur.execute(b"SELECT id FROM people WHERE id < 3 ORDER BY id")
        return rows(cur.fetchall())
    finally:
        conn.close()


@needs("composed")
def check_composed_queries(db: Any, env: Env) -> Any:
    sql = __import__(f"{env.name}.sql", fromlist=["sql"])
    conn = people(db, env)
    try:
        cur = conn.cursor()
        query = sql.SQL("SELECT {} FROM {} WHERE id < %s ORDER BY id").format(
            sql.Identifier("name"), sql.Identifier("people")
        )
        cur.execute(query, (2,))
        return rows(cur.fetchall()), query.as_string(conn)
    finally:
        conn.close()


@needs("named")
def check_server_side_named_cursors(db: Any, env: Env) -> Any:
    conn = people(db, env, count=2500)
    try:
        with conn.cursor("big_scan") as cur:
            cur.execute("SELECT id, name FROM people ORDER BY id")
            first = tuple(cur.fetchone())
            some = rows(cur.fetchmany(10))
            rest = [tuple(row) for row in cur]
        return first, some, len(rest), rest[-1]
    finally:
        conn.close()


@needs("copy")
def check_copy_in_and_out(db: Any, env: Env) -> Any:
    conn = env.connect(db)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE items (id INTEGER, label TEXT)")
        if env.name == "psycopg2":
            cur.copy_from(io.StringIO("1\tone\n2\ttwo\n"), "items")
            out = io.StringIO()
            cur.copy_to(out, "items")
            expert = io.StringIO()
            cur.copy_expert("COPY (SELECT id FROM items ORDER BY id) TO STDOUT WITH CSV", expert)
            return out.getvalue(), expert.getvalue(), cur.rowcount
        with cur.copy("COPY items (id, label) FROM STDIN") as copy:
            copy.write_row((1, "one"))
            copy.write_row((2, "two"))
        with cur.copy("COPY (SELECT id, label FROM items ORDER BY id) TO STDOUT") as copy:
            data = b"".join(bytes(block) for block in copy)
        streamed = [tuple(row) for row in cur.stream("SELECT id FROM items ORDER BY id")]
        return data, streamed
    finally:
        conn.close()


@needs("catalog")
def check_catalog_functions(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        cur = conn.cursor()
        tables = [row[2:4] for row in rows(cur.tables(table="people"))]
        columns = [row[3] for row in rows(cur.columns(table="people"))]
        keys = [row[3] for row in rows(cur.primaryKeys("people"))]
        type_names = sorted({row[0] for row in rows(cur.getTypeInfo())})
        statistics = len(rows(cur.statistics("people")))
        return tables, columns, keys, type_names, statistics
    finally:
        conn.close()


def check_eight_threads_each_with_its_own_connection(db: Any, env: Env) -> Any:
    people(db, env, count=50).close()
    results: dict[int, Any] = {}
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            conn = env.connect(db)
            try:
                cur = conn.cursor()
                cur.execute(
                    env.sql("SELECT id, name FROM people WHERE id - (id / 8) * 8 = ? ORDER BY id"),
                    (index,),
                )
                results[index] = (tuple(cur.fetchone()), rows(cur.fetchall()))
            finally:
                conn.close()
        except BaseException as exc:  # handed back to the test thread
            failures.append(exc)

    run_threads(work)
    if failures:
        raise failures[0]
    return sorted(results.items())


@needs("share_connection")
def check_one_connection_shared_by_threads(db: Any, env: Env) -> Any:
    # sqlite3 lets threads share a connection made with check_same_thread=False, but its module
    # is not safe for concurrent calls (3.12 fails with "bad parameter or other API misuse"):
    # its users serialise them, and so does this check. The psycopg drivers serialise
    # themselves.
    sqlite = env.name == "sqlite3"
    conn = people(db, env, count=50, **({"check_same_thread": False} if sqlite else {}))
    turn = threading.Lock() if sqlite else contextlib.nullcontext()
    results: dict[int, Any] = {}
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            cur = conn.cursor()
            for _ in range(5):
                with turn:
                    cur.execute(
                        env.sql("SELECT count(*) FROM people WHERE id - (id / 8) * 8 = ?"),
                        (index,),
                    )
                    results[index] = rows(cur.fetchall())
            cur.close()
        except BaseException as exc:
            failures.append(exc)

    try:
        run_threads(work)
    finally:
        conn.close()
    if failures:
        raise failures[0]
    return sorted(results.items())


def run_threads(work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(i,), name=f"check-{i}") for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a check thread hung"


BEYOND_CHECKS: list[Check] = [
    check_nextset,
    check_callproc_and_a_failing_callproc,
    check_bytes_queries,
    check_composed_queries,
    check_server_side_named_cursors,
    check_copy_in_and_out,
    check_catalog_functions,
    check_eight_threads_each_with_its_own_connection,
    check_one_connection_shared_by_threads,
]
