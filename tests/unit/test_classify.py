"""classify: HTTP statuses and exceptions sorted into terminal, retryable, unknown."""

from __future__ import annotations

import sqlite3
import urllib.error
from typing import Any

import pytest
import requests
import urllib3.exceptions

from actors._export.classify import ErrorKind, classify_exception, classify_status, http_status_of


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 418, 499])
def test_client_error_statuses_are_terminal(status: int) -> None:
    assert classify_status(status) is ErrorKind.TERMINAL


@pytest.mark.parametrize("status", [429, 500, 501, 502, 503, 504, 599])
def test_throttling_and_server_error_statuses_are_retryable(status: int) -> None:
    assert classify_status(status) is ErrorKind.RETRYABLE


@pytest.mark.parametrize("status", [100, 200, 204, 302, 0, 600, -1])
def test_non_error_statuses_are_unknown(status: int) -> None:
    assert classify_status(status) is ErrorKind.UNKNOWN


class StatusError(Exception):
    def __init__(self, **attrs: Any) -> None:
        super().__init__("boom")
        self.__dict__.update(attrs)


class FakeResponse:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (StatusError(status=503), 503),
        (StatusError(status_code=401), 401),
        (StatusError(http_status=429), 429),
        (StatusError(code=404), 404),
        (StatusError(response=FakeResponse(status_code=500)), 500),
        (StatusError(response=FakeResponse(status=502)), 502),
        (StatusError(code=7), None),  # not an HTTP status
        (StatusError(code="404"), None),
        (StatusError(status=True), None),
        (StatusError(response=None), None),
        (ValueError("no status"), None),
    ],
)
def test_http_status_of_finds_a_status_on_the_exception(
    exc: BaseException, status: int | None
) -> None:
    assert http_status_of(exc) == status


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ErrorKind.TERMINAL),
        (403, ErrorKind.TERMINAL),
        (400, ErrorKind.TERMINAL),
        (404, ErrorKind.TERMINAL),
        (429, ErrorKind.RETRYABLE),
        (503, ErrorKind.RETRYABLE),
        (500, ErrorKind.RETRYABLE),
    ],
)
def test_exception_carrying_a_status_is_classified_by_it(status: int, kind: ErrorKind) -> None:
    assert classify_exception(StatusError(status=status)) is kind
    response = requests.Response()
    response.status_code = status
    assert classify_exception(requests.HTTPError(response=response)) is kind
    http_error = urllib.error.HTTPError("https://x", status, "m", None, None)  # type: ignore[arg-type]
    assert classify_exception(http_error) is kind


class AuthenticationError(Exception):
    pass


class UnauthorizedAccess(Exception):
    pass


class RequestForbidden(Exception):
    pass


class TokenExpired(AuthenticationError):
    pass


@pytest.mark.parametrize(
    "exc",
    [
        AuthenticationError(),
        UnauthorizedAccess(),
        RequestForbidden(),
        TokenExpired(),
        PermissionError("denied"),
    ],
)
def test_auth_errors_are_terminal(exc: BaseException) -> None:
    assert classify_exception(exc) is ErrorKind.TERMINAL


class PoolConnectionLost(Exception):
    pass


class QueryTimeout(Exception):
    pass


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        TimeoutError("timed out"),
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(104, "reset"),
        ConnectionAbortedError(),
        BrokenPipeError(),
        urllib3.exceptions.ProtocolError("Connection aborted."),
        urllib3.exceptions.NewConnectionError(None, "refused"),  # type: ignore[arg-type]
        urllib3.exceptions.ReadTimeoutError(None, "https://x", "read timed out"),  # type: ignore[arg-type]
        urllib3.exceptions.ConnectTimeoutError(),
        urllib3.exceptions.TimeoutError(),
        requests.ConnectionError(),
        requests.Timeout(),
        PoolConnectionLost(),
        QueryTimeout(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_timeouts_and_connection_failures_are_retryable(exc: BaseException) -> None:
    assert classify_exception(exc) is ErrorKind.RETRYABLE


@pytest.mark.parametrize(
    "exc",
    [
        sqlite3.OperationalError("database is locked"),
        ValueError("x"),
        KeyError("k"),
        RuntimeError(),
        Exception(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_other_exceptions_are_unknown(exc: BaseException) -> None:
    assert classify_exception(exc) is ErrorKind.UNKNOWN


class Hostile(Exception):
    """Every attribute it might be asked about raises."""

    @property
    def status(self) -> int:
        raise RuntimeError("status exploded")

    @property
    def response(self) -> object:
        raise RuntimeError("response exploded")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"{name} exploded")


class HostileResponse:
    @property
    def status_code(self) -> int:
        raise RuntimeError("exploded")

    @property
    def status(self) -> int:
        return 503


def test_exception_whose_status_property_raises_still_classifies() -> None:
    assert http_status_of(Hostile()) is None
    assert classify_exception(Hostile()) is ErrorKind.UNKNOWN


def test_a_raising_response_attribute_is_skipped_not_fatal() -> None:
    exc = StatusError(response=HostileResponse())
    assert http_status_of(exc) == 503
    assert classify_exception(exc) is ErrorKind.RETRYABLE


class HostileMeta(type):
    @property
    def __mro__(cls) -> tuple[type, ...]:
        raise RuntimeError("mro exploded")


class WeirdTimeout(Exception, metaclass=HostileMeta):
    pass


def test_classify_exception_never_raises_even_for_a_hostile_class() -> None:
    assert classify_exception(WeirdTimeout()) in set(ErrorKind)
