"""A minimal service schema for platform tests: an outbox, an inbox, a consumer's effect."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microshop.platform.outbox import InboxMixin, OutboxMixin


class PlatformTestBase(DeclarativeBase):
    pass


class Outbox(OutboxMixin, PlatformTestBase):
    pass


class Inbox(InboxMixin, PlatformTestBase):
    pass


class Effect(PlatformTestBase):
    """What a consumer's change writes; deliberately without a unique key so twins would show."""

    __tablename__ = "effects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
