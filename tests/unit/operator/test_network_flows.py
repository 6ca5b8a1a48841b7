"""The Shop's NetworkPolicies evaluated over a table of allowed and denied connections
(issue 9 defect 8): in and out, each component reaches only DNS, its documented peers, its
external database and the OTLP collector. Evaluated by tests/support/netpol.py, which follows
networking.k8s.io/v1's semantics (Kubernetes docs, "Network Policies")."""

from __future__ import annotations

from typing import Any

import pytest

from microshop_operator.builders import build_children
from tests.support.flows import FLOWS, NS, SPEC, places, shop_cluster
from tests.support.netpol import Cluster, Outside, Pod

Obj = dict[str, Any]


def cluster_of(spec: Obj) -> tuple[Cluster, dict[str, Pod]]:
    return shop_cluster(build_children({"metadata": {"name": "demo", "namespace": NS},
                                        "spec": spec}))  # fmt: skip


@pytest.mark.parametrize(("source", "target", "port", "protocol", "allowed"), FLOWS)
def test_each_flow_is_allowed_or_denied(
    source: str, target: str, port: int, protocol: str, allowed: bool
) -> None:
    cluster, pods = cluster_of(SPEC)
    where = places(pods)

    assert cluster.allows(where[source], where[target], port, protocol) is allowed


def test_without_peers_given_an_external_database_and_the_collector_are_reached_by_port() -> None:
    """No spec.network locations: the engine's port and the endpoint's port, to anywhere."""
    spec = {key: value for key, value in SPEC.items() if key != "network"}
    cluster, pods = cluster_of(spec)

    assert cluster.allows(pods["orders"], Outside("198.51.100.7"), 27017)
    assert not cluster.allows(pods["orders"], Outside("198.51.100.7"), 443)
    assert cluster.allows(pods["users"], Outside("198.51.100.8"), 4318)
    assert not cluster.allows(pods["users"], Outside("198.51.100.8"), 5432)
    # The DNS default: CoreDNS as kubeadm and kind label it, in kube-system.
    assert cluster.allows(pods["users"], pods["dns"], 53, "UDP")


def test_every_pod_of_the_shop_is_isolated_both_ways() -> None:
    cluster, pods = cluster_of(SPEC)
    deny = next(p for p in cluster.policies if p["metadata"]["name"] == "demo-default-deny")

    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for name, pod in pods.items():
        if pod.namespace == NS:
            assert set(deny["spec"]["podSelector"]["matchLabels"].items()) <= set(
                pod.labels.items()
            ), name
