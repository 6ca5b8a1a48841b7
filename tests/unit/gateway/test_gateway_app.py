"""The gateway's own routes: health, readiness naming the services down, and the API docs."""

from __future__ import annotations

import sys
import time
import types

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from microshop.gateway.openapi import service_routers

from .conftest import GatewayFactory
from .support import SERVICES, closed_port


def test_healthz_answers_without_upstreams(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(users_url=f"http://127.0.0.1:{closed_port()}")

    assert gateway.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_when_every_upstream_answers(gateway: httpx.Client) -> None:
    response = gateway.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == sorted(SERVICES)


def test_readyz_names_the_upstreams_that_are_down_quickly(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(
        users_url=f"http://127.0.0.1:{closed_port()}",
        payments_url="http://192.0.2.1:9",  # TEST-NET-1: nothing answers there
    )
    started = time.monotonic()

    response = gateway.get("/readyz")

    assert response.status_code == 503
    assert response.json()["detail"] == "not ready: payments, users"
    # Both probes ran at once, each bounded by the 0.5 s readiness timeout.
    assert time.monotonic() - started < 1.5


def test_openapi_is_served_with_the_gateways_routes(gateway: httpx.Client) -> None:
    schema = gateway.get("/openapi.json").json()

    assert schema["info"]["title"] == "microshop"
    assert {"/healthz", "/readyz"} <= set(schema["paths"])
    assert "bearerAuth" in schema["components"]["securitySchemes"]
    docs = gateway.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


@pytest.fixture
def stand_in_routers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in `microshop.<service>.api` modules, as the services will provide them."""
    users = APIRouter(prefix="/api/v1/users", tags=["users"])
    auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])

    @users.post("", status_code=201)
    async def create_user() -> dict[str, str]:
        return {}

    @users.get("/me")
    async def read_me() -> dict[str, str]:
        return {}

    @auth.post("/token")
    async def issue_token() -> dict[str, str]:
        return {}

    orders = APIRouter(prefix="/api/v1", tags=["orders"])

    @orders.get("/products")
    async def list_products() -> list[str]:
        return []

    @orders.post("/orders", status_code=202)
    async def place_order() -> dict[str, str]:
        return {}

    modules = {
        "users": {"users_router": users, "auth_router": auth},  # split over two routers
        "orders": {"router": orders},
        "payments": {},  # no router: left out, not fatal
    }
    for service, attributes in modules.items():
        module = types.ModuleType(f"microshop.{service}.api")
        for name, value in attributes.items():
            setattr(module, name, value)
        monkeypatch.setitem(sys.modules, f"microshop.{service}.api", module)


def test_openapi_includes_the_services_routes_and_marks_protected_ones(
    start_gateway: GatewayFactory, stand_in_routers: None
) -> None:
    gateway = start_gateway()

    paths = gateway.get("/openapi.json").json()["paths"]

    assert {"/api/v1/users", "/api/v1/users/me", "/api/v1/products", "/api/v1/orders"} <= set(paths)
    assert "security" not in paths["/api/v1/users"]["post"]
    assert "security" not in paths["/api/v1/products"]["get"]
    assert paths["/api/v1/users/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert paths["/api/v1/orders"]["post"]["security"] == [{"bearerAuth": []}]


def test_openapi_documents_every_route_of_the_real_services(gateway: httpx.Client) -> None:
    routers, missing = service_routers()
    expected = {
        route.path
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
    }

    paths = set(gateway.get("/openapi.json").json()["paths"])

    assert missing == []
    assert expected <= paths
    assert {"/api/v1/users", "/api/v1/auth/token", "/api/v1/orders"} <= paths
