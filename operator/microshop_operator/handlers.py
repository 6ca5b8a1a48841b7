"""Thin kopf handlers: read the Shop, build its children, apply them, report what is seen.

Every trigger (create, update, resume, the periodic timer, a change to an owned workload)
runs the same level-triggered `Reconciler.reconcile`: it computes the whole desired state
and applies it; applying an unchanged object changes nothing, so running it twice is safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from typing import Any, cast

import aiohttp
import kopf
import prometheus_client

from microshop_operator import constants as c
from microshop_operator import status as s
from microshop_operator.apply import PLURALS, ApiError, KubernetesApi
from microshop_operator.builders import ShopContext, build_children, build_generated_secrets
from microshop_operator.builders import components as shop_components
from microshop_operator.config import OperatorConfig
from microshop_operator.spec import InvalidSpec, parse_shop

Obj = dict[str, Any]
ShopKey = tuple[str, str]  # (namespace, name)

WORKLOAD_KINDS = {"Deployment", "StatefulSet"}

SERVICE_MONITOR = ("monitoring.coreos.com/v1", "ServiceMonitor")
# The kinds pruned when the Shop stops wanting one of them: everything the operator applies.
# Never Secrets: the generated credentials of a database must survive it, because its PVC
# (retained by default) still holds data that only those credentials open, e.g. when the
# database goes external and later back. Never PersistentVolumeClaims: the operator does not
# own them (and PLURALS does not list them). Never the Shop itself.
PRUNED_KINDS = tuple(
    kind for kind in PLURALS if kind not in {("v1", "Secret"), (c.API_VERSION, c.KIND)}
)

RECONCILES = prometheus_client.Counter(
    "microshop_operator_reconciles",
    "Reconciles of a Shop by outcome (success, invalid, retry, error)",
    ["namespace", "shop", "outcome"],
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "microshop_operator_reconcile_errors",
    "Reconciles of a Shop that did not succeed, by reason",
    ["namespace", "shop", "reason"],
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "microshop_operator_reconcile_seconds", "Time to reconcile one Shop", ["namespace", "shop"]
)
SHOPS = prometheus_client.Gauge(
    "microshop_operator_shops",
    "Shops this operator reconciles, by condition type and status (as last reported)",
    ["condition", "status"],
)


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf's settings: bounded watches and requests, our own annotation names, quiet events."""
    settings.watching.server_timeout = config.watch_server_timeout_seconds
    settings.watching.client_timeout = config.watch_client_timeout_seconds
    settings.watching.connect_timeout = config.connect_timeout_seconds
    settings.networking.connect_timeout = config.connect_timeout_seconds
    settings.networking.request_timeout = config.request_timeout_seconds
    settings.persistence.finalizer = f"{c.GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.GROUP, key="last-handled-configuration"
    )
    # kopf's own log lines become Events only from warnings up (not every "handler succeeded");
    # the operator posts its own Events with kopf.event, which this level does not filter.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = c.MANAGED_BY
    if config.pod_name:
        settings.posting.reporting_instance = config.pod_name
    settings.peering.lifetime = config.peering_lifetime_seconds
    if config.peering_name:
        settings.peering.standalone = False
        settings.peering.mandatory = True
        settings.peering.name = config.peering_name
    else:
        settings.peering.standalone = True


def connect(settings: kopf.OperatorSettings, config: OperatorConfig) -> KubernetesApi:
    """Log in the way kopf does by default: in-cluster service account, else the kubeconfig."""

    def login() -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
            settings=settings
        )

    info = login()
    if info is None:
        raise kopf.LoginError("no service account and no kubeconfig to reach the API with")
    timeout = aiohttp.ClientTimeout(
        total=config.request_timeout_seconds, connect=config.connect_timeout_seconds
    )
    return KubernetesApi(info, timeout=timeout, relogin=login)


@dataclasses.dataclass
class _ShopState:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    pending: bool = False
    versions: dict[str, str] = dataclasses.field(default_factory=dict)


