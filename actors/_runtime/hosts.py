"""Host normalisation: one key per server, whatever spelling the driver was given."""

from __future__ import annotations

import ipaddress
import re

import attrs

__all__ = ["HostAddress", "normalise_host"]

_DEFAULT_PORTS = {"https": 443, "http": 80}
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?$")


@attrs.frozen(kw_only=True)
class HostAddress:
    """A normalised host: `key` (``host[:port]``, lower case) and the scheme to reach it."""

    key: str
    scheme: str

    @property
    def base_url(self) -> str:
        """``scheme://key``: the only origin telemetry is ever sent to."""
        return f"{self.scheme}://{self.key}"


def normalise_host(host: str, default_scheme: str = "https") -> HostAddress:
    """Lower case, no scheme, no user-info, no path, no default port, no trailing slash or dot.

    Raises `ValueError` for something that is not a host (setup-time input from code).
    """
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"host must be a non-empty str, got {host!r}")
    text = host.strip().lower()
    scheme = default_scheme
    if "://" in text:
        scheme, _, text = text.partition("://")
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"host {host!r}: scheme must be https or http")
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    text = text.rpartition("@")[2]  # credentials in the host are never kept
    port: int | None = None
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or not re.fullmatch(r"[0-9a-f:.]+", name):
            raise ValueError(f"host {host!r}: bad IPv6 literal")
        try:  # one spelling per address: [2001:0db8::0001] is [2001:db8::1]
            name = f"[{ipaddress.IPv6Address(name).compressed}]"
        except ValueError:
            raise ValueError(f"host {host!r}: bad IPv6 literal") from None
        if rest.startswith(":"):
            port = _port(rest[1:], host)
        elif rest:
            raise ValueError(f"host {host!r}: unexpected {rest!r}")
    else:
        name, sep, port_text = text.partition(":")
        if sep:
            port = _port(port_text, host)
        name = name.removesuffix(".")
        if not _HOSTNAME.match(name) or ".." in name:
            raise ValueError(f"host {host!r}: not a valid host name")
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return HostAddress(key=name, scheme=scheme)
    return HostAddress(key=f"{name}:{port}", scheme=scheme)


def _port(text: str, host: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError(f"host {host!r}: bad port {text!r}")
    return int(text)
