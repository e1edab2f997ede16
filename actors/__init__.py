"""Client telemetry for threaded PEP 249 drivers: one pykka actor tree per server host.

Drivers call `connect()` once per connection and `tell()` immutable events from `messages.events`;
everything else happens on the actors' daemon threads. `instrument()` gives any PEP 249 module
telemetry with one call; `LocalEndpoint` is a loopback server that speaks the protocol. See
README.md for the full example.

The tree (one module each): `registry` -> per host `supervisor` -> `feature_flags`,
`aggregator`, `exporter`; `telemetry` is the driver-facing facade. Modules and subpackages whose
names start with ``_`` are helpers; `dbapi` and `tools` are public subpackages.
"""

from __future__ import annotations

import logging

from actors._export.classify import ErrorKind, classify_exception
from actors.dbapi import instrument, instrument_connection
from actors.telemetry import Connection, connect, dump_state, flush, shutdown
from actors.tools.local_endpoint import Fault, LocalEndpoint, LogStore
from messages.config import TelemetrySettings
from messages.sysconfig import DriverInfo

__all__ = [
    "Connection",
    "DriverInfo",
    "ErrorKind",
    "Fault",
    "LocalEndpoint",
    "LogStore",
    "TelemetrySettings",
    "classify_exception",
    "connect",
    "dump_state",
    "flush",
    "instrument",
    "instrument_connection",
    "shutdown",
]

logging.getLogger("actors").addHandler(logging.NullHandler())
logging.getLogger("messages").addHandler(logging.NullHandler())
