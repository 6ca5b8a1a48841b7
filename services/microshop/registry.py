"""The services of the shop, each listed once: its routes, what is public, how it is built and run.

The gateway's routing and public-route policy, its OpenAPI document, the standalone shop,
`python -m microshop` and the gateway's upstream settings are all read from `SERVICES`. Adding a
service is one entry here plus its folder `microshop/<name>/` (settings.py, app.py, api.py).
Only names live here, never imports of the services: the gateway loads no service's code to
route to it. The operator keeps its own copy (it cannot import this package); a test holds the
two together.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from microshop.platform.settings import ServiceSettings

API_PREFIX = "/api/v1"

Database = Literal["postgresql", "mongodb"]


@dataclass(frozen=True)
class PublicRoute:
    """Requests a caller may make without a bearer token: `methods` on `path` (and, with
    `subtree`, on anything below it)."""

    methods: frozenset[str]
    path: str
    subtree: bool = False


def _load(path: str) -> Any:
    """The object at "package.module:attribute", imported only when it is asked for."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Service:
    name: str
    # Where standalone mode puts it: the gateway's port plus this (the gateway is 0).
    port_offset: int
    # Path prefixes the gateway forwards to it; a prefix matches itself and anything below "/".
    routes: tuple[str, ...] = ()
    public: tuple[PublicRoute, ...] = ()
    # Its own database (a cluster's engine; standalone uses SQLite).
    database: Database | None = None
    # It publishes or consumes events.
    bus: bool = False
    # It holds the private key that signs access tokens.
    signs_tokens: bool = False
    # "module:attribute" of its pydantic-settings class and of its `create_app(settings)`;
    # by default where every service keeps them: microshop/<name>/settings.py and app.py.
    settings: str = ""
    app: str = ""

    def __post_init__(self) -> None:
        if not self.settings:
            default = f"microshop.{self.name}.settings:{self.name.capitalize()}Settings"
            object.__setattr__(self, "settings", default)
        if not self.app:
            object.__setattr__(self, "app", f"microshop.{self.name}.app:create_app")

    def settings_class(self) -> type[ServiceSettings]:
        settings: type[ServiceSettings] = _load(self.settings)
        return settings

    def create_app(self, settings: ServiceSettings) -> FastAPI:
        app: FastAPI = _load(self.app)(settings)
        return app

    @property
    def api_module(self) -> str:
        """The module of its routes: microshop/<name>/api.py."""
        return f"microshop.{self.name}.api"

    def routers(self) -> list[APIRouter]:
        """The APIRouters of its api module: its app serves them, the gateway documents them.

        The contract is one `router`; a module that splits its routes over several module-level
        routers (users: `users_router`, `auth_router`) is served and documented in full.
        """
        from fastapi import APIRouter

        module = importlib.import_module(self.api_module)
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            return [router]
        return [value for value in vars(module).values() if isinstance(value, APIRouter)]

    @property
    def migrations(self) -> Path:
        """Its Alembic migrations: microshop/<name>/migrations."""
        return Path(__file__).parent / self.name / "migrations"


# Service(name, port offset, route prefixes, ...): the services, then the gateway, which starts
# last, once the services behind it serve.
GATEWAY = Service("gateway", 0)
SERVICES: tuple[Service, ...] = (
    Service(
        "users",
        1,
        (f"{API_PREFIX}/users", f"{API_PREFIX}/auth"),
        public=(
            PublicRoute(frozenset({"POST"}), f"{API_PREFIX}/users"),
            PublicRoute(frozenset({"POST"}), f"{API_PREFIX}/auth/token"),
        ),
        database="postgresql",
        # No bus: users publishes and consumes nothing, so a broker outage leaves it ready.
        signs_tokens=True,
    ),
    Service(
        "orders",
        2,
        (f"{API_PREFIX}/products", f"{API_PREFIX}/orders"),
        # Browsing the catalog needs no account.
        public=(PublicRoute(frozenset({"GET", "HEAD"}), f"{API_PREFIX}/products", subtree=True),),
        database="mongodb",
        bus=True,
    ),
    Service("payments", 3, (f"{API_PREFIX}/payments",), database="postgresql", bus=True),
    Service("notifications", 4, (f"{API_PREFIX}/notifications",), database="postgresql", bus=True),
    GATEWAY,
)
BACKENDS: tuple[Service, ...] = tuple(s for s in SERVICES if s is not GATEWAY)
NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)


def service(name: str) -> Service:
    """The registry entry of `name`; KeyError for a name that is not a service."""
    for entry in SERVICES:
        if entry.name == name:
            return entry
    raise KeyError(name)
