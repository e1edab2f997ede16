"""Real servers and drivers for the field tests: a throwaway PostgreSQL, the SQLite ODBC driver.

`PostgresServer` runs ``initdb`` + ``pg_ctl`` in a temporary directory, listening on 127.0.0.1 and
a free port only (its Unix socket in that directory too), trust authentication, fsync off; as the
``postgres`` OS user when the tests run as root (PostgreSQL refuses to run as root). It is stopped
with its own ``pg_ctl stop -m fast`` and its directory removed. Every wait is bounded.

What is missing (a server binary, the ODBC driver, a Python driver) makes the tests that need it
skip with a message saying how to install it; with the environment variable ``CI`` set they fail
instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import attrs
import pytest

INSTALL_HINT = "apt-get install postgresql unixodbc libsqliteodbc"
PIP_HINT = "pip install -e '.[test]'"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
USER = "postgres"
DBNAME = "postgres"
SERVER_SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=60 -c max_prepared_transactions=10"
)


def in_ci() -> bool:
    """True when the environment variable CI is set to anything but empty, 0 or false."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, how: str = INSTALL_HINT) -> NoReturn:
    """Skip (fail under CI) because `what` is not installed; the message says how to install it."""
    message = f"{what} is not installed; to run these tests: {how}"
    if in_ci():
        pytest.fail(f"CI must run the field tests: {message}", pytrace=False)
    pytest.skip(message)


def require_module(name: str, distribution: str) -> ModuleType:
    """Import a Python driver, or skip (fail under CI) saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python driver {name} ({distribution})", PIP_HINT)


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/<version>/bin``, else the PATH; None when there is none."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    candidates += [Path(p) for p in versions]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.frozen(kw_only=True)
class PostgresInfo:
    """How to reach a running test server: `dsn` is a libpq conninfo string."""

    host: str
    port: int
    user: str
    dbname: str

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``psycopg.connect`` / ``psycopg2.connect``."""
        return {"host": self.host, "port": self.port, "user": self.user, "dbname": self.dbname}


class PostgresServer:
    """One throwaway PostgreSQL cluster; `start()` then `stop()` (both bounded, stop idempotent)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="pgtest-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.info: PostgresInfo | None = None
        self._started = False

    def _command(self, *args: str) -> list[str]:
        if os.geteuid() != 0:
            return list(args)
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", USER, "--", *args]
        return ["su", USER, "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in args)]

    def _run(self, *args: str, timeout_s: float) -> None:
        with open(self.root / "commands.log", "ab") as out:
            done = subprocess.run(
                self._command(*args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                cwd=self.root,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        """The tail of the commands' output and the server log, for a failure message."""
        parts = []
        for path in (self.root / "commands.log", self.log):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def start(self, attempts: int = 3) -> PostgresInfo:
        """initdb, then pg_ctl start on a free port (retried if the port was taken meanwhile)."""
        if os.geteuid() == 0:
            shutil.chown(self.root, USER)
            self.root.chmod(0o700)
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
            timeout_s=START_TIMEOUT_S,
        )  # fmt: skip
        for attempt in range(attempts):
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} "
                f"-c unix_socket_directories={self.root} {SERVER_SETTINGS}"
            )
            try:
                self._started = True
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "start", "-D", str(self.data), "-l", str(self.log), "-w",
                    "-t", str(int(START_TIMEOUT_S)), "-o", options,
                    timeout_s=START_TIMEOUT_S + 10,
                )  # fmt: skip
            except (RuntimeError, subprocess.TimeoutExpired):
                self.stop(remove=False)
                if attempt + 1 == attempts:
                    raise
                continue
            self.info = PostgresInfo(host="127.0.0.1", port=port, user=USER, dbname=DBNAME)
            return self.info
        raise AssertionError("unreachable")

    def stop(self, remove: bool = True) -> None:
        """pg_ctl stop -m fast (bounded), then remove the directory; never raises."""
        if self._started and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "stop", "-D", str(self.data), "-m", "fast", "-w",
                    "-t", str(int(STOP_TIMEOUT_S)),
                    timeout_s=STOP_TIMEOUT_S + 10,
                )  # fmt: skip
        self._started = False
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """A started server, or skip (fail under CI) when PostgreSQL is not installed."""
    bindir = postgres_bindir()
    if bindir is None:
        missing("PostgreSQL (initdb, pg_ctl)")
    if os.geteuid() == 0 and not shutil.which("runuser") and not shutil.which("su"):
        missing("runuser or su (to run PostgreSQL as its own user)", "apt-get install util-linux")
    server = PostgresServer(bindir)
    try:
        server.start()
    except BaseException:
        message = server.diagnostics()
        server.stop()
        pytest.fail(f"PostgreSQL did not start:\n{message}", pytrace=False)
    return server


# --- the SQLite ODBC driver ---------------------------------------------------------------------

ODBC_DRIVER_NAME = "SQLite3"
ODBC_DRIVER_FILE = "libsqlite3odbc.so"


def sqlite_odbc_driver() -> str | None:
    """The ``DRIVER=`` value of the SQLite 3 ODBC driver: its registered name, else its path."""
    odbcinst = shutil.which("odbcinst")
    if odbcinst:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [odbcinst, "-q", "-d"], capture_output=True, text=True, timeout=10, check=False
            )
            if f"[{ODBC_DRIVER_NAME}]" in out.stdout.split():
                return ODBC_DRIVER_NAME
    for pattern in (f"/usr/lib/*/odbc/{ODBC_DRIVER_FILE}", f"/usr/lib/odbc/{ODBC_DRIVER_FILE}"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def sqlite_odbc_connection_string(database: str | os.PathLike[str]) -> str:
    """A pyodbc connection string for a SQLite file, or skip (fail under CI) without the driver."""
    driver = sqlite_odbc_driver()
    if driver is None:
        missing("the SQLite 3 ODBC driver (libsqlite3odbc.so, registered as SQLite3)")
    return f"DRIVER={{{driver}}};Database={database}"
