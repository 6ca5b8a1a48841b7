"""The operator chart, rendered and linted by the real Helm SDK, checked against Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.chart import NON_DEFAULT_VALUES, SERVICE_MONITOR_API, by_kind, one
from tests.support.pss import assert_restricted
from tools.manifests import CHART_DIR, KUBE_VERSION, notes, render

ROOT = Path(__file__).resolve().parents[3]
# Kinds no Kubernetes schema covers; each is checked against its own CRD schema below.
CUSTOM_KINDS = {"ClusterKopfPeering", "ServiceMonitor"}


def validate_builtin(objects: list[dict[str, Any]]) -> list[str]:
    checked = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        checked.append(obj["kind"])
    return checked


def test_helm_lint_strict_passes() -> None:
    for values in (None, NON_DEFAULT_VALUES):
        report = helm.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBE_VERSION}")
        errors = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and errors == [], report


def test_default_render_is_a_valid_standalone_operator(default_objects: list[dict]) -> None:
    kinds = validate_builtin(default_objects)

    assert sorted(kinds) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "ServiceAccount",
    ]
    deployment = one(default_objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/microshop/microshop-operator:0.1.0"
    assert "--standalone" in container["args"]
    assert not [arg for arg in container["args"] if arg.startswith("--peering")]
    assert "MICROSHOP_OPERATOR_PEERING_NAME" not in {env["name"] for env in container["env"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_non_default_render_is_valid_and_uses_every_value(non_default_objects: list) -> None:
    validate_builtin(non_default_objects)

    assert not by_kind(non_default_objects, "Deployment")
    statefulset = one(non_default_objects, "StatefulSet")
    assert statefulset["metadata"]["name"] == "shop-operator"
    assert statefulset["spec"]["replicas"] == 2
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == (
        "registry.example.com/team/microshop-operator:1.2.3@sha256:" + "ab" * 32
    )
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "shop-operator-sa"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert {"--log-format=plain", "--debug", "--peering=microshop-peers"} <= set(container["args"])
    assert {"name": "EXTRA", "value": "1"} in container["env"]
    assert statefulset["spec"]["template"]["metadata"]["labels"]["team"] == "platform"


def test_two_replicas_peer_with_distinct_priorities(non_default_objects: list) -> None:
    """Equal kopf priorities pause every replica; the pod index makes them distinct."""
    statefulset = one(non_default_objects, "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}

    assert "--priority=$(POD_INDEX)" in container["args"]
    assert env["MICROSHOP_OPERATOR_PEERING_NAME"]["value"] == "microshop-peers"
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert "--standalone" not in container["args"]
    peering = one(non_default_objects, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == "microshop-peers"
    crd = yaml.safe_load((CHART_DIR / "crds" / "kopf-peering.yaml").read_text())
    assert crd["spec"]["group"] + "/" + crd["spec"]["versions"][0]["name"] == "kopf.dev/v1"
    assert crd["spec"]["names"]["kind"] == "ClusterKopfPeering"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(peering, schema)


def test_service_monitor_needs_the_value_and_the_cluster_capability() -> None:
    on = {"metrics": {"enabled": True}, "serviceMonitor": {"enabled": True}}

    without_api = render(on)
    with_api = render(on, api_versions=SERVICE_MONITOR_API)
    disabled = render({"metrics": {"enabled": True}}, api_versions=SERVICE_MONITOR_API)

    assert not by_kind(without_api, "ServiceMonitor")
    assert "does not serve" in notes(on)
    assert not by_kind(disabled, "ServiceMonitor")
    monitor = one(with_api, "ServiceMonitor")
    service = one(with_api, "Service")
    # The ServiceMonitor scrapes a named port the Service really has, on pods it really selects.
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= port_names


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": "two"}, "replicaCount"),
        ({"replicaCount": 0}, "replicaCount"),
        ({"replicas": 2}, "replicas"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"image": {"repository": "x", "pullPolicy": "Always", "digest": "latest"}}, "digest"),
        ({"operator": {"logFormat": "xml"}}, "logFormat"),
        ({"serviceMonitor": {"enabled": "yes"}}, "enabled"),
        ({"serviceMonitor": {"interval": "often"}}, "interval"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "cpu"),
        ({"resources": {"request": {"cpu": "1"}}}, "request"),
        ({"metrics": {"port": 70000}}, "port"),
    ],
)
def test_schema_refuses_a_bad_value(values: dict[str, Any], complaint: str) -> None:
    with (
        helm.Chart.load(CHART_DIR) as chart,
        pytest.raises(helm.HelmValuesError, match=complaint),
    ):
        chart.validate_schema(chart.merge_values(values))
    # Rendering (what `helm install` does) refuses it too.
    with pytest.raises(helm.HelmError):
        render(values)


def test_schema_accepts_the_documented_defaults_and_the_non_default_set() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(chart.values)
        chart.validate_schema(chart.merge_values(NON_DEFAULT_VALUES))


def test_every_values_key_is_documented() -> None:
    """values.yaml is documented line by line: every value has a `# --` comment above it, and a
    block is either a section of documented values or a value documented as a whole."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    undocumented = []
    whole_values: list[int] = []  # indents of open blocks documented as one value
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        whole_values = [level for level in whole_values if level < indent]
        documented = lines[index - 1].strip().startswith("#") if index else False
        if whole_values:
            continue
        if stripped.endswith(":"):
            if documented:
                whole_values.append(indent)
            continue
        if not documented:
            undocumented.append(line)
    assert undocumented == []


