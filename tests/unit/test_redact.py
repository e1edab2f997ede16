"""redact: secrets, user paths and SQL literals never leave; output is capped; never raises."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messages.redact import PATH, REDACTED, TRUNCATED, UNPRINTABLE, redact

DAPI = "dapi0123456789abcdef0123456789abcdef"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJ1c2VyQGV4YW1wbGUuY29tIiwiZXhwIjoxNzU1MDAwMDAwfQ"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmVfX19fX18"
)

# (case id, text containing the secret, the secret that must not survive)
SECRET_CASES = [
    ("bearer", "HTTP 401 sending Bearer abc123XYZ-_.~+/= to host", "abc123XYZ"),
    ("bearer_lower", "authorization failed for bearer s3cr3tT0ken", "s3cr3tT0ken"),
    ("basic", "proxy said: Basic dXNlcjpodW50ZXIy rejected", "dXNlcjpodW50ZXIy"),
    ("auth_header", "Authorization: Token zzTopSecret99", "zzTopSecret99"),
    ("auth_header_json", '{"Authorization": "Bearer q9q9q9q9"}', "q9q9q9q9"),
    ("auth_header_dict", "{'authorization': 'Custom w7w7w7w7'}", "w7w7w7w7"),
    ("dapi", f"token {DAPI} is invalid", DAPI),
    ("dapi_suffix", f"token {DAPI}-3 is invalid", "0123456789abcdef0123456789abcdef"),
    ("dapi_glued", f"x{DAPI}ff", DAPI),
    ("dapi_generic", "using dapiABCDEF_unusual_shape_token now", "ABCDEF_unusual"),
    ("jwt", f"id_token={JWT}", JWT[40:80]),
    ("jwt_bare", f"refresh failed ({JWT})", "c2lnbmF0dXJl"),
    ("password_kv", "connect(password=hunter2, user=bob)", "hunter2"),
    ("pwd_kv", "PWD=correcthorse;UID=token", "correcthorse"),
    ("secret_colon", "client_secret: abcSecret123", "abcSecret123"),
    ("api_key_quoted", "api_key='k-111-222'", "k-111-222"),
    ("apikey_query", "GET /x?apikey=ZZ999&limit=5", "ZZ999"),
    ("access_token_json", '{"access_token": "at-987654", "expires": 3600}', "at-987654"),
    ("refresh_token_json", '{"refresh_token":"rt-55555"}', "rt-55555"),
    ("credentials", "credentials = 'c-4444'", "c-4444"),
    ("prefixed_key", "DATABRICKS_TOKEN=pat0000111122223333", "pat0000111122223333"),
    ("camel_key", "authToken: tk-7777", "tk-7777"),
    ("url_userinfo", "failed https://alice:pa55w0rd@host.example.com/x", "pa55w0rd"),
    ("url_userinfo_user", "failed https://alice:pa55w0rd@host.example.com/x", "alice"),
    ("home_linux", 'File "/home/carol/proj/secret_plan.py", line 3', "carol"),
    ("home_mac", "opened /Users/dave/Documents/q3.csv", "dave"),
    ("home_windows", r"opened C:\Users\erin\AppData\x.txt", "erin"),
    ("home_windows_repr", r"path='C:\\Users\\frank\\x.txt'", "frank"),
    ("home_tilde", "see ~/private/notes.txt for details", "private/notes"),
    ("tmp", "wrote /tmp/pytest-of-gina/cache.db", "gina"),
    ("var_folders", "cache at /var/folders/xy/abc123/T/harry.tmp", "harry"),
    ("win_temp", r"spilled to C:\Windows\Temp\ivan-spill.bin", "ivan"),
    ("win_temp_env", r"spilled to %TEMP%\judy-spill.bin", "judy"),
    ("sql_literal", "SELECT * FROM t WHERE ssn = '123-45-6789'", "123-45-6789"),
    ("sql_escaped", "WHERE name = 'O''Brien' AND x = 1", "Brien"),
    ("sql_prefixed", "WHERE n = N'naïve-value'", "naïve-value"),
    ("sql_double_quoted", 'WHERE city = "Springfield"', "Springfield"),
]


@pytest.mark.parametrize(
    ("text", "secret"),
    [case[1:] for case in SECRET_CASES],
    ids=[case[0] for case in SECRET_CASES],
)
def test_redact_removes_each_kind_of_secret(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "<" in out  # a marker shows where something was taken out


def test_redact_keeps_the_useful_parts_of_a_message() -> None:
    out = redact("SELECT name FROM users WHERE name = 'O''Brien' AND id = 7")
    assert out == f"SELECT name FROM users WHERE name = '{REDACTED}' AND id = 7"


def test_redact_keeps_quotes_and_key_names_around_secret_values() -> None:
    assert redact('{"password": "x1", "user": "bob"}') == (
        f'{{"password": "{REDACTED}", "user": "bob"}}'
    )
    assert redact("https://u:p@host/path") == f"https://{REDACTED}@host/path"
    assert redact("Authorization: Bearer abc") == f"Authorization: {REDACTED}"
    assert redact('File "/home/kim/x.py", line 1') == f'File "{PATH}", line 1'


def test_redact_keeps_sql_identifiers_and_apostrophes_in_prose() -> None:
    assert redact('SELECT "Col" FROM "Tbl" WHERE "Col" > 3') == (
        'SELECT "Col" FROM "Tbl" WHERE "Col" > 3'
    )
    assert redact("can't reach 'warehouse-1'") == f"can't reach '{REDACTED}'"


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "Connection reset by peer after 3 retries (errno 104) on /api/2.0/sql"
    assert redact(text) == text


def test_redact_decodes_non_utf8_bytes() -> None:
    out = redact(b"\xff\xfe broken password=zz123 \xc3")
    assert "zz123" not in out
    assert "\ufffd" in out


@pytest.mark.parametrize("value", [12345, None, 3.5, ValueError("password=p4ss"), ["a", "b"]])
def test_redact_accepts_any_object(value: object) -> None:
    out = redact(value)
    assert isinstance(out, str)
    assert "p4ss" not in out


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_redact_survives_an_object_whose_str_raises() -> None:
    assert redact(Unprintable()) == UNPRINTABLE


def test_redact_replaces_lone_surrogates() -> None:
    out = redact("bad \udc80 char")
    assert "\udc80" not in out and out.encode("utf-8")


def test_redact_caps_length_with_a_marker_inside_the_cap() -> None:
    out = redact("a" * 5000, max_chars=100)
    assert len(out) == 100
    assert out.endswith(TRUNCATED)
    assert redact("abcdef", max_chars=3) == "abc"
    assert redact("abc", max_chars=0) == ""
    assert redact("abc", max_chars=-5) == ""


def test_redact_huge_input_is_capped_and_fast() -> None:
    text = ("password=x " + DAPI + " /home/u/f 'lit' eyJa.eyJb.c " * 50) * 400
    text = (text + "a" * 1_048_576)[:1_048_576]
    started = time.perf_counter()
    out = redact(text)
    assert time.perf_counter() - started < 2.0
    assert len(out) <= 2048
    assert DAPI not in out


@pytest.mark.parametrize(
    "text",
    [
        "'\\'" * 400_000,
        "eyJ" * 400_000,
        "a://" + "x:" * 500_000,
        "token" * 250_000,
        '="' + '\\"' * 500_000,
        "C:\\" + "a\\" * 500_000,
        "/home/" * 200_000,
        "Bearer " * 200_000,
        "'" * 1_000_000,
    ],
    ids=["escaped_quotes", "eyj", "url", "keys", "dq", "winpath", "home", "bearer", "quotes"],
)
def test_redact_has_no_catastrophic_backtracking_on_hostile_input(text: str) -> None:
    started = time.perf_counter()
    redact(text, max_chars=len(text) + 1)  # no cap: every rule sees the whole megabyte
    assert time.perf_counter() - started < 5.0


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(max_size=200),
    suffix=st.text(max_size=200),
    hex_token=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    max_chars=st.integers(min_value=0, max_value=600),
)
def test_redact_output_fits_the_cap_and_never_keeps_a_dapi_token(
    prefix: str, suffix: str, hex_token: str, max_chars: int
) -> None:
    token = "dapi" + hex_token
    out = redact(prefix + token + suffix, max_chars=max_chars)
    assert len(out) <= max_chars
    assert token not in out


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=500), st.binary(max_size=500)))
def test_redact_never_raises_on_arbitrary_input(value: str | bytes) -> None:
    assert len(redact(value, max_chars=256)) <= 256
