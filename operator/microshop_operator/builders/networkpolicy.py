"""NetworkPolicies: nothing reaches a Shop's pods unless one of these says who may."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext

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


def _policy(ctx: ShopContext, name: str, label: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.metadata(name, label, c.COMPONENT_NETWORK),
        "spec": {
            "podSelector": {"matchLabels": ctx.selector(label)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def _from_pods(ctx: ShopContext, sources: list[str], port: int) -> Obj:
    return {
        "from": [{"podSelector": {"matchLabels": ctx.selector(source)}} for source in sources],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def build_default_deny(ctx: ShopContext) -> Obj:
    """Deny all ingress to every pod of this Shop; the policies below add what is allowed."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.metadata(ctx.names.default_deny, "default-deny", c.COMPONENT_NETWORK),
        "spec": {
            "podSelector": {
                "matchLabels": {c.LABEL_INSTANCE: ctx.name, c.LABEL_PART_OF: c.PART_OF}
            },
            "policyTypes": ["Ingress"],
        },
    }


def build_gateway_policy(ctx: ShopContext) -> Obj:
    """The gateway is the Shop's front door: reachable from anywhere on its HTTP port; its
    metrics port only from the monitoring namespace."""
    rules: list[Obj] = [
        {"ports": [{"protocol": "TCP", "port": c.SERVICE_PORT}]},
        _from_monitoring(ctx),
    ]
    return _policy(ctx, ctx.names.service(c.GATEWAY), c.GATEWAY, rules)


def build_service_policy(ctx: ShopContext, service: str) -> Obj:
    """A backend answers only the gateway (services talk to each other over the bus), and
    its metrics port only the monitoring namespace."""
    rules = [_from_pods(ctx, [c.GATEWAY], c.SERVICE_PORT), _from_monitoring(ctx)]
    return _policy(ctx, ctx.names.service(service), service, rules)


def build_database_policy(ctx: ShopContext, service: str) -> Obj:
    """A database answers only the service that owns it."""
    port = c.MONGODB_PORT if c.DATABASE_ENGINES[service] == c.MONGODB else c.POSTGRES_PORT
    rules = [_from_pods(ctx, [service], port)]
    return _policy(ctx, ctx.names.database(service), f"{service}-db", rules)


def build_bus_policy(ctx: ShopContext) -> Obj:
    """The bus answers only the services that publish or consume events."""
    rules = [_from_pods(ctx, list(c.BUS_SERVICES), c.RABBITMQ_AMQP_PORT)]
    return _policy(ctx, ctx.names.bus, "bus", rules)
