"""HorizontalPodAutoscalers, for the services whose autoscaling is enabled."""

from __future__ import annotations

from microshop_operator.builders.meta import Obj, ShopContext
from microshop_operator.builders.serviceaccount import component_of


def build_horizontal_pod_autoscaler(ctx: ShopContext, service: str) -> Obj | None:
    autoscaling = ctx.spec.services.of(service).autoscaling
    if not autoscaling.enabled:
        return None
    name = ctx.names.service(service)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": ctx.metadata(name, service, component_of(service)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }
