"""What the browser tests do again and again: sign up, shop, check accessibility, take pictures."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Locator, Page, expect

ROOT = Path(__file__).resolve().parents[2]
# `make screenshots` points this at docs/screenshots; otherwise the pictures go to a temporary
# directory, so a test run never changes the committed ones.
SCREENSHOTS_ENV = "MICROSHOP_SCREENSHOTS_DIR"
PASSWORD = "correct horse battery"
TIMES = "\N{MULTIPLICATION SIGN}"  # the storefront writes quantities as "3 TIMES name"
BLOCKING_IMPACTS = {"serious", "critical"}
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}


def chromium_or_skip() -> Path:
    """Debian's Chromium (or MICROSHOP_TEST_CHROMIUM); its absence skips, or fails with CI=true."""
    executable = Path(os.environ.get("MICROSHOP_TEST_CHROMIUM", "/usr/bin/chromium"))
    if not executable.exists():
        message = (
            f"{executable} is missing: install Debian's chromium (apt-get install -y chromium) "
            "to run the browser tests"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return executable


def new_email(who: str = "ada") -> str:
    return f"{who}-{uuid.uuid4().hex[:8]}@example.com"


def sign_up(page: Page, name: str = "Ada Lovelace", email: str | None = None) -> str:
    email = email or new_email()
    page.goto("/signup")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return email


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def add_from_catalog(page: Page, product: str) -> None:
    page.get_by_role("button", name=f"Add to cart: {product}").click()
    expect(page.get_by_role("status").filter(has_text=f"{product} added")).to_be_visible()


def stored_token(page: Page) -> Any:
    return page.evaluate("() => sessionStorage.getItem('microshop.session')")


def order_id_of(page: Page) -> str:
    """The id of the order page being shown."""
    return page.url.rsplit("/", 1)[1]


class Accessibility:
    """axe-core on a page: fails on a serious or critical violation, keeps every result."""

    def __init__(self) -> None:
        self.results: dict[str, list[dict[str, Any]]] = {}

    def check(self, page: Page, name: str) -> None:
        # The storefront changes pages without reloading: axe stays loaded after the first time.
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(AXE_SCRIPT)
        violations = page.evaluate("() => axe.run({resultTypes: ['violations']})")["violations"]
        self.results[name] = [
            {"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])} for v in violations
        ]
        blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
        assert not blocking, f"axe on {name}: " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(" ".join(n["target"]) for n in v["nodes"])
            for v in blocking
        )


def screenshot_dir(tmp_dir: Path) -> Path:
    chosen = os.environ.get(SCREENSHOTS_ENV)
    directory = (ROOT / chosen) if chosen else tmp_dir
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def shoot(page: Page, directory: Path, name: str) -> list[Path]:
    """The page as it is now, at desktop width and at 375 px (then back to desktop)."""
    shots = []
    for label, size in (("desktop", DESKTOP), ("375", PHONE)):
        page.set_viewport_size(size)
        # Nothing on the page may be wider than the screen, at any width.
        overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"{name} at {size['width']} px is {overflow} px too wide"
        path = directory / f"{name}-{label}.png"
        page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
        shots.append(path)
    page.set_viewport_size(DESKTOP)
    return shots


def write_axe_report(directory: Path, results: dict[str, list[dict[str, Any]]]) -> Path:
    path = directory / "axe-results.json"
    path.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    return path


def tab_to(page: Page, target: Locator, limit: int = 60) -> None:
    """Press Tab until `target` has the focus, and check that the focus can be seen there."""
    target.wait_for()
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            outline = target.evaluate(
                "el => el.matches(':focus-visible') && getComputedStyle(el).outlineStyle"
            )
            assert outline and outline != "none", f"no visible focus on {target}"
            return
    raise AssertionError(f"{target} not reached with {limit} presses of Tab")
