"""Fixtures for the web page's tests: a real `park serve` with real workers, and Debian's
chromium driven by Playwright (no browser download: `executable_path`).

Chromium is not optional: without it these tests fail (`.ci/run` installs it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.support import ParkServer, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

# As root, on a machine whose network is loopback only: no sandbox, nothing in the
# background that would reach for Google's hosts.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Playwright's assertions wait 5 s by default (the context's default timeout does not apply
# to them); on this loaded machine a server's first plot alone (matplotlib imported, then
# drawn) was seen to take 4-6.5 s. Waits end as soon as their condition holds.
EXPECT_TIMEOUT_MS = 20_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)

TOKENS = "ann-secret ann\nbob-secret bob\nworker-secret pool worker\n"


def chromium_path() -> str:
    found = os.environ.get("PARK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.fail(
            f"chromium not found ({found}): the browser tests need Debian's chromium "
            "(apt-get install chromium; .ci/run installs it)",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own local storage); a JavaScript error on it fails the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda err: errors.append(str(err)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="package")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParkServer]:
    """`park serve` with two local workers (real `park worker` processes), shared by the
    tests of this package (each watches only its own jobs)."""
    root = tmp_path_factory.mktemp("web")
    server = ParkServer(data_dir=root / "park-data", port=free_port(), workers=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParkServer]:
    """`park serve` that requires tokens, with no workers: its jobs stay pending."""
    root = tmp_path_factory.mktemp("web-tokens")
    tokens = root / "tokens"
    tokens.write_text(TOKENS)
    server = ParkServer(
        data_dir=root / "park-data",
        port=free_port(),
        workers=0,
        extra_args=["--tokens", str(tokens)],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
