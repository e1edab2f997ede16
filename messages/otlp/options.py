"""The OTLP exporter's standard settings: header and resource-attribute lists, signal URLs."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable

__all__ = [
    "COMPRESSIONS",
    "PROTOCOLS",
    "check_choice",
    "check_endpoint",
    "check_list",
    "check_non_empty",
    "check_url",
    "parse_headers",
    "parse_resource_attributes",
    "signal_url",
]

Check = Callable[[str, object], None]

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


# Checks of the OTLP settings: `check(key, value)` raises a ValueError naming the setting's key.


def _brief(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def check_non_empty(key: str, value: object) -> None:
    """A non-blank str."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty str, got {_brief(value)}")


def check_choice(choices: tuple[str, ...]) -> Check:
    """One of `choices`."""

    def check(key: str, value: object) -> None:
        if value not in choices:
            raise ValueError(f"{key} must be one of {', '.join(choices)}, got {_brief(value)}")

    return check


def check_url(*, required: bool) -> Check:
    """An http(s) URL with a host (or None, unless `required`)."""

    def check(key: str, value: object) -> None:
        if value is None and not required:
            return
        check_non_empty(key, value)
        try:
            check_endpoint(str(value))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}, got {_brief(value)}") from None

    return check


def check_list(parse: Callable[[str | None], object]) -> Check:
    """None, or a str that `parse` accepts."""

    def check(key: str, value: object) -> None:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key} must be a str or None, got {_brief(value)}")
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None

    return check
