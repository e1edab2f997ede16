"""Headless Chromium for the page's tests, through Selenium and the system's chromedriver.

Nothing here may download a browser or a driver: the Service is given the chromedriver path, and
Selenium Manager (which would fetch one) is replaced by a function that fails the test. Without
Chromium the tests skip, unless the CI environment variable is set: then they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("DRIVER_TELEMETRY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DRIVER_TELEMETRY_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1366,1000",  # a laptop screen
)
PAGE_LOAD_TIMEOUT_S = 20.0


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and the browser tests cannot run: {reason}")
    pytest.skip(reason)


def _no_selenium_manager(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("Selenium Manager was invoked: it would download a browser or driver")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the session, with a fresh profile; quit at the end."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common import selenium_manager
    except ImportError:
        _missing("selenium is not installed (it is in the `test` extra)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            _missing(f"{path} is missing (Debian packages chromium and chromium-driver)")
    manager = selenium_manager.SeleniumManager.binary_paths
    selenium_manager.SeleniumManager.binary_paths = _no_selenium_manager  # type: ignore[method-assign]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path_factory.mktemp("chromium-profile")
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=CHROMEDRIVER, log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        driver.set_script_timeout(PAGE_LOAD_TIMEOUT_S)
        yield driver
    finally:
        driver.quit()
        selenium_manager.SeleniumManager.binary_paths = manager  # type: ignore[method-assign]
        shutil.rmtree(profile, ignore_errors=True)
