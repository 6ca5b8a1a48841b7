"""A person's whole purchase in the storefront: catalog, cart, sign-up, checkout, live status."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.shop import ShopThread
from tests.browser.support import (
    PASSWORD,
    TIMES,
    Accessibility,
    add_from_catalog,
    new_email,
    order_id_of,
    shoot,
    sign_up,
    stored_token,
    tab_to,
)


def test_a_paid_purchase_from_the_catalog_to_the_notification(
    page: Page, shop: ShopThread, accessibility: Accessibility, screenshots: Path
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("The microshop store")
    expect(page.get_by_role("list", name="Products").get_by_role("listitem")).to_have_count(6)
    expect(page.get_by_role("listitem").filter(has_text="Classic mug")).to_contain_text("€12.00")
    accessibility.check(page, "catalog")
    shoot(page, screenshots, "catalog")

    add_from_catalog(page, "Classic mug")
    page.get_by_role("link", name="Sticker pack (5)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sticker pack (5)")
    page.get_by_label("Quantity").fill("3")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_role("status")).to_contain_text(f"3 {TIMES} Sticker pack (5) added")
    accessibility.check(page, "product")
    shoot(page, screenshots, "product")

    # The cart is the browser's: it survives a reload, and its prices come from the catalog.
    page.reload()
    nav = page.get_by_role("navigation", name="Main")
    cart_link = nav.get_by_role("link", name="Cart")
    expect(cart_link).to_have_accessible_name("Cart 4 items")
    cart_link.click()
    lines = page.get_by_role("list", name="Items in your cart").get_by_role("listitem")
    expect(lines).to_have_count(2)
    expect(lines.filter(has_text="Sticker pack (5)")).to_contain_text("€13.50")
    expect(page.locator(".cart-summary")).to_contain_text("Total €25.50")
    accessibility.check(page, "cart")
    shoot(page, screenshots, "cart")

    # Checking out needs an account: log in first, or sign up, and come back to checkout.
    page.get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.get_by_text("Please log in to continue.")).to_be_visible()
    accessibility.check(page, "login")
    shoot(page, screenshots, "login")
    page.get_by_role("link", name="Create an account").click()
    accessibility.check(page, "signup")
    shoot(page, screenshots, "signup")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill(new_email())
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check out")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    methods = page.get_by_role("group", name="Payment method")
    expect(methods.get_by_role("radio")).to_have_count(4)
    expect(methods).to_contain_text("no real card is charged")
    expect(methods.get_by_role("radio", name="Test card: declined")).to_have_accessible_description(
        "The bank declines the charge; the order ends as payment failed. pm_card_chargeDeclined"
    )
    accessibility.check(page, "checkout")
    shoot(page, screenshots, "checkout")

    placed: list[Any] = []
    page.on("response", lambda r: placed.append(r) if r.request.method == "POST" else None)
    documents: list[str] = []
    page.on("framenavigated", lambda frame: documents.append(frame.url))
    methods.get_by_role("radio", name="Test Visa card").check()
    page.get_by_role("button", name="Place order · €25.50").click()

    # The order page follows the order live: PENDING when placed, PAID without a reload.
    status = page.locator(".order-status")
    expect(status).to_have_text("Paid. Thank you for your order!")
    order_response = next(r for r in placed if r.url.endswith("/api/v1/orders"))
    order_id = order_response.json()["id"]
    assert order_response.status == 202
    assert order_response.json()["status"] == "PENDING"
    assert order_id_of(page) == order_id
    assert documents == [page.url], f"the page was reloaded: {documents}"
    expect(page.get_by_text("Payment: €25.50 charged.")).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("Sticker pack (5)")
    # The final state is the page's only word on the order: nothing says it is still waiting.
    expect(page.get_by_text("Waiting for the payment")).to_have_count(0)
    expect(page.locator("#notice")).to_be_empty()
    # The paid order's notification shows up in the header, unread, without a reload.
    notifications_link = nav.get_by_role("link", name="Notifications")
    expect(notifications_link).to_have_accessible_name("Notifications 1 unread")
    accessibility.check(page, "order")
    shoot(page, screenshots, "order-paid")

    # The cart was emptied by the order; the history shows it with its status and total.
    expect(cart_link).to_have_accessible_name("Cart")
    nav.get_by_role("link", name="Orders").click()
    row = page.get_by_role("list", name="Orders").get_by_role("listitem")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("€25.50")
    expect(row).to_contain_text("Paid")
    expect(row).to_contain_text("4 items")
    accessibility.check(page, "orders")
    shoot(page, screenshots, "orders")

    notifications_link.click()
    notes = page.get_by_role("list", name="Notifications").get_by_role("listitem")
    expect(notes).to_have_count(1)
    expect(notes).to_contain_text("25.50 EUR")
    expect(notes).to_contain_text("New")
    accessibility.check(page, "notifications")
    shoot(page, screenshots, "notifications")

    # Marking it read clears the count, here and after a reload (the shop keeps the state).
    notes.get_by_role("button", name="Mark as read").click()
    expect(notifications_link).to_have_accessible_name("Notifications")
    expect(notes).not_to_contain_text("New")
    expect(notes.get_by_role("button")).to_have_count(0)
    expect(notes.get_by_role("link", name="See the order")).to_be_focused()
    page.reload()
    expect(notes).to_have_count(1)
    expect(notes).not_to_contain_text("New")
    expect(notifications_link).to_have_accessible_name("Notifications")
    notes.get_by_role("link", name="See the order").click()
    assert order_id_of(page) == order_id

    # Logging out forgets the token: the tab's storage no longer has it, and pages that need
    # an account ask to log in again.
    token = stored_token(page)
    assert token is not None
    # Kept in the tab only: no cookie at all (none to carry it cross-site), nothing in
    # localStorage but the cart.
    assert page.context.cookies() == []
    assert page.evaluate("() => Object.keys(localStorage)") == ["microshop.cart.v1"]
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    assert stored_token(page) is None
    assert page.evaluate("() => sessionStorage.length") == 0
    page.goto("/orders")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        ("Test card: declined", "The card was declined."),
        ("Test card: insufficient funds", "The card has insufficient funds."),
    ],
)
def test_a_failed_payment_says_why_and_offers_another_try(
    page: Page, screenshots: Path, accessibility: Accessibility, method: str, reason: str
) -> None:
    sign_up(page)
    page.goto("/")
    add_from_catalog(page, "Grey hoodie")
    page.goto("/checkout")
    page.get_by_role("radio", name=method).check()
    page.get_by_role("button", name="Place order · €59.00").click()

    expect(page.locator(".order-status")).to_have_text(f"Payment failed: {reason}")
    expect(page.get_by_text(f"Payment: €59.00 declined ({reason})")).to_be_visible()
    if "declined" in method:
        accessibility.check(page, "order-failed")
        shoot(page, screenshots, "order-failed")

    page.get_by_role("button", name="Try again with another payment method").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check out")
    expect(page.locator(".order-summary")).to_contain_text(f"1 {TIMES} Grey hoodie")
    page.get_by_role("button", name="Place order · €59.00").click()
    expect(page.locator(".order-status")).to_have_text("Paid. Thank you for your order!")
    page.goto("/orders")
    rows = page.get_by_role("list", name="Orders").get_by_role("listitem")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Paid")
    expect(rows.last).to_contain_text("Payment failed")


@contextlib.contextmanager
def payments_held(shop: ShopThread) -> Iterator[None]:
    """Another writer holds the payments database: a payment waits (SQLite's busy timeout)
    until it lets go, so the order stays PENDING for as long as the test looks at it."""
    database = sqlite3.connect(shop.data_dir / "payments.db", isolation_level=None, timeout=30)
    database.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        database.execute("ROLLBACK")
        database.close()


@pytest.mark.parametrize(
    ("method", "final", "badge"),
    [
        ("Test Visa card", "Paid. Thank you for your order!", "Paid"),
        ("Test card: declined", "Payment failed: The card was declined.", "Payment failed"),
    ],
)
def test_a_slow_payment_is_followed_live_and_its_end_replaces_the_waiting_banner(
    page: Page,
    shop: ShopThread,
    accessibility: Accessibility,
    screenshots: Path,
    method: str,
    final: str,
    badge: str,
) -> None:
    sign_up(page)
    page.goto("/")
    add_from_catalog(page, "Classic mug")
    page.goto("/checkout")
    page.get_by_role("radio", name=method).check()
    documents: list[str] = []
    page.on("framenavigated", lambda frame: documents.append(frame.url))
    status = page.locator(".order-status")

    with payments_held(shop):
        page.get_by_role("button", name="Place order · €12.00").click()
        expect(status).to_have_text("Order placed. Waiting for the payment…")
        expect(page.locator(".badge-slot")).to_have_text("Payment pending")
        if badge == "Paid":
            accessibility.check(page, "order-pending")
            shoot(page, screenshots, "order-pending")

    expect(status).to_have_text(final)
    expect(page.locator(".badge-slot")).to_have_text(badge)
    # Only the final word is left: no banner, notice or status still says it is waiting.
    expect(page.get_by_text("Waiting for the payment")).to_have_count(0)
    expect(page.locator("#notice")).to_be_empty()
    assert documents == [page.url], f"the page was reloaded: {documents}"


def test_a_double_click_on_place_order_makes_one_order(page: Page) -> None:
    sign_up(page)
    page.goto("/")
    add_from_catalog(page, "A5 notebook")
    page.goto("/checkout")
    keys: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            keys.append(r.headers.get("idempotency-key"))
            if r.method == "POST" and r.url.endswith("/api/v1/orders")
            else None
        ),
    )
    page.get_by_role("button", name="Place order · €8.99").dblclick()
    expect(page.locator(".order-status")).to_have_text("Paid. Thank you for your order!")
    assert keys and len(set(keys)) == 1 and keys[0], keys
    page.goto("/orders")
    expect(page.get_by_role("list", name="Orders").get_by_role("listitem")).to_have_count(1)


def test_a_keyboard_alone_can_buy(page: Page) -> None:
    page.goto("/")
    tab_to(page, page.get_by_role("button", name="Add to cart: Classic mug"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Classic mug added to your cart.")
    tab_to(page, page.get_by_role("navigation", name="Main").get_by_role("link", name="Cart"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("link", name="Check out"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("link", name="Create an account"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_label("Name"))
    page.keyboard.type("Grace Hopper")
    page.keyboard.press("Tab")
    page.keyboard.type(new_email("grace"))
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Check out")
    tab_to(page, page.get_by_role("radio", name="Test Visa card"))
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("radio", name="Test Mastercard")).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Place order · €12.00"))
    page.keyboard.press("Enter")
    expect(page.locator(".order-status")).to_have_text("Paid. Thank you for your order!")
    expect(page.get_by_text("Test Mastercard")).to_be_visible()

    # And the notification it brought is read with the keyboard too.
    notifications = page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Notifications"
    )
    expect(notifications).to_have_accessible_name("Notifications 1 unread")
    tab_to(page, notifications)
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("button", name="Mark as read"))
    page.keyboard.press("Enter")
    expect(notifications).to_have_accessible_name("Notifications")
    expect(page.get_by_role("link", name="See the order")).to_be_focused()


def test_the_home_page_is_guarded_by_its_headers_and_its_assets_cached_for_a_year(
    page: Page,
) -> None:
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))
    document = page.goto("/")
    assert document is not None
    expect(page.locator(".product-grid img")).to_have_count(6)
    page.wait_for_load_state("networkidle")

    headers = document.headers
    policy = dict(
        (d.split()[0], d.split()[1:]) for d in headers["content-security-policy"].split("; ")
    )
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache"
    # Every asset the page loaded has its content's hash in its name and a year's cache.
    assets = [r for r in responses if r.url != document.url and "/api/" not in r.url]
    assert len(assets) > 10, [r.url for r in assets]
    for asset in assets:
        assert re.search(r"/assets/.+\.[0-9a-f]{12}\.[a-z]+$", asset.url), asset.url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable", asset.url
        assert asset.headers["x-content-type-options"] == "nosniff", asset.url


def test_the_home_page_loads_under_200_kb_compressed(page: Page) -> None:
    page.goto("/")
    expect(page.locator(".product-grid img")).to_have_count(6)
    page.wait_for_load_state("networkidle")
    entries = page.evaluate(
        """() => [...performance.getEntriesByType('navigation'),
                  ...performance.getEntriesByType('resource')]
                 .map(e => ({name: e.name, transfer: e.transferSize, body: e.decodedBodySize}))"""
    )
    transferred = sum(e["transfer"] for e in entries)
    print(f"home page: {len(entries)} responses, {transferred} bytes transferred")
    assert all(e["transfer"] > 0 for e in entries), entries  # nothing came from a cache
    assert transferred < 200 * 1024, entries
