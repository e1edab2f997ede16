"""What a driver says about itself, and the system configuration computed once per process."""

from __future__ import annotations

import contextlib
import functools
import locale
import os
import platform
import sys

import attrs

from messages.records import SystemConfiguration

__all__ = ["DriverInfo", "system_configuration"]


_MAX_NAME_CHARS = 128
_MAX_APP_NAME_CHARS = 256


def _header_safe(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    """Name and version go into every request's `User-Agent` header: printable ASCII only."""
    where = f"DriverInfo.{attribute.name}"
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{where} must not be empty")
    if len(value) > _MAX_NAME_CHARS:
        raise ValueError(f"{where} must be at most {_MAX_NAME_CHARS} characters, got {len(value)}")
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"{where} must be printable ASCII (it is sent in User-Agent): {value!r}")


def _app_name(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    where = f"DriverInfo.{attribute.name}"
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a str or None, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{where} must not be empty (use None)")
    if len(value) > _MAX_APP_NAME_CHARS:
        raise ValueError(
            f"{where} must be at most {_MAX_APP_NAME_CHARS} characters, got {len(value)}"
        )
    if not value.isprintable():  # control, format, surrogate and unassigned characters
        raise ValueError(f"{where} must not contain control characters: {value!r}")


@attrs.frozen(kw_only=True)
class DriverInfo:
    """The driver's own name and version (and optionally the application using it).

    Checked at construction (explicit input in code): `name` and `version` are non-empty
    printable ASCII of at most 128 characters; `client_app_name` is None or a non-empty
    printable str of at most 256 characters. Anything else raises `ValueError`.
    """

    name: str = attrs.field(validator=_header_safe)
    version: str = attrs.field(validator=_header_safe)
    client_app_name: str | None = attrs.field(default=None, validator=_app_name)

    @property
    def user_agent(self) -> str:
        """`Name/version`, as sent in `User-Agent` and `client_context.user_agent`."""
        return f"{self.name}/{self.version}"


@functools.cache
def _interpreter_facts() -> tuple[str, ...]:
    lang, encoding = None, None
    with contextlib.suppress(ValueError):
        lang, encoding = locale.getlocale()
    return (
        f"Python {platform.python_version()}",
        platform.python_version(),
        platform.python_implementation(),
        platform.system() or "unknown",
        platform.release() or "unknown",
        platform.machine() or "unknown",
        lang or "C",
        encoding or sys.getdefaultencoding(),
        os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
    )


@functools.lru_cache(maxsize=64)
def system_configuration(driver: DriverInfo) -> SystemConfiguration:
    """Fill `system_configuration` from the interpreter, once per process and driver."""
    (runtime_name, runtime_version, vendor, os_name, os_version, arch, loc, charset, proc) = (
        _interpreter_facts()
    )
    return SystemConfiguration(
        driver_name=driver.name,
        driver_version=driver.version,
        runtime_name=runtime_name,
        runtime_version=runtime_version,
        runtime_vendor=vendor,
        os_name=os_name,
        os_version=os_version,
        os_arch=arch,
        client_app_name=driver.client_app_name,
        locale_name=loc,
        char_set_encoding=charset,
        process_name=proc,
    )
