"""Services: a ClusterIP per backend, the gateway's chosen type, headless ones for StatefulSets."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext
from microshop_operator.builders.serviceaccount import component_of


def _http_port() -> Obj:
    return {
        "name": c.SERVICE_PORT_NAME,
        "port": c.SERVICE_PORT,
        "targetPort": c.SERVICE_PORT_NAME,
        "protocol": "TCP",
        "appProtocol": "http",
    }


def _metrics_port() -> Obj:
    return {
        "name": c.METRICS_PORT_NAME,
        "port": c.METRICS_PORT,
        "targetPort": c.METRICS_PORT_NAME,
        "protocol": "TCP",
        "appProtocol": "http",
    }


def build_service(ctx: ShopContext, service: str) -> Obj:
    """A backend's or the gateway's Service; only the gateway may be other than ClusterIP."""
    service_type = ctx.spec.gateway.service_type if service == c.GATEWAY else "ClusterIP"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(ctx.names.service(service), service, component_of(service)),
        "spec": {
            "type": service_type,
            "selector": ctx.selector(service),
            # The metrics port is for the ServiceMonitor (which scrapes Services' endpoints);
            # the NetworkPolicies let only the monitoring namespace reach it.
            "ports": [_http_port(), _metrics_port()],
        },
    }


def _headless(ctx: ShopContext, name: str, label: str, component: str, ports: list[Obj]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(name, label, component),
        "spec": {
            "clusterIP": "None",
            "selector": ctx.selector(label),
            "ports": ports,
        },
    }


def build_database_service(ctx: ShopContext, service: str) -> Obj:
    """The headless Service governing a database StatefulSet; its name is the database host."""
    if c.DATABASE_ENGINES[service] == c.MONGODB:
        port = {"name": "mongodb", "port": c.MONGODB_PORT, "targetPort": "mongodb"}
    else:
        port = {"name": "postgresql", "port": c.POSTGRES_PORT, "targetPort": "postgresql"}
    name = ctx.names.database(service)
    return _headless(ctx, name, f"{service}-db", c.COMPONENT_DATABASE, [port | {"protocol": "TCP"}])


def build_bus_service(ctx: ShopContext) -> Obj:
    ports = [
        {"name": "amqp", "port": c.RABBITMQ_AMQP_PORT, "targetPort": "amqp", "protocol": "TCP"},
        {
            "name": "management",
            "port": c.RABBITMQ_MANAGEMENT_PORT,
            "targetPort": "management",
            "protocol": "TCP",
        },
    ]
    return _headless(ctx, ctx.names.bus, "bus", c.COMPONENT_BUS, ports)
