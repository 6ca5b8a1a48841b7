"""A service whose database does not answer stays up, unready, and says what it waits for."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from microshop.orders.app import create_app as orders_app
from microshop.orders.settings import OrdersSettings
from microshop.payments.app import create_app as payments_app
from microshop.payments.settings import PaymentsSettings
from microshop.platform.auth import KeyPair

NOBODY_LISTENS = "postgresql+psycopg://postgres@127.0.0.1:1/payments"


def test_a_sql_service_serves_503s_naming_its_database_until_it_answers(
    keys: KeyPair, token_for: Callable[..., str]
) -> None:
    settings = PaymentsSettings(
        database_url=NOBODY_LISTENS, bus_url="memory://startup", jwt_public_key=keys.public_pem
    )
    with TestClient(payments_app(settings)) as client:  # the lifespan does not fail
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("not ready: database not reachable yet")
        listed = client.get(
            "/api/v1/payments", headers={"Authorization": f"Bearer {token_for('alice')}"}
        )
        assert listed.status_code == 503
        assert "database not reachable yet" in listed.json()["detail"]


def test_the_orders_service_waits_for_its_document_store_too(
    keys: KeyPair, token_for: Callable[..., str]
) -> None:
    settings = OrdersSettings(
        database_url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200",
        bus_url="memory://startup-orders",
        jwt_public_key=keys.public_pem,
    )
    with TestClient(orders_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        products = client.get("/api/v1/products")
        assert products.status_code == 503
        assert "database not reachable yet" in products.json()["detail"]
