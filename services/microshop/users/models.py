"""Tables of the users database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microshop.platform.db import UtcDateTime


class UsersBase(DeclarativeBase):
    pass


class User(UsersBase):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Stored normalised (lower-case); the unique index settles two registrations racing.
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
