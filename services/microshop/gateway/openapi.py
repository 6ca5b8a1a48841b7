"""OpenAPI of the public API, generated from the services' own routers (one source of truth)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from microshop.gateway.routes import is_public
from microshop.registry import BACKENDS

log = logging.getLogger(__name__)

BEARER_SCHEME = "bearerAuth"
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

_GATEWAY_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "tags": ["gateway"],
            "summary": "The gateway is alive",
            "operationId": "gateway_healthz",
            "responses": {"200": {"description": "alive"}},
        }
    },
    "/readyz": {
        "get": {
            "tags": ["gateway"],
            "summary": "Every service behind the gateway answers its /healthz",
            "operationId": "gateway_readyz",
            "responses": {
                "200": {"description": "ready"},
                "503": {"description": "not ready; `detail` names the services that are down"},
            },
        }
    },
}


def service_routers() -> tuple[list[APIRouter], list[str]]:
    """The routers of each `microshop.<service>.api`, and the services that could not be loaded."""
    routers: list[APIRouter] = []
    missing: list[str] = []
    for service in BACKENDS:
        try:
            found = service.routers()
            if not found:
                raise LookupError(f"{service.api_module} has no APIRouter")
        except Exception:
            log.warning("OpenAPI: leaving out the %s service's routes", service.name, exc_info=True)
            missing.append(service.name)
            continue
        routers.extend(found)
    return routers, missing


def build_public_schema(title: str, version: str) -> tuple[dict[str, Any], list[str]]:
    """The merged schema and the services whose routes it lacks."""
    routers, missing = service_routers()
    merged = FastAPI()
    for router in routers:
        merged.include_router(router)
    schema = get_openapi(
        title=title,
        version=version,
        description=(
            "The microshop public API, served through the gateway. Register with "
            "`POST /api/v1/users`, get a token from `POST /api/v1/auth/token`, then send "
            "`Authorization: Bearer <token>`."
        ),
        routes=merged.routes,
    )
    paths: dict[str, Any] = schema.setdefault("paths", {})
    for path, item in _GATEWAY_PATHS.items():
        paths.setdefault(path, item)
    # The gateway decides which routes need a token; say so with the same rule it enforces.
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    for path, item in paths.items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            needs_token = method in _METHODS and not is_public(method.upper(), path)
            if needs_token and "security" not in operation:
                operation["security"] = [{BEARER_SCHEME: []}]
    return schema, missing


def install_public_openapi(app: FastAPI) -> None:
    """Serve the merged schema at the app's /openapi.json (and so /docs), built on first use.

    Kept once every service's router loaded; rebuilt on the next request otherwise, so a
    service whose module failed to import is picked up when it is fixed.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema, missing = build_public_schema(app.title, app.version)
        if not missing:
            app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
