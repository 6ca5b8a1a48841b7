"""NetworkPolicies: nothing reaches a Shop's pods, and they reach nothing, unless one of these
says so: in, who may call each component; out, DNS, each component's documented peers, its
external database and the OTLP collector (where spec.network says they live)."""

from __future__ import annotations

from urllib.parse import urlsplit

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext
from microshop_operator.spec import Peer

# Every namespace carries this label with its own name (set by the API server since
# Kubernetes 1.21: the NamespaceDefaultLabelName feature, pkg/registry/core/namespace).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _from_monitoring(ctx: ShopContext) -> Obj:
    """Only pods of the monitoring namespace reach the metrics port (it is never public)."""
    namespace = ctx.spec.observability.metrics.monitoring_namespace
    return {
        "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}],
        "ports": [{"protocol": "TCP", "port": c.METRICS_PORT}],
    }


DNS_PORT = 53


def _policy(
    ctx: ShopContext, name: str, label: str, rules: list[Obj], egress: list[Obj] | None = None
) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.metadata(name, label, c.COMPONENT_NETWORK),
        "spec": {
            "podSelector": {"matchLabels": ctx.selector(label)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": rules,
            "egress": [_to_dns(ctx), *(egress or [])],
        },
    }


def _peer(peer: Peer) -> Obj:
    """A Shop's peer (spec.network) as a NetworkPolicyPeer."""
    if peer.cidr is not None:
        return {"ipBlock": {"cidr": peer.cidr}}
    found: Obj = {}
    if peer.namespace is not None:
        found["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}}
    if peer.pod_labels is not None:
        found["podSelector"] = {"matchLabels": dict(peer.pod_labels)}
    return found


def _to_peers(peers: list[Peer], fallback_port: int) -> list[Obj]:
    """One rule per peer (its ports, or any); where none is given, the port to anywhere."""
    if not peers:
        return [{"ports": [{"protocol": "TCP", "port": fallback_port}]}]
    rules = []
    for peer in peers:
        rule: Obj = {"to": [_peer(peer)]}
        if peer.ports:
            rule["ports"] = [{"protocol": "TCP", "port": port} for port in peer.ports]
        rules.append(rule)
    return rules


def _to_dns(ctx: ShopContext) -> Obj:
    """The cluster DNS, over UDP and TCP (large answers fall back to TCP, RFC 7766)."""
    dns = ctx.spec.network.dns
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: dns.namespace}},
                "podSelector": {"matchLabels": dict(dns.pod_labels)},
            }
        ],
        "ports": [
            {"protocol": "UDP", "port": DNS_PORT},
            {"protocol": "TCP", "port": DNS_PORT},
        ],
    }


def _to_pods(ctx: ShopContext, targets: list[str], port: int) -> Obj:
    return {
        "to": [{"podSelector": {"matchLabels": ctx.selector(target)}} for target in targets],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def _to_collector(ctx: ShopContext) -> list[Obj]:
    endpoint = ctx.spec.observability.tracing.otlp_endpoint
    if endpoint is None:
        return []
    parsed = urlsplit(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return _to_peers(list(ctx.spec.network.otlp_collector), port)


def _database_port(service: str) -> int:
    return c.MONGODB_PORT if c.DATABASE_ENGINES[service] == c.MONGODB else c.POSTGRES_PORT


def _service_egress(ctx: ShopContext, service: str) -> list[Obj]:
    """A backend talks to its own database and, if it uses one, the bus; nothing else."""
    rules: list[Obj] = []
    if ctx.spec.databases.of(service).is_external:
        rules += _to_peers(list(ctx.spec.network.external_databases), _database_port(service))
    else:
        rules.append(_to_pods(ctx, [f"{service}-db"], _database_port(service)))
    if service in c.BUS_SERVICES:
        rules.append(_to_pods(ctx, ["bus"], c.RABBITMQ_AMQP_PORT))
    return rules + _to_collector(ctx)


def _from_pods(ctx: ShopContext, sources: list[str], port: int) -> Obj:
    return {
        "from": [{"podSelector": {"matchLabels": ctx.selector(source)}} for source in sources],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def build_default_deny(ctx: ShopContext) -> Obj:
    """Deny all ingress to and egress from every pod of this Shop; the policies below add what
    is allowed."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.metadata(ctx.names.default_deny, "default-deny", c.COMPONENT_NETWORK),
        "spec": {
            "podSelector": {
                "matchLabels": {c.LABEL_INSTANCE: ctx.name, c.LABEL_PART_OF: c.PART_OF}
            },
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def build_gateway_policy(ctx: ShopContext) -> Obj:
    """The gateway is the Shop's front door: reachable from anywhere on its HTTP port; its
    metrics port only from the monitoring namespace."""
    rules: list[Obj] = [
        {"ports": [{"protocol": "TCP", "port": c.SERVICE_PORT}]},
        _from_monitoring(ctx),
    ]
    egress = [_to_pods(ctx, list(c.BACKEND_SERVICES), c.SERVICE_PORT), *_to_collector(ctx)]
    return _policy(ctx, ctx.names.service(c.GATEWAY), c.GATEWAY, rules, egress)


def build_service_policy(ctx: ShopContext, service: str) -> Obj:
    """A backend answers only the gateway (services talk to each other over the bus), and
    its metrics port only the monitoring namespace."""
    rules = [_from_pods(ctx, [c.GATEWAY], c.SERVICE_PORT), _from_monitoring(ctx)]
    egress = _service_egress(ctx, service)
    return _policy(ctx, ctx.names.service(service), service, rules, egress)


def build_database_policy(ctx: ShopContext, service: str) -> Obj:
    """A database answers only the service that owns it."""
    port = c.MONGODB_PORT if c.DATABASE_ENGINES[service] == c.MONGODB else c.POSTGRES_PORT
    rules = [_from_pods(ctx, [service], port)]
    return _policy(ctx, ctx.names.database(service), f"{service}-db", rules)


def build_bus_policy(ctx: ShopContext) -> Obj:
    """The bus answers only the services that publish or consume events."""
    rules = [_from_pods(ctx, list(c.BUS_SERVICES), c.RABBITMQ_AMQP_PORT)]
    return _policy(ctx, ctx.names.bus, "bus", rules)
