"""The OTLP exporter's standard settings: header and resource-attribute lists, signal URLs."""

from __future__ import annotations

import re
import urllib.parse

__all__ = [
    "PROTOCOLS",
    "parse_headers",
    "parse_resource_attributes",
    "signal_url",
]

PROTOCOLS = ("http/protobuf", "http/json")
COMPRESSIONS = ("none", "gzip")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_SIGNAL_PATHS = {"logs": "v1/logs", "metrics": "v1/metrics"}


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    """`k1=v1,k2=v2` with percent-encoded values (the OTel list format); ValueError if not."""
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = urllib.parse.unquote(key.strip())
        if not sep or not key:
            raise ValueError(f"{what}: expected key=value, got an item without '='")
        pairs.append((key, urllib.parse.unquote(value.strip())))
    return pairs


def parse_headers(text: str | None) -> tuple[tuple[str, str], ...]:
    """OTEL_EXPORTER_OTLP_HEADERS: `name=value,…`; names must be HTTP tokens, values one line."""
    if not text:
        return ()
    pairs = _pairs(text, "OTLP headers")
    for key, value in pairs:
        if not _TOKEN.fullmatch(key):
            raise ValueError("OTLP headers: a header name is not an HTTP token")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"OTLP headers: the value of {key} has a line break")
    return tuple(pairs)


def parse_resource_attributes(text: str | None) -> tuple[tuple[str, str], ...]:
    """OTEL_RESOURCE_ATTRIBUTES: `key=value,…` with percent-encoded values."""
    return tuple(_pairs(text, "OTLP resource attributes")) if text else ()


def check_endpoint(text: str) -> None:
    """An OTLP/HTTP endpoint must be an http:// or https:// URL with a host."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an OTLP endpoint must be an http:// or https:// URL with a host")


def signal_url(endpoint: str, signal: str, signal_endpoint: str | None) -> str:
    """The URL for `logs` or `metrics`: a per-signal endpoint as given, else base + /v1/<signal>."""
    if signal_endpoint:
        return signal_endpoint
    return endpoint.rstrip("/") + "/" + _SIGNAL_PATHS[signal]
