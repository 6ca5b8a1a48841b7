"""Children edited or deleted by hand come back at once, through the operator's watches.

The operator here runs with a reconcile timer of 300 s, so whatever is restored within the
test's seconds was restored by a watch event, not by the timer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from apiserver import RunningApi
from test_operator import (
    Operator,
    all_applied,
    apply_shop,
    live,
    running_operator,
    shop_manifest,
)

from microshop_operator.builders import build_children
from tests.support.polling import wait_until

pytestmark = pytest.mark.operator


@pytest.fixture(scope="module")
def slow_timer_operator(
    module_api: RunningApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    with running_operator(
        module_api, tmp_path_factory.mktemp("operator"), reconcile_interval_seconds=300
    ) as running:
        yield running


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("NetworkPolicy", "demo-default-deny"),  # a security boundary, not a timer's worth
        ("Service", "demo-users"),
        ("ConfigMap", "demo-gateway-routes"),
    ],
)
def test_a_deleted_child_is_restored_by_its_watch(
    slow_timer_operator: Operator, namespace: str, kind: str, name: str
) -> None:
    api = slow_timer_operator.api
    shop = shop_manifest(namespace)
    apply_shop(api, shop)
    wait_until(lambda: all_applied(api, shop), timeout=30, what="every child")
    child = next(
        o for o in build_children(shop) if (o["kind"], o["metadata"]["name"]) == (kind, name)
    )
    old_uid = (live(api, child) or {})["metadata"]["uid"]

    api.kubectl("delete", kind.lower(), name, "-n", namespace)

    back = wait_until(lambda: live(api, child), timeout=10, what=f"{kind} {name} to return")
    assert back["metadata"]["uid"] != old_uid


def test_a_hand_edit_is_undone_by_its_watch(slow_timer_operator: Operator, namespace: str) -> None:
    api = slow_timer_operator.api
    shop = shop_manifest(namespace)
    apply_shop(api, shop)
    wait_until(lambda: all_applied(api, shop), timeout=30, what="every child")
    routes = next(o for o in build_children(shop) if o["metadata"]["name"] == "demo-gateway-routes")
    key, wanted = next(iter(routes["data"].items()))

    patch = json.dumps({"data": {key: "http://somewhere-else:8080"}})
    api.kubectl("patch", "configmap", "demo-gateway-routes", "-n", namespace,
                "--type=merge", "-p", patch)  # fmt: skip

    wait_until(
        lambda: (live(api, routes) or {}).get("data", {}).get(key) == wanted,
        timeout=10,
        what="the gateway's routes to be restored",
    )


def test_owned_kinds_are_listed_and_watched_through_a_server_side_label_selector(
    slow_timer_operator: Operator, namespace: str
) -> None:
    """Defect 9: every list and watch the operator makes of a kind it owns carries the
    managed-by label selector, so the API server sends only the operator's children (a kopf
    `labels=` filter alone is applied by the client to every object of the kind). The Shops
    themselves are watched whole."""
    api = slow_timer_operator.api
    shop = shop_manifest(namespace)
    apply_shop(api, shop)
    wait_until(lambda: all_applied(api, shop), timeout=30, what="every child")
    operator_user = next(
        s.user for s in api.emulator.selectors_for("shops") if s.user.startswith("system:")
    )

    owned = [
        *("deployments", "statefulsets", "services", "serviceaccounts", "configmaps"),
        *("networkpolicies", "ingresses", "horizontalpodautoscalers", "poddisruptionbudgets"),
    ]
    for plural in owned:
        watched = [s for s in api.emulator.selectors_for(plural, user=operator_user)
                   if s.namespace is None]  # fmt: skip
        assert watched, plural  # kopf lists and watches it cluster-wide
        assert {s.label_selector for s in watched} == {
            "app.kubernetes.io/managed-by=microshop-operator"
        }, plural
    assert {s.label_selector for s in api.emulator.selectors_for("shops", user=operator_user)} == {
        ""
    }
