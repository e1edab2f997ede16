"""The equivalence checks: each runs once through the raw driver and once through the instrumented
one, on its side's fresh database, and returns plain values (rows as tuples) to compare; what a
check raises is compared too (type, message, chaining). A check that needs a feature only some
drivers have says so with `needs`; everything else runs on every driver, absent methods included
(the instrumented objects must lack them as the driver's do)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import Env

MARKER = "marker-q17"  # in SQL literals and parameters: must never reach a telemetry event
Check = Callable[[Any, Env], Any]


def needs(feature: str) -> Callable[[Check], Check]:
    def mark(check: Check) -> Check:
        check.feature = feature  # type: ignore[attr-defined]
        return check

    return mark


def rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in result]


def described(cursor: Any) -> Any:
    if cursor.description is None:
        return None
    return [(column[0], repr(column[1])) for column in cursor.description]


def people(db: Any, env: Env, count: int = 10, **extra: Any) -> Any:
    """A connection to a database holding ``people`` (`count` rows), committed."""
    conn = env.connect(db, **extra)
    cur = conn.cursor()
    cur.execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(40) UNIQUE NOT NULL, age INT)"
    )
    cur.executemany(
        env.sql("INSERT INTO people (id, name, age) VALUES (?, ?, ?)"),
        [(i, f"{MARKER}-{i}", 20 + i % 50) for i in range(count)],
    )
    conn.commit()
    return conn


def probe(conn: Any) -> Any:
    """Whether a connection still runs statements, or what it raises."""
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        return ("open", rows(cur.fetchall()))
    except Exception as exc:
        return ("raises", type(exc))


# --- the standard surface -------------------------------------------------------------------


def check_ddl_insert_select_with_parameters(db: Any, env: Env) -> Any:
    conn = env.connect(db)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (a INTEGER, b VARCHAR(20))")
        ddl_description = described(cur)
        cur.execute(env.sql("INSERT INTO t VALUES (?, ?)"), (1, f"{MARKER}-one"))
        inserted = cur.rowcount
        cur.execute(env.sql("INSERT INTO t VALUES (?, ?)"), (2, "two"))
        returned = cur.execute(env.sql("SELECT a, b FROM t WHERE a >= ? ORDER BY a"), (1,))
        same_cursor = returned is cur
        return ddl_description, inserted, same_cursor, described(cur), rows(cur.fetchall())
    finally:
        conn.close()


def check_executemany_and_rowcount(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        cur = conn.cursor()
        cur.executemany(env.sql("UPDATE people SET age = age + 1 WHERE id = ?"), [(1,), (2,)])
        many = cur.rowcount
        cur.execute(env.sql("UPDATE people SET age = 0 WHERE age > ?"), (25,))
        updated = cur.rowcount
        cur.execute("DELETE FROM people WHERE age = 0")
        deleted = cur.rowcount
        cur.execute("SELECT id FROM people ORDER BY id")
        return many, updated, deleted, rows(cur.fetchall())
    finally:
        conn.close()


def check_fetchone_fetchmany_fetchall_and_iteration(db: Any, env: Env) -> Any:
    conn = people(db, env, count=2500)
    try:
        cur = conn.cursor()
        cur.execute("SELECT id, name FROM people ORDER BY id")
        one = tuple(cur.fetchone())
        three = rows(cur.fetchmany(3))
        cur.arraysize = 7
        default_many = rows(cur.fetchmany())
        iterated = [tuple(row) for _, row in zip(range(1500), cur, strict=False)]
        rest = rows(cur.fetchall())
        after = (cur.fetchone(), rows(cur.fetchmany(2)), rows(cur.fetchall()))
        cur.execute("SELECT count(*), sum(age) FROM people")
        total = rows(cur)
        return one, three, default_many, iterated[-1], len(iterated), len(rest), after, total
    finally:
        conn.close()


def check_description_and_rowcount_of_a_select(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        cur = conn.cursor()
        before = (described(cur), cur.rowcount)
        cur.execute("SELECT id, name, age FROM people WHERE id < 3 ORDER BY id")
        during = (described(cur), cur.rowcount)
        fetched = rows(cur.fetchall())
        return before, during, fetched, cur.rowcount
    finally:
        conn.close()


def check_syntax_error(db: Any, env: Env) -> Any:
    conn = env.connect(db)
    try:
        conn.cursor().execute(f"SELEC '{MARKER}'")
    finally:
        conn.close()


def check_constraint_violation_then_recovery(db: Any, env: Env) -> Any:
    conn = people(db, env)
    cur = conn.cursor()
    try:
        cur.execute(env.sql("INSERT INTO people (id, name) VALUES (?, ?)"), (99, f"{MARKER}-1"))
    except Exception as exc:
        failure = (type(exc), str(exc))
    else:
        failure = None
    conn.rollback()
    cur.execute("SELECT count(*) FROM people")
    count = rows(cur.fetchall())
    try:
        cur.execute(env.sql("INSERT INTO people (id, name) VALUES (?, ?)"), (1, "again"))
    finally:
        conn.close()
    return failure, count


def check_bad_input_wrong_parameter_count(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        conn.cursor().execute(env.sql("SELECT name FROM people WHERE id = ?"), (1, 2))
    finally:
        conn.close()


def check_closed_cursor_and_connection_raise(db: Any, env: Env) -> Any:
    conn = people(db, env)
    cur = conn.cursor()
    cur.close()
    outcomes = []
    for action in (lambda: cur.execute("SELECT 1"), conn.close, conn.close, conn.cursor):
        try:
            action()
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append((type(exc), str(exc)))
    return outcomes


def check_transactions_commit_and_rollback(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        cur = conn.cursor()
        cur.execute(env.sql("INSERT INTO people (id, name) VALUES (?, ?)"), (50, "rolled"))
        conn.rollback()
        cur.execute(env.sql("INSERT INTO people (id, name) VALUES (?, ?)"), (51, "kept"))
        conn.commit()
        other = env.connect(db)
        try:
            seen = other.cursor()
            seen.execute("SELECT id FROM people WHERE id > 40 ORDER BY id")
            return rows(seen.fetchall())
        finally:
            other.close()
    finally:
        conn.close()


def check_with_on_the_connection(db: Any, env: Env) -> Any:
    people(db, env).close()
    with env.connect(db) as conn:
        conn.cursor().execute(env.sql("INSERT INTO people (id, name) VALUES (?, ?)"), (60, "w"))
    after = probe(conn)
    conn.close()
    try:
        with env.connect(db) as failing:
            failing.cursor().execute(
                env.sql("INSERT INTO people (id, name) VALUES (?, ?)"), (61, "x")
            )
            raise KeyError("inside the block")
    except KeyError:
        pass
    failing.close()
    check = env.connect(db)
    try:
        cur = check.cursor()
        cur.execute("SELECT id FROM people WHERE id >= 60 ORDER BY id")
        return after, rows(cur.fetchall())
    finally:
        check.close()


def check_with_on_a_cursor(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM people WHERE id < 2 ORDER BY id")
            inside = rows(cur.fetchall())
        try:
            cur.execute("SELECT 1")
            after: Any = "usable"
        except Exception as exc:
            after = type(exc)
        return inside, after
    finally:
        conn.close()


def check_connection_level_shortcuts(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        result = conn.execute(env.sql("INSERT INTO people (id, name) VALUES (?, ?)"), (70, "s"))
        kind = (result is conn, hasattr(result, "fetchall"), result.rowcount)
        conn.rollback()
        selected = conn.execute("SELECT id FROM people WHERE id >= 9 ORDER BY id")
        names_conn = getattr(selected, "connection", None) is conn
        return kind, names_conn, rows(selected.fetchall()), probe(conn)
    finally:
        conn.close()


def check_connection_level_executemany_and_executescript(db: Any, env: Env) -> Any:
    conn = people(db, env)
    try:
        many = conn.executemany(env.sql("DELETE FROM people WHERE id = ?"), [(1,), (2,)])
        script = conn.executescript("DELETE FROM people WHERE id = 3; DELETE FROM people;")
        return hasattr(many, "fetchall"), hasattr(script, "fetchall")
    finally:
        conn.close()


STANDARD_CHECKS: list[Check] = [
    check_ddl_insert_select_with_parameters,
    check_executemany_and_rowcount,
    check_fetchone_fetchmany_fetchall_and_iteration,
    check_description_and_rowcount_of_a_select,
    check_syntax_error,
    check_constraint_violation_then_recovery,
    check_bad_input_wrong_parameter_count,
    check_closed_cursor_and_connection_raise,
    check_transactions_commit_and_rollback,
    check_with_on_the_connection,
    check_with_on_a_cursor,
    check_connection_level_shortcuts,
    check_connection_level_executemany_and_executescript,
]
