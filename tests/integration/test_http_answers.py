"""What a caller gets back, through the gateway, from five processes on PostgreSQL, RabbitMQ and
the MongoDB wire server (issue 11, points 5 and 9).

Every error is JSON `{"detail": str, "request_id": str}` with the request id of the
X-Request-ID header, whoever answers it: the gateway's own server (an unknown method, a path it
routes nowhere), the gateway's app (its health, docs and storefront pages), or a service behind
it. Method semantics follow RFC 9110: §9.3.2 HEAD wherever GET, §9.3.7 OPTIONS lists the
target's methods, §15.5.6 405 with `Allow` naming all of them, §15.5.16 415 for a body in a
media type the operation does not read, §15.6.2 501 for a method the server does not know.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.shop import Shop
from tests.unit.gateway.support import RawClient, RawResponse

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pass-for-answers"


@pytest.fixture(scope="module")
def buyer(shop: Shop) -> Iterator[httpx.Client]:
    email = f"answers-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=shop.gateway, timeout=15) as client:
        created = client.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Answers"}
        )
        assert created.status_code == 201, created.text
        token = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


def assert_json_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


ORDER = {"items": [{"sku": "MUG-CLASSIC", "quantity": 1}], "payment_method": "pm_card_visa"}

# (method, path, what is sent, status, Allow when a 405)
ERRORS = {
    "unknown API path": ("GET", "/api/v1/nowhere", {}, 404, None),
    "unknown id": ("GET", f"/api/v1/orders/{uuid.uuid4()}", {}, 404, None),
    "unknown gateway path": ("GET", "/no-such-page.php", {}, 404, None),
    "DELETE on a GET+POST path": ("DELETE", "/api/v1/orders", {}, 405, "GET, HEAD, OPTIONS, POST"),
    "PUT on a GET path": ("PUT", "/api/v1/users/me", {}, 405, "GET, HEAD, OPTIONS"),
    "PATCH on a POST path": ("PATCH", "/api/v1/auth/token", {}, 405, "OPTIONS, POST"),
    "POST on the gateway's health": ("POST", "/healthz", {}, 405, "GET, HEAD, OPTIONS"),
    "DELETE on a storefront page": ("DELETE", "/cart", {}, 405, "GET, HEAD, OPTIONS"),
    "JSON body as text/plain": (
        "POST",
        "/api/v1/users",
        {"content": b'{"email": "a@example.com"}', "headers": {"content-type": "text/plain"}},
        415,
        None,
    ),
    "form body as JSON": (
        "POST",
        "/api/v1/auth/token",
        {"json": {"username": "a@example.com", "password": "x"}},
        415,
        None,
    ),
    "malformed JSON": (
        "POST",
        "/api/v1/orders",
        {
            "content": b'{"items": [',
            "headers": {"content-type": "application/json", "idempotency-key": "m"},
        },
        400,
        None,
    ),
    "invalid field": (
        "POST",
        "/api/v1/orders",
        {"json": {**ORDER, "payment_method": "cash"}, "headers": {"idempotency-key": "i"}},
        422,
        None,
    ),
}


@pytest.mark.parametrize(("method", "path", "sent", "status", "allow"), ERRORS.values(), ids=ERRORS)
def test_every_error_is_json_with_the_request_id(
    buyer: httpx.Client, method: str, path: str, sent: dict, status: int, allow: str | None
) -> None:
    response = buyer.request(method, path, **sent)

    body = assert_json_error(response, status)
    if allow is not None:
        assert response.headers["allow"] == allow
        assert method in body["detail"]


def test_a_caller_s_request_id_comes_back_in_the_error(buyer: httpx.Client) -> None:
    response = buyer.delete("/api/v1/payments", headers={"x-request-id": "trace-me-1"})

    assert assert_json_error(response, 405)["request_id"] == "trace-me-1"


def test_a_422_names_each_field_in_errors_and_sums_them_up_in_detail(buyer: httpx.Client) -> None:
    response = buyer.post(
        "/api/v1/orders",
        json={"items": [{"sku": "MUG-CLASSIC", "quantity": 0}]},
        headers={"idempotency-key": "fields"},
    )

    body = assert_json_error(response, 422)
    locations = sorted(tuple(e["loc"]) for e in body["errors"])
    assert locations == [("body", "items", 0, "quantity"), ("body", "payment_method")]
    assert "body.payment_method" in body["detail"]


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/orders", "GET, HEAD, OPTIONS, POST"),
        ("/api/v1/users", "OPTIONS, POST"),
        ("/api/v1/products", "GET, HEAD, OPTIONS"),
        ("/docs", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_lists_the_methods_of_the_resource_without_a_token(
    shop: Shop, path: str, allow: str
) -> None:
    response = httpx.options(f"{shop.gateway}{path}")

    assert response.status_code == 204
    assert response.headers["allow"] == allow
    assert response.content == b""


def test_options_on_a_path_nobody_has_is_a_json_404(shop: Shop) -> None:
    assert_json_error(httpx.options(f"{shop.gateway}/api/v1/orders/a/b"), 404)


@pytest.mark.parametrize("port_of", ["gateway", "orders"])
def test_a_method_no_server_knows_is_a_json_501(shop: Shop, port_of: str) -> None:
    with RawClient(shop.services[port_of].url) as raw:
        raw.send(b"BREW /api/v1/orders HTTP/1.1\r\nHost: shop\r\nX-Request-ID: brew-1\r\n\r\n")
        response = raw.response()

    assert response.status == 501
    assert response.header("content-type") == "application/json"
    assert response.json()["detail"] and response.json()["request_id"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders",
        "/api/v1/products",
        "/api/v1/payments",
        "/api/v1/notifications",
        "/api/v1/users/me",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/",
    ],
)
def test_head_answers_wherever_get_does_with_the_same_head_and_no_body(
    buyer: httpx.Client, path: str
) -> None:
    got = buyer.get(path)
    head = buyer.head(path)

    assert (head.status_code, got.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers.get("content-length") == got.headers.get("content-length")


# -- Issue 11 point 9: one key, one page shape, timestamps as returned ----------------------


def place_raw(shop: Shop, buyer: httpx.Client, key: bytes) -> RawResponse:
    """POST an order with exactly these Idempotency-Key bytes (httpx refuses the whitespace a
    caller may still send)."""
    body = json.dumps(ORDER).encode()
    with RawClient(shop.gateway) as raw:
        raw.send(
            b"POST /api/v1/orders HTTP/1.1\r\nHost: shop\r\n"
            b"Authorization: " + buyer.headers["authorization"].encode() + b"\r\n"
            b"Content-Type: application/json\r\nIdempotency-Key: " + key + b"\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        return raw.response()


def test_an_idempotency_key_is_trimmed_like_any_field(shop: Shop, buyer: httpx.Client) -> None:
    key = f"trim-{uuid.uuid4().hex[:8]}".encode()
    first = place_raw(shop, buyer, key)
    again = place_raw(shop, buyer, key + b" \t ")

    assert (first.status, again.status) == (202, 202), again.body
    assert again.json()["id"] == first.json()["id"]
    assert again.header("idempotent-replayed") == "true"


def settled(buyer: httpx.Client) -> None:
    """Wait until each of the buyer's orders has its payment."""
    orders = buyer.get("/api/v1/orders").json()["total"]
    wait_until(lambda: buyer.get("/api/v1/payments").json()["total"] == orders, timeout=30)


