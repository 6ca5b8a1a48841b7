"""Pure builders: a Shop (a plain dict) in, every desired child object (plain dicts) out.

The operator applies exactly `build_children(shop)` and creates `build_generated_secrets` once;
`microshop render` prints the same lists. Nothing here knows kopf or the Kubernetes API, and
nothing here sets ownerReferences: the handler adopts each child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microshop_operator import constants as c
from microshop_operator.builders.configmap import build_bus_config, build_gateway_routes
from microshop_operator.builders.deployment import build_deployment
from microshop_operator.builders.horizontalpodautoscaler import build_horizontal_pod_autoscaler
from microshop_operator.builders.ingress import build_ingress
from microshop_operator.builders.meta import ChildNames, Obj, ShopContext
from microshop_operator.builders.networkpolicy import (
    build_bus_policy,
    build_database_policy,
    build_default_deny,
    build_gateway_policy,
    build_service_policy,
)
from microshop_operator.builders.poddisruptionbudget import build_pod_disruption_budget
from microshop_operator.builders.secrets import build_generated_secrets, generate_secret_data
from microshop_operator.builders.service import (
    build_bus_service,
    build_database_service,
    build_service,
)
from microshop_operator.builders.serviceaccount import build_service_account
from microshop_operator.builders.servicemonitor import build_service_monitor
from microshop_operator.builders.statefulset import (
    build_bus_statefulset,
    build_database_statefulset,
)

__all__ = [
    "ChildNames",
    "Component",
    "ShopContext",
    "build_children",
    "build_generated_secrets",
    "component_names",
    "components",
    "generate_secret_data",
]


@dataclass(frozen=True)
class Component:
    """A workload whose readiness the Shop's status reports (`ready/desired`)."""

    key: str  # the key in status.components: "users", "users-db", "bus", "gateway"
    kind: str  # "Deployment" or "StatefulSet"
    name: str  # the workload's object name


def components(shop: dict[str, Any] | ShopContext) -> list[Component]:
    """The Shop's workloads in the order they are built: managed databases, bus, services."""
    ctx = ShopContext.parsed(shop)
    names = ctx.names
    found = [
        Component(f"{service}-db", "StatefulSet", names.database(service))
        for service in c.DATABASE_SERVICES
        if not ctx.spec.databases.of(service).is_external
    ]
    found.append(Component("bus", "StatefulSet", names.bus))
    found.extend(Component(service, "Deployment", names.service(service)) for service in c.SERVICES)
    return found


def component_names(shop: dict[str, Any] | ShopContext) -> dict[str, str]:
    """status.components key -> workload name, e.g. {"users-db": "shop-users-db", ...}."""
    return {component.key: component.name for component in components(shop)}


def build_children(shop: dict[str, Any] | ShopContext) -> list[Obj]:
    """Every child the Shop wants, except generated Secrets, in the order they are applied.

    Raises microshop_operator.spec.InvalidSpec for a Shop the operator refuses.
    """
    ctx = ShopContext.parsed(shop)
    spec = ctx.spec
    children: list[Obj | None] = []
    # 0. Generated Secrets (build_generated_secrets) come before all of these: pods that
    #    reference a missing Secret do not start.
    # 1. Configuration the pods mount or read at start-up.
    children += [build_bus_config(ctx), build_gateway_routes(ctx)]
    # 2. Databases, then 3. the bus: the services' readiness waits on both, so they start first.
    for service in c.DATABASE_SERVICES:
        if not spec.databases.of(service).is_external:
            children += [
                build_database_service(ctx, service),
                build_database_statefulset(ctx, service),
            ]
    children += [build_bus_service(ctx), build_bus_statefulset(ctx)]
    # 4. Backends, then 5. the gateway that routes to them; identity and Service before the
    #    Deployment whose pods use them.
    for service in c.SERVICES:
        children += [
            build_service_account(ctx, service),
            build_service(ctx, service),
            build_deployment(ctx, service),
        ]
    # 6. NetworkPolicies: every allowance first, the default deny last, so no pod is ever
    #    isolated without the rule that lets its legitimate callers in.
    children += [
        build_database_policy(ctx, s)
        for s in c.DATABASE_SERVICES
        if not spec.databases.of(s).is_external
    ]
    children += [build_bus_policy(ctx)]
    children += [build_service_policy(ctx, s) for s in c.BACKEND_SERVICES]
    children += [build_gateway_policy(ctx), build_default_deny(ctx)]
    # 7. Scaling and disruption rules for the Deployments that now exist.
    for service in c.SERVICES:
        children += [
            build_horizontal_pod_autoscaler(ctx, service),
            build_pod_disruption_budget(ctx, service),
        ]
    # 8. Exposure last: the Ingress (and metrics scraping) once everything behind it exists.
    children += [build_ingress(ctx), build_service_monitor(ctx)]
    return [child for child in children if child is not None]
