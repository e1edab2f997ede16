"""Batching by shared credentials: never mixing providers, bounded, order kept on early stop."""

from __future__ import annotations

import collections

from actors._aggregate.batching import Queued, take_batches
from messages.commands import ConnectionContext
from messages.records import FrontendLog, SystemConfiguration


def _context(connection_id: int, auth: object) -> ConnectionContext:
    return ConnectionContext(
        connection_id=connection_id,
        host="h",
        auth=auth,  # type: ignore[arg-type]
        user_agent="d/1",
        system_configuration=SystemConfiguration(),
    )


def _queue(*contexts: ConnectionContext) -> collections.deque[Queued]:
    return collections.deque(
        (ctx, FrontendLog(frontend_log_event_id=f"e{i}"), 1) for i, ctx in enumerate(contexts)
    )


def test_connections_sharing_an_auth_provider_share_batches_and_others_never_mix() -> None:
    shared, own = (lambda: {"Authorization": "Bearer a"}), (lambda: {"Authorization": "Bearer b"})
    a, b, c = _context(1, shared), _context(2, shared), _context(3, own)
    batches = list(take_batches(_queue(a, c, b, c, a), size=100))
    assert len(batches) == 2
    by_auth = {
        id(ctx.auth): [log.frontend_log_event_id for log, _ in items] for ctx, items in batches
    }
    assert by_auth == {id(shared): ["e0", "e2", "e4"], id(own): ["e1", "e3"]}


def test_a_provider_shared_by_many_connections_is_asked_once_per_take() -> None:
    asked: list[int] = []

    def shared() -> dict[str, str]:
        asked.append(1)
        return {"Authorization": "Bearer a"}

    contexts = [_context(n, shared) for n in range(10)]
    batches = list(take_batches(_queue(*contexts, *contexts), size=100))
    assert [len(items) for _, items in batches] == [20]
    assert len(asked) == 1


def test_providers_answering_the_same_headers_share_batches_and_a_failing_one_never_does() -> None:
    def same() -> dict[str, str]:
        return {"Authorization": "Bearer a"}

    def failing() -> dict[str, str]:
        raise KeyboardInterrupt  # contained: it batches alone

    a, b = _context(1, lambda: {"Authorization": "Bearer a"}), _context(2, same)
    c, d = _context(3, failing), _context(4, lambda: {"Authorization": "Bearer other"})
    batches = list(take_batches(_queue(a, c, b, d, a, c), size=100))
    ids = sorted(sorted(log.frontend_log_event_id for log, _ in items) for _, items in batches)
    assert ids == [["e0", "e2", "e4"], ["e1", "e5"], ["e3"]]


def test_batches_hold_at_most_batch_size_logs() -> None:
    ctx = _context(1, None)
    batches = list(take_batches(_queue(*[ctx] * 7), size=3))
    assert [len(items) for _, items in batches] == [3, 3, 1]


def test_a_caller_that_stops_early_leaves_the_rest_queued_in_order() -> None:
    x, y = _context(1, lambda: {}), _context(2, lambda: {})
    queue = _queue(x, x, y, x, y)
    batches = take_batches(queue, size=2)
    first = next(batches)
    batches.close()
    assert [log.frontend_log_event_id for log, _ in first[1]] == ["e0", "e1"]
    assert [log.frontend_log_event_id for _, log, _ in queue] == ["e2", "e3", "e4"]
