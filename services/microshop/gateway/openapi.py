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
ERROR_REF = "#/components/schemas/Error"

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
                "503": {
                    "description": "not ready; `detail` names the services that are down",
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                },
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
    document_errors(schema)
    link_the_flow(schema)
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


# The one error body of every process (platform/errors.py error_body).
ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {
        "title": "Error",
        "type": "object",
        "description": (
            "Every error, from the gateway or a service. `detail` says what is wrong; "
            "`request_id` (also the X-Request-ID header) finds its log lines; a 422 about "
            "particular inputs lists them in `errors`."
        ),
        "required": ["detail", "request_id"],
        "properties": {
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
        },
    },
    "FieldError": {
        "title": "FieldError",
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "description": 'Where: ["body", "items", 0, "quantity"], ["query", "limit"]',
            },
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    },
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
# Why each status may come back; which operations it applies to is decided in `_statuses`.
_ERRORS: dict[str, str] = {
    "400": "The body is not valid JSON, or nests deeper than the server allows",
    "401": "No bearer token, or one that is invalid or expired (`detail` says which check failed)",
    "404": "Nothing with this id that the caller may see",
    "408": "The request did not arrive in time",
    "413": "The request body is too large",
    "414": "The URL is too long",
    "415": "The body is not in a media type this operation reads",
    "422": "A value is invalid; `errors` names each field",
    "431": "A header field, or the whole head, is too large",
    "502": "The service behind the gateway sent an invalid answer",
    "503": "The service, or one it needs, is unavailable for now; see Retry-After",
    "504": "The service behind the gateway did not answer in time",
}
_EVERY_REQUEST = ("408", "414", "431", "502", "503", "504")


def _statuses(operation: dict[str, Any]) -> list[str]:
    statuses = list(_EVERY_REQUEST)
    parameters = operation.get("parameters", [])
    if operation.get("security"):
        statuses.append("401")
    if "requestBody" in operation:
        statuses += ["400", "413", "415", "422"]
    if parameters:
        statuses.append("422")
    if any(p.get("in") == "path" for p in parameters):
        statuses.append("404")
    return statuses


def document_errors(schema: dict[str, Any]) -> None:
    """Every status each /api operation can answer, each with the one error schema the
    processes send (FastAPI documents only 422, with a body no service sends)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(ERROR_SCHEMAS)
    for path, item in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in _statuses(operation):
                responses.setdefault(status, {"description": _ERRORS[status]})
            for status, response in responses.items():
                if not status.startswith(("4", "5")):
                    continue
                response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
                if status in ("429", "503"):
                    response.setdefault("headers", {}).update(_RETRY_AFTER)
                if status == "401":
                    response.setdefault("headers", {})["WWW-Authenticate"] = {
                        "description": "Bearer",
                        "schema": {"type": "string"},
                    }
            operation["responses"] = dict(sorted(responses.items()))


# The stateful flow a client follows (and schemathesis's stateful phase with it):
# register -> token -> order -> the order, its payment, the notifications.
# (method, path, status) -> link name -> (method, path of the target, what the link passes)
_ITS_PAYMENTS = (
    "get",
    "/api/v1/payments",
    {"parameters": {"query.order_id": "$response.body#/id"}},
)
_FLOW: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, Any]]]] = {
    ("post", "/api/v1/users", "201"): {
        "LogIn": (
            "post",
            "/api/v1/auth/token",
            {
                "requestBody": {
                    "username": "$request.body#/email",
                    "password": "$request.body#/password",
                }
            },
        ),
    },
    ("post", "/api/v1/auth/token", "200"): {
        "ReadMe": (
            "get",
            "/api/v1/users/me",
            {"parameters": {"header.Authorization": "Bearer {$response.body#/access_token}"}},
        ),
    },
    ("post", "/api/v1/orders", "202"): {
        "ReadOrder": (
            "get",
            "/api/v1/orders/{order_id}",
            {"parameters": {"path.order_id": "$response.body#/id"}},
        ),
        "ListItsPayments": _ITS_PAYMENTS,
    },
    ("get", "/api/v1/orders/{order_id}", "200"): {
        "ListItsPayments": _ITS_PAYMENTS,
        "ListNotifications": ("get", "/api/v1/notifications", {"parameters": {"query.offset": 0}}),
    },
    ("get", "/api/v1/notifications", "200"): {
        "MarkTheNewestRead": (
            "post",
            "/api/v1/notifications/{notification_id}/read",
            {"parameters": {"path.notification_id": "$response.body#/items/0/id"}},
        ),
    },
    ("get", "/api/v1/payments", "200"): {
        "ReadThePaidOrder": (
            "get",
            "/api/v1/orders/{order_id}",
            {"parameters": {"path.order_id": "$response.body#/items/0/order_id"}},
        ),
    },
}


def link_the_flow(schema: dict[str, Any]) -> None:
    """OpenAPI links for the flow in `_FLOW`, by the targets' operation ids."""
    paths = schema.get("paths", {})
    for (method, path, status), links in _FLOW.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        for name, (target_method, target_path, passed) in links.items():
            target = paths.get(target_path, {}).get(target_method)
            if target is None:
                continue
            response.setdefault("links", {})[name] = {
                "operationId": target["operationId"],
                **passed,
            }
