"""PodDisruptionBudgets: a drain takes one pod of a service at a time, once it has several."""

from __future__ import annotations

from microshop_operator.builders.meta import Obj, ShopContext
from microshop_operator.builders.serviceaccount import component_of


def build_pod_disruption_budget(ctx: ShopContext, service: str) -> Obj | None:
    override = ctx.spec.services.of(service)
    if not (override.autoscaling.enabled or override.effective_replicas > 1):
        # A budget over a single pod would either block drains or protect nothing.
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(ctx.names.service(service), service, component_of(service)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": ctx.selector(service)},
        },
    }
