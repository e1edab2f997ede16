"""What one HTTP attempt produced, and the transport that makes attempts: plain values.

Here rather than beside the transports so that a tree's configuration (`messages.commands`)
can name its transport without importing `actors`. What an outcome means is decided in one
place, the exporter's retry policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

__all__ = ["HttpOutcome", "Transport"]


@attrs.frozen(kw_only=True)
class HttpOutcome:
    """What one HTTP attempt produced: a status and body, or a transport error name."""

    status: int | None
    body: bytes = b""
    retry_after_s: float | None = None
    error: str | None = None
    # The transport's own verdict on trying again, where its protocol decides that (OTLP);
    # None leaves it to the status, by the Databricks rules.
    retryable: bool | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


class Transport(Protocol):
    """Makes one HTTP attempt and reports it as an ``HttpOutcome``; never raises."""

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> HttpOutcome:
        """Send one request and return its outcome."""
        ...
