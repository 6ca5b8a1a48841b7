"""The Shops-by-condition gauge counts the Shops that exist: a reconcile or report that was
under way when its Shop was deleted, and ends after the deletion was handled, does not count
that Shop again (the operator suite saw a third Shop counted where two existed)."""

from __future__ import annotations

from typing import Any

import prometheus_client

from microshop_operator.handlers import Reconciler


def counted(status: str = "False") -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "microshop_operator_shops", {"condition": "Ready", "status": status}
    )
    return value or 0.0


def shop(uid: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "shops", "name": "demo", "uid": uid}}


NOT_READY = {"conditions": [{"type": "Ready", "status": "False"}]}


def test_a_report_ending_after_its_shops_deletion_does_not_count_it_again() -> None:
    reconciler = Reconciler(api=None)  # type: ignore[arg-type]  # no call reaches the API
    reconciler._remember(shop("uid-1"), NOT_READY)
    assert counted() == 1
    reconciler.forget(shop("uid-1"))
    assert counted() == 0
    reconciler._remember(shop("uid-1"), NOT_READY)  # a run that began before the deletion
    assert counted() == 0
    # A Shop made again under the same name is another object (another uid): it counts.
    reconciler._remember(shop("uid-2"), NOT_READY)
    assert counted() == 1
    reconciler.forget(shop("uid-2"))
