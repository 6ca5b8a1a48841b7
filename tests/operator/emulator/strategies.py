"""Per-kind defaulting and update validation of the built-in kinds the operator writes.

Defaults follow the SetDefaults_* functions of pkg/apis/core/v1/defaults.go and
pkg/apis/apps/v1/defaults.go (only the fields listed here); update rules follow
pkg/apis/apps/validation/validation.go and pkg/apis/core/validation/validation.go, with the
same field paths and messages, so a write the real server refuses is refused here as 422.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
from collections.abc import Callable
from typing import Any

from .errors import FieldError, forbidden_field, invalid_field, required_field
from .quantity import parse_quantity
from .selectors import selector_from_label_selector
from .store import clone

Body = dict[str, Any]
FieldErrors = list[FieldError]

# What ValidateStatefulSetUpdate lets change (the clone it compares copies these from the old
# spec; revisionHistoryLimit joined the list in Kubernetes 1.35).
STATEFULSET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
STATEFULSET_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
    "'minReadySeconds' are forbidden"
)
PVC_FORBIDDEN = (
    "spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)
IMMUTABLE = "field is immutable"
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
# Where the emulator allocates Service cluster IPs from (kind's default service CIDR).
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")


# -- defaulting ---------------------------------------------------------------------------------


def default_pod_spec(spec: Body) -> None:
    """SetDefaults_PodSpec, SetDefaults_Container, SetDefaults_Probe (core/v1/defaults.go)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in itertools.chain(
        spec.get("initContainers") or [], spec.get("containers") or []
    ):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        container.setdefault(
            "imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent"
        )
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if isinstance(container.get(probe), dict):
                found = container[probe]
                found.setdefault("timeoutSeconds", 1)
                found.setdefault("periodSeconds", 10)
                found.setdefault("successThreshold", 1)
                found.setdefault("failureThreshold", 3)
                if isinstance(found.get("httpGet"), dict):
                    found["httpGet"].setdefault("scheme", "HTTP")
        for env in container.get("env") or []:
            field_ref = (env.get("valueFrom") or {}).get("fieldRef")
            if isinstance(field_ref, dict):
                field_ref.setdefault("apiVersion", "v1")


