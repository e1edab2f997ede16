"""Calls into user code from our own threads, contained whatever they raise."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["FAILED", "call_user"]

logger = logging.getLogger("actors")


class _Failed:
    """The value of a user call that raised."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Any = _Failed()


def call_user(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)`, or `FAILED` if it raised anything at all.

    Only for our own (actor) threads: pykka answers a `BaseException` raised on an actor thread
    (`SystemExit`, `KeyboardInterrupt`, `asyncio.CancelledError`, a `gevent.Timeout`) by stopping
    every actor in the process, the application's own too. So an auth callable or a user's
    session may raise anything here; it counts as a failed call and goes no further.
    """
    try:
        return function(*args, **kwargs)
    except BaseException as exc:  # see the docstring
        logger.debug("telemetry: user code raised %s", type(exc).__name__)
        return FAILED
