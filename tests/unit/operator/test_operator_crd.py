"""The Shop CRD: its shape for kubectl, its schema and CEL rules, and parse_shop agreeing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from microshop_operator.spec import InvalidSpec, parse_shop

Obj = dict[str, Any]


def test_crd_names_scope_and_status_subresource(crd: Obj) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "shops.microshop.dev"
    assert spec["group"] == "microshop.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "Shop"
    assert spec["names"]["shortNames"] == ["shop"]
    assert spec["names"]["categories"] == ["microshop"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_crd_printer_columns_show_readiness_and_endpoint(crd: Obj) -> None:
    columns = {
        c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Gateway"] == ".status.gateway.endpoint"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_examples_are_accepted_by_the_crd(
    example: Obj, crd_refusals: Callable[[Obj], list[str]]
) -> None:
    assert crd_refusals(example) == []


def test_status_the_operator_writes_is_accepted(
    make_shop: Callable[..., Obj], crd_refusals: Callable[[Obj], list[str]]
) -> None:
    shop = make_shop()
    shop["status"] = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "DatabaseNotReady",
                "message": "orders-db: 0/1 ready",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "components": {
            "users": {"ready": 1, "desired": 1},
            "orders-db": {"ready": 0, "desired": 1},
        },
        "gateway": {"endpoint": "http://shop.example.com"},
    }
    assert crd_refusals(shop) == []
    shop["status"]["conditions"][0]["status"] = "Maybe"
    assert crd_refusals(shop)


def test_crd_defaults_are_the_models_defaults(
    example: Obj, defaulted: Callable[[Obj], Obj]
) -> None:
    """The API server stores the Shop with the CRD's defaults; the operator must read the same
    Shop whether or not those defaults were filled in."""
    assert parse_shop(defaulted(example)) == parse_shop(example)


def test_minimal_shop_is_fully_defaulted_by_the_crd(
    make_shop: Callable[..., Obj], defaulted: Callable[[Obj], Obj]
) -> None:
    spec = defaulted(make_shop())["spec"]
    assert spec["version"] == "0.1.0"
    assert spec["pvcDeletionPolicy"] == "Retain"
    assert spec["gateway"]["serviceType"] == "ClusterIP"
    assert spec["services"]["orders"]["autoscaling"]["targetCPUUtilizationPercentage"] == 80
    assert spec["bus"]["size"] == "1Gi"
    assert spec["paused"] is False


def _external(secret_ref: Obj | None = None) -> Obj:
    return {"external": {"secretRef": secret_ref} if secret_ref else {}}


# (case, spec or (name, spec), the CEL message the API server answers with, or None when the
# openAPI schema itself refuses it)
INVALID: list[tuple[str, Obj | tuple[str, Obj], str | None]] = [
    (
        "external-db-without-secret",
        {"databases": {"payments": _external()}},
        "an external database needs external.secretRef: the Secret holding its URL",
    ),
    (
        "db-both-managed-and-external",
        {"databases": {"users": {"managed": {}, **_external({"name": "users-db"})}}},
        "a database is either managed or external, not both",
    ),
    (
        "autoscaling-min-above-max",
        {
            "services": {
                "orders": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}
            }
        },
        "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
    ),
    (
        "autoscaling-default-max-below-min",
        {"services": {"users": {"autoscaling": {"minReplicas": 4}}}},
        "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
    ),
    (
        "replicas-with-autoscaling",
        {"services": {"gateway": {"replicas": 2, "autoscaling": {"enabled": True}}}},
        "set either replicas or autoscaling.enabled, not both",
    ),
    (
        "ingress-tls-without-host",
        {"gateway": {"ingress": {"tlsSecretName": "shop-tls"}}},
        "ingress.tlsSecretName needs ingress.host: a certificate is per host",
    ),
    ("name-too-long", ("a" * 31, {}), "a Shop's name is a DNS label"),
    ("name-with-dot", ("my.shop", {}), "a Shop's name is a DNS label"),
    ("name-starting-with-digit", ("1shop", {}), "a Shop's name is a DNS label"),
    ("negative-replicas", {"services": {"users": {"replicas": -1}}}, None),
    ("too-many-replicas", {"services": {"users": {"replicas": 101}}}, None),
    ("unknown-service", {"services": {"cart": {}}}, None),
    ("unknown-top-level-field", {"colour": "blue"}, None),
    ("service-type", {"gateway": {"serviceType": "Ingress"}}, None),
    ("storage-size", {"databases": {"orders": {"managed": {"size": "lots"}}}}, None),
    ("bus-size", {"bus": {"size": "10 GB"}}, None),
    ("pvc-deletion-policy", {"pvcDeletionPolicy": "Orphan"}, None),
    ("version-tag", {"version": "bad tag!"}, None),
    ("per-service-version-tag", {"services": {"orders": {"version": ":latest"}}}, None),
    ("otlp-endpoint-not-url", {"observability": {"tracing": {"otlpEndpoint": "otel:4318"}}}, None),
    (
        "cpu-target-zero",
        {"services": {"users": {"autoscaling": {"targetCPUUtilizationPercentage": 0}}}},
        None,
    ),
    ("secret-ref-without-name", {"databases": {"users": _external({"key": "url"})}}, None),
    ("pull-policy", {"image": {"pullPolicy": "Sometimes"}}, None),
    ("registry-with-trailing-slash", {"image": {"registry": "ghcr.io/microshop/"}}, None),
    (
        "resource-quantity",
        {"services": {"users": {"resources": {"limits": {"cpu": "lots"}}}}},
        None,
    ),
    ("paused-not-bool", {"paused": "yes"}, None),
    ("ingress-host-uppercase", {"gateway": {"ingress": {"host": "Shop.Example.com"}}}, None),
    (
        "service-monitor-label-key",
        {"observability": {"metrics": {"serviceMonitorLabels": {"bad key": "x"}}}},
        "serviceMonitorLabels keys are label keys",
    ),
    (
        "service-monitor-label-value",
        {"observability": {"metrics": {"serviceMonitorLabels": {"release": "-bad"}}}},
        None,
    ),
    (
        "network-peer-both-cidr-and-pods",
        {"network": {"externalDatabases": [{"cidr": "10.0.0.0/8", "namespace": "db"}]}},
        "a peer is either a cidr or a namespace and/or podLabels",
    ),
    (
        "network-peer-neither",
        {"network": {"otlpCollector": [{"ports": [4318]}]}},
        "a peer is either a cidr or a namespace and/or podLabels",
    ),
    (
        "network-peer-port",
        {"network": {"otlpCollector": [{"cidr": "10.0.0.0/8", "ports": [0]}]}},
        None,
    ),
    (
        "monitoring-namespace",
        {"observability": {"metrics": {"monitoringNamespace": "Monitoring"}}},
        None,
    ),
]


def _shop(make_shop: Callable[..., Obj], case: Obj | tuple[str, Obj]) -> Obj:
    if isinstance(case, tuple):
        name, spec = case
        return make_shop(spec, name=name)
    return make_shop(case)


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_shop_is_refused_by_the_crd(
    case: str,
    spec: Obj | tuple[str, Obj],
    message: str | None,
    make_shop: Callable[..., Obj],
    crd_refusals: Callable[[Obj], list[str]],
) -> None:
    refusals = crd_refusals(_shop(make_shop, spec))
    assert refusals, f"{case}: the CRD accepts it"
    if message is not None:
        assert any(r.startswith(message) for r in refusals), refusals


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_shop_is_refused_by_parse_shop(
    case: str, spec: Obj | tuple[str, Obj], message: str | None, make_shop: Callable[..., Obj]
) -> None:
    """The operator and `render` refuse what the API server refuses, with the same words."""
    with pytest.raises(InvalidSpec) as refused:
        parse_shop(_shop(make_shop, spec))
    if message is not None:
        assert message in refused.value.message


VALID: list[tuple[str, Obj]] = [
    ("empty", {}),
    ("external-db-with-secret", {"databases": {"payments": _external({"name": "pay-db"})}}),
    ("managed-db-explicit", {"databases": {"orders": {"managed": {"size": "2Gi"}}}}),
    (
        "autoscaling-min-equals-max",
        {
            "services": {
                "orders": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 3}}
            }
        },
    ),
    ("replicas-without-autoscaling", {"services": {"users": {"replicas": 3}}}),
    ("replicas-zero", {"services": {"notifications": {"replicas": 0}}}),
    ("ingress-host-and-tls", {"gateway": {"ingress": {"host": "a.example", "tlsSecretName": "t"}}}),
    ("ingress-without-host-or-tls", {"gateway": {"ingress": {"className": "nginx"}}}),
    ("quantities", {"services": {"users": {"resources": {"requests": {"cpu": "0.5"}}}}}),
    (
        "service-monitor-labels",
        {
            "observability": {
                "metrics": {
                    "serviceMonitor": True,
                    "monitoringNamespace": "prom",
                    "serviceMonitorLabels": {"release": "kps", "example.com/team": "shop"},
                }
            }
        },
    ),
]


@pytest.mark.parametrize(("case", "spec"), VALID, ids=[v[0] for v in VALID])
def test_valid_shop_passes_schema_cel_and_parse_shop(
    case: str,
    spec: Obj,
    make_shop: Callable[..., Obj],
    crd_refusals: Callable[[Obj], list[str]],
) -> None:
    shop = make_shop(spec, name="a" * 30)
    assert crd_refusals(shop) == []
    parse_shop(copy.deepcopy(shop))


def test_every_cel_rule_is_exercised_by_the_invalid_table(schema: Obj) -> None:
    """A new CEL rule needs a row in INVALID; the rule messages and the table stay in step.
    Transition rules (on `oldSelf`) need an update to break: tests/operator/test_volumes.py."""
    messages = {r["message"] for r in _all_rules(schema) if "oldSelf" not in r["rule"]}
    tested = {m for _, _, m in INVALID if m is not None}
    assert {m for m in messages if not any(m.startswith(t) for t in tested)} == set()


def _all_rules(schema: Obj) -> list[Obj]:
    rules = list(schema.get("x-kubernetes-validations") or [])
    for child in (schema.get("properties") or {}).values():
        rules += _all_rules(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            rules += _all_rules(schema[key])
    return rules


def test_the_crd_itself_is_a_valid_custom_resource_definition(crd: Obj) -> None:
    kubernetes_validate.validate(crd, "1.33.0", strict=True)
    kubernetes_validate.validate(crd, kubernetes_validate.latest_version(), strict=True)


def test_every_property_is_structural(schema: Obj) -> None:
    """The API server accepts only structural schemas: every node says its type."""

    def untyped(node: Obj, path: str) -> list[str]:
        found = [] if "type" in node else [path]
        for name, child in (node.get("properties") or {}).items():
            found += untyped(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += untyped(node[key], f"{path}[{key}]")
        return found

    assert untyped(schema, "") == []
