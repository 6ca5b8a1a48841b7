"""Persistence of users: the only code that reads and writes the users table."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from microshop.platform import clock
from microshop.platform.errors import Conflict, NotFound
from microshop.users.domain import EMAIL_TAKEN, USER_GONE, normalise_email
from microshop.users.models import User


class UserStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def add(self, email: str, name: str, password_hash: str) -> User:
        user = User(
            id=str(uuid.uuid4()),
            email=normalise_email(email),
            name=name,
            password_hash=password_hash,
            created_at=clock.now(),
        )
        try:
            with self.sessions.begin() as session:
                session.add(user)
        except IntegrityError as exc:
            # The unique index on email, not a prior lookup, decides: two racing sign-ups
            # with one email get one 201 and one 409.
            raise Conflict(EMAIL_TAKEN) from exc
        return user

    def find_by_email(self, email: str) -> User | None:
        with self.sessions() as session:
            return session.scalar(select(User).where(User.email == normalise_email(email)))

    def get(self, user_id: str) -> User:
        with self.sessions() as session:
            user = session.get(User, user_id)
        if user is None:
            raise NotFound(USER_GONE)
        return user

    def replace_password_hash(self, user_id: str, password_hash: str) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(User).where(User.id == user_id).values(password_hash=password_hash)
            )
