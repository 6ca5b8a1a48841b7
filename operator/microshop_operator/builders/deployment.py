"""Deployments: one per service and for the gateway, all from the one services image."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.configmap import gateway_routes
from microshop_operator.builders.meta import (
    Obj,
    ShopContext,
    container_security_context,
    digest,
    pod_security_context,
    resources,
    scratch_volume,
    secret_env,
    value_env,
)
from microshop_operator.builders.serviceaccount import component_of

SERVICE_RESOURCES: Obj = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


def service_env(ctx: ShopContext, service: str) -> list[Obj]:
    """The service's configuration, as docs/architecture.md lists it; secrets by reference."""
    names = ctx.names
    env = [
        value_env("MICROSHOP_ENVIRONMENT", "production"),
        value_env("MICROSHOP_PORT", str(c.SERVICE_PORT)),
        value_env("MICROSHOP_METRICS_PORT", str(c.METRICS_PORT)),
        secret_env("MICROSHOP_JWT_PUBLIC_KEY", names.jwt, c.SECRET_KEY_JWT_PUBLIC),
    ]
    if service == c.USERS:
        env.append(secret_env("MICROSHOP_JWT_PRIVATE_KEY", names.jwt, c.SECRET_KEY_JWT_PRIVATE))
    if service in c.DATABASE_SERVICES:
        database = ctx.spec.databases.of(service)
        if database.external is not None and database.external.secret_ref is not None:
            ref = database.external.secret_ref
            env.append(secret_env("MICROSHOP_DATABASE_URL", ref.name, ref.key))
        else:
            credentials = names.database_credentials(service)
            env.append(secret_env("MICROSHOP_DATABASE_URL", credentials, c.SECRET_KEY_URL))
    if service in c.BUS_SERVICES:
        env.append(secret_env("MICROSHOP_BUS_URL", names.bus_credentials, c.SECRET_KEY_URL))
    endpoint = ctx.spec.observability.tracing.otlp_endpoint
    if endpoint is not None:
        env.append(value_env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint))
        env.append(value_env("OTEL_SERVICE_NAME", service))
        env.append(value_env("OTEL_RESOURCE_ATTRIBUTES", f"service.namespace={ctx.name}"))
    return env


def _probe(path: str, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": c.SERVICE_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_deployment(ctx: ShopContext, service: str) -> Obj:
    """A service's Deployment; it turns ready only when /readyz finds its database and bus."""
    override = ctx.spec.services.of(service)
    labels = ctx.labels(service, component_of(service))
    tag = override.version or ctx.spec.version
    pod_labels = {**labels, c.LABEL_VERSION: tag}
    container: Obj = {
        "name": service,
        "image": ctx.spec.image_of(service),
        "imagePullPolicy": ctx.spec.image.pull_policy,
        "args": [service],
        "ports": [
            {"name": c.SERVICE_PORT_NAME, "containerPort": c.SERVICE_PORT, "protocol": "TCP"},
            {"name": c.METRICS_PORT_NAME, "containerPort": c.METRICS_PORT, "protocol": "TCP"},
        ],
        "env": service_env(ctx, service),
        "resources": resources(SERVICE_RESOURCES, override.resources),
        # Start-up (migrations, first connection) gets two minutes before liveness counts;
        # a missing database or bus keeps the pod unready rather than restarting it.
        "startupProbe": _probe("/healthz", period=2, failures=60),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        # The gateway's /readyz reports every upstream; probing it would take the whole API
        # out of its Service when one service is down. Each upstream's own readiness already
        # keeps its Service empty, and the gateway answers 503 for it alone.
        "readinessProbe": _probe(
            "/healthz" if service == c.GATEWAY else "/readyz", period=5, failures=3
        ),
        "securityContext": container_security_context(c.SERVICE_UID),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    annotations: dict[str, str] = {}
    if service == c.GATEWAY:
        container["envFrom"] = [{"configMapRef": {"name": ctx.names.gateway_routes}}]
        # envFrom is read at start: a new digest rolls the gateway when its routes change.
        annotations[c.ANNOTATION_CONFIG_DIGEST] = digest(gateway_routes(ctx))
    template_metadata: Obj = {"labels": pod_labels}
    if annotations:
        template_metadata["annotations"] = annotations
    spec: Obj = {
        "selector": {"matchLabels": ctx.selector(service)},
        "revisionHistoryLimit": 5,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": template_metadata,
            "spec": {
                "serviceAccountName": ctx.names.service(service),
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security_context(c.SERVICE_UID),
                "containers": [container],
                "volumes": [scratch_volume("tmp")],
            },
        },
    }
    # Under autoscaling the HPA owns the replica count; leaving the field out of the applied
    # object keeps server-side apply from fighting it.
    if not override.autoscaling.enabled:
        spec = {"replicas": override.effective_replicas, **spec}
    metadata = ctx.metadata(ctx.names.service(service), service, component_of(service))
    metadata["labels"][c.LABEL_VERSION] = tag
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}
