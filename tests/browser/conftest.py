"""Fixtures of the browser tests: the system Chromium driven by Playwright, and the worker fixtures reused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from worker.tests.conftest import cdm_gibleed_duckdb_private, start_worker  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / "var" / "screenshots"


@contextmanager
def _launch() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def chromium() -> Callable[[], Any]:
    """Opens a headless system Chromium (never downloaded at test time: `make browser-deps` installs it).

    A context manager rather than an open browser: Playwright's sync API keeps an asyncio loop marked running
    while the browser is open, and Django refuses ORM calls then, so a test sets up its rows before opening it
    and checks them after closing it."""
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: run `make browser-deps`")
    return _launch


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
