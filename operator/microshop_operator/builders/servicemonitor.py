"""The optional Prometheus-operator ServiceMonitor scraping every service's /metrics."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext


def build_service_monitor(ctx: ShopContext) -> Obj | None:
    if not ctx.spec.observability.metrics.service_monitor:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": ctx.metadata(ctx.name, "metrics", "metrics"),
        "spec": {
            "selector": {
                "matchLabels": {c.LABEL_INSTANCE: ctx.name, c.LABEL_PART_OF: c.PART_OF},
                "matchExpressions": [
                    {
                        "key": c.LABEL_COMPONENT,
                        "operator": "In",
                        "values": [c.COMPONENT_SERVICE, c.COMPONENT_GATEWAY],
                    }
                ],
            },
            "namespaceSelector": {"matchNames": [ctx.namespace]},
            "endpoints": [{"port": c.SERVICE_PORT_NAME, "path": "/metrics", "interval": "30s"}],
        },
    }