def test_every_rendered_pod_meets_the_restricted_pod_security_standard(
    default_objects: list, non_default_objects: list
) -> None:
    assert assert_restricted(default_objects) == 1
    assert assert_restricted(non_default_objects) == 1
    container = one(default_objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_notes_tell_the_next_steps() -> None:
    text = notes()

    assert "apply -f" in text and "manifests/examples/shop-minimal.yaml" in text
    assert "get shops" in text
    assert "wait --for=condition=Ready shop/" in text


def test_cluster_role_binding_grants_the_role_to_the_service_account(default_objects) -> None:
    role = one(default_objects, "ClusterRole")
    binding = one(default_objects, "ClusterRoleBinding")
    account = one(default_objects, "ServiceAccount")
    pod = one(default_objects, "Deployment")["spec"]["template"]["spec"]

    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def _normalised(rules: list[dict[str, Any]]) -> list[tuple]:
    return sorted(
        (
            tuple(sorted(rule.get("apiGroups", []))),
            tuple(sorted(rule.get("resources", []))),
            tuple(sorted(rule.get("resourceNames", []))),
            tuple(sorted(rule.get("verbs", []))),
        )
        for rule in rules
    )


def test_cluster_role_mirrors_operator_rbac_yaml(default_objects: list) -> None:
    source = ROOT / "operator" / "rbac.yaml"
    assert source.exists(), "operator/rbac.yaml is the source of the operator's RBAC"
    documents = [doc for doc in yaml.safe_load_all(source.read_text()) if doc]
    expected = [rule for doc in documents if doc["kind"] == "ClusterRole" for rule in doc["rules"]]

    actual = one(default_objects, "ClusterRole")["rules"]

    assert _normalised(actual) == _normalised(expected)


def test_network_policy_admits_only_the_metrics_port_to_the_operator(
    default_objects: list[dict], non_default_objects: list[dict]
) -> None:
    closed = one(default_objects, "NetworkPolicy")
    opened = one(non_default_objects, "NetworkPolicy")
    pods = one(non_default_objects, "StatefulSet")["spec"]["template"]["metadata"]["labels"]

    assert closed["spec"]["policyTypes"] == ["Ingress"]
    assert closed["spec"]["ingress"] == []
    assert opened["spec"]["podSelector"]["matchLabels"].items() <= pods.items()
    assert opened["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    assert not by_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")
