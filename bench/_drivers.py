"""The real path's drivers: how to open, fill and address each one's databases, and the three
statements (point select, insert, 20-row select) in each one's parameter style."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

THREADS = 4
TABLE_ROWS = 1000
KINDS = ("point", "insert", "rows20")


class Driver:
    """How to open, prepare and address one driver's databases."""

    def __init__(
        self,
        name: str,
        module: Any,
        system: str,
        marker: str,
        open_args: Callable[[int], tuple[Any, ...]],
        *,
        databases: str,
        server: Any = None,
    ) -> None:
        self.name = name
        self.databases = databases  # "memory" (per connection), "per_thread" or "shared"
        self.server = server  # what to stop at the end, if anything
        self.module = module
        self.system = system  # OpenTelemetry's `database_system`
        self.marker = marker  # the parameter placeholder
        self.open_args = open_args
        m = marker
        self.sql = {
            "point": f"SELECT id, name, score FROM t WHERE id = {m}",
            "insert": f"INSERT INTO ins (name, score) VALUES ({m}, {m})",
            "rows20": f"SELECT id, name, score FROM t WHERE id >= {m} AND id < {m}",
        }

    def fill(self, conn: Any) -> None:
        """Create and fill the two tables in the database `conn` is connected to."""
        cur = conn.cursor()
        m = self.marker
        for ddl in (
            "DROP TABLE IF EXISTS t",
            "DROP TABLE IF EXISTS ins",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(40), score REAL)",
            "CREATE TABLE ins (name VARCHAR(40), score REAL)",
        ):
            cur.execute(ddl)
        cur.executemany(
            f"INSERT INTO t (id, name, score) VALUES ({m}, {m}, {m})",
            [(i, f"user-{i}", (i * 37 % 101) / 101) for i in range(1, TABLE_ROWS + 1)],
        )
        conn.commit()
        cur.close()

    def prepare(self) -> None:
        """Fill the databases that outlive a connection (raw driver, untimed)."""
        indexes = {"memory": (), "per_thread": range(THREADS), "shared": (0,)}[self.databases]
        for index in indexes:
            conn = self.module.connect(*self.open_args(index))
            try:
                self.fill(conn)
            finally:
                conn.close()

    def open(self, module: Any, index: int) -> Any:
        """Thread `index`'s connection through `module` (one of the ways), ready to use."""
        conn = module.connect(*self.open_args(index))
        if self.databases == "memory":
            self.fill(conn)
        return conn


def statement(conn: Any, sql: dict[str, str], kind: str, i: int) -> None:
    cur = conn.cursor()
    key = i % (TABLE_ROWS - 20) + 1
    if kind == "point":
        cur.execute(sql["point"], (key,))
        cur.fetchone()
    elif kind == "insert":
        cur.execute(sql["insert"], (f"n{i}", 0.5))
    else:
        cur.execute(sql["rows20"], (key, key + 20))
        cur.fetchall()
    cur.close()


def available(
    tmp: Path, skipped: dict[str, str], names: Collection[str] | None = None
) -> dict[str, Driver]:
    """The statement rows' drivers (only those in `names`, if given: no PostgreSQL server is
    started for a script that does not use it); one that cannot run here is left out, with the
    reason."""
    memory = (":memory:",)
    drivers = {
        "sqlite3": Driver("sqlite3", sqlite3, "sqlite", "?", lambda i: memory, databases="memory")
    }
    if names is None or "pyodbc" in names:
        _add_pyodbc(tmp, drivers, skipped)
    if names is None or "psycopg 3" in names:
        _add_psycopg(drivers, skipped)
    drivers["sqlite3 ~1 ms"] = Driver(
        "sqlite3", sqlite3, "sqlite", "?", lambda i: memory, databases="memory"
    )
    return drivers if names is None else {k: v for k, v in drivers.items() if k in names}


def usable(tmp: Path, names: Sequence[str]) -> Iterator[tuple[str, Driver]]:
    """The drivers of `names` that can run here, in order, each prepared; a line is printed for
    each one that cannot, with the reason."""
    skipped: dict[str, str] = {}
    drivers = available(tmp, skipped, names)
    for name in names:
        driver = drivers.get(name)
        if driver is None:
            print(f"{name}: skipped ({skipped.get(name, 'not available')})")
            continue
        driver.prepare()
        yield name, driver


def _add_pyodbc(tmp: Path, drivers: dict[str, Driver], skipped: dict[str, str]) -> None:
    try:
        import pyodbc

        odbc = Driver(
            "pyodbc",
            pyodbc,
            "sqlite",
            "?",
            lambda i: (f"DRIVER={{SQLite3}};Database={tmp / f'odbc-{i}.db'}",),
            databases="per_thread",
        )
        pyodbc.connect(odbc.open_args(0)[0]).close()
        drivers["pyodbc"] = odbc
    except Exception as exc:  # no module or no ODBC driver: the row says why
        skipped["pyodbc"] = f"{type(exc).__name__}: {exc}"[:200]


def _add_psycopg(drivers: dict[str, Driver], skipped: dict[str, str]) -> None:
    try:
        import psycopg
        from _postgres import PostgresServer

        server = PostgresServer().start()
        drivers["psycopg 3"] = Driver(
            "psycopg 3",
            psycopg,
            "postgresql",
            "%s",
            lambda i: (server.conninfo,),
            databases="shared",
            server=server,
        )
    except Exception as exc:
        skipped["psycopg 3"] = f"{type(exc).__name__}: {exc}"[:200]
