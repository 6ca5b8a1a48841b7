"""The edge's routing decisions: remembered per method and path, within a bound."""

from __future__ import annotations

import pytest

from microshop.gateway import routes
from microshop.gateway.routes import NOT_FOUND, PUBLIC, TOKEN_NEEDED, RouteTable


@pytest.mark.parametrize(
    ("method", "path", "label", "verdict"),
    [
        ("GET", "/api/v1/products", "/api/v1/products", PUBLIC),
        ("GET", "/api/v1/products/sku-1", "/api/v1/products", PUBLIC),
        ("POST", "/api/v1/products", "/api/v1/products", TOKEN_NEEDED),
        ("GET", "/api/v1/orders", "/api/v1/orders", TOKEN_NEEDED),
        ("OPTIONS", "/api/v1/orders", "/api/v1/orders", PUBLIC),
        ("GET", "/api/v1/orders/../products", "/api/v1/orders", NOT_FOUND),
        ("GET", "/api/v1/ordersx", "unmatched", NOT_FOUND),
    ],
)
def test_a_remembered_decision_is_the_one_made_afresh(
    method: str, path: str, label: str, verdict: str
) -> None:
    table = RouteTable()

    first = table.decide(method, path)
    again = table.decide(method, path)

    assert first[1:] == again[1:] == (label, verdict)
    assert again[0] == table.match(path)


def test_decisions_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "_DECISIONS_KEPT", 3)
    table = RouteTable()
    asked: list[str] = []
    match = table.match

    def counting_match(path: str) -> routes.Route | None:
        asked.append(path)
        return match(path)

    monkeypatch.setattr(table, "match", counting_match)
    for _ in range(2):
        table.decide("GET", "/api/v1/orders/1")
    assert asked == ["/api/v1/orders/1"]

    for n in range(10):
        table.decide("GET", f"/api/v1/orders/{n}")
    assert len(table.decisions) <= 3

    long = "/api/v1/orders/" + "x" * routes._DECIDED_PATH_MAX
    table.decide("GET", long)
    table.decide("GET", long)
    assert asked.count(long) == 2
