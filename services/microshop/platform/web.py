"""The FastAPI app every service is built on: errors as JSON, request ids, health and readiness."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import Depends, FastAPI, Request, params
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from microshop.platform.context import accept_or_make_request_id, request_id_var
from microshop.platform.errors import (
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    error_body,
    summary,
)
from microshop.platform.failures import infrastructure_failure
from microshop.platform.methods import MethodSemantics, allow_header
from microshop.platform.settings import ServiceSettings
from microshop.platform.telemetry import HttpTelemetry, ServiceTelemetry
from microshop.platform.text import UnstorableText, refuse_unstorable_path

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]
"""Raises when the dependency it checks does not answer."""

# What a 503 for an unreachable dependency tells the caller to wait before trying again.
RETRY_AFTER_SECONDS = 5


class NotReady(Exception):
    """Raised by a readiness check with a reason fit for the public port (no address, no
    exception text): shown as is by /readyz."""


def public_reason(error: BaseException) -> str:
    """What /readyz and a 503 may say about `error`: a fixed reason, never its text."""
    if isinstance(error, NotReady):
        return str(error)
    return infrastructure_failure(error) or f"failing ({type(error).__name__})"


class Outage:
    """One warning when a service's dependency starts failing its requests, one line when a
    request succeeds again: not a traceback per request while the database is away."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.reason: str | None = None
        self.failed_requests = 0

    def failed(self, reason: str, error: BaseException, method: str, path: str) -> None:
        self.failed_requests += 1
        if self.reason is None:
            self.reason = reason
            # The exception's text (it may name a host) is for the log only, never the answer.
            log.warning(
                "%s: answering 503 until it recovers (first on %s %s): %r",
                reason,
                method,
                path,
                error,
            )

    def succeeded(self) -> None:
        if self.reason is not None:
            log.warning(
                "%s: recovered after %d requests answered 503", self.reason, self.failed_requests
            )
            self.reason, self.failed_requests = None, 0


_STATUS_OF: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Unauthorized: 401,
    TooManyRequests: 429,
    Unavailable: 503,
}


class RequestIdMiddleware:
    """Accept or make X-Request-ID, keep it in context for logs, echo it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = accept_or_make_request_id(incoming)
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = next(code for kind, code in _STATUS_OF.items() if isinstance(exc, kind))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if exc.retry_after_seconds is not None:
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return error_response(status, exc.detail, headers=headers)


# Probes say nothing about the database's recovery: /healthz never touches it.
_PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class UnexpectedErrors:
    """A bug becomes a JSON 500 with the request id, logged once with its traceback; a
    dependency that does not answer (failures.py) a 503 with Retry-After, logged once per
    outage (`Outage`).

    Inside RequestIdMiddleware, so the id is still known; and it does not re-raise as
    Starlette's outermost handler does, which makes uvicorn close a keep-alive connection the
    gateway would then reuse.
    """

    def __init__(self, app: ASGIApp, outage: Outage) -> None:
        self.app, self.outage = app, outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 0

        async def send_tracking(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            reason = infrastructure_failure(exc)
            if reason is None:
                log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            else:
                self.outage.failed(reason, exc, scope["method"], scope["path"])
            if started:
                raise  # too late for a status: the server closes the connection
            if reason is None:
                response = error_response(500, "internal error")
            else:
                response = error_response(
                    503,
                    f"{reason}: try again in {RETRY_AFTER_SECONDS} s",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            await response(scope, receive, send)
            return
        if 200 <= status < 300 and scope["path"] not in _PROBE_PATHS:
            self.outage.succeeded()


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Only what escapes every middleware (UnexpectedErrors handles the routes' errors).
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


def error_response(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    **more: Any,
) -> JSONResponse:
    """An error as every service answers it (errors.error_body)."""
    body = error_body(detail, request_id_var.get(), errors, **more)
    return JSONResponse(body, status_code=status, headers=headers)


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in errors
    ]


_JSON_MEDIA = ("application/json",)
_FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")


def _expected_media(request: Request) -> tuple[str, ...] | None:
    """The media types the matched route reads its body as, or None when it reads none."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    if body_field is None:
        return None
    return _FORM_MEDIA if isinstance(body_field.field_info, params.Form) else _JSON_MEDIA


def _unsupported_media(request: Request) -> str | None:
    """Why the request's Content-Type is not one its route reads (415), or None."""
    expected = _expected_media(request)
    if expected is None:
        return None
    sent = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if expected is _JSON_MEDIA and (not sent or sent.endswith("+json")):
        return None  # FastAPI reads a body without a Content-Type as JSON
    if sent in expected:
        return None
    return f"Content-Type {sent or '(none)'!r} is not supported here; send {' or '.join(expected)}"


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    wrong_media = _unsupported_media(request)
    if wrong_media is not None:
        return error_response(415, wrong_media)
    errors = field_errors(exc.errors())
    malformed = next((e for e in errors if e["type"] == "json_invalid"), None)
    if malformed is not None:
        context = exc.errors()[0].get("ctx", {}).get("error", "")
        at = f" at position {malformed['loc'][-1]}" if len(malformed["loc"]) > 1 else ""
        return error_response(400, f"the body is not valid JSON{at}: {context}".rstrip(": "))
    return error_response(422, summary(errors), errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 405:
        headers["Allow"] = allow_header(request.app.router.routes, request.scope)
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return error_response(exc.status_code, detail, headers=headers)


def create_app(
    *,
    title: str,
    service: str,
    settings: ServiceSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: Mapping[str, ReadinessCheck] | Callable[[FastAPI], Mapping[str, ReadinessCheck]],
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the platform's error handling, request ids, telemetry (its own
    metrics registry, served on the metrics port by platform/server.py, never on this app;
    spans when tracing is configured), /healthz and /readyz."""
    # No redirect for a trailing slash: behind the gateway its Location would name an internal
    # address the caller cannot reach. `/api/v1/users/` is a plain 404 instead.
    app = FastAPI(
        title=title,
        lifespan=lifespan,
        redirect_slashes=False,
        dependencies=[Depends(refuse_unstorable_path)],
        **fastapi_kwargs,
    )
    telemetry = ServiceTelemetry.open(service, settings.otlp_endpoint)
    app.state.telemetry = telemetry
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)

    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    failing_before: dict[str, str] = {}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            checks = readiness(app) if callable(readiness) else readiness
        except Unavailable as exc:  # the lifespan is still opening the resources
            return error_response(503, f"not ready: {exc.detail}")
        except Exception as exc:
            log.warning("readiness: starting: %r", exc)
            return error_response(503, "not ready: starting")
        failing: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await run_in_threadpool(check)
            except Exception as exc:
                failing[name] = public_reason(exc)
                if failing_before.get(name) != failing[name]:
                    # Said once per change, with what /readyz must not show.
                    log.warning("readiness: %s %s: %r", name, failing[name], exc)
        failing_before.clear()
        failing_before.update(failing)
        if failing:
            return error_response(503, f"not ready: {', '.join(sorted(failing))}", failing=failing)
        return JSONResponse({"status": "ready", "checks": sorted(checks)})

    # Request ids outermost, so the server span and its log lines already have one.
    app.add_middleware(UnstorableText)
    app.add_middleware(MethodSemantics, routes=app.router.routes)
    app.state.outage = Outage(service)
    app.add_middleware(UnexpectedErrors, outage=app.state.outage)
    app.add_middleware(HttpTelemetry, telemetry=telemetry)
    app.add_middleware(RequestIdMiddleware)
    return app
