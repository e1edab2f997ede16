"""The page in real headless Chromium: it shows what the store holds, updates live, and shows
planted markup as text. The endpoint is real (127.0.0.1:0); the data goes in over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from page_data import frontend_log, known_logs, post, send
from waiting import poll_until

import actors
from actors import instrument
from actors.tools.local_endpoint import LocalEndpoint, LogStore

TOKEN = "page-token"
LIVE_S = 15.0  # the page polls every second; a loaded CI machine gets a generous bound
SCREENSHOT_ENV = "DRIVER_TELEMETRY_SCREENSHOT"


@pytest.fixture
def endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(token=TOKEN).serve_page() as started:
        yield started


def _text(driver: Any, css: str) -> str:
    """The text of the first element matching `css`, or '' when there is none yet (read in one
    script call: the page redraws its panels, so a found element can go stale before it is read)."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';"
    return str(driver.execute_script(script, css))


def _ms(value: float) -> str:
    """The page's way of writing a latency."""
    return f"{value:.0f} ms" if float(value).is_integer() else f"{value:.1f} ms"


def _shown_counts(driver: Any) -> dict[str, int]:
    return {
        kind: int(_text(driver, f'[data-count="{kind}"] .n') or -1)
        for kind in ("connection", "statement", "error", "close")
    }


def test_page_shows_the_stores_counts_p50_and_error_groups_and_updates_live(
    chromium: Any, endpoint: LocalEndpoint
) -> None:
    send(endpoint.url, known_logs(), TOKEN)
    status, _ = post(endpoint.url, "/telemetry-ext", b'{"uploadTime": 1}', TOKEN)
    assert status == 400
    store = endpoint.store
    chromium.get(endpoint.page_url)
    expected = store.counts_by_kind()
    poll_until(lambda: _shown_counts(chromium) == expected, LIVE_S, f"counts {expected}")
    assert _text(chromium, '[data-count="total"] .n') == str(store.count())

    p50 = store.latency_percentiles_by_statement_type()["QUERY"]["p50"]
    assert p50 == 25.0  # the known set 10, 20, 30, 40
    row = '[data-latency="statement_type:QUERY"]'
    assert _text(chromium, f'{row} [data-field="p50"]') == _ms(p50)
    assert _text(chromium, f'{row} [data-field="count"]') == "4"
    update = store.latency_percentiles_by_statement_type()["UPDATE"]
    assert _text(chromium, '[data-latency="statement_type:UPDATE"] [data-field="p90"]') == _ms(
        update["p90"]
    )

    errors = store.errors_by_name()
    programming = '[data-error-group="ProgrammingError|42P01"]'
    assert _text(chromium, f'{programming} [data-field="count"]') == str(errors["ProgrammingError"])
    assert _text(chromium, '[data-error-group="IntegrityError|"] [data-field="count"]') == str(
        errors["IntegrityError"]
    )
    host = f'[data-host="{endpoint.host_port}"]'
    assert _text(chromium, f'{host} [data-field="stored"]') == str(store.count())
    assert _text(chromium, f'{host} [data-field="rejected"]') == "1"
    assert "items: missing required field" in _text(chromium, f"{host} .reason")

    newest = frontend_log("error", error_name="IntegrityError", message="UNIQUE again")
    send(endpoint.url, [frontend_log("statement", latency_ms=50), newest], TOKEN)
    expected = store.counts_by_kind()
    poll_until(lambda: _shown_counts(chromium) == expected, LIVE_S, "the live update")
    poll_until(
        lambda: (
            _text(chromium, '[data-error-group="IntegrityError|"] [data-field="count"]')
            == str(store.errors_by_name()["IntegrityError"])
        ),
        LIVE_S,
        "the error group's new count",
    )
    assert "UNIQUE again" in _text(chromium, "#tail tbody tr.log")  # the newest log on top
    loaded = chromium.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
    )
    assert loaded and all(url.startswith(endpoint.url + "/") for url in loaded), loaded


