"""Fixtures: four echo upstreams and gateways in front of them, all over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from microshop.gateway.app import create_app
from microshop.gateway.settings import GatewaySettings
from microshop.platform.auth import (
    KeyPair,
    Principal,
    TokenIssuer,
    TokenVerifier,
    generate_key_pair,
)

from .support import SERVICES, GatewayThread, ServerThread, Upstream


@dataclass
class Upstreams:
    apps: dict[str, Upstream]
    urls: dict[str, str]


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    apps = {name: Upstream(name) for name in SERVICES}
    servers = {name: ServerThread(app, lifespan="off") for name, app in apps.items()}
    for server in servers.values():
        server.__enter__()
    try:
        yield Upstreams(apps, {name: server.url for name, server in servers.items()})
    finally:
        for server in servers.values():
            server.__exit__()


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_key_pair()


@pytest.fixture(scope="session")
def verifier(keys: KeyPair) -> TokenVerifier:
    return TokenVerifier(keys.public_pem)


@pytest.fixture(scope="session")
def token(keys: KeyPair) -> str:
    return TokenIssuer(keys.private_pem, ttl_seconds=600).issue(Principal("u-1", "a@example.com"))


def gateway_settings(upstreams: Upstreams, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {f"{name}_url": url for name, url in upstreams.urls.items()}
    values |= {
        "upstream_timeout_seconds": 1.0,
        "connect_timeout_seconds": 0.5,
        "readiness_timeout_seconds": 0.5,
        "max_body_bytes": 65_536,
        # Trust no proxy in front, as for a gateway exposed directly: the peer is the caller.
        "forwarded_allow_ips": "",
    }
    return GatewaySettings(**(values | overrides))


GatewayFactory = Callable[..., httpx.Client]


@pytest.fixture(scope="session")
def start_gateway(upstreams: Upstreams, verifier: TokenVerifier) -> Iterator[GatewayFactory]:
    """Start a gateway with the given settings overrides; returns an HTTP client for it."""
    running: list[tuple[GatewayThread, httpx.Client]] = []

    def start(server: dict[str, Any] | None = None, **overrides: Any) -> httpx.Client:
        """`overrides` are GatewaySettings fields; `server` GatewayServer options (limits)."""
        app = create_app(gateway_settings(upstreams, **overrides), verifier)
        thread = GatewayThread(app, **(server or {}))
        thread.__enter__()
        client = httpx.Client(base_url=thread.url, timeout=10)
        running.append((thread, client))
        return client

    yield start
    for server, client in running:
        client.close()
        server.__exit__()


@pytest.fixture(scope="session")
def gateway(start_gateway: GatewayFactory) -> httpx.Client:
    return start_gateway()
