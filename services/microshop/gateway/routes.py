"""Which service owns each /api/v1 path, and which routes a caller may use without a token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from microshop.registry import API_PREFIX, BACKENDS

# Path prefix -> the service that owns it, and the routes open without a token: the registry's.
ROUTES: tuple[tuple[str, str], ...] = tuple(
    (prefix, service.name) for service in BACKENDS for prefix in service.routes
)
_PUBLIC_EXACT = frozenset(
    (method, route.path)
    for service in BACKENDS
    for route in service.public
    if not route.subtree
    for method in route.methods
)
_PUBLIC_PREFIX: tuple[tuple[frozenset[str], str], ...] = tuple(
    (route.methods, route.path) for service in BACKENDS for route in service.public if route.subtree
)


def under(path: str, prefix: str) -> bool:
    """True when `path` is `prefix` or below it (at a "/"), never a longer sibling name."""
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


# What the edge does with a request, decided from its method and path alone.
NOT_FOUND, PUBLIC, TOKEN_NEEDED = "not found", "public", "token needed"
# Decisions remembered (paths carry ids, so this is bounded: cleared when full), for paths of
# up to _DECIDED_PATH_MAX characters.
_DECISIONS_KEPT = 4096
_DECIDED_PATH_MAX = 512


@dataclass(frozen=True)
class Route:
    prefix: str
    service: str


Decision = tuple[Route | None, str, str]
"""The route (None: none), its metrics label, and NOT_FOUND, PUBLIC or TOKEN_NEEDED."""


class RouteTable:
    """The routes and the public-route policy, checked on every request (so kept small)."""

    def __init__(
        self,
        routes: Iterable[tuple[str, str]] = ROUTES,
        public_exact: Iterable[tuple[str, str]] = _PUBLIC_EXACT,
        public_prefix: Iterable[tuple[Iterable[str], str]] = _PUBLIC_PREFIX,
    ) -> None:
        self.routes = tuple(Route(prefix, service) for prefix, service in routes)
        self.services = tuple(dict.fromkeys(route.service for route in self.routes))
        self._public_exact = frozenset(public_exact)
        self._public_prefix = tuple((frozenset(m), prefix) for m, prefix in public_prefix)
        # Every prefix is /api/v1/<name>: one dict lookup on <name> finds the only candidate.
        self._by_name = {route.prefix.rsplit("/", 1)[1]: route for route in self.routes}
        self._base = {route.prefix.rsplit("/", 1)[0] + "/" for route in self.routes}
        if len(self._base) != 1:
            raise ValueError("every route prefix must sit directly under one base path")
        self._base_length = len(next(iter(self._base)))
        # What `decide` remembered, by (method, path): a caller may look here first (the
        # dict is only ever cleared, never replaced).
        self.decisions: dict[tuple[str, str], Decision] = {}

    def decide(self, method: str, path: str) -> Decision:
        """Route, label and verdict of a request: `match`, the dot-segment check and
        `is_public` together, remembered per (method, path) since a dict lookup costs less
        than asking them again on every request."""
        key = (method, path)
        decision = self.decisions.get(key)
        if decision is not None:
            return decision
        route = self.match(path)
        if route is None:
            decision = (None, "unmatched", NOT_FOUND)
        elif has_dot_segment(path):
            decision = (route, route.prefix, NOT_FOUND)
        elif self.is_public(method, path):
            decision = (route, route.prefix, PUBLIC)
        else:
            decision = (route, route.prefix, TOKEN_NEEDED)
        if len(path) <= _DECIDED_PATH_MAX:
            if len(self.decisions) >= _DECISIONS_KEPT:
                self.decisions.clear()
            self.decisions[key] = decision
        return decision

    def match(self, path: str) -> Route | None:
        """The route owning `path`, or None (a 404)."""
        name = path[self._base_length :].partition("/")[0]
        route = self._by_name.get(name)
        if route is not None and under(path, route.prefix):
            return route
        return None

    def is_public(self, method: str, path: str) -> bool:
        """True for the routes a caller may use without a bearer token.

        OPTIONS on any route: its answer (204 and `Allow`, from the service's middleware, no
        route runs) tells what the public OpenAPI document already tells.
        """
        if method == "OPTIONS":
            return True
        path = path.rstrip("/") or "/"
        if (method, path) in self._public_exact:
            return True
        for methods, prefix in self._public_prefix:
            if method in methods and under(path, prefix):
                return True
        return False


def service_for(path: str) -> str | None:
    """The service owning `path` in the registry's routes, or None."""
    route = _DEFAULT.match(path)
    return route.service if route is not None else None


def is_public(method: str, path: str) -> bool:
    """The registry's public-route policy (what the gateway enforces and the OpenAPI shows)."""
    return _DEFAULT.is_public(method, path)


def has_dot_segment(path: str) -> bool:
    """Routing and the public-route check must see the path the upstream will route on."""
    return "/." in path and any(segment in (".", "..") for segment in path.split("/"))


_DEFAULT = RouteTable()
__all__ = [
    "API_PREFIX",
    "NOT_FOUND",
    "PUBLIC",
    "ROUTES",
    "TOKEN_NEEDED",
    "Decision",
    "Route",
    "RouteTable",
    "has_dot_segment",
    "is_public",
    "service_for",
    "under",
]