def _screenshot(driver: Any, target: Path) -> None:
    """The whole page at laptop width, written to `target` (a PNG)."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(full + 140, 3000))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(target))
    finally:
        driver.set_window_size(width, height)


PLANTED = (
    '<img src=x onerror="window.__planted=1"><script>window.__planted=2</script>'
    "<b>bold</b> &amp; SQLSTATE 'quoted'"
)


def test_page_shows_html_and_script_planted_in_an_error_message_as_text(
    chromium: Any, endpoint: LocalEndpoint
) -> None:
    from selenium.webdriver.common.by import By

    send(
        endpoint.url,
        [frontend_log("error", error_name="<i>Evil</i>Error", message=PLANTED)],
        TOKEN,
    )
    chromium.get(endpoint.page_url)
    cell = "#errors td.message"
    poll_until(lambda: _text(chromium, cell), LIVE_S, "the error group")
    assert _text(chromium, cell) == PLANTED
    assert _text(chromium, "#errors th[data-field=class]") == "<i>Evil</i>Error"
    poll_until(lambda: _text(chromium, "#tail tbody tr.log"), LIVE_S, "the tail")
    assert PLANTED in _text(chromium, "#tail tbody tr.log td.message")
    chromium.find_element(By.CSS_SELECTOR, "#tail tbody tr.log").click()
    detail = _text(chromium, "#tail tr.detail pre")
    assert json.loads(detail)["frontend_log"]["error_info"]["stack_trace"] == PLANTED
    for markup in ("img", "script", "b", "i"):
        planted = chromium.find_elements(By.CSS_SELECTOR, f"#errors {markup}, #tail {markup}")
        assert not planted, markup
    assert chromium.execute_script("return window.__planted === undefined")


def test_page_served_in_the_clients_process_shows_its_accounting_per_host(
    chromium: Any,
) -> None:
    store = LogStore()
    endpoints = [LocalEndpoint(token=TOKEN, store=store) for _ in range(2)]
    endpoints[0].serve_page(endpoints=tuple(endpoints), client_state=lambda: actors.dump_state(1))
    try:
        for ep in endpoints:
            ep.start()
        for ep in endpoints:
            _workload(ep.url)
        assert actors.flush(5.0)
        chromium.get(endpoints[0].page_url)
        state = actors.dump_state(2.0)["hosts"]
        for ep in endpoints:
            accounting = state[ep.host_port]["accounting"]
            host = f'[data-host="{ep.host_port}"]'
            poll_until(
                lambda host=host, told=accounting["told"]: (
                    _text(chromium, f'{host} [data-field="told"]') == str(told)
                ),
                LIVE_S,
                f"the accounting of {ep.host_port}",
            )
            assert _text(chromium, f'{host} [data-field="exported"]') == str(accounting["exported"])
            assert _text(chromium, f'{host} [data-field="pending"]') == str(accounting["pending"])
            assert _text(chromium, f'{host} [data-field="breaker"]') == "CLOSED"
            assert _text(chromium, f'{host} [data-field="stored"]') == str(
                store.count(ep.host_port)
            )
        target = os.environ.get(SCREENSHOT_ENV)
        if target:
            _screenshot(chromium, Path(target))
    finally:
        for ep in endpoints:
            ep.close()
        store.close()


# A query whose run time grows with its parameter: a real latency distribution, not all 0 ms.
_COUNT_TO = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
    "SELECT count(*) FROM c"
)


def _workload(url: str) -> None:
    """A few connections of an instrumented sqlite3: queries, updates, fetches and failures."""
    db = instrument(
        sqlite3,
        host=url,
        driver=actors.DriverInfo(name="PageTestDriver", version="1.0"),
        auth=lambda: {"Authorization": f"Bearer {TOKEN}"},
        properties={"telemetry.flush_interval_ms": "100"},
    )
    rng = random.Random(url)
    for _ in range(4):
        conn = db.connect(":memory:")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, score REAL)")
        conn.executemany("INSERT INTO t (score) VALUES (?)", [(i / 7,) for i in range(300)])
        for i in range(12):
            conn.execute("SELECT id, score FROM t WHERE score > ?", (i / 10,)).fetchall()
            conn.execute(_COUNT_TO, (rng.randint(1_000, 60_000),)).fetchall()
        conn.execute("UPDATE t SET score = score / 2 WHERE id % 3 = 0")
        for bad in ("SELECT * FROM missing_table", "INSERT INTO t (id) VALUES (1)"):
            with contextlib.suppress(sqlite3.Error):
                conn.execute(bad)
        conn.close()


def test_choosing_a_kind_filters_the_counts_and_the_tail(
    chromium: Any, endpoint: LocalEndpoint
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    send(endpoint.url, known_logs(), TOKEN)
    chromium.get(endpoint.page_url)
    poll_until(lambda: _text(chromium, '[data-count="total"] .n') == "14", LIVE_S, "all logs")

    Select(chromium.find_element(By.ID, "f-kind")).select_by_value("error")

    errors = str(endpoint.store.counts_by_kind()["error"])
    poll_until(lambda: _text(chromium, '[data-count="total"] .n') == errors, LIVE_S, "errors")
    kinds = chromium.execute_script(
        "return [...document.querySelectorAll('#tail tr.log [data-field=kind]')]"
        ".map(e => e.textContent)"
    )
    assert kinds == ["error"] * int(errors)
    assert _text(chromium, '[data-count="statement"] .n') == "0"
