"""FeatureFlagActor: learns in the background whether the server wants this host's telemetry.

`connect()` never waits for it. Until it decides, the aggregator holds logs; a failed fetch means
off and is cached for 60 s, a 404 is never retried before the TTL, and a known flag is refreshed
shortly before the server's `ttl_seconds` (clamped to 60–3600 s) runs out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from actors._export.http import Transport
from actors._export.retry import FLAG_FAILURE_HOLD_S, RetryPolicy, Verdict
from actors._runtime.base import GuardedActor
from actors._runtime.contain import FAILED, call_user
from actors._runtime.process import Holders
from actors._runtime.timer import Timer, TimerHandle
from messages.commands import (
    ConnectionContext,
    DumpState,
    FlagDecided,
    RefreshFlag,
    Teller,
    UseConnection,
)
from messages.config import TelemetrySettings
from messages.wire import decode_feature_flags, flag_value

__all__ = ["FAILURE_CACHE_S", "FeatureFlagActor", "FlagView", "clamp_ttl_s"]

logger = logging.getLogger("actors.feature_flags")

FAILURE_CACHE_S = FLAG_FAILURE_HOLD_S
TTL_MIN_S, TTL_MAX_S = 60, 3600


def clamp_ttl_s(ttl_s: object, default_s: int) -> int:
    """The server's `ttl_seconds`, clamped to 60–3600 s; the default when absent or garbage."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int):
        return default_s
    return max(TTL_MIN_S, min(TTL_MAX_S, ttl_s))


class FlagView:
    """The flag as driver threads see it (`Connection.enabled`); written only by the actor.

    `expires_at` (monotonic) lets the registry hand a still-valid decision to the host's next
    tree, so a host whose connections come and go does not fetch the flag every time.
    """

    __slots__ = ("enabled", "expires_at")

    def __init__(self, cached: FlagView | None = None) -> None:
        self.enabled: bool | None = None
        self.expires_at: float | None = None
        if (
            cached is not None
            and cached.enabled is not None
            and cached.expires_at is not None
            and cached.expires_at > time.monotonic()
        ):
            self.enabled, self.expires_at = cached.enabled, cached.expires_at


class FeatureFlagActor(GuardedActor):
    """Fetches, caches and refreshes one host's telemetry feature flag."""

    def __init__(
        self,
        *,
        base_url: str,
        settings: TelemetrySettings,
        transport: Transport,
        timer: Timer,
        aggregator: Teller,
        view: FlagView,
        context: ConnectionContext,
        driver_version: str,
        clock: Callable[[], float] = time.monotonic,
        holders: Holders | None = None,
    ) -> None:
        super().__init__()
        self._holders = holders
        version = quote(driver_version, safe="")
        self._url = f"{base_url}/api/2.0/connector-service/feature-flags/PYTHON/{version}"
        self._settings = settings
        self._transport = transport
        self._timer = timer
        self._aggregator = aggregator
        self._view = view
        self._context = context
        self._clock = clock
        self._source = "pending"
        self._expires_at: float | None = None
        self._fetches = 0
        self._failures = 0
        self._last_status: int | str | None = None
        self._refresh: TimerHandle | None = None
        self._policy = RetryPolicy.from_settings(settings)

    def on_start(self) -> None:
        """Decide at once when forced on; otherwise fetch (in this thread, never the driver's)."""
        if self._settings.force_enable:
            self._decide(True, "force_enable", None)
        elif self._view.enabled is not None and self._view.expires_at is not None:
            self._decide(self._view.enabled, "cached", self._view.expires_at - self._clock())
        else:
            self.actor_ref.tell(RefreshFlag())

    def on_stop(self) -> None:
        """Cancel the pending refresh."""
        if self._refresh is not None:
            self._refresh.cancel()

    def handle(self, message: Any) -> Any:
        match message:
            case RefreshFlag():
                self._fetch()
            case UseConnection(context=context):
                first_auth = context.auth is not None and self._context.auth is None
                if context.auth is not None or self._context.auth is None:
                    self._context = context
                if first_auth and self._source == "fetch_failed":
                    # the failure may have been for want of credentials: ask again with them
                    if self._refresh is not None:
                        self._refresh.cancel()
                    self._fetch()
            case DumpState():
                return self.snapshot()
            case _:
                logger.debug("feature flags: unexpected message %r", type(message))
        return None

    def _fetch(self) -> None:
        self._fetches += 1
        self._adopt_latest()
        headers = {"Accept": "application/json", "User-Agent": self._context.user_agent}
        provider = self._context.auth
        if provider is not None:
            # user code, contained whatever it raises (converting its answer included)
            auth = call_user(lambda: {str(k): str(v) for k, v in dict(provider()).items()})
            if auth is not FAILED and auth:
                headers.update(auth)
                if self._context.workspace_id is not None:  # as on the export POSTs
                    headers["x-databricks-org-id"] = str(self._context.workspace_id)
            else:
                logger.debug("feature flags: auth provider failed")
        outcome = self._transport.request("GET", self._url, body=None, headers=headers)
        self._last_status = outcome.status or outcome.error
        response = None
        if outcome.ok:
            try:
                response = decode_feature_flags(outcome.body)
            except ValueError:
                logger.debug("feature flags: malformed answer")
        decision = self._policy.decide_flag(
            outcome, readable=response is not None, ttl_s=self._settings.feature_flag_ttl_s
        )
        if response is not None and decision.verdict is Verdict.ACCEPT:
            ttl_s = clamp_ttl_s(response.ttl_seconds, self._settings.feature_flag_ttl_s)
            self._decide(flag_value(response), "server", ttl_s)
            return
        self._failures += 1
        self._decide(False, decision.source or "fetch_failed", decision.delay_s)

    def _adopt_latest(self) -> None:
        """Use the newest connection that joined through the published lease, as `UseConnection`
        would: an authenticated one, or any while none is (connection ids grow with time)."""
        latest = self._holders.latest if self._holders is not None else None
        current = self._context
        if latest is None or latest.connection_id <= current.connection_id:
            return
        if latest.auth is not None or current.auth is None:
            self._context = latest

    def _decide(self, enabled: bool, source: str, ttl_s: float | None) -> None:
        self._source = source
        self._view.enabled = enabled
        self._aggregator.tell(FlagDecided(enabled=enabled))
        if ttl_s is None:
            self._expires_at = None
            return
        self._expires_at = self._view.expires_at = self._clock() + ttl_s
        # Refresh a little before expiry so the cached value never lapses.
        self._refresh = self._timer.schedule(
            max(1.0, ttl_s - min(30.0, ttl_s * 0.1)), self.actor_ref, RefreshFlag()
        )

    def snapshot(self) -> dict[str, Any]:
        """Flag state, where it came from, and when it expires."""
        expires_in = (
            None if self._expires_at is None else round(self._expires_at - self._clock(), 3)
        )
        return {
            "enabled": self._view.enabled,
            "source": self._source,
            "expires_in_s": expires_in,
            "fetches": self._fetches,
            "failures": self._failures,
            "last_status": self._last_status,
            "url": self._url,
            "handler_errors": self.handler_errors,
        }
