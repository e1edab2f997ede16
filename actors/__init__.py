"""Client telemetry for threaded PEP 249 drivers: one pykka actor tree per server host.

Drivers call `connect()` once per connection and `tell()` immutable events from `messages.events`;
everything else happens on the actors' daemon threads. See README.md for the full example.
"""

from __future__ import annotations

import logging

from actors.telemetry import Connection, connect, dump_state, flush, shutdown
from messages.config import TelemetrySettings
from messages.sysconfig import DriverInfo

__all__ = [
    "Connection",
    "DriverInfo",
    "TelemetrySettings",
    "connect",
    "dump_state",
    "flush",
    "shutdown",
]

logging.getLogger("actors").addHandler(logging.NullHandler())
logging.getLogger("messages").addHandler(logging.NullHandler())
