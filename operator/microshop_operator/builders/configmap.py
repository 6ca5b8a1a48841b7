"""ConfigMaps: the gateway's routes to the backends and the bus's RabbitMQ configuration."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext

# Logs go to stdout for `kubectl logs`; the plugins give the management UI and /metrics.
RABBITMQ_CONF = f"""\
listeners.tcp.default = {c.RABBITMQ_AMQP_PORT}
management.tcp.port = {c.RABBITMQ_MANAGEMENT_PORT}
log.console = true
log.console.level = info
log.file = false
"""
RABBITMQ_PLUGINS = "[rabbitmq_management,rabbitmq_prometheus].\n"


def gateway_routes(ctx: ShopContext) -> dict[str, str]:
    """The gateway's upstream base URLs: each backend's Service in the Shop's namespace."""
    return {
        f"MICROSHOP_{service.upper()}_URL": f"http://{ctx.names.service(service)}:{c.SERVICE_PORT}"
        for service in c.BACKEND_SERVICES
    }


def build_gateway_routes(ctx: ShopContext) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(ctx.names.gateway_routes, c.GATEWAY, c.COMPONENT_GATEWAY),
        "data": gateway_routes(ctx),
    }


def bus_config(ctx: ShopContext) -> dict[str, str]:
    return {"rabbitmq.conf": RABBITMQ_CONF, "enabled_plugins": RABBITMQ_PLUGINS}


def build_bus_config(ctx: ShopContext) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(ctx.names.bus_config, "bus", c.COMPONENT_BUS),
        "data": bus_config(ctx),
    }
