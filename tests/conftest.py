"""Fixtures every test group shares: signing keys and tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from microshop.platform import telemetry
from microshop.platform.auth import KeyPair, Principal, TokenIssuer, generate_key_pair


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def token_for(keys: KeyPair) -> Callable[..., str]:
    """An access token for a user id, signed like the users service signs them."""

    def make(user_id: str, email: str = "someone@example.com", ttl: int = 3600) -> str:
        return TokenIssuer(keys.private_pem, ttl).issue(Principal(user_id, email))

    return make


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this process, every ended span kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    telemetry.configure(exporter=exporter)
    try:
        yield exporter
    finally:
        telemetry.shutdown()
