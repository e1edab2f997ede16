"""A throwaway PostgreSQL server for the benchmark: initdb + pg_ctl in a temporary directory.

It listens on 127.0.0.1 only, on a free port, with trust authentication for the user `bench` and
durability off (`fsync`, `synchronous_commit`, `full_page_writes`), because the benchmark
measures the client, not the disk. When run as root, the server runs as the `postgres` OS user
(through `runuser`), since PostgreSQL refuses to run as root. `PostgresServer.start()` raises
`PostgresUnavailable` with a reason when binaries or that user are missing; every step has a
timeout, and `stop()` is bounded and removes the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

STEP_TIMEOUT_S = 60.0
USER = "bench"
# Where `run.py` asks its section processes to put servers, so that it can stop what a killed
# section left running (`stop_leftovers`).
SCRATCH_ENV = "BENCH_SCRATCH_DIR"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the reason is the message)."""


def _bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()],
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL server; `conninfo` is valid between `start()` and `stop()`."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._bin: Path | None = None
        self._as: list[str] = []
        self.port = 0

    @property
    def conninfo(self) -> str:
        """A libpq connection string for the `postgres` database as `bench`."""
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={USER}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=STEP_TIMEOUT_S
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {' | '.join(tail)}")

    def start(self) -> PostgresServer:
        """initdb, then pg_ctl start on a free port; returns once it accepts connections."""
        self._bin = _bin_dir()
        self._dir = Path(tempfile.mkdtemp(prefix="bench-pg-", dir=os.environ.get(SCRATCH_ENV)))
        data = self._dir / "data"
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and no `postgres` user") from None
            if not shutil.which("runuser"):
                raise PostgresUnavailable("running as root and no `runuser`")
            os.chown(self._dir, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        try:
            self._run(str(self._bin / "initdb"), "-D", str(data), "-A", "trust", "-U", USER)
            options = (
                f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            self._run(
                str(self._bin / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(self._dir / "log"),
                "-w",
                "-t",
                str(int(STEP_TIMEOUT_S)),
                "start",
            )
        except (PostgresUnavailable, subprocess.TimeoutExpired, OSError) as exc:
            self.stop()
            raise PostgresUnavailable(str(exc)) from None
        return self

    def stop(self) -> None:
        """Stop the server (fast mode, bounded) and remove its directory."""
        if self._dir is None:
            return
        if self._bin is not None:
            _stop(self._bin, self._dir / "data", self._as)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop(bin_dir: Path, data: Path, as_user: list[str]) -> None:
    if not (data / "postmaster.pid").exists():
        return
    command = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w"]
    command += ["-t", str(int(STEP_TIMEOUT_S)), "stop"]
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run([*as_user, *command], capture_output=True, timeout=STEP_TIMEOUT_S)


def stop_leftovers(scratch: Path) -> int:
    """Stop every server still running under `scratch` (a killed section's); how many."""
    found = list(scratch.glob("bench-pg-*/data/postmaster.pid"))
    if not found:
        return 0
    try:
        bin_dir = _bin_dir()
    except PostgresUnavailable:
        return 0
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    for pid_file in found:
        _stop(bin_dir, pid_file.parent, as_user)
    return len(found)
