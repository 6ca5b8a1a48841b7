"""The orders relay: replicas relaying one database side by side send each event once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence

import pytest

from microshop.orders.domain import CATALOG, RequestedItem, idempotency_id, price_order
from microshop.orders.store import OrderStore
from microshop.orders.store.orders import Orders
from microshop.orders.store.outbox import DocumentOutbox
from microshop.platform.bus import OutgoingMessage

CATALOG_BY_SKU = {p.sku: p for p in CATALOG}


def place(outbox: DocumentOutbox, n: int) -> None:
    priced = price_order([RequestedItem("MUG-CLASSIC", 1)], CATALOG_BY_SKU)
    orders = Orders(outbox.backend, outbox)
    for i in range(n):
        orders.place(
            user_id="u", idempotency_key=f"k{i}", idempotency_id=idempotency_id("u", f"k{i}"),
            fingerprint="f", priced=priced, payment_method="pm_card_visa", headers={},
        )  # fmt: skip


@pytest.fixture
def replicas() -> tuple[DocumentOutbox, DocumentOutbox]:
    """The outboxes of two orders replicas on one database (one in-memory server shared by
    both), with orders placed through the first."""
    first = OrderStore("mongomock://")
    first.prepare()
    # A server applies each find_one_and_update atomically; mongomock does so only under one
    # lock, so the two replicas share the backend and its lock.
    return first.outbox, DocumentOutbox(first.backend)


def test_two_relays_send_every_pending_event_exactly_once(
    replicas: tuple[DocumentOutbox, DocumentOutbox],
) -> None:
    place(replicas[0], 40)
    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def slow_publish(messages: Sequence[OutgoingMessage]) -> None:
        time.sleep(0.05)  # long enough for the other relay to look at the same orders
        with lock:
            sent.update(m.message_id for m in messages)

    def relay(outbox: DocumentOutbox) -> None:
        while outbox.relay_batch(slow_publish):
            pass

    threads = [threading.Thread(target=relay, args=(outbox,)) for outbox in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 40
    assert set(sent.values()) == {1}


def test_a_failed_publish_releases_the_claim_for_the_next_try(
    replicas: tuple[DocumentOutbox, DocumentOutbox],
) -> None:
    place(replicas[0], 3)

    def refuse(messages: Sequence[OutgoingMessage]) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        replicas[0].relay_batch(refuse)
    delivered: list[str] = []
    assert replicas[1].relay_batch(lambda ms: delivered.extend(m.message_id for m in ms)) == 3
    assert len(set(delivered)) == 3


def test_a_claim_left_by_a_relay_that_died_is_taken_over_after_its_lease(
    replicas: tuple[DocumentOutbox, DocumentOutbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    place(replicas[0], 2)
    claimed = replicas[0].claim(10)  # a relay claims, then dies before publishing
    assert len(claimed) == 2
    assert replicas[1].relay_batch(lambda ms: None) == 0  # still leased to the dead one
    later = time.time() + 31
    monkeypatch.setattr("microshop.orders.store.outbox.time.time", lambda: later)
    delivered: list[str] = []
    assert replicas[1].relay_batch(lambda ms: delivered.extend(m.message_id for m in ms)) == 2
    assert uuid.UUID(delivered[0])  # event ids
