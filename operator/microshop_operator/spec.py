"""The Shop spec as a typed model with its defaults, and the one parser the builders trust.

The CRD in crds/shop.yaml is what the API server enforces; this model refuses the same Shops
(tests compare the two on a table of invalid Shops) so that `microshop render` and the operator
say no with a readable message before anything is applied.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from microshop_operator import constants as c

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$"
IMAGE_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
REGISTRY_PATTERN = r"^[a-z0-9]([a-z0-9.:_/-]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
URL_PATTERN = r"^https?://[^\s]+$"

Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=32)]
ImageTag = Annotated[str, StringConstraints(pattern=IMAGE_TAG_PATTERN, max_length=128)]
ObjectName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]


_SUFFIXES = {
    "": 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def parse_quantity(quantity: str) -> float:
    """A resource quantity (`1Gi`, `500M`, `0.5`) as a number, to compare two sizes
    (k8s.io/apimachinery/pkg/api/resource: binary and decimal suffixes)."""
    match = re.match(QUANTITY_PATTERN, quantity)
    if match is None:
        raise ValueError(f"not a quantity: {quantity!r}")
    suffix = match.group(2) or ""
    return float(quantity[: len(quantity) - len(suffix)]) * _SUFFIXES[suffix]


class InvalidSpec(ValueError):
    """A Shop the operator refuses; the message is meant for the Shop's owner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Model(BaseModel):
    """camelCase on the wire (as in the CRD), snake_case in Python; unknown fields and
    coerced types (the string "yes" for a boolean) refused, as the schema refuses them."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, strict=True)


class ResourceList(_Model):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class Resources(_Model):
    requests: ResourceList = ResourceList()
    limits: ResourceList = ResourceList()


class Autoscaling(_Model):
    enabled: bool = False
    min_replicas: int = Field(default=1, ge=1, le=100)
    max_replicas: int = Field(default=3, ge=1, le=100)
    target_cpu_utilization_percentage: int = Field(
        default=80, ge=1, le=100, alias="targetCPUUtilizationPercentage"
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must not exceed autoscaling.maxReplicas")
        return self


class ServiceOverride(_Model):
    """What one service may change relative to the Shop-wide settings."""

    version: ImageTag | None = None
    replicas: int | None = Field(default=None, ge=0, le=100)
    resources: Resources | None = None
    autoscaling: Autoscaling = Autoscaling()

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> ServiceOverride:
        if self.autoscaling.enabled and self.replicas is not None:
            raise ValueError("set either replicas or autoscaling.enabled, not both")
        return self

    @property
    def effective_replicas(self) -> int:
        return 1 if self.replicas is None else self.replicas


class Services(_Model):
    users: ServiceOverride = ServiceOverride()
    orders: ServiceOverride = ServiceOverride()
    payments: ServiceOverride = ServiceOverride()
    notifications: ServiceOverride = ServiceOverride()
    gateway: ServiceOverride = ServiceOverride()

    def of(self, service: str) -> ServiceOverride:
        override: ServiceOverride = getattr(self, service)
        return override


class Ingress(_Model):
    host: Annotated[str, StringConstraints(pattern=HOSTNAME_PATTERN, max_length=253)] | None = None
    class_name: ObjectName | None = None
    tls_secret_name: ObjectName | None = None

    @model_validator(mode="after")
    def _tls_needs_host(self) -> Ingress:
        if self.tls_secret_name is not None and self.host is None:
            raise ValueError("ingress.tlsSecretName needs ingress.host: a certificate is per host")
        return self


class Gateway(_Model):
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    ingress: Ingress | None = None


class SecretKeyRef(_Model):
    name: ObjectName
    key: Annotated[str, StringConstraints(pattern=SECRET_KEY_PATTERN, max_length=253)] = "url"


class ExternalDatabase(_Model):
    secret_ref: SecretKeyRef | None = None


class ManagedStorage(_Model):
    size: Quantity = "1Gi"
    storage_class_name: ObjectName | None = None
    resources: Resources | None = None


class Database(_Model):
    """Operator-managed (the default, also when `managed` is left out) or external."""

    managed: ManagedStorage | None = None
    external: ExternalDatabase | None = None

    @model_validator(mode="after")
    def _managed_or_external(self) -> Database:
        if self.managed is not None and self.external is not None:
            raise ValueError("a database is either managed or external, not both")
        if self.external is not None and self.external.secret_ref is None:
            raise ValueError(
                "an external database needs external.secretRef: the Secret holding its URL"
            )
        return self

    @property
    def is_external(self) -> bool:
        return self.external is not None

    @property
    def storage(self) -> ManagedStorage:
        return self.managed or ManagedStorage()


class Databases(_Model):
    users: Database = Database()
    orders: Database = Database()
    payments: Database = Database()
    notifications: Database = Database()

    def of(self, service: str) -> Database:
        database: Database = getattr(self, service)
        return database


class Bus(_Model):
    size: Quantity = "1Gi"
    storage_class_name: ObjectName | None = None
    resources: Resources | None = None


class Tracing(_Model):
    otlp_endpoint: (
        Annotated[str, StringConstraints(pattern=URL_PATTERN, max_length=2048)] | None
    ) = None


LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]


class Metrics(_Model):
    service_monitor: bool = False
    service_monitor_labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=16)
    monitoring_namespace: Annotated[
        str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    ] = "monitoring"

    @model_validator(mode="after")
    def _label_keys(self) -> Metrics:
        if any(not re.match(LABEL_KEY_PATTERN, key) for key in self.service_monitor_labels):
            raise ValueError(
                "serviceMonitorLabels keys are label keys (an optional DNS prefix and '/', "
                "then at most 63 letters, digits, '-', '_' or '.')"
            )
        return self


class Observability(_Model):
    tracing: Tracing = Tracing()
    metrics: Metrics = Metrics()


class Image(_Model):
    registry: Annotated[str, StringConstraints(pattern=REGISTRY_PATTERN, max_length=255)] = (
        c.DEFAULT_REGISTRY
    )
    repository: Annotated[str, StringConstraints(pattern=REGISTRY_PATTERN, max_length=255)] = (
        c.SERVICE_IMAGE_REPOSITORY
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


CIDR_PATTERN = r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Port = Annotated[int, Field(ge=1, le=65535)]


class Peer(_Model):
    """Where a peer outside the Shop lives: an IP block, or pods by namespace and/or labels
    (pod labels alone: pods in the Shop's namespace), on some ports (none given: any)."""

    cidr: Annotated[str, StringConstraints(pattern=CIDR_PATTERN, max_length=64)] | None = None
    namespace: (
        Annotated[str, StringConstraints(pattern=NAMESPACE_PATTERN, max_length=63)] | None
    ) = None
    pod_labels: dict[str, LabelValue] | None = None
    ports: list[Port] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _cidr_or_pods(self) -> Peer:
        if (self.cidr is None) == (self.namespace is None and self.pod_labels is None):
            raise ValueError("a peer is either a cidr or a namespace and/or podLabels")
        return self


class Dns(_Model):
    namespace: Annotated[str, StringConstraints(pattern=NAMESPACE_PATTERN, max_length=63)] = (
        "kube-system"
    )
    pod_labels: dict[str, LabelValue] = Field(default_factory=lambda: {"k8s-app": "kube-dns"})


class Network(_Model):
    """Where the Shop's pods may connect to outside the Shop (NetworkPolicy egress)."""

    dns: Dns = Dns()
    external_databases: list[Peer] = Field(default_factory=list, max_length=16)
    otlp_collector: list[Peer] = Field(default_factory=list, max_length=16)


class ShopSpec(_Model):
    version: ImageTag = c.DEFAULT_VERSION
    image: Image = Image()
    services: Services = Services()
    gateway: Gateway = Gateway()
    databases: Databases = Databases()
    pvc_deletion_policy: Literal["Retain", "Delete"] = "Retain"
    bus: Bus = Bus()
    observability: Observability = Observability()
    network: Network = Network()
    paused: bool = False

    def image_of(self, service: str) -> str:
        tag = self.services.of(service).version or self.version
        return f"{self.image.registry}/{self.image.repository}:{tag}"


def _location(loc: tuple[int | str, ...]) -> str:
    path = ".".join(str(part) for part in loc if not str(part).startswith("function-"))
    return f"spec.{path}" if path else "spec"


def _describe(error: ValidationError) -> str:
    messages = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        messages.append(f"{_location(item['loc'])}: {message}")
    return "; ".join(messages)


def parse_name(shop: dict[str, Any]) -> str:
    """The Shop's name, refused when its children's names would not be valid."""
    name = (shop.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise InvalidSpec("metadata.name is missing")
    if len(name) > c.MAX_SHOP_NAME_LENGTH or not re.match(DNS_LABEL_PATTERN, name):
        raise InvalidSpec(
            f"metadata.name {name!r}: a Shop's name is a DNS label (lower-case letters, digits, "
            f"'-', starting with a letter) of at most {c.MAX_SHOP_NAME_LENGTH} characters, "
            "because child names append suffixes to it"
        )
    return name


def parse_shop(shop: dict[str, Any]) -> ShopSpec:
    """The Shop's spec with every default filled in; InvalidSpec says what is wrong."""
    if shop.get("kind", c.KIND) != c.KIND or shop.get("apiVersion", c.API_VERSION) != (
        c.API_VERSION
    ):
        raise InvalidSpec(f"expected a {c.API_VERSION} {c.KIND}")
    parse_name(shop)
    spec = shop.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise InvalidSpec("spec must be an object")
    try:
        return ShopSpec.model_validate(spec)
    except ValidationError as error:
        raise InvalidSpec(_describe(error)) from None
