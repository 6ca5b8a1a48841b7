"""The operator's writes to the Kubernetes API: server-side apply under one field manager.

kopf authenticates and watches but offers no public client for arbitrary objects, so the
operator keeps a minimal one here: an aiohttp session (aiohttp is already kopf's HTTP
library) built from kopf's own `ConnectionInfo` (kubeconfig or in-cluster service account,
via kopf's public login functions). Applying a child is one HTTP PATCH with
`application/apply-patch+yaml`; a typed client (lightkube, kr8s) would add a dependency and
re-serialise our plain dicts through its models, while `microshop render` must print exactly
what is sent.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import tenacity

from microshop_operator import constants as c

Obj = dict[str, Any]

FIELD_MANAGER = "microshop-operator"
# Shares spec.replicas of a Deployment while the operator stops applying it (see
# reconcile.hand_replicas_over): the field then has another owner and is not removed.
HANDOVER_MANAGER = "microshop-operator-handover"

# The kinds the operator reads or writes, with their URL names (all namespaced);
# operator/rbac.yaml grants exactly these.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    # Read and expanded when a Shop's volume grows; never created or deleted by the operator.
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    (c.API_VERSION, c.KIND): c.PLURAL,
}


class CredentialsRenewed(Exception):
    """A 401 after which new credentials were found: the request is worth sending again."""


# What is worth sending again: the API server shedding load (429 from API priority and
# fairness), unavailable or timing out (503, 504), the connection failing, or credentials
# renewed after a 401. client-go's rest client retries the same statuses (IsRetryableError
# and checkWait in k8s.io/client-go/rest/request.go). Anything else (a 4xx refusal, a 500)
# goes to the reconcile, which reports it and is retried by kopf.
RETRIED_STATUSES = frozenset({429, 503, 504})


def worth_retrying(error: BaseException) -> bool:
    if isinstance(error, ApiError):
        return error.status in RETRIED_STATUSES
    return isinstance(error, CredentialsRenewed | aiohttp.ClientConnectionError | TimeoutError)


@dataclass(frozen=True)
class Retry:
    """How often and how patiently one API call is retried (from OperatorConfig)."""

    attempts: int = 4
    first_seconds: float = 0.2
    max_seconds: float = 5.0

    def retrying(self) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(
                multiplier=self.first_seconds, min=self.first_seconds, max=self.max_seconds
            ),
            retry=tenacity.retry_if_exception(worth_retrying),
            reraise=True,
        )


class ApiError(Exception):
    """The API refused a request; `reason` is the Status reason (NotFound, Conflict, ...)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def object_url(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    url = f"{prefix}/namespaces/{namespace}/{PLURALS[api_version, kind]}"
    return f"{url}/{name}" if name else url


class KubernetesApi:
    """An authenticated session to the API server; opened at start-up, closed at clean-up."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        timeout: aiohttp.ClientTimeout,
        relogin: Callable[[], kopf.ConnectionInfo | None] | None = None,
        retry: Retry | None = None,
    ) -> None:
        self._files = tempfile.TemporaryDirectory(prefix="microshop-operator-")
        self._server = info.server.rstrip("/")
        self._credentials = info.as_http_headers()
        # Service account tokens are rotated by the kubelet: on a 401 log in again (re-reading
        # the token file or kubeconfig, as kopf's own client does) and retry.
        self._relogin = relogin
        self._retry = retry or Retry()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl(info)),
            timeout=timeout,
        )

    async def close(self) -> None:
        await self._session.close()
        self._files.cleanup()

    def _ssl(self, info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
        if not self._server.startswith("https"):
            return False
        if info.insecure:
            return False
        context = ssl.create_default_context(
            cafile=str(info.ca_path) if info.ca_path else None,
            cadata=_pem(info.ca_data) if info.ca_data else None,
        )
        certificate = info.certificate_path or self._file("cert.pem", info.certificate_data)
        key = info.private_key_path or self._file("key.pem", info.private_key_data)
        if certificate:
            context.load_cert_chain(str(certificate), str(key) if key else None)
        return context

    def _file(self, name: str, data: str | bytes | None) -> Path | None:
        """ssl loads client certificates from files only; kubeconfigs often carry them inline."""
        if not data:
            return None
        path = Path(self._files.name) / name
        path.write_text(_pem(data))
        path.chmod(0o600)
        return path

    async def _request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Obj:
        """One API call, retried by tenacity as `retry` configures it (see `Retry`)."""
        try:
            async for attempt in self._retry.retrying():
                with attempt:
                    return await self._send(method, url, body, content_type, params)
        except CredentialsRenewed:
            raise ApiError(401, "Unauthorized", "renewed credentials were refused too") from None
        raise AssertionError("unreachable: tenacity returns the result or re-raises")

    async def _send(
        self,
        method: str,
        url: str,
        body: Any,
        content_type: str,
        params: dict[str, str] | None,
    ) -> Obj:
        async with self._session.request(
            method,
            self._server + url,
            data=None if body is None else json.dumps(body),
            headers={
                **self._credentials,
                "Content-Type": content_type,
                "Accept": "application/json",
            },
            params=params,
        ) as response:
            payload = _json(await response.read())
            if response.status == 401 and self._renew_credentials():
                raise CredentialsRenewed()
            if response.status >= 400:
                raise ApiError(
                    response.status,
                    str(payload.get("reason", response.reason)),
                    str(payload.get("message", "")),
                )
            result: Obj = payload
            return result

    def _renew_credentials(self) -> bool:
        info = self._relogin() if self._relogin is not None else None
        if info is None:
            return False
        renewed = info.as_http_headers()
        if renewed == self._credentials:
            return False  # nothing new to try
        self._credentials = renewed
        return True

    async def apply(self, obj: Obj, *, manager: str = FIELD_MANAGER) -> Obj:
        """Server-side apply: the object's fields become ours; `force` takes them back from
        anyone who changed them by hand (level-triggered: the Shop is the source of truth)."""
        meta = obj["metadata"]
        url = object_url(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return await self._request(
            "PATCH",
            url,
            body=obj,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": manager, "force": "true"},
        )

    async def create_if_absent(self, obj: Obj) -> bool:
        """Create the object unless it exists; never touch an existing one (generated Secrets)."""
        meta = obj["metadata"]
        url = object_url(obj["apiVersion"], obj["kind"], meta["namespace"])
        try:
            await self._request("POST", url, body=obj, params={"fieldManager": FIELD_MANAGER})
        except ApiError as error:
            if error.reason == "AlreadyExists":
                return False
            raise
        return True

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self._request("GET", object_url(api_version, kind, namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[Obj]:
        """The objects of one kind in a namespace matching a label selector."""
        url = object_url(api_version, kind, namespace)
        listed = await self._request("GET", url, params={"labelSelector": selector})
        items: list[Obj] = listed.get("items") or []
        # A list's items carry no apiVersion/kind of their own (the list's say them).
        return [{**item, "apiVersion": api_version, "kind": kind} for item in items]

    async def retain_volumes(self, statefulset: Obj) -> None:
        """Make deleting this StatefulSet keep its PVCs, whatever its retention policy said."""
        meta = statefulset["metadata"]
        url = object_url("apps/v1", "StatefulSet", meta["namespace"], meta["name"])
        retain = {"whenDeleted": "Retain", "whenScaled": "Retain"}
        await self._request(
            "PATCH",
            url,
            body={"spec": {"persistentVolumeClaimRetentionPolicy": retain}},
            content_type="application/merge-patch+json",
        )

    async def set_owner_references(self, obj: Obj, refs: list[Obj]) -> None:
        """Replace an object's ownerReferences (a merge patch replaces the list whole)."""
        meta = obj["metadata"]
        url = object_url(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        await self._request(
            "PATCH",
            url,
            body={"metadata": {"ownerReferences": refs or None}},
            content_type="application/merge-patch+json",
        )

    async def request_storage(self, claim: Obj, size: str) -> None:
        """Ask for a bigger volume: a claim's storage request is the one field that may grow."""
        meta = claim["metadata"]
        url = object_url("v1", "PersistentVolumeClaim", meta["namespace"], meta["name"])
        await self._request(
            "PATCH",
            url,
            body={"spec": {"resources": {"requests": {"storage": size}}}},
            content_type="application/merge-patch+json",
        )

    async def delete(self, obj: Obj, *, propagation: str = "Background") -> bool:
        """Delete one object (dependents in the background, or orphaned); False if it was
        already gone."""
        meta = obj["metadata"]
        url = object_url(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        try:
            await self._request("DELETE", url, body={"propagationPolicy": propagation})
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API serves this kind now (discovery: its CRD may be missing, or come later).

        Discovery is readable by every authenticated user (system:discovery): no RBAC rule."""
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            listed = await self._request("GET", prefix)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        plural = PLURALS[api_version, kind]
        return any(r.get("name") == plural for r in listed.get("resources") or [])

    async def patch_status(self, shop: Obj, status: Obj) -> None:
        """Merge-patch the Shop's status subresource (the report, never read back to decide)."""
        meta = shop["metadata"]
        url = object_url(c.API_VERSION, c.KIND, meta["namespace"], meta["name"]) + "/status"
        await self._request(
            "PATCH", url, body={"status": status}, content_type="application/merge-patch+json"
        )


def _json(raw: bytes) -> Obj:
    """A response body as JSON; a proxy's HTML error page or an empty body is no Status."""
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _pem(data: str | bytes) -> str:
    """kubeconfig's *-data fields are base64 of PEM."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64decode(raw).decode()
