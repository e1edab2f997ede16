"""Scrubbing secrets, personal paths and SQL literals out of error text before it is sent."""

from __future__ import annotations

import re
from collections.abc import Callable

REDACTED = "<redacted>"
PATH = "<path>"
TRUNCATED = "...<truncated>"
UNPRINTABLE = "<unprintable>"
_FAILED = "<redaction failed>"

# Every quantifier is bounded, and character classes stop at the delimiters that end a
# match, so each pattern runs in time linear in the input: no catastrophic backtracking.
_SECRET_KEY = (
    r"(?:access_token|refresh_token|client_secret|api_key|apikey|password|passwd|pwd"
    r"|secret|token|credentials?|auth)"
)
_DQ = r'"(?:[^"\\\r\n]|\\.){0,4096}"'
_SQ = r"'(?:[^'\\\r\n]|\\.){0,4096}'"
_PATH_TAIL = r"""[^\s'"`<>(),;]{0,1024}"""

_Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]


def _keep_quotes(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('head')}{quote}{REDACTED}{quote}"


_RULES: tuple[_Rule, ...] = (
    # Databricks tokens first, before any generic rule can split them: a PAT is dapi + 32 hex
    # (maybe a -N suffix); whatever is glued on after goes too.
    (re.compile(r"dapi[0-9a-f]{32}[\w-]{0,480}"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9])dapi[A-Za-z0-9_-]{4,512}"), REDACTED),
    # JWTs: base64url segments joined by dots (the signature may be cut off); a JSON header
    # always starts eyJ.
    (
        re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{1,4096}\.[A-Za-z0-9_-]{1,4096}"
            r"(?:\.[A-Za-z0-9_-]{0,4096})?"
        ),
        REDACTED,
    ),
    # URL user-info: scheme://user:pass@host -> scheme://<redacted>@host.
    (
        re.compile(r"(?i)(\b[a-z][a-z0-9+.-]{0,31}://)[^\s/?#@'\"<>]{1,512}@"),
        rf"\1{REDACTED}@",
    ),
    # Authorization header values, quoted or bare (optional scheme word plus credentials).
    (
        re.compile(
            r"""(?i)(?P<head>\b(?:proxy-)?authorization["']?\s{0,5}[:=]\s{0,5})"""
            rf"""(?P<value>{_DQ}|{_SQ}|(?:[A-Za-z][\w-]{{0,31}}\s{{1,5}})?[^\s,;"'}}]{{1,4096}})"""
        ),
        _keep_quotes,
    ),
    (re.compile(r"(?i)\b(bearer)\s{1,5}[A-Za-z0-9._~+/=-]{1,4096}"), rf"\1 {REDACTED}"),
    (re.compile(r"(?i)\b(basic)\s{1,5}[A-Za-z0-9+/]{4,4096}={0,2}"), rf"\1 {REDACTED}"),
    # key=value, key: value and JSON "key": "value" for secret-looking keys.
    (
        re.compile(
            rf"""(?i)(?P<head>{_SECRET_KEY}[\w-]{{0,40}}["']?\s{{0,5}}[:=]\s{{0,5}})"""
            rf"""(?P<value>{_DQ}|{_SQ}|[^\s&;,"'}}]{{1,4096}})"""
        ),
        _keep_quotes,
    ),
    # Home and temp paths name users and projects.
    (re.compile(rf"/(?:home|Users)/[^\s/'\"`<>(),;]{{1,128}}{_PATH_TAIL}"), PATH),
    (
        re.compile(
            rf"(?i)\b[a-z]:(?:\\{{1,2}}|/)(?:Users|Documents and Settings)"
            rf"(?:\\{{1,2}}|/)[^\s\\/'\"`<>(),;]{{1,128}}{_PATH_TAIL}"
        ),
        PATH,
    ),
    (re.compile(rf"(?<![\w~])~[\\/]{_PATH_TAIL}"), PATH),
    (re.compile(rf"(?:/private)?/(?:tmp|var/tmp|var/folders)(?=[/\\])/?{_PATH_TAIL}"), PATH),
    (re.compile(rf"(?i)%(?:temp|tmp|userprofile|appdata|localappdata)%{_PATH_TAIL}"), PATH),
    (re.compile(rf"(?i)\$(?:\{{?)(?:tmpdir|home)\b\}}?{_PATH_TAIL}"), PATH),
    (
        re.compile(
            rf"(?i)\b[a-z]:(?:\\{{1,2}}|/)(?:[^\s\\/'\"`<>(),;]{{1,128}}(?:\\{{1,2}}|/))"
            rf"{{0,8}}?te?mp(?:\\{{1,2}}|/){_PATH_TAIL}"
        ),
        PATH,
    ),
    # SQL string literals ('' doubles a quote), and double-quoted strings compared with =.
    # No backslash escapes here: with them a run of \' would rescan from every quote.
    # A quote right after a letter is an apostrophe (can't), unless it is a literal prefix
    # (N'', E'', X'', B'').
    (
        re.compile(r"(?:(?<![A-Za-z0-9_])|(?<=\b[NnEeXxBb]))'(?:[^']|''){0,4096}'"),
        f"'{REDACTED}'",
    ),
    # Only after = or <>: a bare > would match the end of a <redacted> marker.
    (re.compile(r'((?:=|<>)\s{0,5})"(?:[^"]|""){0,4096}"'), rf'\1"{REDACTED}"'),
)


def _to_text(text: object) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", errors="replace")
    try:
        return str(text)
    except Exception:
        return UNPRINTABLE


def redact(text: object, max_chars: int = 2048) -> str:
    """Return ``text`` with secrets, user paths and SQL literals masked, capped at max_chars.

    Safe from any thread; never raises (an object whose ``__str__`` raises gives
    ``<unprintable>``).
    """
    try:
        limit = max(0, int(max_chars))
        value = _to_text(text)
        # Work on a bounded prefix, far longer than the cap, so huge inputs stay cheap. A
        # secret cut at this edge keeps its prefix (dapi, eyJ, Bearer, key=), which the rules
        # still match.
        value = value[: max(limit * 8, 65_536)]
        # Lone surrogates would break UTF-8 encoding later on.
        value = value.encode("utf-8", errors="replace").decode("utf-8")
        for pattern, replacement in _RULES:
            value = pattern.sub(replacement, value)
        if len(value) > limit:
            if limit > len(TRUNCATED):
                value = value[: limit - len(TRUNCATED)] + TRUNCATED
            else:
                value = value[:limit]
        return value
    except Exception:
        return _FAILED[: max(0, max_chars)] if isinstance(max_chars, int) else _FAILED
