"""The users service through its HTTP API: sign-up, tokens, and who the caller is."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from microshop.platform.auth import KeyPair, Principal, TokenIssuer, generate_key_pair
from microshop.users.models import User

ALICE = {"email": "alice@example.com", "password": "correct horse", "name": "Alice"}
BAD_CREDENTIALS = {"detail": "incorrect email or password"}


NOT_OURS = "the token's signature does not verify: it was not signed by this shop"


def register(client: TestClient, **overrides: str) -> httpx.Response:
    return client.post("/api/v1/users", json={**ALICE, **overrides})


def log_in(client: TestClient, email: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/token", data={"username": email, "password": password})


def me(client: TestClient, token: str) -> httpx.Response:
    return client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})


def stored_user(client: TestClient, email: str) -> User:
    with client.app.state.runtime.sessions() as session:  # type: ignore[attr-defined]
        return session.scalars(select(User).where(User.email == email)).one()


def test_register_returns_the_new_user_without_the_password(client: TestClient) -> None:
    response = register(client)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "name", "created_at"}
    assert body["email"] == "alice@example.com"
    assert body["name"] == "Alice"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


def test_register_stores_the_email_lower_case(client: TestClient) -> None:
    response = register(client, email="Alice@Example.COM")

    assert response.status_code == 201
    assert response.json()["email"] == "alice@example.com"


def test_register_stores_an_argon2id_hash_not_the_password(client: TestClient) -> None:
    register(client)

    stored = stored_user(client, "alice@example.com")
    assert stored.password_hash.startswith("$argon2id$")
    assert ALICE["password"] not in stored.password_hash


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@example.com"])
def test_register_a_taken_email_is_a_conflict(client: TestClient, email: str) -> None:
    assert register(client).status_code == 201

    response = register(client, email=email, name="Another Alice")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "a user with this email already exists",
        "request_id": response.headers["x-request-id"],
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", "alice@"),
        ("email", ""),
        ("password", "7-chars"),
        ("password", "x" * 129),
        ("name", ""),
        ("name", "   "),
        ("name", "n" * 101),
    ],
)
def test_register_rejects_invalid_fields(client: TestClient, field: str, value: str) -> None:
    response = register(client, **{field: value})

    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["errors"]]
    assert locations == [["body", field]]


@pytest.mark.parametrize("field", ["email", "password", "name"])
def test_register_requires_every_field(client: TestClient, field: str) -> None:
    body = {k: v for k, v in ALICE.items() if k != field}

    response = client.post("/api/v1/users", json=body)

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", field]
    assert response.json()["errors"][0]["type"] == "missing"


def test_password_of_exactly_eight_characters_is_accepted(client: TestClient) -> None:
    assert register(client, password="8 chars!").status_code == 201


def test_register_then_log_in_then_read_me(client: TestClient) -> None:
    user = register(client).json()

    login = log_in(client, "alice@example.com", ALICE["password"])

    assert login.status_code == 200
    token = login.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    response = me(client, token["access_token"])
    assert response.status_code == 200
    assert response.json() == user


def test_log_in_ignores_the_case_of_the_email(client: TestClient) -> None:
    register(client)

    assert log_in(client, "ALICE@Example.com", ALICE["password"]).status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("alice@example.com", "wrong password"), ("nobody@example.com", ALICE["password"])],
    ids=["wrong-password", "unknown-email"],
)
def test_log_in_with_bad_credentials_is_unauthorized_and_says_no_more(
    client: TestClient, email: str, password: str
) -> None:
    register(client)

    response = log_in(client, email, password)

    assert response.status_code == 401
    assert response.json() == {**BAD_CREDENTIALS, "request_id": response.headers["x-request-id"]}
    assert response.headers["www-authenticate"] == "Bearer"


def test_log_in_requires_the_form_fields(client: TestClient) -> None:
    response = client.post("/api/v1/auth/token", data={"username": "alice@example.com"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    "older",
    [
        PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1),
        PasswordHasher(),  # argon2-cffi's defaults (64 MiB), which the shop used before
    ],
)
def test_log_in_rehashes_with_owasps_parameters(client: TestClient, older: PasswordHasher) -> None:
    register(client)
    with client.app.state.runtime.sessions.begin() as session:  # type: ignore[attr-defined]
        session.execute(update(User).values(password_hash=older.hash(ALICE["password"])))

    assert log_in(client, ALICE["email"], ALICE["password"]).status_code == 200

    upgraded = stored_user(client, ALICE["email"]).password_hash
    # OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 degree of parallelism
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert log_in(client, ALICE["email"], ALICE["password"]).status_code == 200


def _token_for(client: TestClient) -> str:
    register(client)
    return str(log_in(client, ALICE["email"], ALICE["password"]).json()["access_token"])


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_me_without_a_token_is_unauthorized(client: TestClient) -> None:
    response = client.get("/api/v1/users/me")

    assert response.status_code == 401
    assert response.json() == {
        "detail": "invalid or missing access token: missing bearer token",
        "request_id": response.headers["x-request-id"],
    }
    assert response.headers["www-authenticate"] == "Bearer"


def test_me_with_an_expired_token_is_unauthorized(client: TestClient, keys: KeyPair) -> None:
    user = register(client).json()
    expired = TokenIssuer(keys.private_pem, ttl_seconds=-120).issue(
        Principal(user_id=user["id"], email=user["email"])
    )

    response = me(client, expired)

    assert response.status_code == 401
    assert response.json() == {
        "detail": "invalid or missing access token: the token has expired (exp)",
        "request_id": response.headers["x-request-id"],
    }


def test_me_with_a_tampered_token_is_unauthorized(client: TestClient) -> None:
    response = me(client, _tamper(_token_for(client)))

    assert response.status_code == 401
    assert response.json() == {
        "detail": f"invalid or missing access token: {NOT_OURS}",
        "request_id": response.headers["x-request-id"],
    }


def test_me_with_a_token_signed_by_another_key_is_unauthorized(client: TestClient) -> None:
    user = register(client).json()
    stranger = TokenIssuer(generate_key_pair().private_pem, ttl_seconds=60)

    response = me(client, stranger.issue(Principal(user_id=user["id"], email=user["email"])))

    assert response.status_code == 401
    assert response.json() == {
        "detail": f"invalid or missing access token: {NOT_OURS}",
        "request_id": response.headers["x-request-id"],
    }


def test_me_with_a_non_bearer_scheme_is_unauthorized(client: TestClient) -> None:
    token = _token_for(client)

    response = client.get("/api/v1/users/me", headers={"Authorization": f"Basic {token}"})

    assert response.status_code == 401
    assert response.json()["detail"].startswith("invalid or missing access token")


def test_me_for_a_user_that_no_longer_exists_is_not_found(client: TestClient) -> None:
    token = _token_for(client)
    with client.app.state.runtime.sessions.begin() as session:  # type: ignore[attr-defined]
        session.execute(delete(User))

    response = me(client, token)

    assert response.status_code == 404
    assert response.json() == {
        "detail": "user not found",
        "request_id": response.headers["x-request-id"],
    }


def test_ready_once_the_database_is_migrated(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == [
        "database"
    ]  # users has no bus: a broker outage must not make it unready