class Reconciler:
    """One per operator process (kept in kopf's memo); serialises reconciles per Shop."""

    def __init__(self, api: KubernetesApi) -> None:
        self.api = api
        self._shops: dict[ShopKey, _ShopState] = {}
        # What each Shop's status last said, for the Shops-by-condition gauge only: a report
        # kept for metrics, never read to decide what to apply.
        self._conditions: dict[ShopKey, dict[str, str]] = {}

    async def reconcile(
        self, shop: Obj, logger: logging.Logger | logging.LoggerAdapter[Any]
    ) -> None:
        """Apply the Shop's whole desired state and report it; raises for kopf's retries."""
        state = self._state(shop)
        async with state.lock:
            await self._measured(shop, state, logger)

    async def reconcile_periodically(
        self, shop: Obj, logger: logging.Logger | logging.LoggerAdapter[Any]
    ) -> None:
        """The timer's run: an invalid Shop is already reported in its status, so stay quiet."""
        try:
            await self.reconcile(shop, logger)
        except kopf.PermanentError as error:
            logger.debug(f"periodic reconcile: {error}")

    async def reconcile_owner(
        self, namespace: str, name: str, logger: logging.Logger | logging.LoggerAdapter[Any]
    ) -> None:
        """A child changed: reconcile its Shop, coalescing bursts into one pending run."""
        state = self._shops.setdefault((namespace, name), _ShopState())
        if state.pending:
            return  # a reconcile is already queued and will see this change too
        state.pending = True
        async with state.lock:
            state.pending = False
            shop = await self.api.get(c.API_VERSION, c.KIND, namespace, name)
            if shop is None or shop["metadata"].get("deletionTimestamp"):
                return
            try:
                await self._measured(shop, state, logger)
            except (kopf.PermanentError, kopf.TemporaryError) as error:
                logger.warning(f"reconcile of {namespace}/{name} after a child change: {error}")

    def forget(self, shop: Obj) -> None:
        self._shops.pop(_key(shop), None)
        self._conditions.pop(_key(shop), None)
        self._count_shops()

    def _count_shops(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for conditions in self._conditions.values():
            for kind, status in conditions.items():
                counts[kind, status] = counts.get((kind, status), 0) + 1
        SHOPS.clear()
        for (kind, status), count in counts.items():
            SHOPS.labels(kind, status).set(count)

    def _state(self, shop: Obj) -> _ShopState:
        return self._shops.setdefault(_key(shop), _ShopState())

    async def _measured(
        self, shop: Obj, state: _ShopState, logger: logging.Logger | logging.LoggerAdapter[Any]
    ) -> None:
        namespace, name = _key(shop)
        outcome, reason = "error", "Unexpected"
        with RECONCILE_SECONDS.labels(namespace, name).time():
            try:
                await self._reconcile(shop, state, logger)
                outcome = "success"
            except kopf.PermanentError:
                outcome, reason = "invalid", s.Reason.INVALID_SPEC
                raise
            except kopf.TemporaryError:
                outcome, reason = "retry", s.Reason.APPLY_FAILED
                raise
            except Exception as error:
                reason = type(error).__name__
                raise
            finally:
                RECONCILES.labels(namespace, name, outcome).inc()
                if outcome != "success":
                    RECONCILE_ERRORS.labels(namespace, name, reason).inc()

    async def _reconcile(
        self,
        shop: Obj,
        state: _ShopState,
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        generation = int(shop["metadata"].get("generation") or 0)

        # 1. Refuse an invalid Shop before anything is applied.
        try:
            spec = parse_shop(shop)
            children = [_owned(child, shop) for child in build_children(shop)]
        except InvalidSpec as error:
            await self._report(
                shop, s.Observation(generation, problem=(s.Reason.INVALID_SPEC, error.message))
            )
            raise kopf.PermanentError(f"invalid Shop: {error.message}") from error

        # 2. Paused: observe and report, change nothing.
        if spec.paused:
            observed = await self._observe_workloads(shop)
            await self._report(shop, self._observation(shop, generation, observed, paused=True))
            return

        # 3. Generated Secrets first, each created once and never rotated.
        # None: no ServiceMonitor wanted; else whether its kind is served (the CRD installed).
        monitoring: bool | None = None
        try:
            # Look before generating: in the steady state every reconcile finds them all and
            # draws no key material at all.
            missing = [
                secret["metadata"]["name"]
                for secret in build_generated_secrets(shop, generate=False)
                if await self.api.get("v1", "Secret", _key(shop)[0], secret["metadata"]["name"])
                is None
            ]
            fresh = build_generated_secrets(shop, generate=True) if missing else []
            for secret in (s for s in fresh if s["metadata"]["name"] in missing):
                if await self.api.create_if_absent(_owned(secret, shop)):
                    kopf.event(
                        _body(shop),
                        type="Normal",
                        reason="Created",
                        message=f"Secret {secret['metadata']['name']}",
                    )
            # 4. Every other child, in the builders' order, under one field manager; a
            #    ServiceMonitor only where its CRD is served (else it would fail forever).
            monitoring_served = await self.api.serves(*SERVICE_MONITOR)
            if any((o["apiVersion"], o["kind"]) == SERVICE_MONITOR for o in children):
                monitoring = monitoring_served
            if monitoring is False:
                children = [o for o in children if (o["apiVersion"], o["kind"]) != SERVICE_MONITOR]
            applied: dict[tuple[str, str], Obj] = {}
            changed: list[str] = []
            for child in children:
                result = await self.api.apply(child)
                ident = f"{child['kind']}/{child['metadata']['name']}"
                version = str(result.get("metadata", {}).get("resourceVersion", ""))
                if state.versions.get(ident) != version:
                    changed.append(ident)
                    state.versions[ident] = version
                applied[child["kind"], child["metadata"]["name"]] = result
            # 5. Delete the children the Shop no longer wants (an HPA once autoscaling is off,
            #    the Ingress once it is removed, a database's objects once it is external).
            await self._prune(shop, children, served_monitoring=monitoring_served)
        except (ApiError, aiohttp.ClientError, TimeoutError) as error:
            message = (
                f"{error.reason}: {error.message}"
                if isinstance(error, ApiError)
                else f"the API did not answer: {error!r}"
            )
            await self._report(
                shop,
                s.Observation(
                    generation,
                    problem=(s.Reason.APPLY_FAILED, message),
                    service_monitor=monitoring,
                ),
            )
            raise kopf.TemporaryError(f"apply failed: {message}") from error
        if changed:
            logger.info(f"applied {len(changed)} changed object(s): {', '.join(changed)}")
            kopf.event(_body(shop), type="Normal", reason="Applied", message=_summary(changed))

        # 6. Report what the applied workloads say about themselves.
        await self._report(
            shop, self._observation(shop, generation, applied, service_monitor=monitoring)
        )

    async def _prune(self, shop: Obj, children: list[Obj], *, served_monitoring: bool) -> None:
        """Delete what this Shop made earlier and no longer wants (never Secrets, never PVCs).

        Only objects labelled as this Shop's and managed by the operator, and owned (by uid)
        by this very Shop: a namesake's leftovers or someone else's objects are never touched.
        A database switched to external loses its StatefulSet but never its data: the
        StatefulSet is first told to retain its PVCs (spec.pvcDeletionPolicy: Delete is about
        deleting the Shop, not about moving one database out of it).
        """
        namespace, name = _key(shop)
        uid = shop["metadata"].get("uid")
        wanted = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in children}
        selector = f"{c.LABEL_INSTANCE}={name},{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
        for api_version, kind in PRUNED_KINDS:
            if (api_version, kind) == SERVICE_MONITOR and not served_monitoring:
                continue  # not served: nothing of that kind can exist
            for obj in await self.api.list_objects(api_version, kind, namespace, selector):
                refs = obj["metadata"].get("ownerReferences") or []
                if not uid or not any(ref.get("uid") == uid for ref in refs):
                    continue
                if (api_version, kind, obj["metadata"]["name"]) in wanted:
                    continue
                if kind == "StatefulSet":
                    await self.api.retain_volumes(obj)
                if await self.api.delete(obj):
                    kopf.event(
                        _body(shop),
                        type="Normal",
                        reason="Deleted",
                        message=f"{kind} {obj['metadata']['name']}: no longer in the spec",
                    )

    async def _observe_workloads(self, shop: Obj) -> dict[tuple[str, str], Obj]:
        namespace = shop["metadata"]["namespace"]
        found: dict[tuple[str, str], Obj] = {}
        for component in shop_components(shop):
            body = await self.api.get("apps/v1", component.kind, namespace, component.name)
            if body is not None:
                found[component.kind, component.name] = body
        return found

    def _observation(
        self,
        shop: Obj,
        generation: int,
        observed: dict[tuple[str, str], Obj],
        *,
        paused: bool = False,
        service_monitor: bool | None = None,
    ) -> s.Observation:
        desired = {(o["kind"], o["metadata"]["name"]): o for o in build_children(shop)}
        readiness = {
            component.key: s.workload_readiness(
                observed.get((component.kind, component.name)),
                desired.get((component.kind, component.name)),
            )
            for component in shop_components(shop)
        }
        gateway = observed.get(("Service", ShopContext.of(shop).names.service(c.GATEWAY)))
        return s.Observation(
            generation=generation,
            components=readiness,
            gateway_endpoint=gateway_endpoint(shop, gateway),
            paused=paused,
            service_monitor=service_monitor,
        )

    async def _report(self, shop: Obj, observation: s.Observation) -> None:
        previous = shop.get("status")
        status = s.build_status(observation, previous, _now())
        for flipped in s.flips(previous, status):
            degraded = flipped["type"] == s.DEGRADED and flipped["status"] == "True"
            if degraded or flipped["reason"] == s.Reason.SERVICE_MONITOR_UNAVAILABLE:
                kopf.event(
                    _body(shop),
                    type="Warning",
                    reason=flipped["reason"],
                    message=flipped["message"],
                )
            elif observation.problem is not None:
                continue  # Ready and Progressing share the problem's reason: one Warning says it
            elif flipped["type"] == s.READY or flipped["reason"] == s.Reason.PAUSED:
                kopf.event(
                    _body(shop), type="Normal", reason=flipped["reason"], message=flipped["message"]
                )
        if status != _comparable(previous):
            await self.api.patch_status(shop, status)
        self._conditions[_key(shop)] = {
            str(c["type"]): str(c["status"]) for c in status.get("conditions", [])
        }
        self._count_shops()


def gateway_endpoint(shop: Obj, service: Obj | None) -> str | None:
    """Where the shop answers: the Ingress host, a load balancer's address, or in-cluster DNS."""
    ctx = ShopContext.of(shop)
    ingress = ctx.spec.gateway.ingress
    if ingress is not None and ingress.host:
        scheme = "https" if ingress.tls_secret_name else "http"
        return f"{scheme}://{ingress.host}"
    if service is None:
        return None
    balancers = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ctx.spec.gateway.service_type == "LoadBalancer" and balancers:
        address = balancers[0].get("hostname") or balancers[0].get("ip")
        return f"http://{address}:{c.SERVICE_PORT}"
    return f"http://{service['metadata']['name']}.{ctx.namespace}.svc:{c.SERVICE_PORT}"


def owner_of(child: kopf.Body | Obj) -> ShopKey | None:
    """The (namespace, name) of the Shop that controls this child, if any."""
    meta = child.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("apiVersion") == c.API_VERSION and ref.get("kind") == c.KIND:
            return str(meta.get("namespace")), str(ref.get("name"))
    return None


def _owned(child: Obj, shop: Obj) -> Obj:
    # append_owner_reference rather than kopf.adopt: adopt also copies the Shop's labels
    # onto children, and `microshop render` must print exactly what is applied.
    kopf.append_owner_reference(child, owner=_body(shop))
    return child


def _body(shop: Obj) -> kopf.Body:
    """kopf's view of a plain dict, for its event and owner-reference helpers."""
    return kopf.Body(cast(Any, shop))


def _key(shop: Obj) -> ShopKey:
    return shop["metadata"]["namespace"], shop["metadata"]["name"]


def _comparable(status: Any) -> Obj | None:
    return dict(status) if status else None


def _summary(changed: list[str]) -> str:
    shown = ", ".join(changed[:10])
    return f"applied {shown}" + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["WORKLOAD_KINDS", "Reconciler", "configure", "connect", "owner_of"]
