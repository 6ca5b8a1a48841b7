"""Text a database cannot hold is a 422 naming the field, the same on SQLite and PostgreSQL.

PostgreSQL refuses U+0000 in text (a 500 before), SQLite stores it; lone surrogates cannot be
encoded at all. Both backends now answer alike, before any store is touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from microshop.orders.app import create_app as orders_app
from microshop.orders.settings import OrdersSettings
from microshop.payments.app import create_app as payments_app
from microshop.payments.settings import PaymentsSettings
from microshop.platform.auth import KeyPair, Principal, TokenIssuer, generate_key_pair
from microshop.users.app import create_app as users_app
from microshop.users.settings import UsersSettings

KEYS = generate_key_pair()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/service.db"
    else:
        yield request.getfixturevalue("bus_database")


def token(keys: KeyPair = KEYS) -> dict[str, str]:
    issued = TokenIssuer(keys.private_pem, 600).issue(Principal("u-text", "t@example.com"))
    return {"Authorization": f"Bearer {issued}"}


def refusal(location: list[str | int], why: str) -> dict[str, object]:
    return {"loc": location, "msg": f"text must {why}", "type": "string_unstorable"}


@pytest.fixture
def users(database_url: str) -> Iterator[TestClient]:
    settings = UsersSettings(
        database_url=database_url, jwt_private_key=KEYS.private_pem, jwt_public_key=KEYS.public_pem
    )
    with TestClient(users_app(settings)) as client:
        yield client


@pytest.fixture
def payments(database_url: str) -> Iterator[TestClient]:
    settings = PaymentsSettings(
        database_url=database_url,
        bus_url=f"memory://text-{uuid.uuid4().hex}",
        jwt_public_key=KEYS.public_pem,
    )
    with TestClient(payments_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "location", "why"),
    [
        ('{"email": "a@example.com", "password": "correct horse", "name": "A\\u0000B"}',
         ["body", "name"], "not contain U+0000 (NUL)"),
        ('{"email": "a@example.com", "password": "correct\\u0000horse", "name": "A"}',
         ["body", "password"], "not contain U+0000 (NUL)"),
        ('{"email": "a@example.com", "password": "correct horse", "name": "\\ud800"}',
         ["body", "name"], "not contain a lone surrogate (U+D800-U+DFFF)"),
        ('{"email": "a@example.com", "password": "correct horse", "name\\u0000": "A"}',
         ["body", "name\x00"], "not contain U+0000 (NUL)"),
    ],
)  # fmt: skip
def test_a_json_body_with_unstorable_text_is_422_naming_the_field(
    users: TestClient, body: str, location: list[str | int], why: str
) -> None:
    response = users.post(
        "/api/v1/users", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [refusal(location, why)]
    assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("form", "field", "why"),
    [
        ("username=nul%00%40example.com&password=x", "username", "not contain U+0000 (NUL)"),
        ("username=a%40example.com&password=pw%00pw", "password", "not contain U+0000 (NUL)"),
        ("username=a%ED%A0%80%40example.com&password=x", "username", "be valid UTF-8"),
    ],
)  # fmt: skip
def test_a_login_form_with_unstorable_text_is_422_naming_the_field(
    users: TestClient, form: str, field: str, why: str
) -> None:
    response = users.post(
        "/api/v1/auth/token",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [refusal(["body", field], why)]


@pytest.mark.parametrize(
    ("query", "why"),
    [("order_id=%00", "not contain U+0000 (NUL)"), ("order_id=%ED%A0%80", "be valid UTF-8")],
)
def test_a_query_with_unstorable_text_is_422_naming_the_parameter(
    payments: TestClient, query: str, why: str
) -> None:
    response = payments.get(f"/api/v1/payments?{query}", headers=token())

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [refusal(["query", "order_id"], why)]


def test_storable_text_goes_through(users: TestClient) -> None:
    body = {
        "email": f"u-{uuid.uuid4().hex[:6]}@example.com",
        "password": "caf\u00e9 au lait \U0001f600",
        "name": "Zo\u00eb \u4e2d",
    }

    assert users.post("/api/v1/users", json=body).status_code == 201


def test_a_path_with_unstorable_text_is_422_naming_the_parameter() -> None:
    settings = OrdersSettings(
        database_url="mongomock://",
        bus_url=f"memory://text-{uuid.uuid4().hex}",
        jwt_public_key=KEYS.public_pem,
    )
    with TestClient(orders_app(settings)) as orders:
        response = orders.get("/api/v1/orders/%00", headers=token())

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [refusal(["path", "order_id"], "not contain U+0000 (NUL)")]
    with TestClient(orders_app(settings)) as orders:
        invalid = orders.get("/api/v1/orders/%ED%A0%80", headers=token())
    assert invalid.json()["errors"] == [refusal(["path", "order_id"], "be valid UTF-8")]
