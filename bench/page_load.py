"""How fast the page is with 100,000 stored logs: API answer times and the page's load time in
headless Chromium (the system's chromium and chromedriver; nothing is downloaded).

    python bench/page_load.py [--logs 100000] [--repeats 5]

Prints one line per figure: the median and min-max over the repeats. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.tools.local_endpoint import LocalEndpoint, LogStore

ROOT = Path(__file__).resolve().parents[1]

HOSTS = ("127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003")
ERRORS = (
    ("OperationalError", "no such table: t{n}"),
    ("IntegrityError", "UNIQUE constraint failed: t.id"),
    ("ProgrammingError", "[SQLSTATE 42P01] relation t{n} does not exist"),
)


def _log(rng: random.Random, kind: str, ts_ms: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"session_id": str(uuid.UUID(int=rng.getrandbits(128)))}
    if kind == "connection":
        entry["system_configuration"] = {"driver_name": "Bench", "driver_version": "1"}
        entry["operation_latency_ms"] = rng.randint(5, 50)
    elif kind == "close":
        entry["sql_operation"] = {"operation_detail": {"operation_type": "DELETE_SESSION"}}
        entry["operation_latency_ms"] = rng.randint(0, 3)
    else:
        entry["sql_statement_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        entry["sql_operation"] = {
            "statement_type": rng.choice(("QUERY", "QUERY", "QUERY", "UPDATE", "SQL")),
            "operation_detail": {"operation_type": "EXECUTE_STATEMENT"},
        }
        entry["operation_latency_ms"] = int(rng.lognormvariate(1.5, 1.2))
        if kind == "error":
            name, message = rng.choice(ERRORS)
            entry["error_info"] = {
                "error_name": name,
                "stack_trace": message.format(n=rng.randint(1, 30)),
            }
    return {
        "frontend_log_event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "context": {"client_context": {"timestamp_millis": ts_ms, "user_agent": "Bench/1"}},
        "entry": {"sql_driver_log": entry},
    }


def fill(store: LogStore, count: int) -> float:
    """Store `count` logs spread over the last hour; return the seconds it took."""
    rng = random.Random(15)
    now_ms = int(time.time() * 1000)
    kinds = ["connection"] * 5 + ["close"] * 5 + ["statement"] * 75 + ["error"] * 15
    started = time.perf_counter()
    for start in range(0, count, 1000):
        size = min(1000, count - start)
        ts_ms = now_ms - 3_600_000 + (start * 3_600_000) // count
        batch = [_log(rng, rng.choice(kinds), ts_ms + i) for i in range(size)]
        store.add(
            batch,
            host=HOSTS[start // 1000 % 3],
            path="/telemetry-ext",
            authorized=True,
            received_at_ms=ts_ms + size,
        )
    return time.perf_counter() - started


def _figure(name: str, samples: list[float], unit: str = "ms") -> None:
    print(
        f"{name:<46} median {statistics.median(samples):8.1f} {unit}   "
        f"min-max {min(samples):.1f}-{max(samples):.1f}"
    )


def time_api(url: str, repeats: int) -> None:
    for target in (
        "/api/summary",
        f"/api/summary?host={HOSTS[0]}",
        "/api/summary?window_s=300",
        "/api/summary?kind=error",
        "/api/logs?limit=100",
        "/api/logs?since=99900",
        "/api/health",
    ):
        samples, size = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            with urllib.request.urlopen(url + target, timeout=30) as response:
                size = len(response.read())
            samples.append((time.perf_counter() - started) * 1000)
        _figure(f"GET {target} ({size // 1024} KiB)", samples)


def time_page(page_url: str, total: int, repeats: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1366,900",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(
            service=Service(executable_path="/usr/bin/chromedriver"), options=options
        )
        try:
            shown, loaded = [], []
            script = (
                "const e = document.querySelector('[data-count=total] .n');"
                "return e ? e.textContent : '';"
            )
            for _ in range(repeats):
                started = time.perf_counter()
                driver.get(page_url)
                loaded.append((time.perf_counter() - started) * 1000)
                deadline = time.monotonic() + 30
                while driver.execute_script(script) != str(total):
                    if time.monotonic() > deadline:
                        raise SystemExit("the page never showed the total")
                    time.sleep(0.005)
                shown.append((time.perf_counter() - started) * 1000)
            _figure("page: navigation to load event", loaded)
            _figure(f"page: navigation to every panel drawn ({total} logs)", shown)
            timing = json.loads(
                driver.execute_script(
                    "return JSON.stringify(performance.getEntriesByType('resource')"
                    ".map(r => [r.name.split('?')[0].split('/').slice(3).join('/'), r.duration]))"
                )
            )
            for name, duration in timing:
                print(f"  last load, resource /{name:<34} {duration:8.1f} ms")
        finally:
            driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.sqlite3")
        store = LogStore(db)
        print(f"stored {args.logs} logs in {fill(store, args.logs):.1f} s")
        store.close()
        with LocalEndpoint(db_path=db).serve_page() as endpoint:
            time_api(endpoint.url, args.repeats)
            time_page(str(endpoint.page_url), args.logs, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
