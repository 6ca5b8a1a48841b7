"""The optional Ingress in front of the gateway."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext


def build_ingress(ctx: ShopContext) -> Obj | None:
    ingress = ctx.spec.gateway.ingress
    if ingress is None:
        return None
    gateway = ctx.names.service(c.GATEWAY)
    rule: Obj = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {
                        "service": {"name": gateway, "port": {"name": c.SERVICE_PORT_NAME}}
                    },
                }
            ]
        }
    }
    if ingress.host is not None:
        rule = {"host": ingress.host, **rule}
    spec: Obj = {"rules": [rule]}
    if ingress.class_name is not None:
        spec = {"ingressClassName": ingress.class_name, **spec}
    if ingress.tls_secret_name is not None and ingress.host is not None:
        spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls_secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": ctx.metadata(gateway, c.GATEWAY, c.COMPONENT_GATEWAY),
        "spec": spec,
    }
