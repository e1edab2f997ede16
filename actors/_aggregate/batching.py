"""Batching of queued logs for export: by shared credentials, at most `batch_size` each."""

from __future__ import annotations

import collections
from collections.abc import Generator
from typing import Any

from messages.commands import ConnectionContext
from messages.records import FrontendLog

__all__ = ["Batch", "Queued", "credential_key", "take_batches"]

Queued = tuple[ConnectionContext, FrontendLog, int]
"""A queued log: its connection, the log, and how many told events it stands for."""
Batch = tuple[ConnectionContext, list[tuple[FrontendLog, int]]]


def credential_key(context: ConnectionContext) -> tuple[Any, ...]:
    """Connections with the same key send with the same credentials and headers."""
    if context.auth is None:
        return (None, context.workspace_id, context.user_agent)
    return (id(context.auth), context.workspace_id, context.user_agent)


def take_batches(queue: collections.deque[Queued], size: int) -> Generator[Batch, None, None]:
    """Empty `queue` into batches of at most `size` logs that share credentials.

    Logs are grouped by the connection's auth provider (the same object, so the same
    credentials), workspace and user agent: connections that share a provider share batches; a
    connection with a provider of its own gets batches of its own. A caller that closes the
    generator early leaves what it did not take queued, in order.
    """
    groups: dict[Any, Batch] = {}
    try:
        while queue:
            context, log, events = queue.popleft()
            key = credential_key(context)
            group = groups.get(key)
            if group is None:
                group = groups[key] = (context, [])
            group[1].append((log, events))
            if len(group[1]) >= size:
                yield groups.pop(key)
        while groups:
            yield groups.pop(next(iter(groups)))
    finally:
        for context, items in reversed(groups.values()):
            for log, events in reversed(items):
                queue.appendleft((context, log, events))
