"""Browser end-to-end support: Debian's Chromium driven by Playwright (the served process
comes from `tests.support.server`, re-exported here).

Playwright never downloads a browser here: it drives the system Chromium at
/usr/bin/chromium. Without it (or without the Playwright package) the browser tests are
skipped with a message saying how to enable them; under CI=true they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.support.server import TRESOR, Served, free_port, serve

__all__ = ["TRESOR", "Served", "chromium_page", "free_port", "require_browser", "serve"]

CHROMIUM = Path(os.environ.get("TRESOR_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> None:
    """Skip (or, under CI=true, fail) unless Chromium and Playwright are both installed."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(
            f"Chromium is not installed at {CHROMIUM}: run `apt-get install chromium` "
            "(or point TRESOR_TEST_CHROMIUM at a Chromium binary)"
        )
    try:
        import playwright.sync_api  # noqa: F401 - only checks that it is installed
    except ImportError:
        missing.append("Playwright for Python is missing: run `.venv/bin/pip install -e '.[test]'`")
    if missing:
        message = "browser end-to-end test not run. " + "; ".join(missing)
        if IN_CI:
            pytest.fail("CI=true requires the browser test. " + message, pytrace=False)
        pytest.skip(message)


@contextmanager
def chromium_page(timeout_ms: int = 10_000, locale: str = "de-DE") -> Iterator[Any]:
    """A fresh page in headless system Chromium that accepts downloads."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True, locale=locale)
            context.set_default_timeout(timeout_ms)
            yield context.new_page()
            context.close()
        finally:
            browser.close()
