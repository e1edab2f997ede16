"""One OTLP signal's own settings: URL, protocol, headers, timeout and compression.

The per-signal settings (`telemetry.otlp.logs_*`, `OTEL_EXPORTER_OTLP_LOGS_*`, and the same for
metrics) win over the general ones where set; `TelemetrySettings.from_sources` already left a
per-signal variable unset when our own general setting is given, as the precedence says.
"""

from __future__ import annotations

import gzip

import attrs

from messages.config import TelemetrySettings
from messages.otlp.encoding import CONTENT_TYPES
from messages.otlp.options import parse_headers, signal_url

__all__ = ["SignalOptions"]


@attrs.frozen(kw_only=True)
class SignalOptions:
    """Where and how one signal (`logs` or `metrics`) is sent."""

    url: str
    protocol: str
    headers: dict[str, str]
    gzip: bool
    timeout_s: float

    @classmethod
    def of(cls, settings: TelemetrySettings, signal: str) -> SignalOptions:
        """The signal's options: its own settings where set, else the general ones."""

        def pick(name: str) -> object:
            own = getattr(settings, f"otlp_{signal}_{name}")
            return own if own is not None else getattr(settings, f"otlp_{name}")

        protocol = str(pick("protocol"))
        compressed = pick("compression") == "gzip"
        headers = dict(parse_headers(str(pick("headers") or "")))
        headers["Content-Type"] = CONTENT_TYPES[protocol]
        if compressed:
            headers["Content-Encoding"] = "gzip"
        timeout_ms = int(str(pick("timeout_ms")))  # validated: an int of at least 1
        return cls(
            url=signal_url(
                settings.otlp_endpoint, signal, getattr(settings, f"otlp_{signal}_endpoint")
            ),
            protocol=protocol,
            headers=headers,
            gzip=compressed,
            timeout_s=timeout_ms / 1000,
        )

    def body(self, raw: bytes) -> bytes:
        """The request body as sent: gzipped if this signal says so."""
        return gzip.compress(raw, compresslevel=6) if self.gzip else raw

    def timeout(self, drain_s: float | None) -> float:
        """This signal's timeout, within what is left of a drain deadline."""
        return self.timeout_s if drain_s is None else min(self.timeout_s, drain_s)
