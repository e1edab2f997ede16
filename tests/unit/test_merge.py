"""Which waiting batches share a body with the one at the head, and how an answer is shared."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable

import pytest
from test_exporter_actor import AUTHED, SYSTEM, bearer, make_context

from actors._aggregate.statements import build_log
from actors._export import outbox
from actors._export.merge import gather, same_sender, share_accepted, take_riders
from actors._export.outbox import Pending, body_room, export_headers
from actors._export.retry import RetryPolicy
from messages.commands import ConnectionContext, ExportBatch
from messages.config import TelemetrySettings
from messages.privacy import LogKind
from messages.records import FrontendLog, SqlDriverLog
from messages.wire import encode_request, request_body

RETRY = RetryPolicy.from_settings(TelemetrySettings())
OTHER = make_context(2, bearer("token-2"))
ids = iter(range(1, 1_000_000))


def pending(context: ConnectionContext = AUTHED, logs: int = 2) -> Pending:
    batch_id = next(ids)
    records = tuple(
        build_log(
            context,
            LogKind.CONNECTION,
            SqlDriverLog(session_id=f"s-{batch_id}-{i}", system_configuration=SYSTEM),
            1_755_000_000_000,
        )
        for i in range(logs)
    )
    batch = ExportBatch(
        batch_id=batch_id,
        context=context,
        logs=records,
        event_counts=(1,) * logs,
        reply_to=None,  # type: ignore[arg-type]
    )
    return Pending(batch, RETRY)


def sender_of(context: ConnectionContext) -> Callable[[Pending], bool]:
    return same_sender(export_headers(context))


def test_only_batches_of_the_same_path_and_headers_ride_and_the_others_keep_their_order() -> None:
    a1, b1, a2, anon, a3 = (pending(c) for c in (AUTHED, OTHER, AUTHED, make_context(3), AUTHED))
    queue = collections.deque([a1, b1, a2, anon, a3])
    riders = take_riders(queue, sender_of(AUTHED), True, 1_000_000, 0.0002)
    assert riders == [a1, a2, a3]
    assert list(queue) == [b1, anon]


def test_a_rider_goes_only_whole_and_a_smaller_one_behind_it_still_fits() -> None:
    small, big, small_too = pending(logs=1), pending(logs=50), pending(logs=1)
    one = len(small.encoded(True)[0])
    queue = collections.deque([small, big, small_too])
    riders = take_riders(queue, sender_of(AUTHED), True, 3 * (one + 1), 0.0002)
    assert riders == [small, small_too]
    assert list(queue) == [big] and big.sent == 0


def test_a_rider_that_cannot_be_encoded_stays_queued_for_its_own_turn() -> None:
    broken = pending()
    broken.batch = ExportBatch(  # a record the wire cannot carry
        batch_id=broken.batch.batch_id,
        context=AUTHED,
        logs=(FrontendLog(frontend_log_event_id=object()),),  # type: ignore[arg-type]
        event_counts=(1,),
        reply_to=None,  # type: ignore[arg-type]
    )
    fine = pending()
    queue = collections.deque([broken, fine])
    assert take_riders(queue, sender_of(AUTHED), True, 1_000_000, 0.0002) == [fine]
    assert list(queue) == [broken]


def test_a_shared_body_is_the_converters_request_of_every_members_logs_in_order() -> None:
    head, rider = pending(logs=3), pending(logs=2)
    queue = collections.deque([rider])
    members = gather(head, queue, True, export_headers(AUTHED), 2000, 1_755_000_000_000)
    assert members == [head, rider] and not queue
    body = request_body([m.segment(True) for m in members], 1_755_000_000_000)
    texts = [t.decode() for m in members for t in m.encoded(True)]
    assert body == encode_request([json.loads(t) for t in texts], 1_755_000_000_000)
    assert len(body) <= body_room(1_755_000_000_000) + len(request_body((), 1_755_000_000_000))


def test_a_probe_goes_alone_and_a_head_sent_in_chunks_takes_no_riders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender = export_headers(AUTHED)
    rider = pending(logs=1)
    queue = collections.deque([rider])
    probe = gather(pending(), queue, True, sender, 2000, 1, alone=True)
    assert len(probe) == 1 and list(queue) == [rider]

    big = pending(logs=10)
    one = len(big.encoded(True)[0])
    monkeypatch.setattr(outbox, "MAX_BODY_BYTES", len(request_body((), 1)) + 4 * (one + 1))
    (chunk,) = gather(big, queue, True, sender, 2000, 1)
    assert (chunk.sent, chunk.chunk_end) == (0, 4)
    assert list(queue) == [rider]


def test_an_answer_is_shared_in_body_order() -> None:
    members = [pending(logs=2), pending(logs=3), pending(logs=1)]
    assert share_accepted(members, 6) == [2, 3, 1]
    assert share_accepted(members, 4) == [2, 2, 0]
    assert share_accepted(members, 99) == [2, 3, 1]
    assert share_accepted(members, -3) == [0, 0, 0]