@pytest.mark.parametrize(
    "path", ["/api/v1/orders", "/api/v1/payments", "/api/v1/products", "/api/v1/notifications"]
)
def test_every_list_is_one_page_shape(buyer: httpx.Client, path: str) -> None:
    buyer.post("/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex})
    settled(buyer)

    page = buyer.get(path, params={"limit": 1, "offset": 0}).json()

    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["limit"], page["offset"]) == (1, 0)
    assert len(page["items"]) == min(1, page["total"])


def test_payments_page_through_limit_and_offset(buyer: httpx.Client) -> None:
    for _ in range(3):
        buyer.post("/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex})
    settled(buyer)
    everything = buyer.get("/api/v1/payments", params={"limit": 100}).json()

    second = buyer.get("/api/v1/payments", params={"limit": 1, "offset": 1}).json()

    assert everything["total"] >= 3
    assert second["total"] == everything["total"]
    assert second["items"] == everything["items"][1:2]


def test_an_order_reads_back_exactly_as_it_was_returned(buyer: httpx.Client) -> None:
    placed = buyer.post("/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex})

    read = buyer.get(f"/api/v1/orders/{placed.json()['id']}").json()
    listed = buyer.get("/api/v1/orders", params={"limit": 100}).json()["items"]

    assert read["created_at"] == placed.json()["created_at"]
    assert [o["created_at"] for o in listed if o["id"] == read["id"]] == [read["created_at"]]


def test_a_user_reads_back_exactly_as_registered(shop: Shop) -> None:
    email = f"stamp-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=shop.gateway, timeout=15) as client:
        created = client.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Stamp"}
        ).json()
        token = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

        me = client.get("/api/v1/users/me", headers=auth).json()

    assert me["created_at"] == created["created_at"]
