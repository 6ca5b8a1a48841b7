"""What every orders store backend offers (the catalog, the orders, the outbox the relay drains),
and the parts of the order's rules they share.

Two backends meet it: the document store behind the pymongo API (MongoDB; mongomock in unit
tests) and the embedded SQLite store of the standalone mode. tests/unit/orders/
test_store_contract.py holds every backend to the same behaviour.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from microshop.events import Event, OrderCreated
from microshop.orders.domain import OrderStatus, PricedOrder, Product
from microshop.platform import clock
from microshop.platform.bus import OutgoingMessage
from microshop.platform.errors import Conflict

RELAY_BATCH = 100
# How long a relay may hold events before another replica may take them over.
OUTBOX_LEASE_SECONDS = 30.0
# At most this many new events wait in memory for this process's relay (LeasedOutbox); beyond
# it (the relay is far behind, or the broker away), new events wait in the store for any relay.
HANDOVER_LIMIT = 10_000


class Catalog(Protocol):
    def seed(self) -> None:
        """Write every product of the domain's catalog (upserts: safe on every start)."""

    def products(self) -> dict[str, Product]:
        """Every product by sku, in sku order."""


class Settlement(NamedTuple):
    """What settling an order did: 'applied', 'duplicate' or 'ignored'; for an applied one,
    when the order was placed (for the placed → settled histogram)."""

    outcome: str
    placed_at: datetime | None = None


