"""The table of connections a Shop's NetworkPolicies allow and deny (issue 9 defect 8), shared by
the builders' unit test and the operator test that evaluates the policies as applied."""

from __future__ import annotations

from typing import Any

from tests.support.netpol import Cluster, Outside, Pod

Obj = dict[str, Any]
NS = "shop"
SPEC: Obj = {
    "databases": {"orders": {"external": {"secretRef": {"name": "orders-db"}}}},
    "observability": {"tracing": {"otlpEndpoint": "http://otel-collector.observability.svc:4318"}},
    "network": {
        "externalDatabases": [{"cidr": "10.20.0.0/16", "ports": [27017]}],
        "otlpCollector": [{"namespace": "observability", "podLabels": {"app": "otel-collector"},
                           "ports": [4318]}],
    },
}  # fmt: skip


def shop_cluster(children: list[Obj], namespace: str = NS) -> tuple[Cluster, dict[str, Pod]]:
    """The Shop's pods (from its workloads' templates), the peers around it, and its policies."""
    pods: dict[str, Pod] = {}
    for index, obj in enumerate(o for o in children if o["kind"] in ("Deployment", "StatefulSet")):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        pods[labels["app.kubernetes.io/name"]] = Pod(namespace, labels, f"10.244.0.{index + 10}")
    pods["dns"] = Pod("kube-system", {"k8s-app": "kube-dns"}, "10.244.1.2")
    pods["kube-system-other"] = Pod("kube-system", {"app": "metrics-server"}, "10.244.1.3")
    pods["prometheus"] = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, "10.244.2.2")
    pods["collector"] = Pod("observability", {"app": "otel-collector"}, "10.244.3.2")
    pods["elsewhere"] = Pod("elsewhere", {"app.kubernetes.io/name": "prometheus"}, "10.244.4.2")
    policies = [o for o in children if o["kind"] == "NetworkPolicy"]
    return Cluster(policies), pods


def places(pods: dict[str, Pod]) -> dict[str, Pod | Outside]:
    return {**pods, "internet": INTERNET, "external-db": EXTERNAL_DB}


EXTERNAL_DB = Outside("10.20.3.4")
INTERNET = Outside("203.0.113.9")
FLOWS = [
    # (source, target, port, protocol, allowed)
    ("internet", "gateway", 8080, "TCP", True),
    ("gateway", "users", 8080, "TCP", True),
    ("gateway", "notifications", 8080, "TCP", True),
    ("users", "users-db", 5432, "TCP", True),
    ("payments", "payments-db", 5432, "TCP", True),
    ("orders", "external-db", 27017, "TCP", True),
    ("orders", "bus", 5672, "TCP", True),
    ("payments", "bus", 5672, "TCP", True),
    ("notifications", "bus", 5672, "TCP", True),
    ("users", "dns", 53, "UDP", True),
    ("users-db", "dns", 53, "TCP", True),
    ("bus", "dns", 53, "UDP", True),
    ("gateway", "collector", 4318, "TCP", True),
    ("orders", "collector", 4318, "TCP", True),
    ("prometheus", "users", 9090, "TCP", True),
    ("prometheus", "gateway", 9090, "TCP", True),
    # Denied: anything else.
    ("internet", "users", 8080, "TCP", False),
    ("internet", "gateway", 9090, "TCP", False),
    ("elsewhere", "users", 9090, "TCP", False),
    ("prometheus", "users", 8080, "TCP", False),
    ("users", "orders", 8080, "TCP", False),
    ("gateway", "users-db", 5432, "TCP", False),
    ("users", "payments-db", 5432, "TCP", False),
    ("users", "bus", 5672, "TCP", False),
    ("bus", "users", 8080, "TCP", False),
    ("orders", "internet", 443, "TCP", False),
    ("users-db", "internet", 443, "TCP", False),
    ("gateway", "internet", 80, "TCP", False),
    ("orders", "external-db", 5432, "TCP", False),
    ("users", "external-db", 27017, "TCP", False),
    ("users", "kube-system-other", 53, "UDP", False),
    ("users", "dns", 443, "TCP", False),
    ("gateway", "collector", 4317, "TCP", False),
    ("users-db", "collector", 4318, "TCP", False),
    ("gateway", "elsewhere", 8080, "TCP", False),
]
