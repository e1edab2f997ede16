"""Batches that wait together and share credentials go in one request, each settled on its own.

While the rate limit holds batches back, every token would otherwise carry one batch of 100 logs
while the aggregator's queue fills behind them. Merged, a token carries whatever waits with the
same path and headers, up to the body cap; each batch keeps its own retries and settles exactly
once with its own counts. Logs of different credentials never share a body.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence

from actors._aggregate.slicing import slice_budget_s
from actors._export.outbox import MAX_BODY_LOGS, Pending, body_room, export_headers

__all__ = ["gather", "share_accepted", "take_riders"]

Sender = tuple[str, dict[str, str]]  # a request's path and headers


def gather(
    head: Pending,
    queue: collections.deque[Pending],
    authed: bool,
    sender: Sender,
    bound: int,
    upload_time_ms: int,
    *,
    alone: bool = False,
) -> list[Pending]:
    """The batches of the next body: `head`'s next chunk and, when that is its whole rest (and
    not `alone`: a half-open probe stays small), the waiting batches of the same `sender` that
    fit whole beside it. [] when not even the head's next log fits a body.

    Encoding slices grow with the logs waiting behind the head, as the aggregator's do with its
    lane: short while the exporter keeps up, the longest once half its `bound` waits.
    Raises what encoding the head raises; a rider that cannot be encoded stays queued.
    """
    waiting = sum(len(p.batch.logs) - p.sent for p in queue)  # behind the head
    slice_s = slice_budget_s(waiting, bound)
    room = body_room(upload_time_ms)
    used = head.fit(authed, room, slice_s)
    if head.chunk_end == head.sent:
        return []
    members = [head]
    if not alone and head.chunk_end == len(head.batch.logs):
        slots = MAX_BODY_LOGS - (head.chunk_end - head.sent)
        members += take_riders(queue, same_sender(sender), authed, room - used, slice_s, slots)
    return members


def same_sender(sender: Sender) -> Callable[[Pending], bool]:
    """Whether a batch sends to this path with exactly these headers now (one ask per provider)."""
    seen: dict[int, bool] = {}

    def same(candidate: Pending) -> bool:
        context = candidate.batch.context
        answer = seen.get(id(context))
        if answer is None:
            answer = seen[id(context)] = export_headers(context) == sender
        return answer

    return same


def take_riders(
    queue: collections.deque[Pending],
    same: Callable[[Pending], bool],
    authed: bool,
    room: int,
    slice_s: float,
    slots: int = MAX_BODY_LOGS,
) -> list[Pending]:
    """Take from `queue` the batches `same` accepts whose whole rest fits in `room` more bytes
    and `slots` more logs.

    In queue order; the others stay queued, in order. A batch whose logs cannot be encoded stays
    too: it settles as `invalid_event` when its own turn comes.
    """
    riders: list[Pending] = []
    kept: list[Pending] = []
    while queue:
        pending = queue.popleft()
        if room > 1 and slots > 0 and same(pending):
            try:
                used = pending.fit(authed, room - 1, slice_s, slots)  # after a comma
            except Exception:
                used = -1
            if used >= 0 and pending.chunk_end == len(pending.batch.logs) > pending.sent:
                riders.append(pending)
                room -= used + 1
                slots -= pending.chunk_end - pending.sent
                continue
        kept.append(pending)
    queue.extend(kept)
    return riders


def share_accepted(members: Sequence[Pending], accepted: int) -> list[int]:
    """The server's count of accepted logs, given to the members' chunks in body order."""
    left = max(0, accepted)
    out = []
    for pending in members:
        take = min(pending.chunk_end - pending.sent, left)
        out.append(take)
        left -= take
    return out
