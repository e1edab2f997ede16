"""What an exception says about itself: its SQLSTATE or vendor code, and its message text.

Both read attributes of a driver's exception and never raise, whatever the exception does.
"""

from __future__ import annotations

import re

__all__ = ["error_code", "error_message", "is_error_code"]

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")
# psycopg (`sqlstate`), mysql-connector (`sqlstate`), psycopg2 (`pgcode`), sqlite3
# (`sqlite_errorname`), then errno-style numbers.
_ATTRIBUTES = ("sqlstate", "pgcode", "sqlite_errorname", "errno", "error_code", "sqlite_errorcode")
_DBAPI_BASES = frozenset({"DatabaseError", "InterfaceError"})


def is_error_code(value: object) -> bool:
    """A str of 1..64 letters, digits, ``_``, ``.`` or ``-`` (a SQLSTATE, a vendor code)."""
    return type(value) is str and _CODE.fullmatch(value) is not None


def _as_code(value: object) -> str | None:
    if type(value) is int and 0 <= value < 2**31:
        return str(value)
    return value if type(value) is str and is_error_code(value) else None


def _args(exc: BaseException) -> tuple[object, ...]:
    args = getattr(exc, "args", ())
    return args if type(args) is tuple else ()


def _is_dbapi(exc: BaseException) -> bool:
    return any(cls.__name__ in _DBAPI_BASES for cls in type(exc).__mro__)


def error_code(exc: BaseException) -> str | None:
    """The exception's SQLSTATE or vendor error code, or None; never raises.

    psycopg's ``sqlstate``, psycopg2's ``pgcode``, sqlite3's ``sqlite_errorname``, ``errno``-style
    attributes, and pyodbc's ``args[0]`` when it has the shape of a SQLSTATE; an int ``args[0]``
    only for DB-API errors with a message beside it (pymysql style), never for other exceptions,
    whose arguments may be data.
    """
    try:
        for name in _ATTRIBUTES:
            try:
                code = _as_code(getattr(exc, name, None))
            except Exception:
                continue
            if code is not None:
                return code
        args = _args(exc)
        if len(args) >= 2 and isinstance(args[1], str):
            first = args[0]
            if type(first) is str and _SQLSTATE.fullmatch(first):
                return first
            if type(first) is int and _is_dbapi(exc):
                return _as_code(first)
        return None
    except Exception:
        return None


def error_message(exc: BaseException) -> str:
    """The exception's message: ``args[1]`` for a ``(SQLSTATE, text)`` pair (pyodbc), else
    ``str(exc)``; "" when that raises. Never raises."""
    try:
        args = _args(exc)
        if len(args) == 2 and isinstance(args[1], str):
            first = args[0]
            if (type(first) is str and _SQLSTATE.fullmatch(first)) or type(first) is int:
                return str.__str__(args[1])
        return str(exc)
    except Exception:
        return ""
