"""StatefulSets: one per operator-managed database (PostgreSQL or MongoDB) and the RabbitMQ bus."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.configmap import bus_config
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
from microshop_operator.spec import Resources

DATABASE_RESOURCES: Obj = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
BUS_RESOURCES: Obj = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


def _exec(command: str) -> Obj:
    return {"exec": {"command": ["sh", "-c", command]}}


def _tcp(port: str) -> Obj:
    return {"tcpSocket": {"port": port}}


def _probes(ready: Obj, alive: Obj) -> Obj:
    # Initialisation (initdb, first boot) may take minutes on slow disks: the startup probe
    # holds liveness back for up to five.
    return {
        "startupProbe": {**alive, "periodSeconds": 5, "failureThreshold": 60, "timeoutSeconds": 5},
        "livenessProbe": {**alive, "periodSeconds": 10, "failureThreshold": 6, "timeoutSeconds": 5},
        "readinessProbe": {
            **ready,
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 10,
        },
    }


def _volume_claim(size: str, storage_class: str | None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": "data"}, "spec": spec}


def _statefulset(
    ctx: ShopContext,
    *,
    name: str,
    label: str,
    component: str,
    uid: int,
    container: Obj,
    volumes: list[Obj],
    claim: Obj,
    annotations: dict[str, str] | None = None,
) -> Obj:
    policy = ctx.spec.pvc_deletion_policy
    template_metadata: Obj = {"labels": ctx.labels(label, component)}
    if annotations:
        template_metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": ctx.metadata(name, label, component),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": ctx.selector(label)},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            # The volume outlives the Shop unless the Shop says Delete: with Retain, deleting
            # the Shop (and so this StatefulSet) leaves the PVC and its data in place.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": policy, "whenScaled": "Retain"},
            "template": {
                "metadata": template_metadata,
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": pod_security_context(uid),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [claim],
        },
    }


def _container(
    name: str, image: str, uid: int, defaults: Obj, override: Resources | None, **fields: object
) -> Obj:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        **fields,
        "resources": resources(defaults, override),
        "securityContext": container_security_context(uid),
    }


def _postgres_container(ctx: ShopContext, service: str, override: Resources | None) -> Obj:
    credentials = ctx.names.database_credentials(service)
    ready = _exec('pg_isready -q -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"')
    return _container(
        "postgresql",
        c.POSTGRES_IMAGE,
        c.POSTGRES_UID,
        DATABASE_RESOURCES,
        override,
        env=[
            secret_env("POSTGRES_USER", credentials, c.SECRET_KEY_USERNAME),
            secret_env("POSTGRES_PASSWORD", credentials, c.SECRET_KEY_PASSWORD),
            value_env("POSTGRES_DB", service),
            # A subdirectory: the volume's root may hold lost+found, which initdb refuses.
            value_env("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ],
        ports=[{"name": "postgresql", "containerPort": c.POSTGRES_PORT, "protocol": "TCP"}],
        volumeMounts=[
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
        **_probes(ready=ready, alive=ready),
    )


def _mongodb_container(ctx: ShopContext, service: str, override: Resources | None) -> Obj:
    credentials = ctx.names.database_credentials(service)
    ping = _exec("mongosh --quiet --norc --eval 'db.adminCommand({ping: 1}).ok' >/dev/null")
    return _container(
        "mongodb",
        c.MONGODB_IMAGE,
        c.MONGODB_UID,
        DATABASE_RESOURCES,
        override,
        env=[
            secret_env("MONGO_INITDB_ROOT_USERNAME", credentials, c.SECRET_KEY_USERNAME),
            secret_env("MONGO_INITDB_ROOT_PASSWORD", credentials, c.SECRET_KEY_PASSWORD),
            value_env("MONGO_INITDB_DATABASE", service),
        ],
        ports=[{"name": "mongodb", "containerPort": c.MONGODB_PORT, "protocol": "TCP"}],
        volumeMounts=[
            {"name": "data", "mountPath": "/data/db"},
            {"name": "configdb", "mountPath": "/data/configdb"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        **_probes(ready=ping, alive=_tcp("mongodb")),
    )


def build_database_statefulset(ctx: ShopContext, service: str) -> Obj:
    """A single-instance database owned by one service, on its own PersistentVolumeClaim."""
    storage = ctx.spec.databases.of(service).storage
    label = f"{service}-db"
    if c.DATABASE_ENGINES[service] == c.MONGODB:
        container = _mongodb_container(ctx, service, storage.resources)
        uid = c.MONGODB_UID
        volumes = [scratch_volume("configdb"), scratch_volume("tmp")]
    else:
        container = _postgres_container(ctx, service, storage.resources)
        uid = c.POSTGRES_UID
        volumes = [
            scratch_volume("run", "8Mi"),
            scratch_volume("tmp"),
            scratch_volume("shm", "256Mi", memory=True),
        ]
    return _statefulset(
        ctx,
        name=ctx.names.database(service),
        label=label,
        component=c.COMPONENT_DATABASE,
        uid=uid,
        container=container,
        volumes=volumes,
        claim=_volume_claim(storage.size, storage.storage_class_name),
    )


def build_bus_statefulset(ctx: ShopContext) -> Obj:
    """A single RabbitMQ node; its data directory (and Erlang cookie) on the volume."""
    bus = ctx.spec.bus
    credentials = ctx.names.bus_credentials
    container = _container(
        "rabbitmq",
        c.RABBITMQ_IMAGE,
        c.RABBITMQ_UID,
        BUS_RESOURCES,
        bus.resources,
        env=[
            secret_env("RABBITMQ_DEFAULT_USER", credentials, c.SECRET_KEY_USERNAME),
            secret_env("RABBITMQ_DEFAULT_PASS", credentials, c.SECRET_KEY_PASSWORD),
            # A fixed node name keeps the data directory's name stable across restarts.
            value_env("RABBITMQ_NODENAME", "rabbit@localhost"),
        ],
        ports=[
            {"name": "amqp", "containerPort": c.RABBITMQ_AMQP_PORT, "protocol": "TCP"},
            {"name": "management", "containerPort": c.RABBITMQ_MANAGEMENT_PORT, "protocol": "TCP"},
        ],
        volumeMounts=[
            {"name": "data", "mountPath": "/var/lib/rabbitmq"},
            {"name": "config", "mountPath": "/etc/rabbitmq", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        **_probes(ready=_exec("rabbitmq-diagnostics -q ping"), alive=_tcp("amqp")),
    )
    volumes = [
        {"name": "config", "configMap": {"name": ctx.names.bus_config}},
        scratch_volume("tmp"),
    ]
    return _statefulset(
        ctx,
        name=ctx.names.bus,
        label="bus",
        component=c.COMPONENT_BUS,
        uid=c.RABBITMQ_UID,
        container=container,
        volumes=volumes,
        claim=_volume_claim(bus.size, bus.storage_class_name),
        # RabbitMQ reads its configuration only at start: a new digest restarts the bus when
        # the ConfigMap changes, as the gateway's routes digest rolls the gateway.
        annotations={c.ANNOTATION_CONFIG_DIGEST: digest(bus_config(ctx))},
    )
