"""Fixtures of the browser tests: the system Chromium driven by Playwright, and the worker fixtures reused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from warehouse.synthetic.synthesis import write_cdm
from warehouse.vocabulary.load import vocabulary_load_from_directory
from worker.tests.conftest import cdm_gibleed_duckdb_private, start_worker  # noqa: F401
from worker.tests.helpers import PASSWORD

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


@pytest.fixture
def demo_site(tmp_path: Path) -> Any:
    """A small warehouse of the synthetic generator behind `make demo` (2,000 persons), in a DuckDB file of its
    own for the worker process, with its vocabulary loaded into the portal for the concept search."""
    from conftest import _load_test_cdm

    directory = tmp_path / "cdm"
    directory.mkdir()
    write_cdm(directory, persons=2_000, seed=7, chunk_size=1_000, jobs=1)
    vocabulary_load_from_directory(directory=directory)
    return _load_test_cdm("duckdb", f"duckdb:///{tmp_path / 'site.duckdb'}", directory, "cdm", "results")


def watch(page: Any, errors: list[str], failed: list[str]) -> None:
    """Collects the page's console errors, uncaught exceptions and failed responses into the two lists."""
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{page.url}: uncaught {e}"))


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("User name or e-mail").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
