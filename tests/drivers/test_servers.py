"""The field-test servers: a missing server skips outside CI and fails under it; PostgreSQL runs."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import _pytest.outcomes
import pytest
import servers
from _pytest.outcomes import Failed


def test_a_missing_server_skips_with_an_install_hint_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        servers.missing("PostgreSQL")


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_a_missing_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(_pytest.outcomes.Failed, match="CI must run the field tests"):
        servers.missing("PostgreSQL")


def test_ci_false_is_not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    assert not servers.in_ci()


def test_a_missing_python_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"\.\[test\]"):
        servers.require_module("no_such_driver_q81", "no-such-driver")


def test_postgres_listens_on_loopback_with_trust_auth(postgres: servers.PostgresInfo) -> None:
    psycopg = servers.require_module("psycopg", "psycopg[binary]")
    assert postgres.host == "127.0.0.1"
    with psycopg.connect(postgres.dsn, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_user, current_setting('listen_addresses')").fetchone()
    assert row == (postgres.user, "127.0.0.1")
    with socket.create_connection((postgres.host, postgres.port), timeout=5):
        pass


def test_the_sqlite_odbc_driver_opens_a_database_file(sqlite_odbc: Any, tmp_path: Path) -> None:
    pyodbc = servers.require_module("pyodbc", "pyodbc")
    conn = pyodbc.connect(sqlite_odbc(tmp_path / "odbc.db"), timeout=10)
    try:
        assert conn.execute("SELECT 1 + 1").fetchone()[0] == 2
    finally:
        conn.close()


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", Failed)])
def test_missing_postgresql_binaries_skip_or_fail_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(servers, "postgres_bindir", lambda: None)
    with pytest.raises(outcome, match="apt-get install postgresql unixodbc libsqliteodbc"):
        servers.start_postgres()


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", Failed)])
def test_a_missing_sqlite_odbc_driver_skips_or_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(servers, "sqlite_odbc_driver", lambda: None)
    with pytest.raises(outcome, match="libsqliteodbc"):
        servers.sqlite_odbc_connection_string("x.db")
