"""The page and its read-only JSON API: `Dashboard.respond` maps a request to a `PageReply`.

Routes (GET and HEAD only; any other method on them answers 405):

- `/` and `/static/{index.html,app.js,style.css}`: the page, shipped with the package.
- `/api/summary?host=&kind=&window_s=`: counts per kind, hosts, latency distributions per
  statement type and operation type, statements and errors per second, error groups.
- `/api/logs?since=ID&before=ID&limit=N&host=&kind=&window_s=`: the newest logs with id > since
  (and < before, for older pages), newest first, at most `limit` (default 50, max 500).
- `/api/health?host=`: per host, requests by path and status, accepted logs, rejected bodies with
  their reasons and, when the page runs in the client's process, its `dump_state()` accounting.

Filters are optional; `window_s` keeps logs received in the last N seconds. Safe from any
handler thread; never raises (a failing query answers 500 with a short reason).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from . import insights
from .store import LogStore

log = logging.getLogger(__name__)

ClientState = Callable[[], Mapping[str, Any]]
EndpointStats = Callable[[], Mapping[str, Mapping[str, Any]]]

READ_METHODS = ("GET", "HEAD")
MAX_LIMIT = 500
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    # Even a rendering bug cannot run planted script: only our own files may run or load.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@attrs.frozen(kw_only=True)
class PageReply:
    """What to answer: status, body and headers (Content-Type included)."""

    status: int
    body: bytes
    headers: Mapping[str, str]


def _json(status: int, payload: object, **headers: str) -> PageReply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return PageReply(
        status=status,
        body=body,
        headers={"Content-Type": "application/json", **_SECURITY_HEADERS, **headers},
    )


API_ROUTES = ("/api/summary", "/api/logs", "/api/health")
_PROTOCOL_PREFIX = "/api/2.0/"  # the feature-flag route of the protocol, never the page's


LOOPBACK_NAMES = frozenset(("127.0.0.1", "localhost", "[::1]"))


def is_loopback(address: str) -> bool:
    """True for an address that only this machine can reach."""
    return address in ("localhost", "::1") or address.startswith("127.")


def _host_name(host_header: str) -> str:
    """The name part of a Host header: '127.0.0.1:8765' -> '127.0.0.1', '[::1]:80' -> '[::1]'."""
    if host_header.startswith("["):
        return host_header.partition("]")[0] + "]"
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


def write_reply(handler: BaseHTTPRequestHandler, reply: PageReply) -> bool:
    """Send `reply` on `handler`; True when a request body is left unread (the connection then
    closes, lingering, so the unread body is never parsed as the next request)."""
    handler.send_response(reply.status)
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(reply.body)))
    headers = handler.headers
    pending = "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0"
    if pending:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(reply.body)
    return pending


def owns(path: str) -> bool:
    """True for the paths the page answers: `/`, its files and `/api/*` but the protocol's."""
    if path in _STATIC or path in API_ROUTES or path == "/favicon.ico":
        return True
    return path.startswith("/api/") and not path.startswith(_PROTOCOL_PREFIX)


def _number(query: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name, [""])[-1].strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{name} must be a whole number >= {low}, got {raw[:40]!r}")
    return max(low, min(high, int(raw)))


def _text(query: Mapping[str, list[str]], name: str) -> str | None:
    value = query.get(name, [""])[-1]
    return value[:300] or None


