"""The payments schema: at most one payment per order, enforced by the database itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from microshop import registry
from microshop.payments.models import Payment
from microshop.platform.db import make_engine, make_session_factory, migrate


def payment(payment_id: str, order_id: str = "o-1") -> Payment:
    return Payment(
        id=payment_id, order_id=order_id, user_id="u-1", amount_cents=100, currency="EUR",
        payment_method="pm_card_visa", status="SUCCEEDED", failure_code=None,
        created_at=datetime.now(UTC),
    )  # fmt: skip


def test_the_database_refuses_a_second_payment_for_one_order(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/payments.db")
    migrate(engine, registry.service("payments").migrations)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        session.add(payment("p-1"))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(payment("p-2"))  # whatever the handler's own check missed
    with sessions.begin() as session:
        session.add(payment("p-3", order_id="o-2"))  # another order is fine
