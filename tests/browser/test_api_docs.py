"""The API docs work offline: Swagger UI and ReDoc come from the gateway, with every operation."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import Watch
from tests.browser.shop import ShopThread

# ReDoc's sidebar shows Redocly's logo from their CDN; the page's img-src stops the browser from
# fetching it (ReDoc then hides the image). Nothing else may be refused.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def operations(shop: ShopThread) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> operation, from the schema the gateway serves."""
    schema = httpx.get(f"{shop.url}/openapi.json").json()
    return {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }


def blocked_requests(page: Page) -> list[tuple[str, str]]:
    blocked: list[tuple[str, str]] = []
    page.on("requestfailed", lambda r: blocked.append((r.url, r.failure or "")))
    return blocked


def test_swagger_ui_renders_every_operation_from_the_gateway_alone(
    page: Page, shop: ShopThread
) -> None:
    expected = operations(shop)
    blocked = blocked_requests(page)
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    shown = page.locator(".opblock-summary").evaluate_all(
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent,
            b.querySelector('.opblock-summary-path').dataset.path])"""
    )
    assert {tuple(s) for s in shown} == set(expected)
    expect(page.get_by_text("Place an order; it is paid asynchronously")).to_be_visible()
    expect(page.locator(".information-container")).to_contain_text("microshop")
    assert blocked == []


def test_redoc_renders_every_operation_from_the_gateway_alone(
    page: Page, shop: ShopThread, watch: Watch
) -> None:
    watch.allowed_console.append(re.compile(re.escape(f"Loading the image '{REDOC_LOGO}'")))
    expected = operations(shop)
    blocked = blocked_requests(page)
    page.goto("/redoc")
    for operation in expected.values():
        heading = page.locator(f'h2:has(a[href$="/operation/{operation["operationId"]}"])')
        expect(heading.first).to_contain_text(operation["summary"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("microshop")
    # ReDoc's search runs in a worker from a blob of this origin; the logo never left the page.
    assert [url for url, _ in blocked if url != REDOC_LOGO] == []
    assert all(failure == "csp" for url, failure in blocked if url == REDOC_LOGO)
