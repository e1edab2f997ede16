"""Batching by shared credentials: never mixing providers, bounded, order kept on early stop."""

from __future__ import annotations

import collections
from typing import Any

from actors._aggregate.batching import ExportQueue, Queued, take_batches
from actors._aggregate.ledger import Ledger
from messages.commands import BatchSettled, ConnectionContext, ExportBatch
from messages.config import TelemetrySettings
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


def test_whole_only_leaves_the_groups_short_of_a_batch_queued_in_order() -> None:
    x, y = _context(1, lambda: {}), _context(2, lambda: {"Authorization": "Bearer y"})
    queue = _queue(x, y, x, x, y)
    batches = list(take_batches(queue, size=3, whole_only=True))
    assert [[log.frontend_log_event_id for log, _ in items] for _, items in batches] == [
        ["e0", "e2", "e3"]
    ]
    assert [log.frontend_log_event_id for _, log, _ in queue] == ["e1", "e4"]


# --- ExportQueue: what goes to the exporter, and what waits ---------------------------------------


def _export_queue(**settings: Any) -> tuple[ExportQueue, Ledger]:
    ledger = Ledger()
    return ExportQueue(ledger, TelemetrySettings(**settings)), ledger


def _fill(queue: ExportQueue, ledger: Ledger, count: int) -> None:
    ctx = _context(1, None)
    for i in range(count):
        ledger.receive()
        assert queue.add(ctx, FrontendLog(frontend_log_event_id=f"e{i}"), 1, held=False)


def _sizes(batches: list[ExportBatch]) -> list[int]:
    return [len(batch.logs) for batch in batches]


def test_a_backed_up_exporter_gets_whole_batches_until_it_holds_its_bound() -> None:
    queue, ledger = _export_queue(batch_size=100, max_pending_batches=20, max_queued_logs=1000)
    _fill(queue, ledger, 1000)
    assert _sizes(queue.take(reply_to=None)) == [100] * 10  # type: ignore[arg-type]
    assert queue.backed_up()
    _fill(queue, ledger, 950)
    taken = queue.take(reply_to=None)  # type: ignore[arg-type]
    assert _sizes(taken) == [100] * 9  # whole batches, at once: the exporter merges them
    assert len(queue.logs) == 50  # a partial batch waits instead of taking a slot
    _fill(queue, ledger, 50)
    assert _sizes(queue.take(reply_to=None)) == [100]  # type: ignore[arg-type]
    _fill(queue, ledger, 1000)
    assert queue.take(reply_to=None) == []  # type: ignore[arg-type]  # 20 x 100 held: full
    assert ledger.accounts().received == 3000
    assert not ledger.accounts().dropped


def test_a_forced_take_while_backed_up_sends_what_waits_within_the_bound() -> None:
    queue, ledger = _export_queue(batch_size=10, max_pending_batches=4, max_queued_logs=40)
    _fill(queue, ledger, 20)
    batches = queue.take(reply_to=None)  # type: ignore[arg-type]
    assert _sizes(batches) == [10, 10]
    _fill(queue, ledger, 5)
    assert _sizes(queue.take(reply_to=None)) == []  # type: ignore[arg-type]
    assert _sizes(queue.take(reply_to=None, force=True)) == [5]  # type: ignore[arg-type]
    for batch in batches:
        queue.settle(
            BatchSettled(batch_id=batch.batch_id, exported_events=10, exported_logs=10, dropped={})
        )
    assert ledger.accounts().exported == 20


def test_no_take_forced_or_not_hands_the_exporter_more_than_its_bound() -> None:
    queue, ledger = _export_queue(batch_size=10, max_pending_batches=4, max_queued_logs=40)
    _fill(queue, ledger, 20)
    assert _sizes(queue.take(reply_to=None)) == [10, 10]  # type: ignore[arg-type]
    _fill(queue, ledger, 30)
    assert _sizes(queue.take(reply_to=None, force=True)) == [20]  # type: ignore[arg-type]
    assert len(queue.logs) == 10  # 4 x 10 held: the bound
    assert queue.take(reply_to=None, force=True) == []  # type: ignore[arg-type]
    assert queue.take(reply_to=None) == []  # type: ignore[arg-type]
    assert sum(queue.in_export.values()) == 40
