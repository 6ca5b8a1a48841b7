"""The orders inbox: the ids of the events an order has processed, kept on the order document.

An event is applied by one conditional update that both requires and records its id, so a
redelivered event changes nothing and no second collection (or transaction) is needed.
"""

from __future__ import annotations

from typing import Any

PROCESSED = "processed_event_ids"


def unprocessed(event_id: str) -> dict[str, Any]:
    """The filter of an order that has not processed `event_id`."""
    return {PROCESSED: {"$ne": event_id}}


def record(event_id: str) -> dict[str, Any]:
    """The update part that records `event_id` as processed."""
    return {"$push": {PROCESSED: event_id}}


def has_processed(order: dict[str, Any], event_id: str) -> bool:
    return event_id in order.get(PROCESSED, [])
