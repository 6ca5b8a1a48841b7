"""The optional Prometheus-operator ServiceMonitor scraping every service's metrics port."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext


def build_service_monitor(ctx: ShopContext) -> Obj | None:
    metrics = ctx.spec.observability.metrics
    if not metrics.service_monitor:
        return None
    metadata = ctx.metadata(ctx.name, "metrics", "metrics")
    # The Shop's extra labels (a Prometheus selects ServiceMonitors by them); ours win.
    metadata["labels"] = {**metrics.service_monitor_labels, **metadata["labels"]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata,
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
            # The metrics port, not the public one: /metrics is served only there.
            "endpoints": [{"port": c.METRICS_PORT_NAME, "path": "/metrics", "interval": "30s"}],
        },
    }
