"""Every API error shown where it belongs: next to its field, as a wait, as a retry, as a login."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from microshop.gateway.app import create_app as gateway_app
from microshop.gateway.settings import GatewaySettings, upstream_settings
from microshop.platform.auth import Principal, TokenIssuer, TokenVerifier, load_or_create_key_pair
from microshop.registry import BACKENDS
from tests.browser.conftest import LOGIN_BACKOFF_SECONDS, Watch, watched_page
from tests.browser.shop import ShopThread, TcpRelay
from tests.browser.support import (
    PASSWORD,
    Accessibility,
    add_from_catalog,
    log_in,
    new_email,
    shoot,
    sign_up,
    stored_token,
)
from tests.unit.gateway.support import GatewayThread


def no_raw_json(page: Page) -> None:
    assert '"detail"' not in page.locator("body").inner_text()


def test_a_422_is_shown_next_to_each_field_it_names(
    page: Page, watch: Watch, accessibility: Accessibility, screenshots: Path
) -> None:
    watch.allow_failed_responses(422)
    page.goto("/signup")
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Email").fill("ada@example")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()

    email, password = page.get_by_label("Email"), page.get_by_label("Password")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(
        "Value is not a valid email address: The part after the @-sign is not valid. "
        "It should have a period."
    )
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description(
        "At least 8 characters. String should have at least 8 characters"
    )
    expect(page.get_by_label("Name")).not_to_have_attribute("aria-invalid", "true")
    expect(email).to_be_focused()
    no_raw_json(page)
    accessibility.check(page, "signup-errors")
    shoot(page, screenshots, "signup-errors")


def test_a_409_on_sign_up_says_the_email_has_an_account(page: Page, watch: Watch) -> None:
    watch.allow_failed_responses(409)
    email = sign_up(page)
    page.get_by_role("button", name="Log out").click()
    page.goto("/signup")
    page.get_by_label("Name").fill("Ada again")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_label("Email")).to_have_accessible_description(
        "A user with this email already exists. Log in instead?"
    )
    no_raw_json(page)


def test_a_wrong_password_is_said_on_the_form_without_saying_which_part(
    page: Page, watch: Watch
) -> None:
    watch.allow_failed_responses(401)
    email = sign_up(page)
    page.get_by_role("button", name="Log out").click()
    page.goto("/login")
    log_in(page, email, "not the password")
    expect(page.get_by_role("alert")).to_contain_text("Incorrect email or password")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    log_in(page, email)
    expect(page.get_by_role("status")).to_have_text("You are logged in.")


def test_a_429_says_how_long_to_wait_and_holds_the_button_that_long(
    page: Page, watch: Watch
) -> None:
    watch.allow_failed_responses(401, 429)
    email = new_email("guesser")
    page.goto("/login")
    alert = page.get_by_role("alert")

    def attempt() -> int:
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/token")) as answer:
            log_in(page, email, "not the password")
        return int(answer.value.status)

    # Five failures in a row are free; the sixth blocks the account for the backoff.
    for _ in range(6):
        assert attempt() == 401
        expect(alert).to_contain_text("Incorrect email or password")
    assert attempt() == 429
    expect(alert).to_have_text(
        re.compile(r"^Too many attempts\. Please wait (\d+) seconds, then try again\.")
    )
    waited = int(re.findall(r"wait (\d+) seconds", alert.inner_text())[0])
    assert LOGIN_BACKOFF_SECONDS - 5 <= waited <= LOGIN_BACKOFF_SECONDS
    held = page.locator("form button[type=submit]")
    expect(held).to_be_disabled()
    expect(held).to_have_accessible_name(re.compile(r'^Wait \d+ s before trying "Log in" again$'))
    expect(page.get_by_role("button", name="Try again")).to_have_count(0)
    no_raw_json(page)


def test_a_refused_token_asks_to_log_in_again_and_comes_back(
    page: Page, watch: Watch, shop: ShopThread
) -> None:
    watch.allow_failed_responses(401)
    email = sign_up(page)
    page.goto("/")
    add_from_catalog(page, "Classic mug")
    # The shop's own key, but long expired: the browser still thinks the session is fresh.
    keys = load_or_create_key_pair(shop.data_dir / "keys")
    session: dict[str, Any] = page.evaluate(
        "() => JSON.parse(sessionStorage.getItem('microshop.session'))"
    )
    expired = TokenIssuer(keys.private_pem, ttl_seconds=-3600).issue(
        Principal(session["user"]["id"], email)
    )
    page.evaluate(
        "token => { const s = JSON.parse(sessionStorage.getItem('microshop.session'));"
        " s.token = token; sessionStorage.setItem('microshop.session', JSON.stringify(s)); }",
        expired,
    )
    page.goto("/orders")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.get_by_role("alert")).to_have_text(
        "Your session has ended. Please log in again to continue."
    )
    assert stored_token(page) is None
    log_in(page, email)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your orders")
    # The cart was kept through it all.
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Cart")
    ).to_have_accessible_name("Cart 1 item")


@pytest.fixture(scope="module")
def orders_relay(shop: ShopThread) -> Iterator[TcpRelay]:
    relay = TcpRelay(shop.ports["orders"])
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def fragile_gateway(shop: ShopThread, orders_relay: TcpRelay) -> Iterator[str]:
    """A second, real gateway in front of the same services, reaching orders through a relay
    that the tests cut: what a person sees when the orders service is gone for a while."""
    keys = load_or_create_key_pair(shop.data_dir / "keys")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in shop.ports.items()}
    urls["orders"] = orders_relay.url
    settings = GatewaySettings(
        jwt_public_key=keys.public_pem,
        connect_timeout_seconds=1.0,
        **upstream_settings({service.name: urls[service.name] for service in BACKENDS}),
    )
    with GatewayThread(gateway_app(settings, TokenVerifier(keys.public_pem))) as server:
        yield server.url


@pytest.fixture
def fragile_page(browser: Any, fragile_gateway: str) -> Iterator[tuple[Page, Watch]]:
    watch = Watch(origin=fragile_gateway)
    with watched_page(browser, fragile_gateway, watch) as page:
        yield page, watch


def test_a_503_while_loading_a_page_offers_to_try_again(
    fragile_page: tuple[Page, Watch], orders_relay: TcpRelay
) -> None:
    page, watch = fragile_page
    watch.allow_failed_responses(503)
    with orders_relay.down():
        page.goto("/")
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("The shop is busy or briefly unavailable. Please try again.")
        expect(alert).to_contain_text("Reference: ")
        no_raw_json(page)
    alert.get_by_role("button", name="Try again").click()
    expect(page.locator(".product-grid .card")).to_have_count(6)


def test_a_503_at_checkout_is_retried_with_the_same_idempotency_key(
    fragile_page: tuple[Page, Watch], orders_relay: TcpRelay
) -> None:
    page, watch = fragile_page
    watch.allow_failed_responses(503)
    sign_up(page)
    page.goto("/")
    add_from_catalog(page, "Sticker pack (5)")
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
    place = page.get_by_role("button", name="Place order · €4.50")
    expect(place).to_be_visible()
    with orders_relay.down():
        place.click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("The shop is busy or briefly unavailable.")
        no_raw_json(page)
    alert.get_by_role("button", name="Try again").click()
    expect(page.locator(".order-status")).to_have_text("Paid. Thank you for your order!")
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0], keys
    with httpx.Client(base_url=page.url.split("/orders/")[0]) as http:
        token = page.evaluate("() => JSON.parse(sessionStorage.getItem('microshop.session')).token")
        orders = http.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"}).json()
    assert orders["total"] == 1
