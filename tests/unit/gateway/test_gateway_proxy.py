"""The gateway forwards /api/v1 by prefix, checks tokens at the edge and maps upstream failures."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from microshop.platform.auth import KeyPair, Principal, TokenIssuer, generate_key_pair

from .conftest import GatewayFactory, Upstreams
from .support import ScriptedUpstream, Upstream, closed_port


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: httpx.Response) -> str:
    """The `detail` of a gateway error, checking its shape: JSON with the request id."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    return str(body["detail"])


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("POST", "/api/v1/users", "users"),
        ("GET", "/api/v1/users/me", "users"),
        ("POST", "/api/v1/auth/token", "users"),
        ("GET", "/api/v1/products", "orders"),
        ("GET", "/api/v1/products/sku-1", "orders"),
        ("POST", "/api/v1/orders", "orders"),
        ("GET", "/api/v1/orders/abc", "orders"),
        ("GET", "/api/v1/payments", "payments"),
        ("GET", "/api/v1/notifications", "notifications"),
    ],
)
def test_each_prefix_reaches_its_service(
    gateway: httpx.Client, token: str, method: str, path: str, service: str
) -> None:
    response = gateway.request(method, path, headers=bearer(token))

    assert response.status_code == 200
    assert response.headers["x-upstream"] == service
    seen = response.json()
    assert (seen["service"], seen["method"], seen["path"]) == (service, method, path)


@pytest.mark.parametrize("path", ["/api/v1/unknown", "/api/v1/usersx", "/api/v1/", "/api/v1"])
def test_unknown_route_is_404_json(gateway: httpx.Client, token: str, path: str) -> None:
    response = gateway.get(path, headers=bearer(token))

    assert response.status_code == 404
    assert error_of(response) == "Not Found"


def test_unknown_path_outside_the_api_is_the_apps_404_json(gateway: httpx.Client) -> None:
    response = gateway.get("/nothing")

    assert response.status_code == 404
    assert response.json()["detail"] == "Not Found"


@pytest.mark.parametrize(
    "path", ["/api/v1/products/../orders", "/api/v1/products/./x", "/api/v1/products/%2e%2e/orders"]
)
def test_dot_segments_cannot_borrow_a_public_prefix(gateway: httpx.Client, path: str) -> None:
    # http.client sends the path as written; httpx would normalise it before sending.
    connection = http.client.HTTPConnection(gateway.base_url.host, gateway.base_url.port)
    connection.request("GET", path)
    response = connection.getresponse()

    assert response.status == 404
    assert json.loads(response.read())["detail"] == "Not Found"
    connection.close()


def _expired_token(keys: KeyPair) -> str:
    return TokenIssuer(keys.private_pem, ttl_seconds=-60).issue(Principal("u-1", "a@example.com"))


def _foreign_token() -> str:
    other = generate_key_pair()
    return TokenIssuer(other.private_pem, ttl_seconds=600).issue(Principal("u-1", "a@x.com"))


@pytest.mark.parametrize(
    "authorization",
    ["missing", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "expired", "foreign"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/users/me"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/orders"),
        ("POST", "/api/v1/products"),
        ("GET", "/api/v1/payments"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v1/auth/other"),
    ],
)
def test_protected_route_without_a_valid_token_is_401_at_the_edge(
    gateway: httpx.Client,
    upstreams: Upstreams,
    keys: KeyPair,
    authorization: str,
    method: str,
    path: str,
) -> None:
    header = {
        "missing": None,
        "expired": f"Bearer {_expired_token(keys)}",
        "foreign": f"Bearer {_foreign_token()}",
    }.get(authorization, authorization)
    before = sum(len(app.received) for app in upstreams.apps.values())

    response = gateway.request(method, path, headers={"Authorization": header} if header else {})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "access token" in response.json()["detail"]
    assert sum(len(app.received) for app in upstreams.apps.values()) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/auth/token"),
        ("GET", "/api/v1/products"),
        ("GET", "/api/v1/products/sku-1"),
    ],
)
def test_public_routes_need_no_token(gateway: httpx.Client, method: str, path: str) -> None:
    response = gateway.request(method, path)

    assert response.status_code == 200
    assert response.json()["path"] == path


def test_authorization_is_forwarded_unchanged_and_identity_headers_are_dropped(
    gateway: httpx.Client, upstreams: Upstreams, token: str
) -> None:
    headers = bearer(token) | {
        "X-User-Id": "admin",
        "X-User-Email": "root@example.com",
        "X-Auth-User": "admin",
        "X-Forwarded-User": "admin",
        "X-Custom": "kept",
    }

    response = gateway.get("/api/v1/orders", headers=headers)

    seen = response.json()
    names = {name for name, _ in seen["headers"]}
    assert Upstream.header(seen, "authorization") == [f"Bearer {token}"]
    assert not names & {"x-user-id", "x-user-email", "x-auth-user", "x-forwarded-user"}
    assert Upstream.header(seen, "x-custom") == ["kept"]


def test_query_body_method_and_status_are_forwarded(gateway: httpx.Client, token: str) -> None:
    response = gateway.post(
        "/api/v1/orders/x%2Fy",
        params={"status": "409", "q": "a b&c"},
        content=b'{"items": [{"sku": "sku-1", "quantity": 2}]}',
        headers=bearer(token) | {"Content-Type": "application/json", "Idempotency-Key": "k-1"},
    )

    assert response.status_code == 409
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/api/v1/orders/x%2Fy"
    assert seen["query_string"] == "status=409&q=a+b%26c"
    assert seen["body"] == '{"items": [{"sku": "sku-1", "quantity": 2}]}'
    assert Upstream.header(seen, "content-type") == ["application/json"]
    assert Upstream.header(seen, "idempotency-key") == ["k-1"]
    assert Upstream.header(seen, "content-length") == [str(len(seen["body"]))]