class Orders(Protocol):
    def create_indexes(self) -> None:
        """Safe to run on every start of every replica."""

    def place(
        self,
        *,
        user_id: str,
        idempotency_key: str,
        idempotency_id: str,
        fingerprint: str,
        priced: PricedOrder,
        payment_method: str,
        headers: dict[str, str],
    ) -> tuple[dict[str, Any], bool]:
        """Store the order with its order.created event; (order, created) — False on a replay.

        Raises Conflict when the key was used with another request body."""

    def get(self, user_id: str, order_id: str) -> dict[str, Any] | None: ...

    def list_for_user(self, user_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
        """A page of the user's orders, newest first, and how many they have."""

    def apply_payment_outcome(
        self,
        *,
        order_id: str,
        event_id: str,
        event_type: str,
        failure_code: str | None,
        placed_at: datetime | None = None,
    ) -> Settlement:
        """Settle a PENDING order once per event: 'applied', 'duplicate' or 'ignored', and,
        once applied, when the order was placed (for the placed → settled histogram): the
        event's `placed_at` where it says, which spares a store that would read the order
        back for it that read. The same write gives a PAID order the store's
        `redrive_after_seconds` to be notified (store/redrive.py).

        Raises LookupError when the order does not exist (yet)."""


class Outbox(Protocol):
    on_commit: Callable[[], None]

    def relay_batch(self, publish: Callable[[Sequence[OutgoingMessage]], None]) -> int: ...

    def claim(self, limit: int) -> Claim: ...

    def backlog(self) -> tuple[int, float]:
        """How many events wait, and the age in seconds of the oldest."""


@dataclass
class Claim:
    """Events leased to one relay: `keys` say what to clear (or release) once they are sent."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    keys: list[Any] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)


class LeasedOutbox(ABC):
    """The relay's side of an outbox whose events are claimed by a lease: claim, publish, clear;
    a failed publish releases the claim for the next attempt, here or in another replica.

    An event this process writes is leased to this process's own relay in the write itself
    (`hand_over_lease`) and handed to it in memory once written (`hand_over`): the relay then
    publishes and clears it without a claim, which reads every order it takes and writes each
    once more (a third of the orders store's writes per order). Should the process die first,
    the lease runs out and any relay takes the event over; events written by others (the re-drive
    sweeper, a released claim, an earlier release) are claimed from the store as before.
    """

    def __init__(self) -> None:
        # Called once an order with a new event is written (the runtime makes it wake the relay).
        self.on_commit: Callable[[], None] = lambda: None
        # The lease on the events handed over in memory, this process's alone.
        self.token = uuid.uuid4().hex
        self._handed: deque[tuple[Any, str, OutgoingMessage]] = deque()

    def hand_over_lease(self) -> bool:
        """Whether a new event may be leased to this process's relay (then handed over): not
        while `HANDOVER_LIMIT` of them are waiting already."""
        return len(self._handed) < HANDOVER_LIMIT

    def hand_over(self, key: Any, event_id: str, message: OutgoingMessage) -> None:
        """A new event, leased to this process (`token`) and written: the relay's to send."""
        self._handed.append((key, event_id, message))

    def claim(self, limit: int) -> Claim:
        """Up to `limit` orders' (or events') pending events leased to this relay: those handed
        over first, else those the store holds (`claim_stored`)."""
        if not self._handed:
            return self.claim_stored(limit)
        claim = Claim(token=self.token)
        while len(claim.keys) < limit:
            try:
                key, event_id, message = self._handed.popleft()
            except IndexError:
                break
            claim.keys.append(key)
            claim.event_ids.append(event_id)
            claim.messages.append(message)
        return claim

    def relay_batch(self, publish: Callable[[Sequence[OutgoingMessage]], None]) -> int:
        claim = self.claim(RELAY_BATCH)
        if not claim.messages:
            return 0
        try:
            publish(claim.messages)
        except Exception:
            self.release(claim)
            raise
        self.clear(claim)
        return len(claim.messages)

    @abstractmethod
    def claim_stored(self, limit: int) -> Claim:
        """Lease up to `limit` orders' (or events') pending events in the store to this relay."""

    @abstractmethod
    def release(self, claim: Claim) -> None:
        """Give the claimed events back unsent."""

    @abstractmethod
    def clear(self, claim: Claim) -> None:
        """Remove the claimed events: they were published."""


def order_created(
    order_id: str, user_id: str, priced: PricedOrder, payment_method: str, now: datetime
) -> OrderCreated:
    return OrderCreated(
        order_id=order_id,
        user_id=user_id,
        total_cents=priced.total_cents,
        currency=priced.currency,
        payment_method=payment_method,
        occurred_at=now,
        placed_at=now,
    )


def new_order(
    *,
    user_id: str,
    idempotency_key: str,
    idempotency_id: str,
    fingerprint: str,
    priced: PricedOrder,
    payment_method: str,
) -> tuple[dict[str, Any], Event]:
    """The order as every backend returns it (the document's fields), and its order.created."""
    now = clock.now()
    order_id = str(uuid.uuid4())
    order = {
        "_id": idempotency_id,
        "id": order_id,
        "user_id": user_id,
        "idempotency_key": idempotency_key,
        "fingerprint": fingerprint,
        "status": OrderStatus.PENDING.value,
        "failure_code": None,
        "items": [line.__dict__ for line in priced.lines],
        "total_cents": priced.total_cents,
        "currency": priced.currency,
        "payment_method": payment_method,
        "created_at": now,
        "updated_at": now,
    }
    return order, order_created(order_id, user_id, priced, payment_method, now)


def replayed(existing: dict[str, Any] | None, fingerprint: str) -> dict[str, Any]:
    """The order a replayed POST answers with, or Conflict for the same key on another body."""
    if existing is None:  # pragma: no cover - the key was taken by a concurrent twin
        raise LookupError("the order holding this Idempotency-Key vanished")
    if existing["fingerprint"] != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request body")
    return existing


class CachedCatalog:
    """A backend's catalog read once per process: it changes only with the code that seeds it
    on every start, so re-reading it on every order (a fifth of a POST's time) buys nothing."""

    def __init__(self, source: Catalog) -> None:
        self.source = source
        self._products: dict[str, Product] | None = None

    def seed(self) -> None:
        self.source.seed()
        self._products = None

    def products(self) -> dict[str, Product]:
        if self._products is None:
            self._products = self.source.products()
        return dict(self._products)
