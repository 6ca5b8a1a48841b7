"""The orders service through HTTP: catalog, placing, idempotency, ownership and settlement."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from microshop.events import OrderCreated, PaymentFailed, PaymentSucceeded, parse_event
from microshop.orders.app import create_app
from microshop.orders.settings import OrdersSettings
from microshop.orders.store import OrderStore
from microshop.platform.auth import KeyPair
from microshop.platform.bus import IncomingMessage
from microshop.platform.outbox import to_message
from tests.support.polling import wait_until

VISA = "pm_card_visa"


@pytest.fixture
def bus_url() -> str:
    return f"memory://orders-test-{uuid.uuid4().hex}"


@pytest.fixture(params=["mongomock", "sqlite"])
def client(
    request: pytest.FixtureRequest, keys: KeyPair, bus_url: str, tmp_path: Path
) -> Iterator[TestClient]:
    """The service on each in-process store: mongomock and the embedded SQLite store."""
    urls = {"mongomock": "mongomock://", "sqlite": f"sqlite:///{tmp_path / 'orders.db'}"}
    settings = OrdersSettings(
        database_url=urls[request.param],
        bus_url=bus_url,
        jwt_public_key=keys.public_pem,
        outbox_poll_seconds=0.05,
        # One consumer: events are handled in the order published, so an event published last
        # drains the queue (the in-process bus's default runs 16 side by side).
        consumers_per_queue=1,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def published(client: TestClient) -> list[IncomingMessage]:
    """What the orders service publishes, as a consumer bound to order.created sees it."""
    seen: list[IncomingMessage] = []
    client.app.state.runtime.bus.subscribe("test.order-events", ["order.created"], seen.append)  # type: ignore[attr-defined]
    return seen


@pytest.fixture
def alice(token_for: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for('alice')}"}


def place(client: TestClient, headers: dict[str, str], key: str | None = None, **body: object):
    payload = {"items": [{"sku": "MUG-CLASSIC", "quantity": 2}], "payment_method": VISA, **body}
    return client.post(
        "/api/v1/orders",
        json=payload,
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


def test_catalog_is_seeded_with_integer_cent_prices(client: TestClient) -> None:
    response = client.get("/api/v1/products")
    assert response.status_code == 200
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (len(page["items"]), 100, 0)
    products = {p["sku"]: p for p in page["items"]}
    assert products["MUG-CLASSIC"] == {
        "sku": "MUG-CLASSIC",
        "name": "Classic mug",
        "price_cents": 1200,
        "currency": "EUR",
    }


def test_placing_an_order_answers_202_pending_priced_from_the_catalog(
    client: TestClient, alice: dict[str, str], published: list[IncomingMessage]
) -> None:
    response = place(client, alice, items=[{"sku": "MUG-CLASSIC", "quantity": 2}])
    assert response.status_code == 202, response.text
    order = response.json()
    assert order["status"] == "PENDING"
    assert order["total_cents"] == 2400
    assert order["items"][0]["unit_price_cents"] == 1200
    assert order["currency"] == "EUR"
    event = parse_event(wait_until(lambda: published)[0].body)
    assert isinstance(event, OrderCreated)
    assert (event.order_id, event.user_id, event.total_cents) == (order["id"], "alice", 2400)


def test_same_key_same_body_returns_the_same_order_and_one_event(
    client: TestClient, alice: dict[str, str], published: list[IncomingMessage]
) -> None:
    first = place(client, alice, key="key-1")
    again = place(client, alice, key="key-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    wait_until(lambda: published)
    other = place(client, alice, key="key-2")  # a later event proves the relay has run
    wait_until(lambda: any(parse_event(m.body).order_id == other.json()["id"] for m in published))  # type: ignore[union-attr]
    assert [parse_event(m.body).order_id for m in published].count(first.json()["id"]) == 1  # type: ignore[union-attr]
    assert client.get("/api/v1/orders", headers=alice).json()["total"] == 2


def test_same_key_with_another_body_is_a_conflict(
    client: TestClient, alice: dict[str, str]
) -> None:
    assert place(client, alice, key="k").status_code == 202
    response = place(client, alice, key="k", payment_method="pm_card_mastercard")
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]


def test_keys_are_per_user(
    client: TestClient, alice: dict[str, str], token_for: Callable[..., str]
) -> None:
    bob = {"Authorization": f"Bearer {token_for('bob')}"}
    a = place(client, alice, key="shared")
    b = place(client, bob, key="shared")
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"items": []}, {}, "items"),
        ({"items": [{"sku": "NOPE", "quantity": 1}]}, {}, "unknown sku"),
        ({"items": [{"sku": "MUG-CLASSIC", "quantity": 0}]}, {}, "quantity"),
        ({"items": [{"sku": "MUG-CLASSIC", "quantity": 101}]}, {}, "quantity"),
        ({"items": [{"sku": "MUG-CLASSIC", "quantity": "2"}]}, {}, "quantity"),
        ({"items": [{"sku": "MUG-CLASSIC", "quantity": True}]}, {}, "quantity"),
        ({"items": [{"sku": "MUG-CLASSIC", "quantity": 10**30}]}, {}, "quantity"),
        ({"items": [{"sku": 5, "quantity": 1}]}, {}, "sku"),
        ({"payment_method": "pm_card_bitcoin"}, {}, "payment_method"),
        ({}, {"Idempotency-Key": ""}, "idempotency-key"),
        ({}, {"Idempotency-Key": "x" * 256}, "idempotency-key"),
    ],
)
def test_bad_orders_are_422_with_a_reason(
    client: TestClient, alice: dict[str, str], body: dict, headers: dict, field: str
) -> None:
    payload = {"items": [{"sku": "MUG-CLASSIC", "quantity": 1}], "payment_method": VISA, **body}
    response = client.post(
        "/api/v1/orders",
        json=payload,
        headers={**alice, "Idempotency-Key": str(uuid.uuid4()), **headers},
    )
    assert response.status_code == 422
    assert field in str(response.json()["detail"]).lower()


def test_missing_idempotency_key_is_422(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "MUG-CLASSIC", "quantity": 1}], "payment_method": VISA},
        headers=alice,
    )
    assert response.status_code == 422
    assert "idempotency-key" in str(response.json()["detail"]).lower()


def test_orders_need_a_valid_token(client: TestClient, token_for: Callable[..., str]) -> None:
    assert place(client, {}).status_code == 401
    expired = {"Authorization": f"Bearer {token_for('alice', ttl=-120)}"}
    response = client.get("/api/v1/orders", headers=expired)
    assert response.status_code == 401
    assert "token" in response.json()["detail"]


def test_someone_elses_order_is_404_like_a_missing_one(
    client: TestClient, alice: dict[str, str], token_for: Callable[..., str]
) -> None:
    order_id = place(client, alice).json()["id"]
    bob = {"Authorization": f"Bearer {token_for('bob')}"}
    assert client.get(f"/api/v1/orders/{order_id}", headers=alice).status_code == 200
    theirs = client.get(f"/api/v1/orders/{order_id}", headers=bob)
    missing = client.get(f"/api/v1/orders/{uuid.uuid4()}", headers=alice)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].startswith("order ")


def test_list_is_newest_first_and_paginated(client: TestClient, alice: dict[str, str]) -> None:
    ids = [place(client, alice).json()["id"] for _ in range(5)]
    page = client.get("/api/v1/orders", params={"limit": 2, "offset": 1}, headers=alice).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [o["id"] for o in page["items"]] == [ids[3], ids[2]]
    assert client.get("/api/v1/orders", params={"limit": 0}, headers=alice).status_code == 422


def _settle(client: TestClient, event: PaymentSucceeded | PaymentFailed) -> None:
    client.app.state.runtime.bus.publish([to_message(event)])  # type: ignore[attr-defined]


def test_payment_events_settle_the_order_once(client: TestClient, alice: dict[str, str]) -> None:
    paid_id = place(client, alice).json()["id"]
    failed_id = place(client, alice).json()["id"]
    common = {"payment_id": "p", "user_id": "alice", "amount_cents": 2400, "currency": "EUR"}
    succeeded = PaymentSucceeded(order_id=paid_id, **common)
    _settle(client, succeeded)
    _settle(client, PaymentFailed(order_id=failed_id, failure_code="card_declined", **common))

    def status(order_id: str) -> dict:
        return client.get(f"/api/v1/orders/{order_id}", headers=alice).json()

    wait_until(lambda: status(paid_id)["status"] == "PAID")
    failed = wait_until(lambda: (o := status(failed_id))["status"] == "PAYMENT_FAILED" and o)
    assert failed["failure_code"] == "card_declined"

    # The same event again, and a contradicting one, change nothing.
    _settle(client, succeeded)
    _settle(client, PaymentFailed(order_id=paid_id, failure_code="card_declined", **common))
    marker = place(client, alice).json()["id"]
    _settle(client, PaymentSucceeded(order_id=marker, **common))
    wait_until(lambda: status(marker)["status"] == "PAID")  # the bus drained past the repeats
    assert status(paid_id)["status"] == "PAID"
    assert status(paid_id)["failure_code"] is None


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == ["bus", "consumers", "database"]


def test_orders_survive_a_restart_on_the_embedded_store(
    keys: KeyPair, tmp_path: Path, alice: dict[str, str]
) -> None:
    settings = OrdersSettings(
        database_url=f"sqlite:///{tmp_path / 'orders.db'}",
        bus_url=f"memory://restart-{uuid.uuid4().hex}",
        jwt_public_key=keys.public_pem,
    )
    with TestClient(create_app(settings)) as first:
        order_id = place(first, alice, key="kept").json()["id"]
    with TestClient(create_app(settings)) as second:
        assert second.get(f"/api/v1/orders/{order_id}", headers=alice).status_code == 200
        assert place(second, alice, key="kept").json()["id"] == order_id


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sqlite://orders.db", "sqlite:///relative/path"),
        ("sqlite:///", "sqlite:///relative/path"),
        ("sqlite:///:memory:", "one file shared"),
        ("redis://x", "unsupported orders database URL"),
        ("montydb:///data/orders", "sqlite:///path"),
    ],
)
def test_an_unusable_orders_database_url_is_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        OrderStore(url)


def test_head_of_the_catalog_and_no_redirect_for_a_trailing_slash(
    client: TestClient, alice: dict[str, str]
) -> None:
    head = client.head("/api/v1/products")
    assert head.status_code == 200 and head.content == b""
    # A redirect would name this service's internal address to a caller behind the gateway.
    slashed = client.get("/api/v1/orders/", headers=alice, follow_redirects=False)
    assert slashed.status_code == 404
    assert slashed.json() == {"detail": "Not Found", "request_id": slashed.headers["x-request-id"]}


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("Bearer not-a-jwt", "the token is malformed"),
        ("Bearer \u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9", "the token is malformed"),
        ("Basic YWxpY2U6cHc=", "expected 'Authorization: Bearer <token>'"),
    ],
)
def test_a_bad_token_is_a_401_with_a_plain_reason(
    client: TestClient, authorization: str, detail: str
) -> None:
    response = client.get("/api/v1/orders", headers={"Authorization": authorization.encode()})
    assert response.status_code == 401
    assert response.json()["detail"] == f"invalid or missing access token: {detail}"


def test_indexes_are_made_at_start_and_only_those_the_queries_read(keys: KeyPair) -> None:
    settings = OrdersSettings(
        database_url="mongomock://",
        bus_url=f"memory://indexes-{uuid.uuid4().hex}",
        jwt_public_key=keys.public_pem,
    )
    with TestClient(create_app(settings)) as client:
        indexes = client.app.state.runtime.store.backend.orders.index_information()  # type: ignore[attr-defined]
    made = {
        tuple(key for key, _ in spec["key"]): spec.get("unique", False) for spec in indexes.values()
    }
    # Each is rewritten on every update of an order: none beyond what a query reads. One order
    # per (user, Idempotency-Key) is the _id's (their hash), not an index's.
    assert made == {
        ("_id",): False,  # unique all the same: MongoDB's own
        ("id",): True,
        ("user_id", "created_at", "id"): False,
        ("outbox_relay_after",): False,
        ("redrive_at",): False,  # sparse: only unfinished orders have one
    }
    assert indexes["redrive_at_1"]["sparse"] is True


def test_the_indexes_an_earlier_release_made_and_nothing_reads_are_dropped() -> None:
    store = OrderStore("mongomock://")
    orders = store.backend.orders
    orders.create_index([("user_id", 1), ("idempotency_key", 1)], unique=True)
    orders.create_index([("status", 1), ("created_at", 1)])
    orders.create_index([("status", 1), ("redrive_at", 1)])
    orders.insert_one({"_id": "old", "id": "old-order", "status": "PENDING"})  # no due time
    store.prepare()
    store.prepare()  # and again on the next start: nothing left to drop
    names = set(orders.index_information())
    assert not names & {
        "user_id_1_idempotency_key_1",
        "status_1_created_at_1",
        "status_1_redrive_at_1",
    }
    assert "id_1" in names
    # The earlier release's PENDING order gets the due time new orders are placed with.
    assert orders.find_one({"_id": "old"})["redrive_at"] > 0


def test_an_order_reads_back_exactly_as_it_was_returned(
    client: TestClient, alice: dict[str, str]
) -> None:
    placed = place(client, alice).json()

    read = client.get(f"/api/v1/orders/{placed['id']}", headers=alice).json()
    listed = client.get("/api/v1/orders", headers=alice).json()["items"]

    assert read["created_at"] == placed["created_at"]
    assert read["updated_at"] == placed["updated_at"]
    assert [o["created_at"] for o in listed] == [placed["created_at"]]


@pytest.mark.parametrize("variant", [" k-1", "k-1 ", "\tk-1  "])
def test_an_idempotency_key_is_trimmed_like_any_field(
    client: TestClient, alice: dict[str, str], variant: str
) -> None:
    first = place(client, alice, key="k-1")

    again = place(client, alice, key=variant)

    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"


def test_an_idempotency_key_of_only_whitespace_is_refused(
    client: TestClient, alice: dict[str, str]
) -> None:
    response = place(client, alice, key="   ")

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "idempotency-key"]


def test_a_price_from_the_client_is_refused_not_used(
    client: TestClient, alice: dict[str, str]
) -> None:
    response = place(
        client, alice, items=[{"sku": "MUG-CLASSIC", "quantity": 2, "unit_price_cents": 1}]
    )

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["loc"], error["type"]) == (
        ["body", "items", 0, "unit_price_cents"],
        "extra_forbidden",
    )


@pytest.mark.parametrize(("quantity", "status"), [(2.0, 202), (2.5, 422), ("2", 422), (True, 422)])
def test_a_quantity_is_a_json_integer(
    client: TestClient, alice: dict[str, str], quantity: object, status: int
) -> None:
    """JSON Schema's `integer` is any number without a fraction (2.0 included); strings and
    booleans are not quantities."""
    response = place(client, alice, items=[{"sku": "MUG-CLASSIC", "quantity": quantity}])

    assert response.status_code == status, response.text
