"""The main job end to end: run it in a subprocess, check the store against its accounting."""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest
from interpreter import interpreter_flags

from actors.tools.demo import add_demo_arguments, hosts_of_thread, run_demo
from actors.tools.local_endpoint import LogStore

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run_main_job(tmp_path: pathlib.Path, *extra: str) -> tuple[dict[str, Any], float]:
    db = tmp_path / "store.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            *interpreter_flags(),
            "-m",
            "actors",
            "demo",
            "--json",
            "--db",
            str(db),
            "--duration",
            "1",
            "--threads",
            "3",
            *extra,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout), elapsed


def test_main_job_store_matches_its_printed_accounting(tmp_path: pathlib.Path) -> None:
    report, _ = _run_main_job(tmp_path)
    assert report["balanced"] is True
    assert report["shutdown"]["clean"] is True
    assert report["workload"]["statements"] > 0 and report["workload"]["driver_errors"] > 0
    store = LogStore(str(tmp_path / "store.sqlite3"))
    try:
        assert len(report["hosts"]) == 3
        for host, h in report["hosts"].items():
            a = h["accounting"]
            assert a["told"] == a["exported"] + sum(a["dropped"].values()) + a["pending"]
            assert a["told"] > 0 and a["exported"] == a["told"]
            assert store.count(host) == h["exported_logs"] == h["endpoint"]["stored_logs"]
            kinds = store.counts_by_kind(host)
            assert kinds["connection"] == kinds["close"] > 0
            assert kinds["statement"] > 0 and kinds["error"] > 0
            assert set(store.errors_by_name(host)) <= {"OperationalError", "IntegrityError"}
            assert h["final_dump"]["balanced"] is True
    finally:
        store.close()


@pytest.mark.slow
def test_main_job_under_a_failing_endpoint_counts_drops_and_exits_in_time(
    tmp_path: pathlib.Path,
) -> None:
    report, elapsed = _run_main_job(
        tmp_path, "--fault", "status:503", "--shutdown-timeout-ms", "1000"
    )
    assert report["balanced"] is True
    assert report["shutdown"]["seconds"] <= 1.0 + 0.3
    store = LogStore(str(tmp_path / "store.sqlite3"))
    try:
        for host, h in report["hosts"].items():
            a = h["accounting"]
            assert a["exported"] == 0 and store.count(host) == 0
            assert a["told"] == sum(a["dropped"].values()) + a["pending"] > 0
            assert set(a["dropped"]) <= {"export_failed", "breaker_open", "shutdown_timeout"}
            assert h["final_dump"]["exporter"]["stats"].get("retries_scheduled", 0) > 0
    finally:
        store.close()
    assert elapsed < 30


def test_embedding_example_exports_every_event_it_tells(tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, *interpreter_flags(), str(ROOT / "examples" / "embed_driver.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "rows: [(42,)]" in result.stdout
    accounting = result.stdout.strip().splitlines()[-1]
    assert accounting.startswith("accounting: ") and "'balanced': True" in accounting
    told = int(accounting.split("'told': ")[1].split(",")[0])
    assert f"'exported': {told}," in accounting and told > 0


def _demo_in_process(*options: str) -> tuple[int, dict[str, Any]]:
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    fixed = ["--db", ":memory:", "--json", "--statement-ms", "0"]
    out = io.StringIO()
    status = run_demo(parser.parse_args([*fixed, *options]), out=out, err=io.StringIO())
    return status, json.loads(out.getvalue())


def test_fewer_threads_than_hosts_still_give_every_host_traffic() -> None:
    status, report = _demo_in_process("--hosts", "2", "--threads", "1", "--duration", "0.3")
    assert status == 0 and report["balanced"] is True
    assert len(report["hosts"]) == 2
    for h in report["hosts"].values():
        assert h["accounting"]["told"] > 0 and h["accounting"]["balanced"] is True
        assert h["endpoint"]["stored_logs"] == h["exported_logs"] > 0


def test_a_host_that_was_told_nothing_is_balanced() -> None:
    status, report = _demo_in_process("--hosts", "3", "--threads", "1", "--duration", "0")
    assert status == 0 and report["balanced"] is True
    for h in report["hosts"].values():
        a = h["accounting"]
        assert (a["told"], a["exported"], a["dropped"], a["pending"]) == (0, 0, {}, 0)
        assert a["balanced"] is True and h["endpoint"]["stored_logs"] == 0


@pytest.mark.parametrize(
    "option",
    [
        ("--threads", "0"),
        ("--duration", "-1"),
        ("--duration", "nan"),
        ("--fault", "bogus"),
        ("--page-port", "99999"),
    ],
)
def test_the_demo_refuses_a_workload_it_cannot_run(option: tuple[str, str]) -> None:
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(list(option))


@pytest.mark.parametrize("threads", range(1, 7))
@pytest.mark.parametrize("hosts", range(1, 4))
def test_every_host_is_some_thread_s_and_each_thread_has_a_host(threads: int, hosts: int) -> None:
    names = [f"h{i}" for i in range(hosts)]
    shares = [hosts_of_thread(i, threads, names) for i in range(threads)]
    assert all(shares) and {h for share in shares for h in share} == set(names)
    if threads >= hosts:  # one host each: a host's connections overlap and its tree lives on
        assert all(len(share) == 1 for share in shares)


def test_a_store_the_demo_cannot_open_is_one_line_and_exit_code_2(tmp_path: pathlib.Path) -> None:
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    args = parser.parse_args(["--db", str(tmp_path / "missing-dir" / "x.sqlite3"), "--json"])
    err = io.StringIO()

    assert run_demo(args, out=io.StringIO(), err=err) == 2
    assert err.getvalue().startswith("demo: cannot open the store ")