class Dashboard:
    """Answers the page's routes from a `LogStore`, the endpoints' counters and, optionally,
    the client's state (a callable such as `lambda: actors.dump_state(0.5)`)."""

    def __init__(
        self,
        store: LogStore,
        endpoint_stats: EndpointStats,
        client_state: ClientState | None = None,
        *,
        loopback_only: bool = True,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._read = insights.Reader(store)
        self._loopback_only = loopback_only
        self._endpoint_stats = endpoint_stats
        self._client_state = client_state
        self._clock_ms = clock_ms

    def close(self) -> None:
        """Release the read connection; idempotent."""
        self._read.close()

    def respond(self, method: str, target: str, host_header: str | None = None) -> PageReply:
        """The reply to `method target`; never raises. On a loopback endpoint, a request naming
        another host (a web page that rebound its DNS name to 127.0.0.1) answers 421."""
        if self._loopback_only and _host_name(host_header or "").lower() not in LOOPBACK_NAMES:
            return _json(421, {"error": "this page answers only to 127.0.0.1 or localhost"})
        try:
            return self._route(method, target)
        except Exception:
            log.debug("page request failed", exc_info=True)
            return _json(500, {"error": "internal error"})

    def _route(self, method: str, target: str) -> PageReply:
        parts = urlsplit(target)
        if method not in READ_METHODS:
            return _json(405, {"error": "read-only: use GET"}, Allow=", ".join(READ_METHODS))
        if parts.path in _STATIC:
            return self._static(*_STATIC[parts.path])
        if parts.path == "/favicon.ico":  # browsers ask; an empty answer keeps the counts clean
            return PageReply(status=204, body=b"", headers=_SECURITY_HEADERS)
        routes = dict(zip(API_ROUTES, (self._summary, self._logs, self._health), strict=True))
        route = routes.get(parts.path)
        if route is None:
            return _json(404, {"error": f"no such route: {parts.path[:200]}", "routes": [*routes]})
        try:
            return _json(200, route(parse_qs(parts.query, keep_blank_values=True)))
        except ValueError as error:
            return _json(400, {"error": str(error)})

    def _static(self, name: str, content_type: str) -> PageReply:
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        return PageReply(
            status=200, body=body, headers={"Content-Type": content_type, **_SECURITY_HEADERS}
        )

    def _filters(self, query: Mapping[str, list[str]]) -> insights.Filters:
        kind = _text(query, "kind")
        if kind is not None and kind not in insights.KINDS:
            raise ValueError(f"kind must be one of {', '.join(insights.KINDS)}")
        window_s = _number(query, "window_s", 0, 0, 10 * 365 * 86400)
        since_ms = self._clock_ms() - window_s * 1000 if window_s else None
        return insights.Filters(host=_text(query, "host"), kind=kind, since_ms=since_ms)

    def _summary(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        filters = self._filters(query)
        now_ms = self._clock_ms()
        kinds = insights.kind_counts(self._read, filters)
        return {
            "generated_at_ms": now_ms,
            "filters": attrs.asdict(filters),
            "last_id": insights.last_id(self._read, filters),
            "total": sum(kinds.values()),
            "kinds": kinds,
            "hosts": insights.hosts(self._read),
            "latency": insights.latency(self._read, filters),
            "series": insights.series(self._read, filters, now_ms),
            "errors": insights.error_groups(self._read, filters),
        }

    def _logs(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        filters = self._filters(query)
        since_id = _number(query, "since", 0, 0, 2**62)
        before = _number(query, "before", 0, 0, 2**62) or None
        limit = _number(query, "limit", 50, 1, MAX_LIMIT)
        rows = insights.logs(self._read, filters, since_id=since_id, before_id=before, limit=limit)
        return {
            "logs": rows,
            "last_id": max((row["id"] for row in rows), default=since_id),
            "more_before": rows[-1]["id"] if len(rows) == limit else None,
        }

    def _health(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        only = _text(query, "host")
        stored = insights.hosts(self._read)
        rejected = insights.rejections(self._read, only)
        endpoints = dict(self._endpoint_stats())
        client = self._client_hosts()
        names = sorted({*stored, *endpoints, *client, *rejected})
        return {
            "client_in_process": self._client_state is not None,
            "hosts": {
                name: _host_health(
                    stored.get(name, 0), endpoints.get(name), rejected.get(name), client.get(name)
                )
                for name in names
                if only is None or name == only
            },
        }

    def _client_hosts(self) -> dict[str, dict[str, Any]]:
        if self._client_state is None:
            return {}
        try:
            state = self._client_state()
            return {str(h): client_accounting(v) for h, v in dict(state.get("hosts", {})).items()}
        except Exception:
            log.debug("client state unavailable", exc_info=True)
            return {}


def _host_health(
    stored: int,
    endpoint: Mapping[str, Any] | None,
    rejected: Mapping[str, Any] | None,
    client: Mapping[str, Any] | None,
) -> dict[str, Any]:
    requests = [
        {"path": path, "status": int(status), "count": n}
        for path, statuses in sorted((endpoint or {}).get("requests", {}).items())
        for status, n in sorted(statuses.items())
    ]
    return {
        "stored_logs": stored,
        "accepted_logs": None if endpoint is None else endpoint.get("logs_accepted"),
        "requests": requests,
        "rejected": rejected or {"count": 0, "latest": []},
        "client": client,
    }


def client_accounting(host: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of one host's `dump_state()` the page shows: accounts, drops, breaker."""
    accounting = dict(host.get("accounting", {}))
    exporter = host.get("exporter")
    if not exporter:
        finished = host.get("finished_generations") or [{}]
        exporter = finished[-1].get("exporter", {})
    breaker = dict(exporter.get("breaker", {}))
    return {
        "live": bool(host.get("live", False)),
        "told": accounting.get("told"),
        "exported": accounting.get("exported"),
        "dropped": dict(accounting.get("dropped", {})),
        "pending": accounting.get("pending"),
        "balanced": accounting.get("balanced"),
        "breaker": breaker.get("state"),
        "breaker_transitions": dict(breaker.get("transitions", {})),
        "responses": dict(exporter.get("responses", {})),
    }
