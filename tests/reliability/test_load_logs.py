"""Under load, nothing of ours or of our dependencies logs above DEBUG.

Forty connect/tell/close cycles against a slow endpoint leave forty trees of one host draining
at once, each with a POST in flight: more sockets to one host than the shared pool keeps. A pool
that opened more would discard the extras with urllib3's "Connection pool is full" WARNING; ours
waits for a free socket instead (bounded like a connect), and every event is still accounted for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from _support import DRIVER, TOKEN, bearer, fast_settings, wait_until

import actors
from actors.tools.local_endpoint import LocalEndpoint
from messages import events as ev

TREES = 40


class Records(logging.Handler):
    """Every record that reaches the root logger, whoever logs it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Any:
    root = logging.getLogger()
    handler, level = Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_forty_trees_of_one_host_draining_at_once_log_nothing_above_debug(
    make_endpoint: Callable[..., LocalEndpoint], records: Records
) -> None:
    endpoint = make_endpoint("slow:0.4")
    settings = fast_settings(
        force_enable=True,
        read_timeout_ms=3000,
        connect_timeout_ms=3000,
        shutdown_timeout_ms=8000,
        breaker_enabled=False,
    )
    host = ""
    for i in range(TREES):
        connection = actors.connect(
            endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings
        )
        host = connection.host
        assert connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"s{i}"))
        connection.close()  # the last lease: this tree drains while the next one starts

    def settled() -> dict[str, Any] | None:
        entry = actors.dump_state(2.0)["hosts"].get(host)
        account = entry and entry["accounting"]
        return account if account and account["told"] == TREES and account["pending"] == 0 else None

    account = wait_until(settled, timeout_s=30.0, what="every tree to drain")
    loud = [
        (r.name, r.levelname, r.getMessage()) for r in records.records if r.levelno > logging.DEBUG
    ]
    print(f"{TREES} trees: {len(records.records)} records, exported {account['exported']}")
    assert loud == []
    assert account["balanced"] and account["exported"] + sum(account["dropped"].values()) == TREES
