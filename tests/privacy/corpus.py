"""The corpus: statements that make real drivers raise real errors carrying planted data.

Every case runs on a real connection and returns what it planted. Planted values are random
(identifiers, literals, e-mails, numbers, paths), each with a letter from g-z and a digit, so
none can be a vocabulary word, a placeholder, a kept number or a fragment of a uuid; a case
lists every statement it ran, so the test can look for fragments of them too.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import Any

import attrs

_LETTERS = string.ascii_lowercase[6:]


@attrs.define
class Plant:
    """Random values for one run of a case; remembers each, and each statement run."""

    rng: random.Random
    values: list[str] = attrs.Factory(list)
    statements: list[str] = attrs.Factory(list)
    failed_ids: list[str] = attrs.Factory(list)  # telemetry statement id of each failure
    messages: list[tuple[str, str]] = attrs.Factory(list)  # (class name, raw message) of each

    def _keep(self, value: str) -> str:
        self.values.append(value)
        return value

    def core(self, size: int = 8) -> str:
        body = "".join(self.rng.choice(string.ascii_lowercase + string.digits) for _ in range(size))
        return self.rng.choice(_LETTERS) + body + self.rng.choice(string.digits)

    def ident(self) -> str:
        return self._keep(f"{self.rng.choice(_LETTERS)}{self.core(5)}_{self.core(3)}")

    def literal(self) -> str:
        return self._keep(f"{self.core()}-{self.core(4)} {self.core(6)}")

    def email(self) -> str:
        return self._keep(f"{self.core(5)}.{self.core(4)}@{self.core(6)}.org")

    def tag(self) -> str:
        """An upper-case value in brackets, the shape of an error class (``[PARSE_ERROR]``)."""
        return "[" + self._keep(f"{self.core(4)}_{self.core(3)}".upper()) + "]"

    def number(self) -> int:
        value = self.rng.randrange(10**8, 10**9)  # nine digits: never a kept number
        self.values.append(str(value))
        return value

    def path(self) -> str:
        user, name = self.core(5), self.core(6)
        self.values += [user, name]
        return f"/nonexistent/{user}/{name}.db"


Run = Callable[[Any, Plant], None]


def expect_error(cur: Any, plant: Plant, sql: str, errors: tuple[type[BaseException], ...]) -> None:
    """Run `sql`, which must fail with one of `errors`; remember its statement id and message."""
    plant.statements.append(sql)
    try:
        cur.execute(sql)
    except errors as error:
        plant.failed_ids.append(cur.telemetry_statement_id)
        plant.messages.append((type(error).__name__, raw_message(error)))
        return
    raise AssertionError(f"expected an error from {sql!r}")


def raw_message(error: BaseException) -> str:
    """The driver's message as it stands (pyodbc's is the second of its two arguments)."""
    args = error.args
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], str):
        return args[1]
    return str(error)


def ok(cur: Any, plant: Plant, sql: str) -> None:
    plant.statements.append(sql)
    cur.execute(sql)


# --- SQLite (sqlite3 and pyodbc over the SQLite ODBC driver) ------------------------------------


def sqlite_cases(cur: Any, plant: Plant, errors: tuple[type[BaseException], ...]) -> None:
    """Constraint, syntax, lookup and open errors of SQLite, each carrying planted values."""
    t, col, ghost, fn = plant.ident(), plant.ident(), plant.ident(), plant.ident()
    email, lit, limit = plant.email(), plant.literal(), plant.number()
    key, other = plant.number(), plant.number()
    ok(cur, plant, f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, "
                   f"qty INTEGER CHECK (qty < {limit}), note TEXT)")  # fmt: skip
    ok(cur, plant, f"INSERT INTO {t} VALUES ({key}, '{email}', 1, '{lit}')")
    fail = [
        f"INSERT INTO {t} VALUES ({other}, '{email}', 1, 'x')",  # UNIQUE constraint failed
        f"INSERT INTO {t} VALUES ({key}, 'k{other}@x.org', 1, 'x')",  # primary key
        f"INSERT INTO {t} (id, email) VALUES ({other}, NULL)",  # NOT NULL
        f"INSERT INTO {t} VALUES ({other}, 'c{other}@x.org', {limit + other}, 'x')",  # CHECK
        f"SELECT {col} FRM {ghost} WHERE {col} = '{lit}'",  # near "...": syntax error
        f"SELECT * FROM {ghost} WHERE note = '{lit}'",  # no such table
        f"SELECT {col} FROM {t} WHERE note = '{lit}'",  # no such column
        f"SELECT '{lit}",  # unrecognized token (unterminated literal)
        f'SELECT "{lit}',  # unrecognized token (unterminated identifier)
        f"INSERT INTO {t} ({col}) VALUES ('{lit}')",  # table has no column named
        f"INSERT INTO {t} VALUES ({other}, '{email}')",  # 4 columns but 2 values
        f"SELECT {fn}('{lit}')",  # no such function
        f"ATTACH DATABASE '{plant.path()}' AS {plant.ident()}",  # unable to open database
        f"SELECT json('{{\"{col}\": {lit}}}')",  # malformed JSON
        f'SELECT * FROM "{ghost}\n{plant.tag()}"',  # no such table: a name holding a line break
    ]
    for sql in fail:
        expect_error(cur, plant, sql, errors)


# --- PostgreSQL (psycopg 3 and psycopg2) --------------------------------------------------------


def postgres_cases(cur: Any, plant: Plant, errors: tuple[type[BaseException], ...]) -> None:
    """Constraint, syntax, input, PL/pgSQL and file errors of PostgreSQL with planted values."""
    t, child, col, ghost, fn = (plant.ident() for _ in range(5))
    email, lit, lit2 = plant.email(), plant.literal(), plant.literal()
    key, other, big = plant.number(), plant.number(), plant.number()
    quoted_email = f"o''{plant.core()}@x.org"  # O'Brien-style: a quote inside the value
    plant.values.append(quoted_email.replace("''", "'"))
    ok(cur, plant, f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, "
                   f"qty INTEGER CHECK (qty < 1000), note TEXT, code VARCHAR(5))")  # fmt: skip
    ok(cur, plant, f"CREATE TABLE {child} (pid INTEGER REFERENCES {t}(id))")
    ok(cur, plant, f"INSERT INTO {t} VALUES ({key}, '{email}', 1, '{lit}', 'a')")
    ok(cur, plant, f"INSERT INTO {t} VALUES ({key + 1}, '{quoted_email}', 1, 'x', 'a')")
    lined = f"{plant.literal()}\n{plant.tag()} {plant.email()}"
    ok(cur, plant, f"INSERT INTO {t} VALUES ({key + 2}, '{lined}', 1, 'x', 'a')")
    fail = [
        f"INSERT INTO {t} VALUES ({other}, '{email}', 1, 'x', 'a')",  # Key (email)=(...)
        f"INSERT INTO {t} VALUES ({other}, '{quoted_email}', 1, 'x', 'a')",  # quote in value
        f"INSERT INTO {t} VALUES ({other}, NULL, 1, '{lit}', 'a')",  # Failing row contains
        f"INSERT INTO {t} VALUES ({other}, 'q{other}@x.org', {big}, 'a) {lit2} (b', 'a')",
        f"INSERT INTO {child} VALUES ({other})",  # Key (pid)=(...) is not present
        f"SELECT {col} FRM {ghost} WHERE {col} = '{lit}'",  # syntax error + LINE echo
        f"SELECT * FROM {ghost} WHERE note = '{lit}'",  # relation does not exist
        f"SELECT {col} FROM {t} WHERE note = '{lit}'",  # column does not exist
        f"SELECT '{lit}",  # unterminated quoted string
        f"SELECT '{lit}'::integer",  # invalid input syntax for type integer: "..."
        f"SELECT '{other}-13-45'::date",  # date/time field value out of range
        f"SELECT '{{\"{col}\": {lit}}}'::json",  # Token "..." is invalid, CONTEXT: JSON data
        f"SELECT {fn}('{lit}')",  # function does not exist + HINT
        f"DO $$ BEGIN RAISE EXCEPTION 'custom %', '{lit}'; END $$",  # RAISE with data
        f"DO $$ BEGIN PERFORM * FROM {ghost} WHERE note = '{lit}'; END $$",  # QUERY: echo
        f"SELECT 1 FROM {t} WHERE note = '{lit}' AND\n  {col} = '{lit2}'",  # LINE 2 echo
        f"COPY {t} FROM '{plant.path()}'",  # could not open file "..."
        f"INSERT INTO {t} VALUES ({other}, 'v{other}@x.org', 1, 'x', '{lit}')",  # too long
        f"SELECT {big}::integer * {big}::integer",  # integer out of range
        f"SELECT * FROM {t} WHERE id = '{lit}'",  # invalid input syntax for type integer
        f"INSERT INTO {t} VALUES ({other}, '{lined}', 1, 'x', 'a')",  # DETAIL: a value on 2 lines
        f"DO $$ BEGIN RAISE EXCEPTION E'{plant.tag()}\\n{plant.tag()}'; END $$",  # tag-like lines
    ]
    for sql in fail:
        expect_error(cur, plant, sql, errors)
