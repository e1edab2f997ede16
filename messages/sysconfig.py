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


def _non_empty(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"DriverInfo.{attribute.name} must be a non-empty str, got {value!r}")


@attrs.frozen(kw_only=True)
class DriverInfo:
    """The driver's own name and version (and optionally the application using it)."""

    name: str = attrs.field(validator=_non_empty)
    version: str = attrs.field(validator=_non_empty)
    client_app_name: str | None = None

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
