"""The users service's ASGI app: its database and the key that signs access tokens."""

from __future__ import annotations

from fastapi import FastAPI

from microshop import registry
from microshop.platform.auth import TokenIssuer
from microshop.platform.runtime import create_sql_service_app
from microshop.users.settings import UsersSettings
from microshop.users.store import UserStore


def token_issuer(settings: UsersSettings) -> TokenIssuer:
    if not settings.jwt_private_key:
        raise RuntimeError(
            "MICROSHOP_JWT_PRIVATE_KEY is not set: the users service signs access tokens"
        )
    return TokenIssuer(settings.jwt_private_key, settings.access_token_ttl_seconds)


def create_app(settings: UsersSettings | None = None) -> FastAPI:
    settings = settings or UsersSettings()
    issuer = token_issuer(settings)
    app = create_sql_service_app(
        service=registry.service("users"),
        settings=settings,
        store=lambda runtime: UserStore(runtime.sessions),
    )
    app.state.token_issuer = issuer
    return app
