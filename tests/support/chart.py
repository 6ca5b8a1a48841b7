"""The operator chart's test values and small helpers to pick rendered objects by kind."""

from __future__ import annotations

from typing import Any

# What `--api-versions` says when the cluster runs the Prometheus Operator.
SERVICE_MONITOR_API = ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor")

# Everything switched away from its default at once: two peered replicas, metrics with a
# ServiceMonitor on a cluster that serves it, a custom image pinned by digest, extras everywhere.
NON_DEFAULT_VALUES: dict[str, Any] = {
    "replicaCount": 2,
    "image": {
        "repository": "registry.example.com/team/microshop-operator",
        "tag": "1.2.3",
        "digest": "sha256:" + "ab" * 32,
        "pullPolicy": "Always",
    },
    "imagePullSecrets": [{"name": "regcred"}],
    "fullnameOverride": "shop-operator",
    "serviceAccount": {"create": True, "name": "shop-operator-sa", "annotations": {"a": "b"}},
    "peering": {"name": "microshop-peers"},
    "operator": {
        "logFormat": "plain",
        "debug": True,
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
    },
    "metrics": {"enabled": True, "port": 9100},
    "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
    "resources": {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "384Mi"}},
    "podAnnotations": {"example.com/owner": "platform"},
    "podLabels": {"team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops"}],
    "priorityClassName": "system-cluster-critical",
}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
