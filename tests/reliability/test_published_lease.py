"""Connects through a live tree's published lease: no registry message, exact counts, linger kept.

A connect on a host whose tree is live or lingers joins the tree's holders on its own thread; the
registry hears of it only when it brings the tree's first credentials, and of a close only when
it leaves the tree without holders.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pykka
import pytest
from _support import DRIVER, TOKEN, assert_balanced, bearer, fast_settings, wait_until

import actors
import actors.registry
from actors._runtime.process import FastLease, state
from actors.tools.local_endpoint import LocalEndpoint
from messages import events as ev
from messages.commands import LingerEnded

Make = Callable[..., LocalEndpoint]


@pytest.fixture(name="registry_messages")
def registry_messages_fixture(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Messages the registry handles, by class name (counted on its thread)."""
    seen: collections.Counter[str] = collections.Counter()
    handle = actors.registry.RegistryActor.handle

    def counting(self: actors.registry.RegistryActor, message: Any) -> Any:
        seen[type(message).__name__] += 1
        return handle(self, message)

    monkeypatch.setattr(actors.registry.RegistryActor, "handle", counting)
    return seen


def session(connection: actors.Connection, sid: str) -> int:
    told = 0
    for event in (ev.ConnectionOpened(session_id=sid), ev.ConnectionClosed(session_id=sid)):
        told += connection.tell(event)
    return told


def test_connects_and_closes_with_the_same_auth_on_a_live_tree_send_the_registry_nothing(
    make_endpoint: Make, registry_messages: collections.Counter[str]
) -> None:
    endpoint = make_endpoint()
    auth, settings = bearer(TOKEN), fast_settings()
    keeper = actors.connect(endpoint.url, driver=DRIVER, auth=auth, settings=settings)
    told = 0
    for n in range(20):
        connection = actors.connect(endpoint.url, driver=DRIVER, auth=auth, settings=settings)
        told += session(connection, f"s-{n}")
        connection.close()

    state = actors.dump_state()  # asked after everything told: the registry has handled it all
    assert (registry_messages["Connect"], registry_messages["Disconnect"]) == (1, 0)
    assert (state["registry"]["connects"], state["registry"]["disconnects"]) == (21, 20)
    report = state["hosts"][endpoint.host_port]
    assert (report["refcount"], report["lingering"], report["finished_trees"]) == (1, False, 0)
    assert actors.flush(5.0)
    assert_balanced(actors.dump_state()["hosts"][endpoint.host_port]["accounting"], told)
    keeper.close()


def test_only_a_connect_bringing_the_trees_first_credentials_tells_the_registry(
    make_endpoint: Make, registry_messages: collections.Counter[str]
) -> None:
    endpoint = make_endpoint()
    settings = fast_settings()
    opened = [actors.connect(endpoint.url, driver=DRIVER, auth=None, settings=settings)]
    opened.append(actors.connect(endpoint.url, driver=DRIVER, auth=None, settings=settings))
    actors.dump_state()
    assert registry_messages["Connect"] == 1  # the first, asked
    for _ in range(3):  # a provider per connection, as in the README's embedding pattern
        opened.append(
            actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)
        )
    actors.dump_state()
    assert registry_messages["Connect"] == 2  # the first with credentials: the flag may use them
    for connection in opened:
        connection.close()
    state = actors.dump_state()
    assert registry_messages["Disconnect"] == 1  # the close that left the tree without holders
    assert (state["registry"]["connects"], state["registry"]["disconnects"]) == (5, 5)


def test_a_connection_that_joined_a_lingering_tree_through_its_lease_keeps_it_past_the_linger(
    make_endpoint: Make, registry_messages: collections.Counter[str]
) -> None:
    endpoint = make_endpoint()
    auth, settings = bearer(TOKEN), fast_settings(idle_linger_ms=200)
    host = endpoint.host_port
    first = actors.connect(endpoint.url, driver=DRIVER, auth=auth, settings=settings)
    generation = actors.dump_state()["hosts"][host]["generation"]
    first.close()
    assert actors.dump_state()["hosts"][host]["lingering"]

    second = actors.connect(endpoint.url, driver=DRIVER, auth=auth, settings=settings)
    assert registry_messages["Connect"] == 1  # joined without a message
    wait_until(lambda: registry_messages["LingerEnded"], what="the linger to end")
    report = actors.dump_state()["hosts"][host]
    assert (report["live"], report["generation"]) == (True, generation)
    assert (report["refcount"], report["lingering"]) == (1, False)

    told = session(second, "late")
    second.close()
    final = wait_until(
        lambda: (r := actors.dump_state()["hosts"][host])["finished_trees"] == 1 and r,
        what="the tree to stop after the linger of its last close",
    )
    assert_balanced(final["accounting"], told)
    assert final["accounting"]["exported"] == told


class StoppedRegistry:
    """A registry reference whose actor has stopped (as pykka's stop_all() would leave it)."""

    def is_alive(self) -> bool:
        return False

    def tell(self, message: object) -> None:
        raise pykka.ActorDeadError("RegistryActor stopped")


def test_a_connect_on_an_expired_lease_of_a_stopped_registry_never_raises(
    make_endpoint: Make,
) -> None:
    endpoint = make_endpoint()
    settings = fast_settings(idle_linger_ms=5000)
    actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings).close()
    actors.dump_state()  # the close handled: the tree lingers, its lease published
    fast = state.leases[endpoint.host_port]
    state.leases[endpoint.host_port] = FastLease(fast.lease, 0.0, fast.holders)  # expired
    published = state.registry
    state.registry = StoppedRegistry()  # type: ignore[assignment]

    connection = actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings)
    connection.close()  # on a tree of the registry started in its place
    assert actors.shutdown(2.0)
    state.registry = published  # then the first registry, with its lingering tree
    assert actors.shutdown(2.0)


def test_a_linger_end_told_before_the_pending_linger_is_due_leaves_the_tree_lingering(
    make_endpoint: Make,
) -> None:
    endpoint = make_endpoint()
    host = endpoint.host_port
    settings = fast_settings(idle_linger_ms=5000)
    actors.connect(endpoint.url, driver=DRIVER, auth=bearer(TOKEN), settings=settings).close()
    report = actors.dump_state()["hosts"][host]
    assert report["lingering"]
    registry = state.registry
    assert registry is not None
    # As an earlier linger's end would arrive when a close rescheduled it just as it was told.
    registry.tell(LingerEnded(host=host, generation=report["generation"]))

    again = actors.dump_state()["hosts"][host]
    assert (again["live"], again["lingering"], again["finished_trees"]) == (True, True, 0)