def test_hop_by_hop_headers_are_not_forwarded_either_way(gateway: httpx.Client, token: str) -> None:
    response = gateway.get(
        "/api/v1/orders",
        headers=bearer(token) | {"Connection": "keep-alive, X-Secret", "X-Secret": "1", "TE": "x"},
    )

    seen = response.json()
    names = {name for name, _ in seen["headers"]}
    assert not names & {"x-secret", "te", "keep-alive"}
    assert response.headers.get("connection") != "keep-alive, X-Secret"
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) == 1


def test_forwarded_headers_describe_the_caller(gateway: httpx.Client, token: str) -> None:
    response = gateway.get(
        "/api/v1/orders",
        headers=bearer(token) | {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=1.2.3.4"},
    )

    seen = response.json()
    assert Upstream.header(seen, "x-forwarded-for") == ["127.0.0.1"]
    assert Upstream.header(seen, "forwarded") == []
    assert Upstream.header(seen, "x-forwarded-proto") == ["http"]
    assert Upstream.header(seen, "x-forwarded-host") == [gateway.base_url.netloc.decode()]


def test_request_id_is_made_forwarded_and_echoed(gateway: httpx.Client) -> None:
    response = gateway.get("/api/v1/products")

    request_id = response.headers["x-request-id"]
    assert len(request_id) >= 16
    assert Upstream.header(response.json(), "x-request-id") == [request_id]


def test_callers_request_id_is_kept_forwarded_and_echoed(gateway: httpx.Client) -> None:
    response = gateway.get("/api/v1/products", headers={"X-Request-ID": "trace-abc.123"})

    assert response.headers["x-request-id"] == "trace-abc.123"
    assert Upstream.header(response.json(), "x-request-id") == ["trace-abc.123"]


def test_unsafe_request_id_is_replaced_before_forwarding(gateway: httpx.Client) -> None:
    response = gateway.get("/api/v1/products", headers={"X-Request-ID": "bad id <script>"})

    request_id = response.headers["x-request-id"]
    assert request_id != "bad id <script>"
    assert Upstream.header(response.json(), "x-request-id") == [request_id]


def test_large_response_streams_through(gateway: httpx.Client) -> None:
    response = gateway.get("/api/v1/products/stream")

    assert response.status_code == 200
    assert response.content == b"x" * 1_000_000


def test_body_over_the_limit_is_413(gateway: httpx.Client, token: str) -> None:
    response = gateway.post("/api/v1/orders", content=b"x" * 70_000, headers=bearer(token))

    assert response.status_code == 413
    assert error_of(response) == "request body too large"


def test_upstream_cookies_are_not_shared_between_callers(
    start_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    # By host name: a client cookie jar ignores cookies set by a bare IP address.
    orders = upstreams.urls["orders"].replace("127.0.0.1", "localhost")
    gateway = start_gateway(orders_url=orders)
    first = gateway.get("/api/v1/products/cookie")
    gateway.cookies.clear()

    second = gateway.get("/api/v1/products")

    assert first.headers["set-cookie"].startswith("session=secret")
    assert Upstream.header(second.json(), "cookie") == []


def test_slow_upstream_is_504_within_the_timeout(gateway: httpx.Client, token: str) -> None:
    started = time.monotonic()

    response = gateway.get("/api/v1/orders/slow", params={"sleep": "5"}, headers=bearer(token))

    assert response.status_code == 504
    assert "orders" in response.json()["detail"]
    assert time.monotonic() - started < 2.5  # the gateway's timeout is 1 s


def test_refused_upstream_is_503_naming_the_service(
    start_gateway: GatewayFactory, token: str
) -> None:
    gateway = start_gateway(payments_url=f"http://127.0.0.1:{closed_port()}")

    response = gateway.get("/api/v1/payments", headers=bearer(token))

    assert response.status_code == 503
    assert response.json()["detail"] == "service unavailable: payments (cannot connect)"


@pytest.fixture(
    params=[b"", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"]
)
def raw_upstream(request: pytest.FixtureRequest) -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream([(request.param, "close")])
    yield server
    server.close()


def test_broken_upstream_is_502(
    start_gateway: GatewayFactory, raw_upstream: ScriptedUpstream, token: str
) -> None:
    gateway = start_gateway(notifications_url=raw_upstream.url)

    response = gateway.get("/api/v1/notifications", headers=bearer(token))

    assert response.status_code == 502
    assert "notifications" in response.json()["detail"]


def test_a_trusted_proxys_forwarded_headers_name_the_caller(start_gateway: GatewayFactory) -> None:
    # FORWARDED_ALLOW_IPS=127.0.0.1: the test client is, here, the Ingress in front.
    gateway = start_gateway(forwarded_allow_ips="127.0.0.1")

    response = gateway.get(
        "/api/v1/products",
        headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "https"},
    )

    seen = response.json()
    assert Upstream.header(seen, "x-forwarded-for") == ["203.0.113.9"]
    assert Upstream.header(seen, "x-forwarded-proto") == ["https"]
