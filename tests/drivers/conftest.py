"""The driver matrix: sqlite3, pyodbc over the SQLite ODBC driver, psycopg 3 and psycopg2 on a
PostgreSQL of the tests' own; each check gets a fresh database per side (raw, instrumented).

`Env` is what a check may know about its driver: how to connect to its side's database, the
placeholder, and which features the driver has. The instrumented side tells a `Recording` (in
place of the telemetry connection), so a test can read every event it told.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from servers import PostgresInfo, require_module, sqlite_odbc_connection_string

import actors.dbapi._session as dbapi_session
from actors.dbapi import instrument, instrument_connection
from messages.events import StatementSummary

DRIVERS = ("sqlite3", "pyodbc", "psycopg", "psycopg2")
DISTRIBUTIONS = {
    "sqlite3": "the standard library",
    "pyodbc": "pyodbc",
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
}
# What each driver has beyond the standard surface (the checks skip the rest).
FEATURES: dict[str, frozenset[str]] = {
    "sqlite3": frozenset({"shortcuts", "share_connection", "executescript"}),
    "pyodbc": frozenset({"shortcuts", "catalog"}),
    "psycopg": frozenset(
        {"shortcuts", "share_connection", "named", "copy", "stream", "multi", "composed"}
    ),
    "psycopg2": frozenset({"share_connection", "named", "copy", "callproc", "composed"}),
}


class Recording:
    """Stands in for one telemetry `Connection`: records what is told; safe from any thread."""

    enabled = True  # what the feature flag says (a test may turn it off for the class)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Any] = []
        self.closed = False

    def tell(self, event: object) -> bool:
        with self._lock:
            self._events.append(event)
        return True

    def close(self) -> None:
        self.closed = True

    @property
    def events(self) -> list[Any]:
        with self._lock:
            return list(self._events)

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@attrs.define
class Env:
    """One side's database of one driver."""

    name: str
    module: ModuleType
    placeholder: str
    features: frozenset[str]
    target: str  # sqlite file, ODBC connection string or libpq conninfo

    def connect(self, db: Any, **extra: Any) -> Any:
        """A connection through `db` (the raw module or the instrumented one)."""
        if self.name == "sqlite3":
            return db.connect(self.target, timeout=10, **extra)
        if self.name == "pyodbc":
            return db.connect(self.target, timeout=10, **extra)
        return db.connect(self.target, connect_timeout=10, **extra)

    def sql(self, text: str) -> str:
        """A statement written with ``?`` placeholders, in this driver's paramstyle."""
        return text.replace("?", self.placeholder)

    def has(self, feature: str) -> bool:
        return feature in self.features


@attrs.define
class Pair:
    """A driver's two sides and the instrumented module, with what it told."""

    raw: Env
    wrapped: Env
    db: Any  # the instrumented module
    recordings: list[Recording]

    @property
    def module(self) -> ModuleType:
        return self.raw.module

    @property
    def name(self) -> str:
        return self.raw.name

    def events(self) -> list[Any]:
        return [event for recording in self.recordings for event in recording.events]


@pytest.fixture
def recordings(monkeypatch: pytest.MonkeyPatch) -> list[Recording]:
    """Every telemetry connection the instrumentation opens is a `Recording`, listed here."""
    opened: list[Recording] = []
    lock = threading.Lock()

    def open_recording(target: Any) -> Recording:
        recording = Recording()
        with lock:
            opened.append(recording)
        return recording

    monkeypatch.setattr(dbapi_session, "_open_telemetry", open_recording)
    return opened


@pytest.fixture(scope="session")
def pg_schemas(request: pytest.FixtureRequest) -> Callable[[], str] | None:
    """`new_schema()`: a fresh schema on the session's PostgreSQL (started on first use)."""
    postgres: PostgresInfo = request.getfixturevalue("postgres")
    psycopg = require_module("psycopg", DISTRIBUTIONS["psycopg"])
    admin = psycopg.connect(postgres.dsn, autocommit=True, connect_timeout=10)
    request.addfinalizer(admin.close)
    lock = threading.Lock()

    def new_schema() -> str:
        schema = f"s_{uuid.uuid4().hex[:12]}"
        with lock:
            admin.execute(f"CREATE SCHEMA {schema}")
        return f"{postgres.dsn} options='-c search_path={schema}'"

    return new_schema


def _target(name: str, side: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if name == "sqlite3":
        return str(tmp_path / f"{side}.db")
    if name == "pyodbc":
        return sqlite_odbc_connection_string(tmp_path / f"{side}.db")
    new_schema: Callable[[], str] = request.getfixturevalue("pg_schemas")
    return new_schema()


@pytest.fixture
def env_of(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Env]:
    """`env_of(name)`: one fresh database of a driver, with no recording in place."""

    def make(name: str) -> Env:
        module = require_module(name, DISTRIBUTIONS[name])
        placeholder = "?" if module.paramstyle == "qmark" else "%s"
        return Env(
            name, module, placeholder, FEATURES[name], _target(name, "db", tmp_path, request)
        )

    return make


def make_pair(
    name: str, tmp_path: Path, request: pytest.FixtureRequest, recordings: list[Recording]
) -> Pair:
    """The raw and instrumented sides of one driver, each on a fresh database."""
    module = require_module(name, DISTRIBUTIONS[name])
    placeholder = "?" if module.paramstyle == "qmark" else "%s"

    def env(side: str) -> Env:
        target = _target(name, side, tmp_path, request)
        return Env(name, module, placeholder, FEATURES[name], target)

    db = instrument(module, host="drivers.example.com")
    return Pair(env("raw"), env("wrapped"), db, recordings)


class OpenConnections:
    """A module-like object whose ``connect`` wraps each driver connection once it is open
    (`instrument_connection`): the generic wrapper, whatever the driver."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raw = self.module.connect(*args, **kwargs)
        return instrument_connection(raw, host="drivers.example.com")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


@pytest.fixture(params=DRIVERS)
def pair(request: pytest.FixtureRequest, tmp_path: Path, recordings: list[Recording]) -> Pair:
    """One driver of the matrix (each test runs once per driver)."""
    return make_pair(request.param, tmp_path, request, recordings)


@pytest.fixture
def pair_of(
    request: pytest.FixtureRequest, tmp_path: Path, recordings: list[Recording]
) -> Callable[[str], Pair]:
    """`pair_of(name)`: a given driver's pair, for tests of one driver's own behaviour."""
    return lambda name: make_pair(name, tmp_path, request, recordings)


PairOf = Callable[[str], Pair]
BIG = 2500


def statements(recording: Recording) -> list[dict[str, Any]]:
    """Each statement told, in the order they ended: its kinds, chunks and how it ended."""
    return [
        {
            "type": event.statement_type,
            "op": event.operation_type,
            "chunks": event.chunks,
            "end": (
                ("completed", event.total_chunks_present)
                if event.completed
                else ("error", event.error.error_name if event.error else None)
            ),
        }
        for event in recording.of(StatementSummary)
    ]


def last_recording(pair: Pair) -> Recording:
    return pair.recordings[-1]
