"""The chaos suite's shop: five processes on PostgreSQL, RabbitMQ and SecantusDB of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from microshop.platform.auth import generate_key_pair
from tests.chaos.harness import SCHEDULES, Chaos, Ledger, Load, Servers
from tests.support.servers import private_postgres_server, private_rabbitmq_node, secantus_server
from tests.support.shop import SQL_SERVICES, build_shop

SCHEDULE = os.environ.get("MICROSHOP_CHAOS_SCHEDULE", "short")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    if SCHEDULE not in SCHEDULES:
        pytest.fail(f"MICROSHOP_CHAOS_SCHEDULE={SCHEDULE!r}: choose one of {sorted(SCHEDULES)}")
    plan = SCHEDULES[SCHEDULE]
    workdir = tmp_path_factory.mktemp("chaos")
    with (
        private_postgres_server() as postgres,
        private_rabbitmq_node(workdir / "rabbitmq") as rabbitmq,
        secantus_server(workdir / "secantus") as mongo,
    ):
        urls = {s: postgres.create_database(f"chaos_{s}") for s in SQL_SERVICES}
        app_name = f"orders-{uuid.uuid4().hex[:8]}"
        servers = Servers(postgres, rabbitmq, mongo, "orders", app_name)
        shop = build_shop(
            workdir,
            {**urls, "orders": f"{mongo.url}?appname={app_name}"},
            rabbitmq.url,
            generate_key_pair(),
            # The production retry policy (5 tries, 0.5 s doubling), not the fast test one.
            {"MICROSHOP_CONSUMER_RETRY_BASE_SECONDS": "0.5"},
        )
        load = Load(shop.gateway)
        ledger = Ledger(shop, servers)
        try:
            shop.start()
            load.sign_up()
            yield Chaos(
                shop, servers, load, ledger, plan["orders_per_phase"], plan["recovery_budget"]
            )
        finally:
            load.close()
            ledger.close()
            shop.stop()
