"""The pure builders: a Shop in, valid, restricted, correctly wired Kubernetes objects out."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from microshop_operator.builders import (
    build_children,
    build_generated_secrets,
    component_names,
    generate_secret_data,
)
from microshop_operator.spec import InvalidSpec
from tests.support.pss import assert_restricted

Obj = dict[str, Any]

# The oldest minor we support (persistentVolumeClaimRetentionPolicy is GA since 1.32) and the
# newest the installed kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
# Kinds from other projects' CRDs: kubernetes-validate has no schema for them.
THIRD_PARTY_KINDS = {"ServiceMonitor"}
MANAGED_BY = {
    "app.kubernetes.io/part-of": "microshop",
    "app.kubernetes.io/managed-by": "microshop-operator",
}


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def everything(shop: Obj) -> list[Obj]:
    return build_generated_secrets(shop, generate=False) + build_children(shop)


def env_of(deployment: Obj) -> dict[str, Obj]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def secret_ref(env: Obj) -> tuple[str, str]:
    ref = env["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_child_of_the_examples_validates_strictly(example: Obj, version: str) -> None:
    objects = everything(example)
    assert objects
    for obj in objects:
        if obj["kind"] in THIRD_PARTY_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")


def test_service_monitor_selects_the_services_metrics_port(make_shop: Callable[..., Obj]) -> None:
    shop = make_shop({"observability": {"metrics": {"serviceMonitor": True}}})
    (monitor,) = by_kind(build_children(shop), "ServiceMonitor").values()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    # The metrics port (the public port answers /metrics with 404 since it moved).
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    services = by_kind(build_children(shop), "Service")
    selector = monitor["spec"]["selector"]
    scraped = {
        name
        for name, svc in services.items()
        if selector["matchLabels"].items() <= svc["metadata"]["labels"].items()
        and svc["metadata"]["labels"]["app.kubernetes.io/component"]
        in selector["matchExpressions"][0]["values"]
    }
    assert scraped == {
        f"shop-{s}" for s in ("gateway", "users", "orders", "payments", "notifications")
    }
    deployments = by_kind(build_children(shop), "Deployment")
    for name in scraped:
        # The Service's port of that name leads to the container port the service serves on.
        (port,) = [p for p in services[name]["spec"]["ports"] if p["name"] == "metrics"]
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        served = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert served[port["targetPort"]] == int(env["MICROSHOP_METRICS_PORT"]) == 9090
        assert served["http"] == int(env["MICROSHOP_PORT"]) == 8080
    assert "ServiceMonitor" not in {o["kind"] for o in build_children(make_shop())}


def test_a_service_monitor_carries_the_shop_s_extra_labels_under_its_own(
    make_shop: Callable[..., Obj],
) -> None:
    """kube-prometheus-stack's Prometheus selects ServiceMonitors by its `release` label."""
    extra = {"release": "kube-prometheus-stack", "app.kubernetes.io/instance": "other"}
    shop = make_shop(
        {"observability": {"metrics": {"serviceMonitor": True, "serviceMonitorLabels": extra}}}
    )
    (monitor,) = by_kind(build_children(shop), "ServiceMonitor").values()

    labels = monitor["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"
    assert labels["app.kubernetes.io/instance"] == "shop"  # the operator's own labels win
    assert labels["app.kubernetes.io/managed-by"] == "microshop-operator"


def test_the_bus_restarts_when_its_configuration_changes(
    make_shop: Callable[..., Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RabbitMQ reads rabbitmq.conf at start only: the pod template carries the config's
    digest, so a changed ConfigMap changes the template and the StatefulSet restarts the pod."""
    from microshop_operator.builders import configmap
    from microshop_operator.builders.meta import digest

    def template(objects: list[Obj]) -> Obj:
        sts = by_kind(objects, "StatefulSet")["shop-bus"]
        return dict(sts["spec"]["template"]["metadata"]["annotations"])

    before = build_children(make_shop())
    monkeypatch.setattr(configmap, "RABBITMQ_CONF", configmap.RABBITMQ_CONF + "heartbeat = 30\n")
    after = build_children(make_shop())

    config = by_kind(before, "ConfigMap")["shop-bus-config"]["data"]
    assert template(before) == {"microshop.dev/config-digest": digest(config)}
    assert template(after) != template(before)
    changed = by_kind(after, "ConfigMap")["shop-bus-config"]["data"]
    assert template(after) == {"microshop.dev/config-digest": digest(changed)}


def _pod_templates(objects: list[Obj]) -> list[tuple[str, Obj]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    ]


def test_every_pod_is_restricted(example: Obj) -> None:
    children = build_children(example)
    templates = _pod_templates(children)
    assert len(templates) >= 9
    # Every control of the standard, the same check the chart's pods pass...
    assert assert_restricted(children) == len(templates)
    # ...and what we hold ourselves to beyond it.
    for name, pod in templates:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        writable = {v["name"] for v in pod["volumes"]}
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name} container {container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert context.get("runAsNonRoot", security["runAsNonRoot"]) is True, where
            assert context.get("privileged", False) is False, where
            for section in ("requests", "limits"):
                assert set(container["resources"][section]) == {"cpu", "memory"}, where
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{where} lacks {probe}"
            mounts = {m["name"] for m in container["volumeMounts"]}
            claims = {"data"} if "StatefulSet" in name else set()
            assert mounts <= writable | claims, where
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), where


def test_services_probe_health_and_readiness_and_run_their_own_argument(example: Obj) -> None:
    prefix = example["metadata"]["name"] + "-"
    deployments = by_kind(build_children(example), "Deployment")
    assert set(deployments) == {
        prefix + s for s in ("gateway", "users", "orders", "payments", "notifications")
    }
    for name, deployment in deployments.items():
        service = name.removeprefix(prefix)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [service]
        assert container["image"].startswith("ghcr.io/microshop/microshop-services:")
        assert container["ports"][0]["containerPort"] == 8080
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        # Services are ready when their database and bus answer; the gateway when it serves
        # (one upstream down must not empty the gateway's Service).
        expected = "/healthz" if service == "gateway" else "/readyz"
        assert container["readinessProbe"]["httpGet"]["path"] == expected


def test_children_carry_the_recommended_labels_and_no_owner(example: Obj) -> None:
    shop = example["metadata"]["name"]
    for obj in everything(example):
        metadata = obj["metadata"]
        labels = metadata["labels"]
        assert MANAGED_BY.items() <= labels.items(), metadata["name"]
        assert labels["app.kubernetes.io/instance"] == shop
        assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(labels)
        assert metadata["namespace"] == "shop"
        assert metadata["name"].startswith(f"{shop}-") or metadata["name"] == shop
        assert "ownerReferences" not in metadata  # the handler adopts


def test_children_are_in_dependency_order(make_shop: Callable[..., Obj]) -> None:
    kinds = [o["kind"] for o in build_children(make_shop())]
    first = {kind: kinds.index(kind) for kind in reversed(kinds)}
    last = {kind: len(kinds) - 1 - kinds[::-1].index(kind) for kind in kinds}
    assert last["ConfigMap"] < first["StatefulSet"]
    assert last["StatefulSet"] < first["Deployment"]
    assert last["Deployment"] < first["NetworkPolicy"]
    assert kinds[-1] == "NetworkPolicy"  # the default deny comes after its allowances
    assert build_children(make_shop())[-1]["metadata"]["name"] == "shop-default-deny"


def test_component_names_follow_the_naming_contract(make_shop: Callable[..., Obj]) -> None:
    assert component_names(make_shop(name="demo")) == {
        "users-db": "demo-users-db",
        "orders-db": "demo-orders-db",
        "payments-db": "demo-payments-db",
        "notifications-db": "demo-notifications-db",
        "bus": "demo-bus",
        "users": "demo-users",
        "orders": "demo-orders",
        "payments": "demo-payments",
        "notifications": "demo-notifications",
        "gateway": "demo-gateway",
    }


def keyed(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_changing_one_services_replicas_changes_only_its_deployment(example: Obj) -> None:
    name = example["metadata"]["name"]
    changed = copy.deepcopy(example)
    changed["spec"].setdefault("services", {})["notifications"] = {"replicas": 4}
    before, after = keyed(build_children(example)), keyed(build_children(changed))
    modified = {key for key in before.keys() & after.keys() if before[key] != after[key]}
    assert modified == {("Deployment", f"{name}-notifications")}
    assert after[("Deployment", f"{name}-notifications")]["spec"]["replicas"] == 4
    # More than one pod now: a disruption budget joins; nothing else appears or goes.
    assert after.keys() - before.keys() == {("PodDisruptionBudget", f"{name}-notifications")}
    assert before.keys() - after.keys() == set()


def test_a_version_change_on_one_service_rolls_only_that_service(
    make_shop: Callable[..., Obj],
) -> None:
    before = build_children(make_shop({"version": "1.0.0"}))
    after = build_children(
        make_shop({"version": "1.0.0", "services": {"orders": {"version": "1.1.0"}}})
    )
    assert [
        (a["kind"], a["metadata"]["name"]) for a, b in zip(after, before, strict=True) if a != b
    ] == [("Deployment", "shop-orders")]
    (container,) = by_kind(after, "Deployment")["shop-orders"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == "ghcr.io/microshop/microshop-services:1.1.0"


def test_services_get_their_configuration_from_secrets(make_shop: Callable[..., Obj]) -> None:
    shop = make_shop({"observability": {"tracing": {"otlpEndpoint": "http://otel:4318"}}})
    deployments = by_kind(build_children(shop), "Deployment")
    users, orders, gateway = (
        env_of(deployments[f"shop-{s}"]) for s in ("users", "orders", "gateway")
    )
    assert secret_ref(users["MICROSHOP_DATABASE_URL"]) == ("shop-users-db-credentials", "url")
    assert secret_ref(users["MICROSHOP_JWT_PRIVATE_KEY"]) == ("shop-jwt", "private-key.pem")
    assert "MICROSHOP_BUS_URL" not in users
    assert secret_ref(orders["MICROSHOP_DATABASE_URL"]) == ("shop-orders-db-credentials", "url")
    assert secret_ref(orders["MICROSHOP_BUS_URL"]) == ("shop-bus-credentials", "url")
    assert "MICROSHOP_JWT_PRIVATE_KEY" not in orders
    for env in (users, orders, gateway):
        assert secret_ref(env["MICROSHOP_JWT_PUBLIC_KEY"]) == ("shop-jwt", "public-key.pem")
        assert env["MICROSHOP_ENVIRONMENT"]["value"] == "production"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel:4318"
    assert "MICROSHOP_DATABASE_URL" not in gateway
    untraced = env_of(by_kind(build_children(make_shop()), "Deployment")["shop-users"])
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in untraced


def test_gateway_routes_to_each_service_and_rolls_when_routes_change(
    make_shop: Callable[..., Obj],
) -> None:
    children = build_children(make_shop())
    routes = by_kind(children, "ConfigMap")["shop-gateway-routes"]["data"]
    assert routes == {
        "MICROSHOP_USERS_URL": "http://shop-users:8080",
        "MICROSHOP_ORDERS_URL": "http://shop-orders:8080",
        "MICROSHOP_PAYMENTS_URL": "http://shop-payments:8080",
        "MICROSHOP_NOTIFICATIONS_URL": "http://shop-notifications:8080",
    }
    gateway = by_kind(children, "Deployment")["shop-gateway"]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "shop-gateway-routes"}}]
    other = by_kind(build_children(make_shop(name="other")), "Deployment")["other-gateway"]
    digest = "microshop.dev/config-digest"
    assert (
        gateway["spec"]["template"]["metadata"]["annotations"][digest]
        != other["spec"]["template"]["metadata"]["annotations"][digest]
    )


def test_an_external_database_is_used_and_not_deployed(make_shop: Callable[..., Obj]) -> None:
    shop = make_shop(
        {"databases": {"payments": {"external": {"secretRef": {"name": "pay", "key": "dsn"}}}}}
    )
    children = build_children(shop)
    payments = env_of(by_kind(children, "Deployment")["shop-payments"])
    assert secret_ref(payments["MICROSHOP_DATABASE_URL"]) == ("pay", "dsn")
    assert "shop-payments-db" not in by_kind(children, "StatefulSet")
    assert "shop-payments-db" not in by_kind(children, "NetworkPolicy")
    secrets = by_kind(build_generated_secrets(shop, generate=False), "Secret")
    assert "shop-payments-db-credentials" not in secrets
    assert "payments-db" not in component_names(shop)


def test_managed_databases_use_pinned_engines_volumes_and_the_retention_policy(
    make_shop: Callable[..., Obj],
) -> None:
    shop = make_shop(
        {
            "databases": {"orders": {"managed": {"size": "20Gi", "storageClassName": "fast"}}},
            "pvcDeletionPolicy": "Delete",
        }
    )
    sets = by_kind(build_children(shop), "StatefulSet")
    assert set(sets) == {
        f"shop-{n}-db" for n in ("users", "orders", "payments", "notifications")
    } | {"shop-bus"}
    images = {n: s["spec"]["template"]["spec"]["containers"][0]["image"] for n, s in sets.items()}
    assert images["shop-users-db"].split(":")[0].endswith("postgres")
    assert images["shop-orders-db"].split(":")[0].endswith("mongo")
    assert images["shop-bus"].endswith("-management")
    assert all(":" in i and not i.endswith(":latest") for i in images.values())
    (claim,) = sets["shop-orders-db"]["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    for statefulset in sets.values():
        policy = statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert policy == {"whenDeleted": "Delete", "whenScaled": "Retain"}
        assert statefulset["spec"]["serviceName"] == statefulset["metadata"]["name"]
    kept = by_kind(build_children(make_shop()), "StatefulSet")["shop-users-db"]
    assert kept["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    headless = by_kind(build_children(shop), "Service")["shop-orders-db"]
    assert headless["spec"]["clusterIP"] == "None"


def test_autoscaling_hands_replicas_to_an_hpa_and_adds_a_budget(
    make_shop: Callable[..., Obj],
) -> None:
    shop = make_shop({"services": {"orders": {"autoscaling": {"enabled": True, "maxReplicas": 7}}}})
    children = build_children(shop)
    orders = by_kind(children, "Deployment")["shop-orders"]
    assert "replicas" not in orders["spec"]
    (hpa,) = by_kind(children, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "shop-orders",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 7)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert set(by_kind(children, "PodDisruptionBudget")) == {"shop-orders"}
    assert by_kind(children, "Deployment")["shop-users"]["spec"]["replicas"] == 1


def test_ingress_fronts_the_gateway_with_tls(make_shop: Callable[..., Obj]) -> None:
    shop = make_shop(
        {
            "gateway": {
                "serviceType": "LoadBalancer",
                "ingress": {"host": "s.example", "className": "nginx", "tlsSecretName": "s-tls"},
            }
        }
    )
    children = build_children(shop)
    (ingress,) = by_kind(children, "Ingress").values()
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["s.example"], "secretName": "s-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "s.example"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "shop-gateway"
    services = by_kind(children, "Service")
    assert services["shop-gateway"]["spec"]["type"] == "LoadBalancer"
    assert services["shop-users"]["spec"]["type"] == "ClusterIP"
    assert "Ingress" not in {o["kind"] for o in build_children(make_shop())}


def _allowed_sources(policy: Obj) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def test_network_policies_let_in_only_who_needs_in(make_shop: Callable[..., Obj]) -> None:
    policies = by_kind(build_children(make_shop()), "NetworkPolicy")
    deny = policies["shop-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny
    assert deny["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "shop"
    gateway = policies["shop-gateway"]["spec"]["ingress"]
    monitoring = {
        "from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": 9090}],
    }  # fmt: skip
    assert gateway == [{"ports": [{"protocol": "TCP", "port": 8080}]}, monitoring]  # anywhere
    for service in ("users", "orders", "payments", "notifications"):
        # The metrics port only from the monitoring namespace, never from anywhere else.
        assert policies[f"shop-{service}"]["spec"]["ingress"][1] == monitoring
    for service in ("users", "orders", "payments", "notifications"):
        assert _allowed_sources(policies[f"shop-{service}"]) == {"gateway"}
        assert _allowed_sources(policies[f"shop-{service}-db"]) == {service}
    assert _allowed_sources(policies["shop-bus"]) == {"orders", "payments", "notifications"}
    assert policies["shop-bus"]["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 5672}
    ]
    assert policies["shop-orders-db"]["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 27017}
    ]
    # Every pod of the Shop is selected by the default deny.
    for workload in [
        *by_kind(build_children(make_shop()), "Deployment").values(),
        *by_kind(build_children(make_shop()), "StatefulSet").values(),
    ]:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert deny["podSelector"]["matchLabels"].items() <= labels.items()


def test_generated_secret_material_is_fresh_and_well_formed() -> None:
    first, second = generate_secret_data("password"), generate_secret_data("password")
    assert first["password"] != second["password"] and len(first["password"]) >= 32
    pair = generate_secret_data("jwt-key-pair")
    private = serialization.load_pem_private_key(pair["private-key.pem"].encode(), password=None)
    public = serialization.load_pem_public_key(pair["public-key.pem"].encode())
    assert isinstance(private, Ed25519PrivateKey) and isinstance(public, Ed25519PublicKey)
    signature = private.sign(b"token")
    public.verify(signature, b"token")  # raises when the two do not belong together


def test_generated_secrets_compose_urls_from_their_own_passwords(
    make_shop: Callable[..., Obj],
) -> None:
    counter = iter(range(100))

    def deterministic(kind: str) -> dict[str, str]:
        if kind == "password":
            return {"password": f"pw{next(counter)}"}
        return {"private-key.pem": "PRIVATE", "public-key.pem": "PUBLIC"}

    secrets = by_kind(
        build_generated_secrets(make_shop(), generate=True, generator=deterministic), "Secret"
    )
    assert list(secrets) == [
        "shop-jwt",
        "shop-users-db-credentials",
        "shop-orders-db-credentials",
        "shop-payments-db-credentials",
        "shop-notifications-db-credentials",
        "shop-bus-credentials",
    ]
    users = secrets["shop-users-db-credentials"]["stringData"]
    assert (
        users["url"] == f"postgresql+psycopg://users:{users['password']}@shop-users-db:5432/users"
    )
    orders = secrets["shop-orders-db-credentials"]["stringData"]
    assert orders["url"].startswith(
        f"mongodb://orders:{orders['password']}@shop-orders-db:27017/orders"
    )
    bus = secrets["shop-bus-credentials"]["stringData"]
    assert bus["url"] == f"amqp://microshop:{bus['password']}@shop-bus:5672/%2F"
    assert len({s["stringData"].get("password") for s in secrets.values()} - {None}) == 5


def test_redacted_secrets_hold_no_generated_material(make_shop: Callable[..., Obj]) -> None:
    one = build_generated_secrets(make_shop(), generate=False)
    assert one == build_generated_secrets(make_shop(), generate=False)
    assert all(
        "REDACTED" in s["stringData"]["password"] for s in one if "password" in s["stringData"]
    )
    real = build_generated_secrets(make_shop(), generate=True)
    assert real != build_generated_secrets(make_shop(), generate=True)


def test_an_invalid_shop_builds_nothing(make_shop: Callable[..., Obj]) -> None:
    shop = make_shop({"databases": {"users": {"external": {}}}})
    with pytest.raises(InvalidSpec, match=r"external\.secretRef"):
        build_children(shop)
    with pytest.raises(InvalidSpec):
        build_generated_secrets(shop, generate=True)
