"""A real browser for the UI's tests: Debian's chromium, driven by Playwright. Every page a
test opens is watched for JavaScript errors and failed requests, and photographed."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LOOPML_TEST_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[3]
SHOTS = Path(os.environ.get("LOOPML_TEST_SCREENSHOTS", ROOT / "build" / "screenshots"))
REQUIRED = os.environ.get("LOOPML_TEST_BROWSER_REQUIRED") == "1"


def _missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (the test extra has it)"
    if not shutil.which(CHROMIUM):
        return f"no chromium at {CHROMIUM}: install it with 'apt-get install chromium'"
    return None


# Per module: Playwright's sync API runs an event loop in this thread while it is open, and
# asyncio.run in a later test would find it running.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    missing = _missing()
    if missing:
        if REQUIRED:
            pytest.fail(f"LOOPML_TEST_BROWSER_REQUIRED is set, but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A browser page that records what went wrong on it."""

    def __init__(self, page: object, name: str) -> None:
        self.page = page
        self.name = name
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"error: {error}"))
        page.on("console", self._console)
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", self._response)
        self.expected_status: set[int] = set()

    def _console(self, message: object) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")

    def _response(self, response: object) -> None:
        if response.status >= 400 and response.status not in self.expected_status:
            self.problems.append(f"{response.status}: {response.url}")

    def shoot(self, label: str) -> Path:
        """A screenshot of the whole page, kept as the test's artifact."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def watched(browser: object, request: pytest.FixtureRequest) -> Iterator[Watched]:
    """A page of a fresh browser context (light theme, 1280 wide); the test fails on any
    JavaScript error or failed request it had."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    found = Watched(context.new_page(), request.node.name)
    yield found
    context.close()
    assert found.problems == [], found.problems
