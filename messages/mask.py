"""Masking by construction: the one function every free text goes through before any sink.

An error message keeps its shape and loses its data. It is read as tokens, left to right, once:
quoted literals (any quote, closed or not), numbers, parenthesised value lists, paths, URLs'
query strings and user-info, e-mails, IPs and long tokens become placeholders; a word stays only
if it is message vocabulary (`messages._vocabulary`) and does not stand where a value or an
object's name stands (after ``=``, ``table``, ``column:``, or an upper-case statement word such
as ``SELECT`` or ``FROM``, itself masked). Statement text that servers echo (``LINE n:`` with
its caret line, ``QUERY:``, ``STATEMENT:``, ``== SQL ==`` blocks) is dropped whole. Safe from any
thread; never raises; linear in the input (every pattern is possessive or bounded), which is
read up to 64 KB. Runs on the aggregator's thread, never the driver's.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator

from messages._vocabulary import CONTENT_WORDS, FUNCTION_WORDS, OBJECT_NOUNS

__all__ = [
    "ERROR_TEXT_MODES",
    "MAX_CHARS",
    "PLACEHOLDERS",
    "TRUNCATED",
    "error_trace",
    "mask_text",
]

MAX_CHARS = 2048
SCAN_CHARS = 65_536  # what is read of an input; the rest cannot reach the cap anyway
ERROR_TEXT_MODES = ("masked", "class_only")
TRUNCATED = " <truncated>"
STR, NUM, ID, VALUES, TEXT = "<str>", "<num>", "<id>", "(<values>)", "<text>"
PATH, URL_PATH, EMAIL, IP, TOKEN = "<path>", "/<path>", "<email>", "<ip>", "<token>"
HOST, URL = "<host>", "<url>"
PLACEHOLDERS = (STR, NUM, ID, VALUES, TEXT, PATH, EMAIL, IP, TOKEN, HOST, URL)
_UNPRINTABLE = "<unprintable>"
_FAILED = "<masking failed>"

# Whole blocks of echoed statement text: a labelled line and the lines that continue it (up to
# the next ``LABEL:`` line), an ``== SQL ==`` block to the end, caret lines anywhere.
_ECHO = re.compile(
    r"(?m)^[ \t]*+(?:LINE[ \t]*+\d{1,9}+|QUERY|STATEMENT):[^\n]*+"
    r"(?:\n(?![ \t]*+[A-Z][A-Z ]{0,20}+:)[^\n]*+)*+"
    r"|^[ \t]*+==[ \t]*+SQL\b[\s\S]*+"
    r"|^[ \t\-]*+\^[\^ \t\-~]*+$"
)
_ECHO_MARKERS = ("LINE", "QUERY:", "STATEMENT:", "==", "^")
_TOKEN = re.compile(
    r"""
    (?P<nl>\n\s*+)
    |(?P<ws>[^\S\n]++)
    |(?P<url>[A-Za-z][A-Za-z0-9+.\-]{1,31}+://[^\s'"`<>]*+)
    |(?P<email>[\w.+\-]{1,64}+@[\w\-]{1,63}+(?:\.[\w\-]{1,63}+)++)
    |(?P<ip>(?<![\w.])\d{1,3}+(?:\.\d{1,3}+){3}(?![\w.])
        |(?<![\w:])(?:[0-9A-Fa-f]{0,4}+:){2,7}+[0-9A-Fa-f]{0,4}+(?![\w:]))
    |(?P<path>(?:(?<![\w.\-])[A-Za-z]:[\\/]|\\\\(?=[\w.$])|(?<![\w.])~[\\/]
        |(?<![\w.\-/\\])/(?=[\w.~$\-]))[^\s'"`<>|;,()\[\]]*+)
    |(?P<quote>(?:(?<!\w)(?:[NnEeXxBbRr]|[Uu]&))?
        (?:'(?:[^'\\]++|''|\\.)*+'?|"(?:[^"\\]++|""|\\.)*+"?|`(?:[^`]++|``)*+`?))
    |(?P<tag>\[[A-Z][A-Z0-9]*+(?:[_.][A-Z0-9]++)++\]|\[[0-9A-Z]{5}\])
    |(?P<blob>(?=[A-Za-z0-9+/_\-]{24})[A-Za-z0-9+/_\-]++={0,2})
    |(?P<word>[^\W\d][\w$]*+(?:'(?:t|s|re|ve|ll|d|m)\b)?(?:\.[^\W\d][\w$]*+)*+)
    |(?P<num>\d[\w$]*+(?:\.\d[\w$]*+)*+)
    |(?P<open>\()
    |(?P<punct>[!-/:-@\[-`{-~])
    |(?P<other>[^\w\s!-~]++|[\s\S])
    """,
    re.VERBOSE,
)
_WORDS = FUNCTION_WORDS | CONTENT_WORDS
_PARENS = re.compile(r"[()\n]")
_MAX_DEPTH = 16
_TOKEN_CHARS = re.compile(r"[0-9+/]")  # a long run with one of these is a token, not a name
_SCHEMES = frozenset(
    str.split(
        "http https ftp sftp file s3 s3a s3n gs abfs abfss wasb wasbs adl dbfs hdfs ws wss jdbc"
        " odbc postgres postgresql mysql sqlite databricks"
    )
)
_SQLSTATE = re.compile(r"(?=[A-Z]{0,4}[0-9])[0-9A-Z]{5}")  # every SQLSTATE class has a digit
_LOCATORS = frozenset(
    {"line", "lines", "pos", "position", "offset", "col", "char", "character", "errno", "port"}
)
_COMPARISONS = frozenset("=<>!")
# Upper-case words that build statements: a message holding them quotes a statement, so they and
# what follows them (names, whatever the words) are masked. Lower-case prose ("update or delete
# on table") is not touched.
_STATEMENT_WORDS = frozenset(
    str.split(
        "SELECT FROM WHERE INSERT INTO UPDATE DELETE SET VALUES JOIN ON AND OR GROUP ORDER BY"
        " HAVING LIMIT OFFSET UNION CREATE DROP ALTER TABLE WITH AS MERGE USING CASE WHEN THEN"
        " ELSE END LIKE IN IS DISTINCT RETURNING EXISTS BETWEEN"
    )
)
_STATEMENT = "<sql>"
_LISTS = frozenset({"contains", "values"})


def _to_text(text: object) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text[:SCAN_CHARS]).decode("utf-8", errors="replace")
    try:
        return str(text)
    except BaseException:  # user code on our thread: contained, whatever it raises
        return _UNPRINTABLE


class _Reader:
    """One pass over a text: yields output pieces; remembers the last significant tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.last: list[str] = ["", "", ""]  # the last three significant tokens, lower-cased
        self.lead = True  # nothing but error-class tags yet in the message

    def _note(self, token: str) -> None:
        self.last = [self.last[1], self.last[2], token]

    def _object_position(self) -> bool:
        """Right after ``table``, ``column: `` or ``constraint failed:``: a name stands here."""
        before, prev, last = self.last
        if last in OBJECT_NOUNS or last == _STATEMENT:
            return True
        return last == ":" and (prev in OBJECT_NOUNS or (prev, before) == ("failed", "constraint"))

    def _code_position(self, token: str) -> bool:
        """A SQLSTATE right after ``SQLSTATE``, ``SQLSTATE:`` or ``SQLSTATE=``."""
        _, prev, last = self.last
        after = last == "sqlstate" or (last in (":", "=") and prev == "sqlstate")
        return after and _SQLSTATE.fullmatch(token) is not None

    def _value_position(self) -> bool:
        last = self.last[2]
        return len(last) == 1 and last in _COMPARISONS

    def pieces(self) -> Iterator[str]:
        text, pos, end = self.text, 0, len(self.text)
        while pos < end:
            match = _TOKEN.match(text, pos)
            if match is None:  # cannot happen: `other` matches any character
                return
            kind, token = match.lastgroup, match.group()
            pos = match.end()
            if kind == "nl":  # a later line's leading tag may be data: a value that holds `\n`
                self.last, self.lead = ["", "", ""], False
                yield "\n"
                continue
            if kind == "ws":
                yield " "
                continue
            if kind == "tag" and self.lead and _is_code(token[1:-1]):
                yield token  # [HY000], [PARSE_SYNTAX_ERROR] opening the message: codes, not data
                continue
            self.lead = False
            if kind == "open":
                pos = yield from self._open(pos)
            elif kind == "punct":
                pos = yield from self._punct(token, pos)
            elif kind == "other":  # dropped, but it still parts what stands either side of it
                yield " "
            else:
                yield self._piece(kind or "", token)

    def _open(self, pos: int) -> Generator[str, None, int]:
        if self.last[2] in _LISTS or self._value_position():
            self._note(VALUES)
            yield VALUES
            return self._close(pos)
        self._note("(")
        yield "("
        return pos

    def _close(self, pos: int) -> int:
        """The end of a parenthesised value list: its matching ``)``, or the end of its line.

        Nested deeper than `_MAX_DEPTH`, the rest of the line is taken as the list, which keeps
        a line of thousands of ``(`` from costing a Python step each.
        """
        depth, text = 1, self.text
        while True:
            found = _PARENS.search(text, pos)
            if found is None:
                return len(text)
            char, pos = found.group(), found.end()
            if char == "\n":
                return pos - 1
            depth += 1 if char == "(" else -1
            if depth == 0:
                return pos
            if depth > _MAX_DEPTH:
                end = text.find("\n", pos)
                return len(text) if end < 0 else end

    def _punct(self, token: str, pos: int) -> Generator[str, None, int]:
        if token == ":" and self.last[1] == "line" and self.last[2] == NUM:
            # "JSON data, line 1: {bad..." — what follows quotes the data
            yield ": " + TEXT
            end = self.text.find("\n", pos)
            return len(self.text) if end < 0 else end
        self._note(token)
        yield token
        return pos

    def _piece(self, kind: str, token: str) -> str:
        if kind == "word":
            return self._word(token)
        if kind == "num":
            return self._number(token)
        piece = _SIMPLE.get(kind)
        if piece is None:
            piece = _url(token) if kind == "url" else "[" + ID + "]" if kind == "tag" else TOKEN
            if kind == "blob" and _TOKEN_CHARS.search(token) is None:
                piece = ID
        self._note(piece)
        return piece

    def _word(self, token: str) -> str:
        lower = token.lower()
        if token in _STATEMENT_WORDS:
            self._note(_STATEMENT)
            return ID
        if self._code_position(token):
            keep = True
        elif self._value_position():
            keep = False
        elif lower in FUNCTION_WORDS:
            keep = True
        else:
            keep = lower in CONTENT_WORDS and not self._object_position()
        self._note(lower if keep else ID)
        return token if keep else ID

    def _number(self, token: str) -> str:
        prev = self.last[2]
        keep = self._code_position(token) or (
            token.isdigit() and len(token) <= 5 and prev in _LOCATORS
        )
        self._note(NUM)
        return token if keep else NUM


_SIMPLE = {"email": EMAIL, "ip": IP, "path": PATH, "quote": STR}
_CODE_PART = re.compile(r"[_.]")


def _is_code(tag: str) -> bool:
    """A SQLSTATE, or an error class made of message vocabulary (``PARSE_SYNTAX_ERROR``)."""
    if _SQLSTATE.fullmatch(tag):
        return True
    return all(part.lower() in _WORDS for part in _CODE_PART.split(tag))


def _url(token: str) -> str:
    """A known scheme and placeholders: host, user-info, path, query and fragment all go."""
    scheme, _, rest = token.partition("://")
    if scheme.lower() not in _SCHEMES:
        return URL
    host, slash, _ = rest.partition("/")
    return f"{scheme}://{HOST if host else ''}{URL_PATH if slash else ''}"


def _assemble(pieces: Iterator[str], limit: int) -> str:
    """Join pieces, one space or newline between them at most, within `limit` characters."""
    out: list[str] = []
    size = 0
    room = limit - len(TRUNCATED) if limit > len(TRUNCATED) else limit
    for piece in pieces:
        if piece in (" ", "\n") and (not out or out[-1] in (" ", "\n")):
            if piece == "\n" and out and out[-1] == " ":
                out[-1] = "\n"
            continue
        if size + len(piece) > room:
            out.append(TRUNCATED if room < limit else "")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).strip()


def mask_text(text: object, max_chars: int = MAX_CHARS) -> str:
    """Return `text` with its data masked, keeping only message vocabulary, capped at max_chars.

    Safe from any thread; never raises (an object whose ``__str__`` raises gives
    ``<unprintable>``).
    """
    try:
        limit = max(0, int(max_chars))
        value = _to_text(text)[:SCAN_CHARS]
        if value is _UNPRINTABLE:
            return _UNPRINTABLE[:limit]
        if any(marker in value for marker in _ECHO_MARKERS):
            value = _ECHO.sub("", value)
        return _assemble(_Reader(value).pieces(), limit)
    except Exception:
        return _FAILED[: max(0, max_chars)] if isinstance(max_chars, int) else _FAILED


def error_trace(message: object, code: str | None = None, mode: str = "masked") -> str | None:
    """The exported text of an error: ``[code]`` and the masked message (only the code when
    `mode` is ``class_only``); None when nothing is left. Never raises."""
    try:
        prefix = f"[{code}]" if code else ""
        if mode != "masked":
            return prefix or None
        masked = mask_text(message, MAX_CHARS - len(prefix) - 1)
        if prefix and masked.startswith(prefix):
            masked = masked[len(prefix) :].lstrip()
        return " ".join(part for part in (prefix, masked) if part) or None
    except Exception:
        return None
