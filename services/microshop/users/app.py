"""The users service's ASGI app: its database and the key that signs access tokens."""

from __future__ import annotations

import functools

from fastapi import FastAPI

from microshop import registry
from microshop.platform.auth import TokenIssuer
from microshop.platform.runtime import create_sql_service_app
from microshop.users.passwords import PasswordHashing
from microshop.users.settings import UsersSettings
from microshop.users.store import UserStore
from microshop.users.throttle import BackoffPolicy, LoginThrottle


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
    # Its threads start with the first hash and stop with the process.
    app.state.password_hashing = PasswordHashing(
        settings.password_hashing_workers, settings.password_hashing_queue
    )
    app.state.login_throttle = functools.partial(
        LoginThrottle,
        per_account=backoff(settings, settings.login_failures_per_account),
        per_client=backoff(settings, settings.login_failures_per_client),
    )
    return app


def backoff(settings: UsersSettings, free_failures: int) -> BackoffPolicy:
    return BackoffPolicy(
        free_failures=free_failures,
        base_seconds=settings.login_backoff_base_seconds,
        max_seconds=settings.login_backoff_max_seconds,
        window_seconds=settings.login_failure_window_seconds,
    )
