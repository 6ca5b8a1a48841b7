"""HTTP method semantics FastAPI leaves out: HEAD wherever GET is, OPTIONS, a 405's whole Allow.

FastAPI routes answer exactly the methods they declare, so HEAD on a GET route is a 405, OPTIONS
is a 405, and a 405's `Allow` names the methods of the first route whose path matched, not of
every route on that path (`GET /orders` and `POST /orders` are two routes: a DELETE was told
`Allow: POST`). RFC 9110 §9.3.2 (a server that supports GET supports HEAD), §9.3.7 (OPTIONS
describes the target resource's methods) and §15.5.6 (405 lists the target's methods in
`Allow`) ask for what this module does.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Methods every resource has (answered here, never by a route).
_IMPLICIT = ("HEAD", "OPTIONS")
# A mounted app (static files) serves reads only.
_MOUNTED = frozenset({"GET", "HEAD"})


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str] | None:
    """The methods the target resource of `scope` answers, or None when no route has its path."""
    methods: set[str] = set()
    found = False
    # FastAPI keeps an included router as one route; its contexts are the routes it holds.
    for route in iter_route_contexts(list(routes)):
        match, _ = route.matches(scope)
        if match is Match.NONE:
            continue
        found = True
        if isinstance(route.original_route, Mount):
            methods |= _MOUNTED
        else:
            methods |= set(route.methods or ())
    if not found:
        return None
    if "GET" in methods:
        methods.update(_IMPLICIT)
    else:
        methods.add("OPTIONS")
    return sorted(methods)


def allow_header(routes: Iterable[BaseRoute], scope: Scope) -> str:
    return ", ".join(allowed_methods(routes, scope) or ["OPTIONS"])


class MethodSemantics:
    """ASGI middleware: OPTIONS answered 204 with `Allow` for a path some route has; HEAD served
    by the GET route with the body dropped (its Content-Length is the GET's)."""

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _IMPLICIT:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed = allowed_methods(self.routes, scope)
            if allowed is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(allowed).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
            await self.app(scope, receive, send)  # the router's 404
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
