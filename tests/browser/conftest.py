"""Debian's Chromium driven by Playwright against a standalone shop, watched for what must not be.

One browser and one shop per session (each test makes its own account), a fresh browser
context (storage, cookies) per test. Every test fails when a request leaves the shop's origin
(the route that would send it aborts it and records it), on an uncaught page error, and on a
console error other than the failed responses the test itself provokes. Without Chromium the
tests skip saying why; with CI=true that is a failure.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.shop import ShopThread
from tests.browser.support import (
    DESKTOP,
    Accessibility,
    chromium_or_skip,
    screenshot_dir,
    write_axe_report,
)

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Chromium logs every 4xx/5xx response a page receives as a console error with this text.
FAILED_RESPONSE = re.compile(
    r"^Failed to load resource: the server responded with a status of (\d+)"
)


# The machine is shared: leave room for a busy moment before calling a page broken.
expect.set_options(timeout=15_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(here)]
    for item in ours:
        item.add_marker(pytest.mark.browser)
    # Playwright's sync API keeps an event loop running on the main thread while the browser
    # is open (the whole session, to launch Chromium once): a later test's asyncio.run() would
    # fail there. So the browser tests run last.
    mine = set(ours)
    items[:] = [item for item in items if item not in mine] + ours


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# A blocked login waits this long (the default, 1 s, is over before a test can look at it).
LOGIN_BACKOFF_SECONDS = 30


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopThread]:
    env = {"MICROSHOP_LOGIN_BACKOFF_BASE_SECONDS": str(LOGIN_BACKOFF_SECONDS)}
    with ShopThread(tmp_path_factory.mktemp("browser-shop"), env) as running:
        yield running


@dataclass
class Watch:
    """What a page did that a test must hear about: foreign requests, errors in its console."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)
    allowed_console: list[re.Pattern[str]] = field(default_factory=list)

    def allow_failed_responses(self, *statuses: int) -> None:
        """The test provokes these statuses; Chromium's console line about each is expected."""
        self.allowed_statuses.update(statuses)

    def on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        status = FAILED_RESPONSE.match(text)
        if status and int(status.group(1)) in self.allowed_statuses:
            return
        if any(pattern.search(text) for pattern in self.allowed_console):
            return
        self.console_errors.append(text)

    def problems(self) -> list[str]:
        return (
            [f"request left the origin {self.origin}: {url}" for url in self.foreign]
            + [f"console error: {text}" for text in self.console_errors]
            + [f"uncaught page error: {text}" for text in self.page_errors]
        )


def _same_origin(url: str, origin: str) -> bool:
    return url == origin or url.startswith(origin + "/") or url.startswith(f"blob:{origin}/")


@contextlib.contextmanager
def watched_page(browser: Any, origin: str, watch: Watch) -> Iterator[Any]:
    """A page in a context of its own whose every request to another origin is aborted (and
    recorded), and whose problems fail the test once it is done."""
    context = browser.new_context(viewport=DESKTOP, base_url=origin, locale="en-GB")

    def route(route: Any) -> None:
        url = route.request.url
        if _same_origin(url, origin) or url.startswith("data:"):
            route.continue_()
        else:
            watch.foreign.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    problems = watch.problems()
    assert not problems, "\n".join(problems)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report shows what the person saw: the text of each page it had open."""
    report = yield
    if report.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            for candidate in value if isinstance(value, tuple) else (value,):
                if hasattr(candidate, "locator") and hasattr(candidate, "url"):
                    with contextlib.suppress(Exception):
                        text = candidate.locator("body").inner_text(timeout=1000)
                        report.sections.append((f"page {candidate.url}", text))
    return report


@pytest.fixture
def watch(shop: ShopThread) -> Watch:
    return Watch(origin=shop.url)


@pytest.fixture
def page(browser: Any, shop: ShopThread, watch: Watch) -> Iterator[Any]:
    """A page on the shop, watched for what must never happen."""
    with watched_page(browser, shop.url, watch) as page:
        yield page


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="session")
def accessibility(screenshots: Path) -> Iterator[Accessibility]:
    """axe on every page the tests visit; the results are written beside the screenshots."""
    checker = Accessibility()
    yield checker
    if checker.results:
        write_axe_report(screenshots, checker.results)
