"""What a password may be, what a login costs, and how failed logins slow the next ones."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from microshop.platform.errors import Unavailable
from microshop.users.app import create_app
from microshop.users.passwords import PasswordHashing, common_passwords, password_problem
from microshop.users.settings import UsersSettings
from microshop.users.throttle import BackoffPolicy
from tests.support.polling import wait_until

ALICE = {"email": "alice@example.com", "password": "correct horse", "name": "Alice"}


def register(client: TestClient, **overrides: str) -> httpx.Response:
    return client.post("/api/v1/users", json={**ALICE, **overrides})


def log_in(
    client: TestClient, password: str, email: str = ALICE["email"], client_ip: str = "198.51.100.7"
) -> httpx.Response:
    return client.post(
        "/api/v1/auth/token",
        data={"username": email, "password": password},
        headers={"X-Forwarded-For": client_ip},
    )


@pytest.mark.parametrize(
    ("password", "why"),
    [
        (" " * 12, "only whitespace"),
        ("\t\n  \u3000   ", "only whitespace"),
        ("password", "most common"),
        ("PassWord1", "most common"),  # compared without case
        ("qwertyuiop", "most common"),
        ("alice@example.com", "your email"),
        ("ALICE@example.com", "your email"),
        ("microshop", "shop's name"),
    ],
)
def test_register_refuses_a_guessable_password_naming_the_field(
    client: TestClient, password: str, why: str
) -> None:
    response = register(client, password=password)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "password"]
    assert why in error["msg"]


def test_a_password_with_spaces_inside_is_fine(client: TestClient) -> None:
    assert register(client, password="  correct horse battery  ").status_code == 201


def test_the_shipped_list_holds_the_most_common_passwords() -> None:
    common = common_passwords()

    assert len(common) > 19_000
    assert {"123456", "password", "qwerty", "iloveyou"} <= common
    assert password_problem("a quite unusual sentence of mine") is None


@pytest.fixture
def throttled(settings: UsersSettings) -> Iterator[TestClient]:
    """Two free failures per account, five per client, then a 0.4 s block that doubles."""
    settings = settings.model_copy(
        update={
            "login_failures_per_account": 2,
            "login_failures_per_client": 5,
            "login_backoff_base_seconds": 0.4,
            "login_backoff_max_seconds": 5.0,
        }
    )
    with TestClient(create_app(settings)) as client:
        assert register(client).status_code == 201
        yield client


def test_failed_logins_block_the_account_then_the_right_password_works_again(
    throttled: TestClient,
) -> None:
    assert [log_in(throttled, "wrong guess").status_code for _ in range(3)] == [401, 401, 401]

    refused = log_in(throttled, ALICE["password"])  # even the right password, while blocked

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {
        "detail": "too many failed logins; try again in 1 s",
        "request_id": refused.headers["x-request-id"],
    }
    wait_until(
        lambda: log_in(throttled, ALICE["password"]).status_code == 200,
        timeout=5,
        interval=0.1,
        what="the right password after the block",
    )
    # A success starts the account's count again: two more free failures.
    assert [log_in(throttled, "wrong guess").status_code for _ in range(2)] == [401, 401]


def test_an_unknown_account_is_throttled_like_a_known_one(throttled: TestClient) -> None:
    statuses = [
        log_in(throttled, "x" * 9, email="nobody@example.com").status_code for _ in range(4)
    ]

    assert statuses == [401, 401, 401, 429]


def test_failed_logins_from_one_client_block_it_for_every_account(throttled: TestClient) -> None:
    for n in range(6):  # six accounts, one guess each: no account is blocked
        assert log_in(throttled, "wrong guess", email=f"user{n}@example.com").status_code == 401

    from_there = log_in(throttled, ALICE["password"])
    from_elsewhere = log_in(throttled, ALICE["password"], client_ip="203.0.113.9")

    assert from_there.status_code == 429 and "Retry-After" in from_there.headers
    assert from_elsewhere.status_code == 200


def test_the_backoff_grows_with_each_failure_up_to_its_maximum() -> None:
    policy = BackoffPolicy(free_failures=5, base_seconds=1, max_seconds=900, window_seconds=900)

    blocks = [policy.block_seconds(n) for n in range(1, 18)]

    assert blocks[:5] == [0, 0, 0, 0, 0]
    assert blocks[5:11] == [1, 2, 4, 8, 16, 32]
    assert blocks[-1] == 900


def test_failures_older_than_the_window_are_forgotten(settings: UsersSettings) -> None:
    settings = settings.model_copy(
        update={
            "login_failures_per_account": 1,
            "login_backoff_base_seconds": 600,
            "login_failure_window_seconds": 900,
        }
    )
    now = [1_000_000.0]
    app = create_app(settings)
    app.state.login_throttle = functools.partial(app.state.login_throttle, clock=lambda: now[0])
    with TestClient(app) as client:
        register(client)
        assert log_in(client, "wrong guess").status_code == 401
        now[0] += 901  # the first failure is out of the window...
        assert log_in(client, "wrong guess").status_code == 401
        assert log_in(client, ALICE["password"]).status_code == 200  # ...so this one was free
        assert log_in(client, "wrong guess").status_code == 401
        assert log_in(client, "wrong guess").status_code == 401  # within it: blocked 600 s
        assert log_in(client, ALICE["password"]).headers["Retry-After"] == "600"


def test_hashing_beyond_its_workers_and_queue_is_refused_at_once() -> None:
    hashing = PasswordHashing(workers=1, queue=1)
    release = threading.Event()

    async def scenario() -> list[object]:
        running = asyncio.ensure_future(hashing.run(release.wait))
        waiting = asyncio.ensure_future(hashing.run(lambda: "hashed"))
        await asyncio.sleep(0)
        with pytest.raises(Unavailable) as refused:
            await hashing.run(lambda: "never")
        release.set()
        return [await running, await waiting, refused.value.retry_after_seconds]

    try:
        assert asyncio.run(scenario()) == [True, "hashed", 1]
    finally:
        hashing.close()
