"""Time in UTC: what every service stores, and how a stored value is read back."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """Stores that drop the zone (SQLite) hand back naive UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def now() -> datetime:
    """The current time in UTC, to the millisecond: the finest every store keeps (BSON dates
    are milliseconds), so a timestamp reads back exactly as it was first returned."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)
