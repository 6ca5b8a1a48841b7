"""The orders store contract: what every backend (mongomock, the embedded SQLite store, the
MongoDB wire server) must do alike, as the service relies on it.

A test module subclasses `StoreContract` and gives two fixtures: `store` (a prepared, empty
OrderStore) and `twin` (a callable opening another OrderStore on the same database, as a second
replica would).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest

from microshop.events import OrderCreated, PaymentFailed, PaymentSucceeded, parse_event
from microshop.orders.domain import (
    CATALOG,
    RequestedItem,
    idempotency_id,
    price_order,
    request_fingerprint,
)
from microshop.orders.store import OrderStore
from microshop.orders.store.base import Settlement
from microshop.platform.bus import OutgoingMessage
from microshop.platform.errors import Conflict

CATALOG_BY_SKU = {p.sku: p for p in CATALOG}
VISA = "pm_card_visa"


def place(
    store: OrderStore,
    user: str = "alice",
    key: str | None = None,
    quantity: int = 1,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], bool]:
    key = key or str(uuid.uuid4())
    items = [RequestedItem("MUG-CLASSIC", quantity)]
    return store.orders.place(
        user_id=user,
        idempotency_key=key,
        idempotency_id=idempotency_id(user, key),
        fingerprint=request_fingerprint(items, VISA),
        priced=price_order(items, CATALOG_BY_SKU),
        payment_method=VISA,
        headers=headers or {},
    )


def settle(store: OrderStore, event: PaymentSucceeded | PaymentFailed) -> Settlement:
    return store.orders.apply_payment_outcome(
        order_id=event.order_id,
        event_id=event.event_id,
        event_type=event.type,
        failure_code=event.failure_code if isinstance(event, PaymentFailed) else None,
        placed_at=event.placed_at,
    )


def outcome(store: OrderStore, event: PaymentSucceeded | PaymentFailed) -> str:
    return settle(store, event).outcome


def paid(order: dict[str, Any], placed_at: datetime | None = None) -> PaymentSucceeded:
    """The outcome of an earlier release, which does not say when the order was placed, unless
    `placed_at` is given."""
    return PaymentSucceeded(
        payment_id=str(uuid.uuid4()), order_id=order["id"], user_id=order["user_id"],
        amount_cents=order["total_cents"], currency=order["currency"], placed_at=placed_at,
    )  # fmt: skip


def relay_all(store: OrderStore) -> list[OutgoingMessage]:
    sent: list[OutgoingMessage] = []
    while store.outbox.relay_batch(sent.extend):
        pass
    return sent


class StoreContract:
    def test_the_catalog_is_the_domains_and_seeding_twice_changes_nothing(
        self, store: OrderStore
    ) -> None:
        store.prepare()
        assert store.catalog.products() == {p.sku: p for p in sorted(CATALOG, key=lambda p: p.sku)}
        assert list(store.catalog.products()) == sorted(CATALOG_BY_SKU)

    def test_a_placed_order_reads_back_pending_priced_and_only_by_its_owner(
        self, store: OrderStore
    ) -> None:
        order, created = place(store, quantity=2)
        assert created
        found = store.orders.get("alice", order["id"])
        assert found is not None
        assert (found["status"], found["total_cents"]) == ("PENDING", 2400)
        assert found["currency"] == "EUR"
        assert found["items"] == [
            {"sku": "MUG-CLASSIC", "name": "Classic mug", "quantity": 2,
             "unit_price_cents": 1200, "line_total_cents": 2400},
        ]  # fmt: skip
        assert found["payment_method"] == VISA and found["failure_code"] is None
        # Times come back in UTC, to the millisecond a server keeps.
        assert found["created_at"].utcoffset() == timedelta(0)
        assert abs(found["created_at"] - order["created_at"]) < timedelta(milliseconds=1)
        assert store.orders.get("bob", order["id"]) is None
        assert store.orders.get("alice", str(uuid.uuid4())) is None

    def test_the_same_key_replays_the_order_and_another_body_is_a_conflict(
        self, store: OrderStore
    ) -> None:
        first, created = place(store, key="k")
        again, created_again = place(store, key="k")
        assert (created, created_again) == (True, False)
        assert again["id"] == first["id"]
        with pytest.raises(Conflict, match="Idempotency-Key"):
            place(store, key="k", quantity=3)
        other, created_by_bob = place(store, user="bob", key="k")  # keys are per user
        assert created_by_bob and other["id"] != first["id"]
        assert len(relay_all(store)) == 2  # one event per order, none for the replay

    def test_concurrent_twins_of_one_request_make_one_order(self, store: OrderStore) -> None:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: place(store, key="twin"), range(8)))
        assert sorted(created for _, created in results) == [False] * 7 + [True]
        assert len({order["id"] for order, _ in results}) == 1

    def test_outcomes_settling_at_once_apply_once_and_fail_only_their_own(
        self, store: OrderStore
    ) -> None:
        """Consumers side by side (on SQLite: one group commit): each order is settled once, a
        twin delivery is a duplicate, and an outcome for an order not yet stored fails alone."""
        orders = [place(store)[0] for _ in range(5)]
        outcomes = [paid(order) for order in orders]
        unknown = paid({**orders[0], "id": str(uuid.uuid4())})
        deliveries = [*outcomes, outcomes[2], unknown, outcomes[2]]

        def deliver(event: PaymentSucceeded) -> str:
            try:
                return outcome(store, event)
            except LookupError:
                return "lookup error"

        with ThreadPoolExecutor(len(deliveries)) as pool:
            answers = list(pool.map(deliver, deliveries))

        assert answers[:2] + answers[3:5] == ["applied"] * 4
        assert sorted([answers[2], answers[5], answers[7]]) == ["applied", "duplicate", "duplicate"]
        assert answers[6] == "lookup error"
        for order in orders:
            assert store.orders.get("alice", order["id"])["status"] == "PAID"  # type: ignore[index]

    def test_the_users_list_is_newest_first_paged_and_counted(self, store: OrderStore) -> None:
        ids = []
        for _ in range(5):
            ids.append(place(store)[0]["id"])
            time.sleep(0.002)  # distinct creation times, as a server clock gives them
        place(store, user="bob")
        page, total = store.orders.list_for_user("alice", 2, 1)
        assert total == 5
        assert [o["id"] for o in page] == [ids[3], ids[2]]
        assert store.orders.list_for_user("carol", 20, 0) == ([], 0)

    def test_a_payment_outcome_settles_the_order_once(self, store: OrderStore) -> None:
        order, _ = place(store)
        succeeded = paid(order)
        assert outcome(store, succeeded) == "applied"
        assert outcome(store, succeeded) == "duplicate"
        fields = succeeded.model_dump(exclude={"event_id", "type"})
        contradicting = PaymentFailed(**fields, failure_code="card_declined")
        assert outcome(store, contradicting) == "ignored"
        settled = store.orders.get("alice", order["id"])
        assert settled is not None
        assert (settled["status"], settled["failure_code"]) == ("PAID", None)
        assert settled["updated_at"] >= settled["created_at"]

    def test_settling_a_paid_order_starts_its_wait_for_the_notification(
        self, store: OrderStore
    ) -> None:
        waiting, failed, notified_first, pending = (place(store)[0] for _ in range(4))
        store.redrives.mark_notified(notified_first["id"])  # its outcome redelivered late
        store.redrives.after_seconds = 0.0  # a settled order is due at once
        for order in (waiting, notified_first):
            assert settle(store, paid(order)).outcome == "applied"
        declined = PaymentFailed(**paid(failed).model_dump(exclude={"type"}), failure_code="x")
        assert settle(store, declined).outcome == "applied"
        time.sleep(0.01)  # past the paid one's due time

        # Only the paid order still waiting for its notification is due: the settling write
        # gave it its due time; a failed or already notified one is finished, and a pending
        # one first seen now waits its full period.
        assert store.redrives.sweep(60.0) == [(waiting["id"], "notification_missing")]
        assert store.redrives.sweep(60.0) == []  # driven again: due a period from now
        assert store.orders.get("alice", pending["id"])["status"] == "PENDING"  # type: ignore[index]

    def test_a_failed_payment_keeps_its_code_and_an_unknown_order_is_a_lookup_error(
        self, store: OrderStore
    ) -> None:
        order, _ = place(store)
        failed = PaymentFailed(
            **{**paid(order).model_dump(exclude={"event_id", "type"}), "failure_code": "expired"}
        )
        settlement = settle(store, failed)
        assert settlement.outcome == "applied"
        # The settling write read when the order was placed (for the placed → settled metric).
        placed = settlement.placed_at
        assert placed is not None and abs(placed - order["created_at"]) < timedelta(milliseconds=1)
        assert placed.tzinfo is not None
        settled = store.orders.get("alice", order["id"])
        assert settled is not None
        assert (settled["status"], settled["failure_code"]) == ("PAYMENT_FAILED", "expired")
        with pytest.raises(LookupError):
            outcome(store, paid({**order, "id": str(uuid.uuid4())}))
        assert settle(store, failed) == ("duplicate", None)

    def test_an_outcome_that_says_when_its_order_was_placed_is_timed_from_then(
        self, store: OrderStore
    ) -> None:
        order, _ = place(store)
        relayed = parse_event(relay_all(store)[0].body)
        assert isinstance(relayed, OrderCreated)  # what payments copies onto the outcome
        assert relayed.placed_at is not None
        assert abs(relayed.placed_at - order["created_at"]) < timedelta(milliseconds=1)
        settlement = settle(store, paid(order, placed_at=relayed.placed_at))
        assert settlement.outcome == "applied"
        assert settlement.placed_at is not None and settlement.placed_at.tzinfo is not None
        assert abs(settlement.placed_at - order["created_at"]) < timedelta(milliseconds=1)

    def test_a_redriven_order_created_says_when_the_order_was_placed(
        self, store: OrderStore
    ) -> None:
        order, _ = place(store)
        relay_all(store)
        assert store.redrives.sweep(60.0) == []  # not due before its period is up
        later = time.time() + 61
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(time, "time", lambda: later)
            assert store.redrives.sweep(60.0) == [(order["id"], "payment_missing")]
        again = parse_event(relay_all(store)[0].body)
        assert isinstance(again, OrderCreated) and again.order_id == order["id"]
        assert again.occurred_at > order["created_at"]  # driven again later,
        assert again.placed_at is not None  # but placed when it was
        assert abs(again.placed_at - order["created_at"]) < timedelta(milliseconds=1)

    def test_the_relay_sends_each_orders_event_once_with_its_headers(
        self, store: OrderStore
    ) -> None:
        kicked = threading.Event()
        store.outbox.on_commit = kicked.set
        order, _ = place(store, headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
        assert kicked.is_set()
        assert store.outbox.backlog()[0] == 1
        sent = relay_all(store)
        assert len(sent) == 1
        event = parse_event(sent[0].body)
        assert isinstance(event, OrderCreated)
        assert (event.order_id, event.total_cents) == (order["id"], 1200)
        assert sent[0].routing_key == "order.created" and sent[0].message_id == event.event_id
        assert sent[0].headers["traceparent"].startswith("00-111")
        assert store.outbox.backlog() == (0, 0.0)
        assert relay_all(store) == []

    def test_the_backlog_counts_waiting_events_and_the_oldest_ones_age(
        self, store: OrderStore
    ) -> None:
        for _ in range(3):
            place(store)
        time.sleep(0.05)
        count, age = store.outbox.backlog()
        assert count == 3 and 0.05 <= age < 30

    def test_a_failed_publish_releases_the_claim_for_the_next_try(
        self, store: OrderStore, twin: Callable[[], OrderStore]
    ) -> None:
        for _ in range(3):
            place(store)

        def refuse(messages: Sequence[OutgoingMessage]) -> None:
            raise ConnectionError("broker down")

        with pytest.raises(ConnectionError):
            store.outbox.relay_batch(refuse)
        other = twin()
        delivered: list[str] = []
        assert other.outbox.relay_batch(lambda ms: delivered.extend(m.message_id for m in ms)) == 3
        assert len(set(delivered)) == 3

    def test_a_claim_left_by_a_relay_that_died_is_taken_over_after_its_lease(
        self, store: OrderStore, twin: Callable[[], OrderStore], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        place(store)
        place(store)
        assert len(store.outbox.claim(10).messages) == 2  # claimed, then the relay dies
        other = twin()
        assert other.outbox.relay_batch(lambda ms: None) == 0  # still leased to the dead one
        later = time.time() + 31
        monkeypatch.setattr(time, "time", lambda: later)
        delivered: list[str] = []
        assert other.outbox.relay_batch(lambda ms: delivered.extend(m.message_id for m in ms)) == 2
        assert all(uuid.UUID(d) for d in delivered)  # event ids

    def test_a_new_orders_event_goes_to_its_own_replicas_relay_with_no_claim(
        self, store: OrderStore, twin: Callable[[], OrderStore]
    ) -> None:
        order, _ = place(store)
        other = twin()
        assert other.outbox.relay_batch(lambda ms: None) == 0  # leased to the placing replica
        sent: list[OutgoingMessage] = []
        assert store.outbox.relay_batch(sent.extend) == 1
        assert parse_event(sent[0].body).order_id == order["id"]  # type: ignore[union-attr]
        assert store.outbox.backlog() == (0, 0.0)  # cleared from the store as well
        assert relay_all(store) == [] and relay_all(other) == []

    def test_an_event_its_replica_died_holding_is_taken_over_after_the_lease(
        self, store: OrderStore, twin: Callable[[], OrderStore], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        place(store)  # and the replica dies before its relay runs
        other = twin()
        assert other.outbox.relay_batch(lambda ms: None) == 0
        later = time.time() + 31
        monkeypatch.setattr(time, "time", lambda: later)
        assert len(relay_all(other)) == 1

    def test_past_the_hand_over_limit_new_events_wait_in_the_store_for_any_relay(
        self, store: OrderStore, twin: Callable[[], OrderStore], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from microshop.orders.store import base

        monkeypatch.setattr(base, "HANDOVER_LIMIT", 2)
        placed = [place(store)[0]["id"] for _ in range(3)]
        other = twin()
        taken = relay_all(other)  # the third, which this replica's relay was not handed
        assert [parse_event(m.body).order_id for m in taken] == placed[2:]  # type: ignore[union-attr]
        mine = relay_all(store)
        assert [parse_event(m.body).order_id for m in mine] == placed[:2]  # type: ignore[union-attr]

    @pytest.mark.parametrize("handed_over", [True, False], ids=["handed-over", "in-the-store"])
    def test_two_relays_side_by_side_send_every_event_exactly_once(
        self,
        store: OrderStore,
        twin: Callable[[], OrderStore],
        monkeypatch: pytest.MonkeyPatch,
        handed_over: bool,
    ) -> None:
        from microshop.orders.store import base

        if not handed_over:  # every event waits in the store: both relays claim from it
            monkeypatch.setattr(base, "HANDOVER_LIMIT", 0)
        for _ in range(40):
            place(store)
        sent: Counter[str] = Counter()
        lock = threading.Lock()

        def slow_publish(messages: Sequence[OutgoingMessage]) -> None:
            time.sleep(0.05)  # long enough for the other relay to look at the same events
            with lock:
                sent.update(m.message_id for m in messages)

        def relay(outbox: Any) -> None:
            while outbox.relay_batch(slow_publish):
                pass

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(base, "RELAY_BATCH", 7)  # several batches each, interleaved
            threads = [
                threading.Thread(target=relay, args=(o,)) for o in (store.outbox, twin().outbox)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len(sent) == 40
        assert set(sent.values()) == {1}
