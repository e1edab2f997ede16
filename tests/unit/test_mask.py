"""mask_text: data never survives, the shape of the message does; capped; linear; never raises."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._aggregate.statements import error_info
from actors._aggregate.validation import invalid_reason
from messages import events as ev
from messages._vocabulary import CONTENT_WORDS, FUNCTION_WORDS
from messages.config import TelemetrySettings
from messages.errors import error_code, error_message, is_error_code
from messages.mask import _SCHEMES, PLACEHOLDERS, SCAN_CHARS, TRUNCATED, error_trace, mask_text

DAPI = "dapi0123456789abcdef0123456789abcdef"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJ1c2VyQGV4YW1wbGUuY29tIiwiZXhwIjoxNzU1MDAwMDAwfQ"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmVfX19fX18"
)

# (case id, text containing the data, the data that must not survive)
DATA_CASES = [
    ("bearer", "HTTP 401 sending Bearer abc123XYZ-_.~+/= to host", "abc123XYZ"),
    ("basic", "proxy said: Basic dXNlcjpodW50ZXIy rejected", "dXNlcjpodW50ZXIy"),
    ("auth_header_json", '{"Authorization": "Bearer q9q9q9q9"}', "q9q9q9q9"),
    ("dapi", f"token {DAPI} is invalid", DAPI),
    ("dapi_glued", f"x{DAPI}ff", "0123456789abcdef"),
    ("jwt", f"id_token={JWT}", JWT[40:80]),
    ("password_kv", "connect(password=hunter2, user=bob)", "hunter2"),
    ("password_word", "password=secret; pwd: table", "secret"),
    ("url_userinfo", "failed https://alice:pa55w0rd@host.example.com/x", "pa55w0rd"),
    ("url_query", "GET https://b.s3.example.com/k/f.arrow?X-Amz-Signature=ab12cd&x=1", "ab12cd"),
    ("url_path", "GET https://b.s3.example.com/customer-acme/f.arrow", "customer-acme"),
    ("home_linux", 'File "/home/carol/proj/plan.py", line 3', "carol"),
    ("root_home", "unable to open database: /root/secret/dir/x.db", "secret/dir"),
    ("any_posix_path", "cannot read /srv/tenant-42/data.csv now", "tenant-42"),
    ("windows_drive", r"opened D:\work\erin\x.txt", "erin"),
    ("windows_unc", r"share \\fileserver\finance\q3.xlsx is gone", "finance"),
    ("tilde", "see ~/private/notes.txt", "private"),
    ("email", "no mail for alice.smith@corp.example.com today", "alice.smith"),
    ("ipv4", "from 10.1.2.3 refused", "10.1.2.3"),
    ("ipv6", "from fe80::1ff:fe23:4567:890a refused", "fe23"),
    ("single_quoted", "SELECT * FROM t WHERE ssn = '123-45-6789'", "45-6789"),
    ("doubled_quote", "WHERE name = 'O''Brien' AND x = 1", "Brien"),
    ("backslash_quote", r"near 'it\'s hidden' here", "hidden"),
    ("prefixed", "WHERE n = N'naive-value'", "naive-value"),
    ("double_quoted", 'invalid input syntax for type integer: "4111-1111"', "4111"),
    ("backtick", "Unknown column `ssn_x` in field list", "ssn_x"),
    ("truncated", "near 'SELECT secret_col FROM t WHERE a = 12...", "secret_col"),
    ("nested", 'unrecognized token: "\'unterminated literal"', "unterminated"),
    ("nested_same", 'near "SELECT "inner_name" FROM"', "inner_name"),
    ("value_list", "DETAIL:  Key (email)=(alice@example.com) already exists.", "alice"),
    ("failing_row", "DETAIL:  Failing row contains (424242, null, O'Brien).", "424242"),
    ("value_list_parens", "DETAIL:  Key (a)=(x) leak (y) already exists.", "leak"),
    ("unquoted_identifier", "no such table: ghost_zz9", "ghost_zz9"),
    ("object_word", "no such column: name", "name"),
    ("comparison", "CHECK constraint failed: total < 100", "100"),
    ("long_number", "order 12345678 was rejected", "12345678"),
    ("line_echo", "syntax error\nLINE 1: SELECT ssn FRM cust\n               ^", "cust"),
    ("query_echo", "x\nQUERY:  SELECT a\n  FROM qtable\nCONTEXT:  PL/pgSQL", "qtable"),
    ("spark_echo", "[PARSE_SYNTAX_ERROR] near 'x'.\n\n== SQL ==\nselec x from tbl9\n--^^^", "tbl9"),
    ("json_context", "CONTEXT:  JSON data, line 1: {bad stuff", "stuff"),
    ("non_ascii_word", "value naïve-größe rejected", "größe"),
    ("unquoted_statement", "near SELECT name FROM users WHERE active", "FROM users"),
    ("statement_words", "near SELECT name FROM users WHERE active", "users"),
]


@pytest.mark.parametrize(
    ("text", "data"), [case[1:] for case in DATA_CASES], ids=[case[0] for case in DATA_CASES]
)
def test_mask_removes_each_kind_of_data(text: str, data: str) -> None:
    out = mask_text(text)
    assert data not in out
    assert out != text  # a placeholder (or a dropped echo block) shows where data was


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'duplicate key value violates unique constraint "users_email_key"\n'
            "DETAIL:  Key (email)=(alice@example.com) already exists.",
            "duplicate key value violates unique constraint <str>\n"
            "DETAIL: Key (<id>)=(<values>) already exists.",
        ),
        (
            "[HY000] [SQLite]UNIQUE constraint failed: users.email (19) (SQLExecDirectW)",
            "[HY000] [SQLite]UNIQUE constraint failed: <id> (<num>) (SQLExecDirectW)",
        ),
        (
            "table t1 has 3 columns but 2 values were supplied",
            "table <id> has <num> columns but <num> values were supplied",
        ),
        (
            'connection to server at "127.0.0.1", port 5432 failed: Connection refused',
            "connection to server at <str>, port 5432 failed: Connection refused",
        ),
        ("Connection reset by peer (errno 104)", "Connection reset by peer (errno 104)"),
        (
            'update or delete on table "p" violates foreign key constraint "f" on table "c"',
            "update or delete on table <str> violates foreign key constraint <str> on table <str>",
        ),
    ],
)
def test_mask_keeps_the_shape_of_a_message(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_mask_keeps_leading_error_classes_sqlstates_and_url_schemes() -> None:
    out = mask_text("[PARSE_SYNTAX_ERROR] Syntax error at or near 'x'. SQLSTATE: 42601")
    assert out == "[PARSE_SYNTAX_ERROR] Syntax error at or near <str>. SQLSTATE: 42601"
    out = mask_text("download failed: https://u:p@h.example.com:8443/a/b?sig=1#f")
    assert out == "download failed: https://<host>/<path>"
    assert mask_text("to http://10.0.0.7:80") == "to http://<host>"
    assert mask_text("to gcore9x://h/x and [SECRET_X] mid-line") == "to <url> and [<id>] <id>-line"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no such table: a\n[JOHN_SMITH]", "no such table: a\n[<id>]"),  # a name with a \n
        (
            "Key (name)=(x\n[OPEN_SESAME]) already exists.",
            "Key (name)=(<values>)\n[<id>]) already exists.",
        ),
        ("[JOHN_SMITH]\n[CARD_4111]", "[<id>]\n[<id>]"),  # a raised message that looks coded
        ("[42S02] [HY000] [DIVIDE_BY_ZERO] x", "[42S02] [HY000] [DIVIDE_BY_ZERO] <id>"),
        ("failed SQLSTATE=SECRT; SQLSTATE: HY000", "failed SQLSTATE=<id>; SQLSTATE: HY000"),
    ],
)
def test_mask_keeps_only_codes_made_of_vocabulary_or_sqlstates_at_the_start(
    text: str, expected: str
) -> None:
    assert mask_text(text) == expected


def test_masked_messages_group_whatever_the_values() -> None:
    first = mask_text('DETAIL:  Key (id)=(17) is not present in table "parent".')
    second = mask_text('DETAIL:  Key (ref)=(99999) is not present in table "other".')
    assert first == second


def test_mask_decodes_bytes_and_accepts_any_object() -> None:
    assert "zz123" not in mask_text(b"\xff\xfe broken password=zz123 \xc3")
    for value in (12345, None, 3.5, ValueError("password=p4ss"), ["a", "b"]):
        out = mask_text(value)
        assert isinstance(out, str) and "p4ss" not in out and "12345" not in out


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_mask_survives_an_object_whose_str_raises_and_lone_surrogates() -> None:
    assert mask_text(Unprintable()) == "<unprintable>"
    mask_text("bad \udc80 char").encode("utf-8")


def test_mask_caps_length_with_a_marker_inside_the_cap() -> None:
    out = mask_text("error " * 1000, max_chars=100)
    assert len(out) <= 100 and out.endswith(TRUNCATED.strip())
    assert len(mask_text("error error", max_chars=3)) <= 3
    assert mask_text("abc", max_chars=0) == ""
    assert mask_text("abc", max_chars=-5) == ""


HOSTILE = [
    "'\\'" * 30_000,
    '"\\"' * 30_000,
    "(" * 70_000,
    "=(" * 35_000,
    "a://" + "x:" * 35_000,
    "a" * 70_000,
    "a@" * 35_000,
    "1." * 35_000,
    "1:" * 35_000,
    ":" * 70_000,
    "C:\\" + "a\\" * 35_000,
    "/home/" * 12_000,
    "LINE 1:" * 10_000 + "\n" * 5_000,
    "\nQUERY: x" * 8_000,
    "x" * 23 + "+" * 70_000,
    "table " * 12_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_mask_has_no_catastrophic_backtracking_on_hostile_input(text: str) -> None:
    # A hang guard, not a speed target (bench/mask_cost.py prints the figures): a quadratic
    # pattern takes minutes on these inputs, a linear one milliseconds.
    started = time.perf_counter()
    out = mask_text(text, max_chars=SCAN_CHARS)
    assert time.perf_counter() - started < 5.0
    assert len(out) <= SCAN_CHARS


def _words_and_numbers(out: str) -> tuple[list[str], list[str]]:
    for placeholder in (*PLACEHOLDERS, TRUNCATED.strip()):
        out = out.replace(placeholder, " ")
    out = re.sub(r"\[[A-Z][A-Z0-9]*(?:[_.][A-Z0-9]+)+\]|\[[0-9A-Z]{5}\]", " ", out)
    out = re.sub(rf"(?i)\b(?:{'|'.join(_SCHEMES)})://", " ", out)  # a known scheme
    out = re.sub(r"(?i)sqlstate: [0-9A-Z]{5}", " ", out)
    words = re.findall(r"[^\W\d][\w$]*(?:'\w+)?", out)
    return words, re.findall(r"\d+", out)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400) | st.text(alphabet="ab1 '\"()=:/\\.@-\n_", max_size=400))
def test_masked_text_holds_only_vocabulary_placeholders_and_short_locator_numbers(
    text: str,
) -> None:
    out = mask_text(text, max_chars=4096)
    words, numbers = _words_and_numbers(out)
    vocabulary = FUNCTION_WORDS | CONTENT_WORDS
    assert all(word.lower() in vocabulary for word in words), (out, words)
    assert all(len(number) <= 5 for number in numbers), out


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=500), st.binary(max_size=500)), st.integers(-5, 600))
def test_mask_never_raises_and_fits_the_cap(value: str | bytes, max_chars: int) -> None:
    assert len(mask_text(value, max_chars=max_chars)) <= max(0, max_chars)


# --- error codes, message text, the setting -----------------------------------------------------


def test_error_code_reads_each_driver_attribute() -> None:
    class Psycopg(Exception):
        sqlstate = "23505"

    class Psycopg2(Exception):
        pgcode = "42P01"

    class DatabaseError(Exception):
        pass

    class PyMySQL(DatabaseError):
        pass

    class Raising(Exception):
        @property
        def sqlstate(self) -> str:
            raise RuntimeError("no")

    assert error_code(Psycopg("x")) == "23505"
    assert error_code(Psycopg2("x")) == "42P01"
    assert error_code(Exception("HY000", "[HY000] [SQLite]no such table")) == "HY000"
    assert error_code(PyMySQL(1062, "Duplicate entry")) == "1062"
    assert error_code(KeyError(12345, "customer")) is None  # arguments may be data
    assert error_code(ConnectionRefusedError(111, "refused")) == "111"
    assert error_code(Raising("x")) is None
    assert error_code(ValueError("plain")) is None
    conn = sqlite3.connect(":memory:")
    with contextlib.closing(conn), pytest.raises(sqlite3.Error) as caught:
        conn.execute("SELECT * FROM missing_table")
    assert error_code(caught.value) == "SQLITE_ERROR"


def test_error_message_unwraps_pyodbc_pairs_and_never_raises() -> None:
    assert error_message(Exception("HY000", "[HY000] text")) == "[HY000] text"
    assert error_message(ValueError("plain")) == "plain"

    class Bad(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert error_message(Bad()) == ""


def test_error_trace_puts_the_code_first_and_class_only_sends_only_the_code() -> None:
    assert error_trace("no such table: t9", "SQLITE_ERROR") == "[SQLITE_ERROR] no such table: <id>"
    assert error_trace("[HY000] x", "HY000") == "[HY000] <id>"
    assert error_trace("no such table: t9", "SQLITE_ERROR", "class_only") == "[SQLITE_ERROR]"
    assert error_trace("no such table: t9", None, "class_only") is None
    assert error_trace("", None) is None
    assert len(error_trace("error " * 2000, "X" * 64) or "") <= 2048


def test_error_code_must_have_the_shape_of_a_code_or_the_event_is_invalid() -> None:
    assert is_error_code("23505") and is_error_code("SQLITE_CONSTRAINT_UNIQUE")
    for bad in ("", "has space", "x" * 65, 23505, "élan"):
        assert not is_error_code(bad)
        assert invalid_reason(ev.ErrorOccurred(error_name="E", error_code=bad)) == "error_code"
    assert invalid_reason(ev.ErrorOccurred(error_name="E", error_code="42P01")) is None


def test_error_info_follows_the_error_text_setting() -> None:
    error = ev.ErrorOccurred(error_name="E", message="no such table: t9", error_code="1")
    assert error_info(error).stack_trace == "[1] no such table: <id>"
    assert error_info(error, "class_only").stack_trace == "[1]"


def test_error_text_setting_rejects_raw_in_code_and_falls_back_from_sources() -> None:
    assert TelemetrySettings().error_text == "masked"
    with pytest.raises(
        ValueError, match=r"telemetry\.error_text must be one of masked, class_only"
    ):
        TelemetrySettings(error_text="raw")
    env = {"DATABRICKS_TELEMETRY_ERROR_TEXT": "Class_Only"}
    assert TelemetrySettings.from_sources({}, env).error_text == "class_only"
    assert TelemetrySettings.from_sources({"telemetry.error_text": "raw"}, {}).error_text == (
        "masked"
    )


@settings(max_examples=30, deadline=None)
@given(
    st.text(
        alphabet="a1 '\"`()=<:/\\.@-_[]$\nLINE^QUERY\x01\u00e9\U0001f600", min_size=1, max_size=12
    )
)
def test_a_64_kb_repetition_of_any_unit_is_masked_in_bounded_time_to_vocabulary(unit: str) -> None:
    text = (unit * (SCAN_CHARS // len(unit) + 1))[:SCAN_CHARS]
    started = time.perf_counter()
    out = mask_text(text)
    assert time.perf_counter() - started < 5.0  # a hang guard, as above
    words, numbers = _words_and_numbers(out)
    vocabulary = FUNCTION_WORDS | CONTENT_WORDS
    assert all(word.lower() in vocabulary for word in words), (unit, words[:5])
    assert all(len(number) <= 5 for number in numbers), unit


@pytest.mark.parametrize("dropped", ["\x00", "\x1b", "\x7f", "\u200b", "\U0001f600"])
def test_a_dropped_character_never_joins_the_words_beside_it(dropped: str) -> None:
    out = mask_text(f"duplicate{dropped}key value")
    assert out.split()[:2] == ["duplicate", "key"], out
