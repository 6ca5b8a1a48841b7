"""Failed logins slow down the next ones, per account and per client, with growing backoff.

The state lives in the users database (table `login_failures`), not in the process: every
replica sees the same counts, so more replicas do not buy an attacker more guesses, and a
restart forgets nothing. Keys are hashes of the account's email and of the client's address,
so the table holds no personal data.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from microshop.users.domain import normalise_email
from microshop.users.models import LoginFailures


@dataclass(frozen=True)
class BackoffPolicy:
    """`free_failures` failures in a row cost nothing; each one after that blocks the key for
    `base_seconds`, doubling up to `max_seconds`. Failures older than `window_seconds` are
    forgotten."""

    free_failures: int
    base_seconds: float
    max_seconds: float
    window_seconds: float

    def block_seconds(self, failures: int) -> float:
        beyond = failures - self.free_failures
        if beyond <= 0:
            return 0.0
        return float(min(self.base_seconds * 2 ** min(beyond - 1, 64), self.max_seconds))


def account_key(email: str) -> str:
    return "account:" + hashlib.sha256(normalise_email(email).encode()).hexdigest()


def client_key(address: str) -> str:
    return "client:" + hashlib.sha256(address.encode()).hexdigest()


class LoginThrottle:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        per_account: BackoffPolicy,
        per_client: BackoffPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.policies = {"account": per_account, "client": per_client}
        self.clock = clock

    def retry_after(self, email: str, client: str) -> int | None:
        """Whole seconds until neither the account nor the client is blocked; None if neither is."""
        now = self.clock()
        with self.sessions() as session:
            blocked = session.scalars(
                select(LoginFailures.blocked_until).where(
                    LoginFailures.key.in_([account_key(email), client_key(client)])
                )
            ).all()
        wait = max((until - now for until in blocked), default=0.0)
        return math.ceil(wait) if wait > 0 else None

    def failed(self, email: str, client: str) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            for kind, key in (("account", account_key(email)), ("client", client_key(client))):
                policy = self.policies[kind]
                row = _locked_row(session, key)
                if now - row.last_failure_at > policy.window_seconds:
                    row.failures = 0
                row.failures += 1
                row.last_failure_at = now
                row.blocked_until = now + policy.block_seconds(row.failures)

    def succeeded(self, email: str) -> None:
        """The account's count starts again; the client's does not (a caller holding one good
        account must not reset its address's count between guesses at others)."""
        with self.sessions.begin() as session:
            session.execute(delete(LoginFailures).where(LoginFailures.key == account_key(email)))


def _locked_row(session: Session, key: str) -> LoginFailures:
    """The key's row, created if missing (racing replicas: one insert wins, none fails) and
    locked for this transaction on PostgreSQL (SQLite serialises writers anyway)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(LoginFailures)
        .values(key=key, failures=0, last_failure_at=0.0, blocked_until=0.0)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    return session.scalars(
        select(LoginFailures).where(LoginFailures.key == key).with_for_update()
    ).one()