def default_namespace(body: Body) -> None:
    """A new namespace: the kubernetes finalizer (namespace strategy PrepareForCreate), phase
    Active and the immutable kubernetes.io/metadata.name label (SetDefaults_Namespace)."""
    body.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    body["status"] = {"phase": "Active"}
    labels = body["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = body["metadata"]["name"]


def default_deployment(body: Body) -> None:
    """SetDefaults_Deployment (apps/v1/defaults.go)."""
    spec = body.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def default_statefulset(body: Body) -> None:
    """SetDefaults_StatefulSet (apps/v1/defaults.go), and the claim templates' own defaults."""
    spec = body.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    policy.setdefault("whenDeleted", "Retain")
    policy.setdefault("whenScaled", "Retain")
    for template in spec.get("volumeClaimTemplates") or []:
        template.setdefault("apiVersion", "v1")
        template.setdefault("kind", "PersistentVolumeClaim")
        template.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        template.setdefault("status", {"phase": "Pending"})
    default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def default_service(body: Body, old: Body | None, allocate: Callable[[], str]) -> None:
    """SetDefaults_Service, and the ClusterIP allocation and clusterIP/clusterIPs
    normalisation of pkg/registry/core/service/storage (normalizeClusterIPs,
    patchAllocatedValues: an update that omits the allocated IP keeps it)."""
    spec = body.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    old_spec = (old or {}).get("spec") or {}
    if old is not None and old_spec.get("clusterIP") and not spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
        spec.setdefault("clusterIPs", list(old_spec.get("clusterIPs") or [old_spec["clusterIP"]]))
    changed = old is not None and spec.get("clusterIP") != old_spec.get("clusterIP")
    if changed and spec.get("clusterIPs") and spec.get("clusterIPs") == old_spec.get("clusterIPs"):
        # the clusterIP was changed and clusterIPs left as it was: clusterIPs follows
        spec["clusterIPs"] = [spec["clusterIP"], *spec["clusterIPs"][1:]]
    if not spec.get("clusterIP"):
        spec["clusterIP"] = allocate()
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    if spec["clusterIP"] != "None":
        spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


def default_claim(body: Body) -> None:
    """SetDefaults_PersistentVolumeClaim(Spec): volumeMode Filesystem, status phase Pending."""
    body.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    body.setdefault("status", {}).setdefault("phase", "Pending")


def fold_string_data(body: Body) -> None:
    """A Secret's stringData is write-only: the server folds it into data (base64) and drops it
    (pkg/apis/core/v1/conversion.go Convert_v1_Secret_To_core_Secret); type defaults to Opaque."""
    string_data = body.pop("stringData", None) or {}
    if string_data:
        data = body.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    body.setdefault("type", "Opaque")


def default_network_policy(body: Body) -> None:
    """SetDefaults_NetworkPolicy (networking/v1/defaults.go): policyTypes from the rules given,
    ports' protocol TCP."""
    spec = body.setdefault("spec", {})
    for rule in itertools.chain(spec.get("ingress") or [], spec.get("egress") or []):
        for port in rule.get("ports") or []:
            port.setdefault("protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]


# -- update validation --------------------------------------------------------------------------


def validate_deployment_update(new: Body, old: Body) -> FieldErrors:
    """ValidateDeploymentUpdate: spec.selector is immutable (apps/v1)."""
    return _immutable(new, old, ("spec", "selector"))


def validate_statefulset_update(new: Body, old: Body) -> FieldErrors:
    """ValidateStatefulSetUpdate: everything in spec but the allowlisted fields is frozen."""
    new_spec, old_spec = dict(new.get("spec") or {}), dict(old.get("spec") or {})
    for field in STATEFULSET_MUTABLE:
        new_spec.pop(field, None)
        old_spec.pop(field, None)
    if _semantic(new_spec) != _semantic(old_spec):
        return [forbidden_field("spec", STATEFULSET_FORBIDDEN)]
    return []


def validate_service_update(new: Body, old: Body) -> FieldErrors:
    """ValidateServiceUpdate's validateUpgradeDowngradeClusterIPs: a set cluster IP stays."""
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if "ExternalName" in (new_spec.get("type"), old_spec.get("type")):
        return []
    new_ips, old_ips = (
        list(new_spec.get("clusterIPs") or []),
        list(old_spec.get("clusterIPs") or []),
    )
    if old_ips and new_ips and new_ips[0] != old_ips[0]:
        return [invalid_field("spec.clusterIPs[0]", new_ips, "may not change once set")]
    return []


def validate_claim_update(new: Body, old: Body) -> FieldErrors:
    """ValidatePersistentVolumeClaimUpdate: only resources.requests (and the volume attributes
    class) may change, and the storage request not below status.capacity (the real message
    appends a diff of the two specs, left out here)."""
    new_spec, old_spec = clone(new.get("spec") or {}), clone(old.get("spec") or {})
    errors: FieldErrors = []
    # the pv controller sets volumeName once, when it binds the claim; a class may be set once
    for field in ("volumeName", "storageClassName"):
        if not old_spec.get(field) and field in new_spec:
            old_spec[field] = new_spec[field]
    bound = (new.get("status") or {}).get("phase") == "Bound"
    if bound:  # the storage request may change (admission decides whether it may grow)
        for spec in (new_spec, old_spec):
            (spec.get("resources") or {}).get("requests", {}).pop("storage", None)
    new_spec.pop("volumeAttributesClassName", None)
    old_spec.pop("volumeAttributesClassName", None)
    if _semantic(new_spec) != _semantic(old_spec):
        errors.append(forbidden_field("spec", PVC_FORBIDDEN))
    capacity = ((old.get("status") or {}).get("capacity") or {}).get("storage")
    requested = ((new.get("spec") or {}).get("resources", {}).get("requests") or {}).get("storage")
    if bound and capacity and requested and parse_quantity(requested) < parse_quantity(capacity):
        errors.append(
            forbidden_field(
                "spec.resources.requests.storage", "field can not be less than status.capacity"
            )
        )
    return errors


def validate_immutable_data(new: Body, old: Body, data_fields: tuple[str, ...]) -> FieldErrors:
    """ValidateSecretUpdate / ValidateConfigMapUpdate: once `immutable: true`, the data and the
    flag itself stay (a Secret's type is immutable always)."""
    errors: FieldErrors = []
    if old.get("kind") == "Secret" and new.get("type") != old.get("type"):
        errors.append(invalid_field("type", new.get("type"), IMMUTABLE))
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errors.append(forbidden_field("immutable", IMMUTABLE_WHEN_SET))
        for field in data_fields:
            if (new.get(field) or {}) != (old.get(field) or {}):
                errors.append(forbidden_field(field, IMMUTABLE_WHEN_SET))
    return errors


def validate_deployment(body: Body) -> FieldErrors:
    """ValidateDeploymentSpec, the parts a hand-written manifest gets wrong."""
    return _selector_matches_template(body, "deployment")


def validate_statefulset(body: Body) -> FieldErrors:
    return _selector_matches_template(body, "statefulset")


def _selector_matches_template(body: Body, kind: str) -> FieldErrors:
    spec = body.get("spec") or {}
    selector = spec.get("selector")
    if not selector:
        return [required_field("spec.selector")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    matcher = selector_from_label_selector(selector)
    if matcher.empty:
        return [invalid_field("spec.selector", selector, f"empty selector is invalid for {kind}")]
    if not matcher.matches(labels):
        return [
            invalid_field(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        ]
    return []


def _immutable(new: Body, old: Body, path: tuple[str, ...]) -> FieldErrors:
    new_value, old_value = _dig(new, path), _dig(old, path)
    if _semantic(new_value) != _semantic(old_value):
        return [invalid_field(".".join(path), new_value, IMMUTABLE)]
    return []


def _dig(body: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        body = body.get(step) if isinstance(body, dict) else None
    return body


def _semantic(value: Any) -> Any:
    """apiequality.Semantic.DeepEqual: an empty map or list equals an absent one."""
    if isinstance(value, dict):
        return {k: _semantic(v) for k, v in value.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value
