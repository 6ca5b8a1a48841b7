"""What every builder shares: the parsed Shop, child names, labels and the restricted pod shape."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from microshop_operator import constants as c
from microshop_operator.spec import Resources, ShopSpec, parse_name, parse_shop

Obj = dict[str, Any]


@dataclass(frozen=True)
class ChildNames:
    """The name of every child of one Shop: `<shop>-<component>`."""

    shop: str

    def service(self, service: str) -> str:
        return f"{self.shop}-{service}"

    def database(self, service: str) -> str:
        return f"{self.shop}-{service}-db"

    def database_credentials(self, service: str) -> str:
        return f"{self.shop}-{service}-db-credentials"

    @property
    def bus(self) -> str:
        return f"{self.shop}-bus"

    @property
    def bus_credentials(self) -> str:
        return f"{self.shop}-bus-credentials"

    @property
    def bus_config(self) -> str:
        return f"{self.shop}-bus-config"

    @property
    def jwt(self) -> str:
        return f"{self.shop}-jwt"

    @property
    def gateway_routes(self) -> str:
        return f"{self.shop}-gateway-routes"

    @property
    def default_deny(self) -> str:
        return f"{self.shop}-default-deny"


@dataclass(frozen=True)
class ShopContext:
    """One Shop as the builders see it: identity plus the validated spec."""

    name: str
    namespace: str
    spec: ShopSpec

    @classmethod
    def of(cls, shop: Obj) -> ShopContext:
        spec = parse_shop(shop)
        metadata = shop.get("metadata") or {}
        return cls(
            name=parse_name(shop), namespace=metadata.get("namespace") or "default", spec=spec
        )

    @classmethod
    def parsed(cls, shop: Obj | ShopContext) -> ShopContext:
        """The context as given, or parsed from the Shop's body (once per reconcile)."""
        return shop if isinstance(shop, ShopContext) else cls.of(shop)

    @property
    def names(self) -> ChildNames:
        return ChildNames(self.name)

    def selector(self, name: str) -> dict[str, str]:
        """The labels a workload's selector matches: never changed after creation."""
        return {c.LABEL_NAME: name, c.LABEL_INSTANCE: self.name}

    def labels(self, name: str, component: str) -> dict[str, str]:
        return {
            **self.selector(name),
            c.LABEL_COMPONENT: component,
            c.LABEL_PART_OF: c.PART_OF,
            c.LABEL_MANAGED_BY: c.MANAGED_BY,
        }

    def metadata(self, object_name: str, name: str, component: str) -> Obj:
        return {
            "name": object_name,
            "namespace": self.namespace,
            "labels": self.labels(name, component),
        }


def digest(data: Any) -> str:
    """A short stable digest of JSON-able data, for pod-template annotations."""
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def pod_security_context(uid: int) -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int) -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volume(name: str, size: str = "64Mi", memory: bool = False) -> Obj:
    """An emptyDir for what a read-only root filesystem still needs to write (/tmp, sockets)."""
    empty_dir: Obj = {"sizeLimit": size}
    if memory:
        empty_dir["medium"] = "Memory"
    return {"name": name, "emptyDir": empty_dir}


def resources(defaults: Obj, override: Resources | None) -> Obj:
    """Default requests/limits with the Shop's per-field overrides on top."""
    merged: Obj = {"requests": dict(defaults["requests"]), "limits": dict(defaults["limits"])}
    if override is not None:
        for section in ("requests", "limits"):
            values = getattr(override, section).model_dump(exclude_none=True)
            merged[section].update(values)
    return merged


def secret_env(name: str, secret: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def value_env(name: str, value: str) -> Obj:
    return {"name": name, "value": value}
