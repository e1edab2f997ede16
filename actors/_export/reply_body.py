"""Reading a reply body with a cap, decompression included: a hostile reply cannot flood memory.

An endless chunked reply stops at the cap, a trickling one at the time budget; a gzip or deflate
bomb is inflated only up to the cap (zlib's `max_length`), never whole. Other content codings
are returned as sent (the body then fails to parse and the reply counts as not understood).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

__all__ = ["read_capped"]

_CHUNK_BYTES = 65_536


def _decoder(content_encoding: str | None) -> zlib._Decompress | None:
    coding = (content_encoding or "").strip().lower()
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return zlib.decompressobj()
    return None


def read_capped(
    read: Callable[[int], bytes],
    cap: int,
    content_encoding: str | None = None,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bytes, bool]:
    """Read raw chunks with `read(n)` until the end, past `cap` decoded bytes, or `budget_s`.

    `read` should return what one socket read gives (`read1`), so that a server trickling a
    byte per read timeout is cut off at the budget rather than read for hours. Returns the body
    (at most `cap` bytes) and whether it was read to its end; a body that is not (too long, too
    slow, or not valid gzip/deflate) is cut, and its socket must not be reused. Exceptions of
    `read` propagate (the transports turn them into outcomes).
    """
    decoder = _decoder(content_encoding)
    out = bytearray()
    give_up_at = None if budget_s is None else clock() + budget_s
    while len(out) <= cap:
        if give_up_at is not None and clock() >= give_up_at:
            return bytes(out[:cap]), False
        chunk = read(min(_CHUNK_BYTES, cap + 1 - len(out)))
        if not chunk:
            return bytes(out[:cap]), len(out) <= cap
        if decoder is None:
            out += chunk
            continue
        try:
            out += decoder.decompress(chunk, cap + 1 - len(out))
        except zlib.error:
            return bytes(out[:cap]), False
    return bytes(out[:cap]), False
