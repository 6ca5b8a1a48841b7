"""Read state of notifications, on SQLite and on PostgreSQL: unread until its owner marks it
read (once, whatever the retries), an unread filter whose page total is the badge's count, and
nobody else's notification to be found."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from microshop.events import PaymentSucceeded
from microshop.platform.auth import KeyPair, Principal, TokenIssuer

ALICE, BOB = "user-alice", "user-bob"
Call = Callable[..., httpx.Response]


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def call(client: TestClient, keys: KeyPair) -> Call:
    """`call("GET", path, user=…)` with that user's access token."""
    issuer = TokenIssuer(keys.private_pem, ttl_seconds=60)

    def send(method: str, path: str, user: str = ALICE, **kwargs: Any) -> httpx.Response:
        token = issuer.issue(Principal(user_id=user, email=f"{user}@example.com"))
        headers = {"Authorization": f"Bearer {token}"}
        return client.request(method, f"/api/v1/notifications{path}", headers=headers, **kwargs)

    return send


@pytest.fixture
def notify(client: TestClient) -> Callable[..., None]:
    """What the payment.succeeded handler does for one paid order."""
    store = client.app.state.runtime.store  # type: ignore[attr-defined]

    def paid(order_id: str, user: str = ALICE) -> None:
        event = PaymentSucceeded(
            payment_id=str(uuid.uuid4()),
            order_id=order_id,
            user_id=user,
            amount_cents=1234,
            currency="EUR",
        )
        assert store.notify_paid_once(event)

    return paid


def unread(call: Call, user: str = ALICE, **params: Any) -> dict[str, Any]:
    response = call("GET", "", user=user, params={"unread": "true", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_new_notification_is_unread_and_the_list_is_a_page(
    call: Call, notify: Callable[..., None]
) -> None:
    notify("order-1")

    everything = call("GET", "")
    assert everything.status_code == 200
    body = everything.json()
    assert set(body) == {"items", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (1, 20, 0)
    [item] = body["items"]
    assert item["order_id"] == "order-1" and item["read_at"] is None
    assert unread(call)["total"] == 1


def test_marking_read_takes_it_out_of_the_unread_count_and_keeps_it_in_the_list(
    call: Call, notify: Callable[..., None]
) -> None:
    notify("order-1")
    [item] = unread(call)["items"]

    marked = call("POST", f"/{item['id']}/read")

    assert marked.status_code == 200
    read_at = datetime.fromisoformat(marked.json()["read_at"])
    assert read_at.tzinfo is not None
    assert datetime.fromisoformat(item["created_at"]) <= read_at
    assert unread(call) == {"items": [], "total": 0, "limit": 20, "offset": 0}
    [kept] = call("GET", "").json()["items"]
    assert kept["id"] == item["id"] and kept["read_at"] == marked.json()["read_at"]


def test_marking_read_again_answers_the_same_and_keeps_the_first_time(
    call: Call, notify: Callable[..., None]
) -> None:
    notify("order-1")
    [item] = unread(call)["items"]

    first = call("POST", f"/{item['id']}/read")
    again = call("POST", f"/{item['id']}/read")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert unread(call)["total"] == 0


def test_another_users_notification_is_not_found_and_stays_unread(
    call: Call, notify: Callable[..., None]
) -> None:
    notify("order-1", user=BOB)
    [bobs] = unread(call, user=BOB)["items"]

    response = call("POST", f"/{bobs['id']}/read", user=ALICE)

    assert response.status_code == 404
    assert response.json()["detail"] == f"notification {bobs['id']} not found"
    assert unread(call, user=BOB)["total"] == 1
    assert call("POST", f"/{uuid.uuid4()}/read").status_code == 404


def test_the_unread_total_counts_every_unread_one_not_only_the_page(
    call: Call, notify: Callable[..., None]
) -> None:
    for n in range(4):
        notify(f"order-{n}")
    notify("order-bob", user=BOB)
    oldest = call("GET", "", params={"offset": 3}).json()["items"][0]
    newest = call("GET", "", params={"limit": 1}).json()["items"][0]
    for item in (oldest, newest):
        assert call("POST", f"/{item['id']}/read").status_code == 200

    page = unread(call, limit=1, offset=1)

    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 1)
    assert [n["order_id"] for n in page["items"]] == ["order-1"]
    assert [n["order_id"] for n in unread(call)["items"]] == ["order-2", "order-1"]
    assert call("GET", "").json()["total"] == 4


def test_marking_read_needs_a_token(
    client: TestClient, call: Call, notify: Callable[..., None]
) -> None:
    notify("order-1")
    [item] = unread(call)["items"]

    response = client.post(f"/api/v1/notifications/{item['id']}/read")

    assert response.status_code == 401
    assert unread(call)["total"] == 1


def test_an_unread_filter_that_is_not_a_boolean_is_refused(call: Call) -> None:
    response = call("GET", "", params={"unread": "perhaps"})

    assert response.status_code == 422
    assert "unread" in response.text
