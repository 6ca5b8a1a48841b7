"""Whether NetworkPolicies allow a connection, by the rules of networking.k8s.io/v1.

The semantics of the Kubernetes documentation ("Network Policies") and the API reference of
NetworkPolicySpec: a pod is isolated in a direction once any policy of its namespace selects
it with that policyType; an isolated pod's connection is allowed when some selecting policy
has a rule whose peers (none: every peer) and ports (none: every port) match. A connection
needs both the source's egress and the destination's ingress to allow it. Peers: podSelector
alone means pods of the policy's namespace, namespaceSelector alone every pod of those
namespaces, both together the pods matching in the namespaces matching; ipBlock an address
range (pods are matched by their IP). Named ports and endPort are not used by microshop and
not modelled.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    ip: str


@dataclass(frozen=True)
class Outside:
    """An address outside the cluster's pods (the internet, an external database)."""

    ip: str


@dataclass(frozen=True)
class Cluster:
    """Namespaces (their labels, as the API server sets kubernetes.io/metadata.name) and the
    NetworkPolicies in them."""

    policies: list[Obj]
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def labels_of(self, namespace: str) -> dict[str, str]:
        return {
            "kubernetes.io/metadata.name": namespace,
            **self.namespace_labels.get(namespace, {}),
        }

    def allows(
        self, source: Pod | Outside, target: Pod | Outside, port: int, protocol: str = "TCP"
    ) -> bool:
        """The source's egress and the target's ingress both allow it (outside the cluster,
        no NetworkPolicy applies)."""
        egress = isinstance(source, Outside) or self._allowed(
            source, target, port, protocol, "Egress"
        )
        ingress = isinstance(target, Outside) or self._allowed(
            target, source, port, protocol, "Ingress"
        )
        return egress and ingress

    def _allowed(
        self, pod: Pod, other: Pod | Outside, port: int, protocol: str, direction: str
    ) -> bool:
        selecting = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and direction in _types(p)
            and _matches(p["spec"].get("podSelector") or {}, pod.labels)
        ]
        if not selecting:
            return True  # not isolated in this direction
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(self._peer(policy, peer, other) for peer in peers):
                    continue
                ports = rule.get("ports")
                if ports and not any(_port(p, port, protocol) for p in ports):
                    continue
                return True
        return False

    def _peer(self, policy: Obj, peer: Obj, other: Pod | Outside) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            address = ipaddress.ip_address(other.ip)
            inside = address in ipaddress.ip_network(block["cidr"])
            return inside and not any(
                address in ipaddress.ip_network(e) for e in block.get("except") or []
            )
        if isinstance(other, Outside):
            return False
        if "namespaceSelector" in peer:
            namespace_ok = _matches(peer["namespaceSelector"], self.labels_of(other.namespace))
        else:
            namespace_ok = other.namespace == policy["metadata"]["namespace"]
        pods_ok = "podSelector" not in peer or _matches(peer["podSelector"], other.labels)
        return namespace_ok and pods_ok


def _types(policy: Obj) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    # Unset: Ingress, plus Egress when the policy has egress rules.
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def _matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector: every matchLabels pair and every matchExpressions requirement."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _port(rule: Obj, port: int, protocol: str) -> bool:
    if rule.get("protocol", "TCP") != protocol:
        return False
    return "port" not in rule or rule["port"] == port
