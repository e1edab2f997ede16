"""Session, statement and log event ids without `uuid.uuid4()` per id.

`uuid4()` reads 16 bytes from the OS per call (about 3 µs and a GIL release); these ids (the
PEP 249 wrapper's session and statement ids, each log's `frontend_log_event_id`) only have to
be unique and shaped like a (version 4) UUID. Each id is a random per-process prefix (16 random
bytes read once, again in a forked child) and a counter, so ids never repeat within a process
and are as unlikely to collide across processes as the prefix's 92 random bits make them.
"""

from __future__ import annotations

import itertools
import os
import uuid

__all__ = ["new_id"]


class _Ids:
    __slots__ = ("count", "prefix")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = str(uuid.uuid4())[:24]  # "xxxxxxxx-xxxx-4xxx-yxxx-": version 4, variant
        self.count = itertools.count(int.from_bytes(os.urandom(5)))  # next() is atomic


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reseed)


def new_id() -> str:
    """A new UUID-shaped id, unique in this process; safe from any thread."""
    ids = _IDS
    return f"{ids.prefix}{next(ids.count) & 0xFFFFFFFFFFFF:012x}"
