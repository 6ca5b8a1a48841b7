"""The orders store on the MongoDB wire protocol (SecantusDB): the store contract every backend
meets, and the client settings a production deployment runs with (OrdersSettings.mongo_*),
exercised against the server: retryable writes, the write concern sent, bounded waits while it
is down, and the same client carrying on after its restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo.errors
import pytest
from pymongo import monitoring

from microshop.orders.settings import OrdersSettings
from microshop.orders.store import OrderStore
from tests.support.servers import SecantusServer, secantus_server
from tests.support.store_contract import StoreContract, paid, place, settle


def open_store(url: str, database: str, **settings: Any) -> OrderStore:
    options = OrdersSettings(**settings).mongo_client_options()
    return OrderStore(url, database, None, options)


class TestStoreContractOnTheWireServer(StoreContract):
    @pytest.fixture
    def database(self, secantus: SecantusServer) -> Iterator[str]:
        name = f"contract_{uuid.uuid4().hex[:8]}"
        yield name
        client: pymongo.MongoClient = pymongo.MongoClient(secantus.url)
        client.drop_database(name)
        client.close()

    @pytest.fixture
    def store(self, secantus: SecantusServer, database: str) -> Iterator[OrderStore]:
        store = open_store(secantus.url, database)
        store.prepare()
        yield store
        store.close()

    @pytest.fixture
    def twin(self, secantus: SecantusServer, database: str) -> Iterator[Callable[[], OrderStore]]:
        opened: list[OrderStore] = []

        def open_twin() -> OrderStore:
            opened.append(open_store(secantus.url, database))
            return opened[-1]

        yield open_twin
        for twin in opened:
            twin.close()


class Commands(monitoring.CommandListener):
    """The commands a client sent, as the server received them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def named(self, name: str) -> list[dict[str, Any]]:
        return [c for c in self.sent if name in c]


def watched(url: str, **settings: Any) -> tuple[OrderStore, Commands]:
    commands = Commands()
    options = OrdersSettings(**settings).mongo_client_options() | {"event_listeners": [commands]}
    store = OrderStore(url, f"settings_{uuid.uuid4().hex[:8]}", None, options)
    store.prepare()
    return store, commands


def test_an_order_is_written_with_majority_journaled_write_concern(
    secantus: SecantusServer,
) -> None:
    store, commands = watched(secantus.url)
    place(store)
    inserts = commands.named("insert")
    assert inserts[-1]["writeConcern"] == {"w": "majority", "j": True}
    # timeoutMS bounds the operation on the server too: the driver sends what is left of it.
    assert 0 < inserts[-1]["maxTimeMS"] <= 8000
    store.close()


def test_only_the_writes_the_saga_repairs_by_itself_skip_the_journal(
    secantus: SecantusServer,
) -> None:
    store, commands = watched(secantus.url)
    order, _ = place(store)
    store.outbox.relay_batch(lambda messages: None)  # the clearing of a published event
    settle(store, paid(order))
    store.redrives.mark_notified(order["id"])
    durable, best_effort = {"w": "majority", "j": True}, {"w": 1, "j": False}

    def concern_of(operator: str, field: str) -> list[dict[str, Any]]:
        """The write concern of each update that `operator`s (`$set`, `$pull`) `field`."""
        return [
            c["writeConcern"]
            for c in commands.named("update")
            if field in c["updates"][0]["u"].get(operator, {})
        ]

    assert commands.named("insert")[-1]["writeConcern"] == durable  # the order
    assert concern_of("$set", "status") == [durable]  # its settling
    assert concern_of("$set", "notified_at") == [best_effort]  # lost: driven, announced again
    assert concern_of("$pull", "outbox") == [best_effort]  # lost: published again, deduped
    store.close()


def test_an_option_written_in_the_url_keeps_the_urls_value(secantus: SecantusServer) -> None:
    store, commands = watched(f"{secantus.url}?w=1&journal=false")
    place(store)
    assert commands.named("insert")[-1]["writeConcern"] == {"w": 1, "j": False}
    store.close()


@pytest.mark.parametrize("retry_writes", [True, False])
def test_a_write_cut_by_a_dropped_connection_is_retried_once(
    secantus: SecantusServer, retry_writes: bool
) -> None:
    store = open_store(
        secantus.url, f"retry_{uuid.uuid4().hex[:8]}", mongo_retry_writes=retry_writes
    )
    store.prepare()
    secantus.fail_point(mode={"times": 1}, failCommands=["insert"], closeConnection=True)
    try:
        if retry_writes:
            order, created = place(store, key="once")
            assert created
            assert store.orders.get("alice", order["id"]) is not None
            assert place(store, key="once")[1] is False  # stored once, not twice
        else:
            with pytest.raises(pymongo.errors.AutoReconnect):
                place(store, key="once")
    finally:
        secantus.fail_point(mode="off")
        store.close()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[SecantusServer]:
    """A private server this test may stop and start (not the session's shared one)."""
    with secantus_server(tmp_path) as server:
        yield server


def test_the_store_waits_a_bounded_time_while_the_server_is_down_and_resumes_after_it(
    restartable: SecantusServer,
) -> None:
    store = open_store(
        restartable.url,
        "restart",
        mongo_server_selection_timeout_ms=1500,
        mongo_timeout_ms=2500,
    )
    store.prepare()
    before, _ = place(store, key="before")
    restartable.stop()
    started = time.monotonic()
    with pytest.raises(pymongo.errors.PyMongoError):
        place(store, key="during")
    assert time.monotonic() - started < 4  # bounded by the settings, not by the OS's TCP timeout
    restartable.start()
    # The same client, no reopening: its pool reconnects, and what was acknowledged is there.
    after, created = place(store, key="after")
    assert created
    assert store.orders.get("alice", before["id"]) is not None
    assert [o["id"] for o in store.orders.list_for_user("alice", 10, 0)[0]] == [
        after["id"],
        before["id"],
    ]
    assert store.outbox.relay_batch(lambda messages: None) == 2
    store.close()


def test_an_outcome_that_says_when_its_order_was_placed_settles_with_no_read_back(
    secantus: SecantusServer,
) -> None:
    store, commands = watched(secantus.url)
    told, untold = place(store)[0], place(store)[0]
    before = len(commands.named("find"))
    assert settle(store, paid(told, placed_at=told["created_at"])).outcome == "applied"
    assert len(commands.named("find")) == before  # the update alone
    assert settle(store, paid(untold)).outcome == "applied"  # an earlier release's outcome
    assert len(commands.named("find")) == before + 1  # looks up when the order was placed
    store.close()
