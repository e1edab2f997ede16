"""The feature-flag request carries what the export requests carry (PROTOCOL.md §3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _support import DRIVER, TOKEN, RecordingServer, bearer, fast_settings, wait_until

import actors
from messages import events as ev


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    started = RecordingServer()
    yield started
    started.stop()


def test_the_flag_get_carries_the_workspace_id_like_the_export_posts(
    server: RecordingServer,
) -> None:
    connection = actors.connect(
        server.url,
        driver=DRIVER,
        auth=bearer(TOKEN),
        http_path="/sql/1.0/warehouses/abc?o=1234567890123456",
        settings=fast_settings(),
    )
    wait_until(lambda: connection.enabled, what="the flag to be on")
    assert connection.tell(ev.ConnectionOpened(session_id="flag-session"))
    assert actors.flush(5.0)
    wait_until(server.posts, what="an export")

    (flag,) = [r for r in server.requests if r.method == "GET"]
    (post,) = server.posts()
    assert flag.headers["x-databricks-org-id"] == "1234567890123456"
    assert post.headers["x-databricks-org-id"] == "1234567890123456"
    assert flag.headers["authorization"] == f"Bearer {TOKEN}"


def test_an_unauthenticated_flag_get_carries_no_workspace_id(server: RecordingServer) -> None:
    connection = actors.connect(
        server.url, driver=DRIVER, auth=None, http_path="/o/1234567890123456/x"
    )
    wait_until(lambda: [r for r in server.requests if r.method == "GET"], what="the flag GET")
    (flag,) = [r for r in server.requests if r.method == "GET"]
    assert "x-databricks-org-id" not in flag.headers
    assert "authorization" not in flag.headers
    connection.close()
