"""Secrets the operator generates once per Shop: database and bus credentials, the JWT key pair.

The operator creates these only when they are absent and never rewrites them, so a reconcile
can not rotate a password a running database already uses. Everything random comes from
`generate_secret_data`; the builders only arrange it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext

SecretKind = Literal["password", "jwt-key-pair"]
Generator = Callable[[SecretKind], dict[str, str]]

# What `microshop render` shows in place of material only the operator generates.
REDACTED = "REDACTED-generated-by-the-operator"


def generate_secret_data(kind: SecretKind) -> dict[str, str]:
    """Fresh key material: the one place the operator draws randomness."""
    if kind == "password":
        # URL-safe, so it can go into a database or AMQP URL without escaping.
        return {c.SECRET_KEY_PASSWORD: secrets.token_urlsafe(32)}
    if kind == "jwt-key-pair":
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            c.SECRET_KEY_JWT_PRIVATE: private.decode(),
            c.SECRET_KEY_JWT_PUBLIC: public.decode(),
        }
    raise ValueError(f"unknown secret kind {kind!r}")


def redacted_secret_data(kind: SecretKind) -> dict[str, str]:
    """Placeholders with the same keys as generate_secret_data, for review output."""
    if kind == "password":
        return {c.SECRET_KEY_PASSWORD: REDACTED}
    return {c.SECRET_KEY_JWT_PRIVATE: REDACTED, c.SECRET_KEY_JWT_PUBLIC: REDACTED}


def _secret(ctx: ShopContext, name: str, label_name: str, data: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": ctx.metadata(name, label_name, c.COMPONENT_SECRET),
        "type": "Opaque",
        "stringData": data,
    }


def _database_url(ctx: ShopContext, service: str, user: str, password: str) -> str:
    host = ctx.names.database(service)
    secret = quote(password, safe="")
    if c.DATABASE_ENGINES[service] == c.MONGODB:
        return f"mongodb://{user}:{secret}@{host}:{c.MONGODB_PORT}/{service}?authSource=admin"
    return f"postgresql+psycopg://{user}:{secret}@{host}:{c.POSTGRES_PORT}/{service}"


def build_database_credentials(ctx: ShopContext, service: str, generator: Generator) -> Obj:
    """The owner account of a managed database and the URL the service connects with."""
    password = generator("password")[c.SECRET_KEY_PASSWORD]
    user = service
    data = {
        c.SECRET_KEY_USERNAME: user,
        c.SECRET_KEY_PASSWORD: password,
        "database": service,
        c.SECRET_KEY_URL: _database_url(ctx, service, user, password),
    }
    return _secret(ctx, ctx.names.database_credentials(service), f"{service}-db", data)


def build_bus_credentials(ctx: ShopContext, generator: Generator) -> Obj:
    password = generator("password")[c.SECRET_KEY_PASSWORD]
    user = "microshop"
    url = f"amqp://{user}:{quote(password, safe='')}@{ctx.names.bus}:{c.RABBITMQ_AMQP_PORT}/%2F"
    data = {c.SECRET_KEY_USERNAME: user, c.SECRET_KEY_PASSWORD: password, c.SECRET_KEY_URL: url}
    return _secret(ctx, ctx.names.bus_credentials, "bus", data)


def build_jwt_key_pair(ctx: ShopContext, generator: Generator) -> Obj:
    """The Ed25519 pair: users signs access tokens, every service verifies them."""
    return _secret(ctx, ctx.names.jwt, "jwt", generator("jwt-key-pair"))


def build_generated_secrets(
    shop: dict[str, Any] | ShopContext, generate: bool, *, generator: Generator | None = None
) -> list[Obj]:
    """Every Secret whose content is generated, in creation order; redacted unless `generate`.

    `generator` replaces the random source (tests pass a deterministic one).
    """
    ctx = ShopContext.parsed(shop)
    source: Generator = generator or (generate_secret_data if generate else redacted_secret_data)
    children = [build_jwt_key_pair(ctx, source)]
    for service in c.DATABASE_SERVICES:
        if not ctx.spec.databases.of(service).is_external:
            children.append(build_database_credentials(ctx, service, source))
    children.append(build_bus_credentials(ctx, source))
    return children
