"""One reconcile of one Shop, as named steps: secrets, children, prune, report.

The Shop is parsed once into a `ReconcileContext` that every step reads. Each step applies
what it owns and records what failed instead of stopping: one child that the API refuses
never keeps the others from being applied or the unwanted ones from being pruned, and the
report names every child that failed and why. The steps, in order:

1. `ensure_secrets`: generated credentials first (pods that reference a missing Secret do
   not start), each created once and never rotated.
2. `apply_children`: every other child in the builders' order, server-side applied.
3. `prune`: what this Shop made earlier and no longer wants.
4. `report`: the status derived (status.py) from what the applies returned.

Level-triggered: every run computes the whole desired state; applying an unchanged object
changes nothing, so running it twice is safe (the RabbitMQ cluster-operator's Reconcile()
reads the same way, one named step per concern).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any, cast

import aiohttp
import kopf

from microshop_operator import constants as c
from microshop_operator import status as s
from microshop_operator.apply import (
    FIELD_MANAGER,
    HANDOVER_MANAGER,
    PLURALS,
    ApiError,
    KubernetesApi,
)
from microshop_operator.builders import (
    ShopContext,
    build_children,
    build_generated_secrets,
    components,
)
from microshop_operator.spec import InvalidSpec, parse_quantity

Obj = dict[str, Any]
Logger = logging.Logger | logging.LoggerAdapter[Any]

SERVICE_MONITOR = ("monitoring.coreos.com/v1", "ServiceMonitor")
# The kinds pruned when the Shop stops wanting one of them: everything the operator applies.
# Never Secrets: the generated credentials of a database must survive it, because its PVC
# (retained by default) still holds data that only those credentials open, e.g. when the
# database goes external and later back. Never PersistentVolumeClaims: the operator does not
# own them (and PLURALS does not list them). Never the Shop itself.
PRUNED_KINDS = tuple(
    kind
    for kind in PLURALS
    if kind not in {("v1", "Secret"), ("v1", "PersistentVolumeClaim"), (c.API_VERSION, c.KIND)}
)
# What a request can fail with: the API's refusal, or no answer at all.
REQUEST_ERRORS = (ApiError, aiohttp.ClientError, TimeoutError)


@dataclasses.dataclass(frozen=True)
class ReconcileContext:
    """One Shop as this reconcile sees it: its body, its parsed spec and its desired children."""

    body: Obj
    shop: ShopContext
    generation: int
    uid: str | None
    # Every child but the generated Secrets, owned by the Shop, in the order they are applied.
    children: tuple[Obj, ...]

    @classmethod
    def of(cls, body: Obj) -> ReconcileContext:
        """Parse the Shop once; raises InvalidSpec for a Shop the operator refuses."""
        shop = ShopContext.of(body)
        metadata = body["metadata"]
        return cls(
            body=body,
            shop=shop,
            generation=int(metadata.get("generation") or 0),
            uid=metadata.get("uid"),
            children=tuple(owned(child, body) for child in build_children(shop)),
        )

    @property
    def namespace(self) -> str:
        return self.shop.namespace

    @property
    def retains_data(self) -> bool:
        """Volumes (and the credentials for their data) outlive the Shop."""
        return self.shop.spec.pvc_deletion_policy == "Retain"

    @property
    def name(self) -> str:
        return self.shop.name


@dataclasses.dataclass
class Progress:
    """What the steps did so far: the applied objects as the API returned them, and failures."""

    applied: dict[tuple[str, str], Obj] = dataclasses.field(default_factory=dict)
    changed: list[str] = dataclasses.field(default_factory=list)
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # None: no ServiceMonitor wanted; else whether its kind is served (the CRD installed).
    service_monitor: bool | None = None
    monitoring_served: bool = False
    resizing: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    not_expandable: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def failed(self, child: str, error: BaseException) -> None:
        self.failures.append((child, describe(error)))


def describe(error: BaseException) -> str:
    if isinstance(error, ApiError):
        return f"{error.reason}: {error.message}" if error.message else error.reason
    return f"the API did not answer: {error!r}"


async def reconcile(
    api: KubernetesApi,
    body: Obj,
    versions: dict[str, str],
    logger: Logger,
    reported: Callable[[Obj], None] = lambda status: None,
) -> Progress | None:
    """Apply the Shop's whole desired state and report it (`reported` sees the status); return
    what was applied (None for a paused Shop, which applies nothing).

    `versions` maps each child to the resourceVersion it last had, to tell what changed.
    Raises kopf.PermanentError for an invalid Shop and kopf.TemporaryError when anything
    failed (after the rest was applied and the failure reported), so kopf retries."""
    try:
        rc = ReconcileContext.of(body)
    except InvalidSpec as error:
        observation = s.Observation(
            _generation(body), problem=(s.Reason.INVALID_SPEC, error.message)
        )
        reported(await report(api, body, observation))
        raise kopf.PermanentError(f"invalid Shop: {error.message}") from error

    if rc.shop.spec.paused:
        # Observe and report, change nothing.
        observed = await observe_workloads(api, rc)
        reported(await report(api, body, observation_of(rc, observed, paused=True)))
        return None

    progress = Progress()
    await ensure_secrets(api, rc, progress)
    await apply_children(api, rc, versions, progress)
    await prune(api, rc, progress)
    if progress.changed:
        logger.info(
            f"applied {len(progress.changed)} changed object(s): {', '.join(progress.changed)}"
        )
        kopf.event(_body(body), type="Normal", reason="Applied", message=_summary(progress.changed))
    observation = dataclasses.replace(
        observation_of(
            rc,
            progress.applied,
            service_monitor=progress.service_monitor,
            failures=tuple(progress.failures),
        ),
        resizing=tuple(progress.resizing),
        not_expandable=tuple(progress.not_expandable),
    )
    try:
        reported(await report(api, body, observation))
    except REQUEST_ERRORS as error:
        raise kopf.TemporaryError(f"status not reported: {describe(error)}") from error
    if progress.failures:
        raise kopf.TemporaryError(s.conditions(observation)[2][3])
    return progress


async def ensure_secrets(api: KubernetesApi, rc: ReconcileContext, progress: Progress) -> None:
    """Create each generated Secret that is missing; never rewrite one that exists.

    Owned by the Shop (so deleted with it) only under `pvcDeletionPolicy: Delete`. Under
    Retain the volumes outlive the Shop, and so must the credentials their data was created
    with: the database and broker images set their users up on first boot only (the postgres,
    mongo and rabbitmq images' entrypoints skip it when the data directory is initialised), so
    a Shop re-created with fresh passwords could not log in to its own retained data. An
    existing Secret's ownerReference follows the policy when it changes."""
    missing: list[str] = []
    # Look before generating: in the steady state every reconcile finds them all and draws
    # no key material at all.
    for secret in build_generated_secrets(rc.shop, generate=False):
        name = secret["metadata"]["name"]
        try:
            live = await api.get("v1", "Secret", rc.namespace, name)
            if live is None:
                missing.append(name)
            else:
                await _own_secret_by_policy(api, rc, live)
        except REQUEST_ERRORS as error:
            progress.failed(f"Secret/{name}", error)
    if not missing:
        return
    for secret in build_generated_secrets(rc.shop, generate=True):
        name = secret["metadata"]["name"]
        if name not in missing:
            continue
        if not rc.retains_data:
            owned(secret, rc.body)
        try:
            if await api.create_if_absent(secret):
                kopf.event(
                    _body(rc.body), type="Normal", reason="Created", message=f"Secret {name}"
                )
        except REQUEST_ERRORS as error:
            progress.failed(f"Secret/{name}", error)


async def _own_secret_by_policy(api: KubernetesApi, rc: ReconcileContext, live: Obj) -> None:
    refs = (live.get("metadata") or {}).get("ownerReferences") or []
    others = [ref for ref in refs if ref.get("uid") != rc.uid]
    wanted = others if rc.retains_data else [*others, *_shop_reference(rc.body)]
    if [ref.get("uid") for ref in refs] != [ref.get("uid") for ref in wanted]:
        await api.set_owner_references(live, wanted)


def _shop_reference(shop: Obj) -> list[Obj]:
    probe: Obj = {"metadata": {}}
    kopf.append_owner_reference(probe, owner=_body(shop))
    refs: list[Obj] = probe["metadata"]["ownerReferences"]
    return refs


async def apply_children(
    api: KubernetesApi, rc: ReconcileContext, versions: dict[str, str], progress: Progress
) -> None:
    """Server-side apply every child in order; a ServiceMonitor only where its kind is served
    (else it would fail forever). A child the API refuses is recorded and the next applied."""
    children = list(rc.children)
    wants_monitor = any((o["apiVersion"], o["kind"]) == SERVICE_MONITOR for o in children)
    try:
        progress.monitoring_served = await api.serves(*SERVICE_MONITOR)
    except REQUEST_ERRORS as error:
        if wants_monitor:
            progress.failed(f"ServiceMonitor/{rc.name}", error)
        children = [o for o in children if (o["apiVersion"], o["kind"]) != SERVICE_MONITOR]
    else:
        if wants_monitor:
            progress.service_monitor = progress.monitoring_served
        if not progress.monitoring_served:
            children = [o for o in children if (o["apiVersion"], o["kind"]) != SERVICE_MONITOR]
    for child in children:
        ident = f"{child['kind']}/{child['metadata']['name']}"
        try:
            if child["kind"] == "Deployment" and "replicas" not in child["spec"]:
                await hand_replicas_over(api, child)
            result = await api.apply(child)
        except ApiError as error:
            # A StatefulSet's volumeClaimTemplates are immutable (422): a grown size is
            # applied by expanding the volumes and re-creating the StatefulSet.
            grown = child["kind"] == "StatefulSet" and error.status == 422
            if not grown or not await grow_volumes(api, rc, child, progress):
                progress.failed(ident, error)
            continue
        except REQUEST_ERRORS as error:
            progress.failed(ident, error)
            continue
        version = str(result.get("metadata", {}).get("resourceVersion", ""))
        if versions.get(ident) != version:
            progress.changed.append(ident)
            versions[ident] = version
        progress.applied[child["kind"], child["metadata"]["name"]] = result


async def grow_volumes(
    api: KubernetesApi, rc: ReconcileContext, statefulset: Obj, progress: Progress
) -> bool:
    """Apply a grown `size` to a StatefulSet whose volumeClaimTemplates cannot change: expand
    each PersistentVolumeClaim, then delete the StatefulSet with `propagationPolicy: Orphan`
    (its pods keep running and serving) so that the next apply creates it anew with the new
    template and it adopts them (the RabbitMQ cluster-operator's approach, with a condition
    while it happens). False when the refusal was about something else.

    A claim grows only where its StorageClass allows volume expansion
    (PersistentVolumeClaimResize admission); a refusal is reported, and the StatefulSet is
    left as it is. Shrinking or another storageClassName is refused by the CRD's transition
    rules; should a Shop get past them (an older CRD), it is reported and nothing changes."""
    meta = statefulset["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    key, field = _volume_of(rc, name)
    live = await api.get("apps/v1", "StatefulSet", namespace, name)
    if live is None:
        return False
    if live["metadata"].get("deletionTimestamp"):
        progress.resizing.append(
            (key, f"StatefulSet {name} is being re-created for its grown volume; its pods serve")
        )
        return True
    (wanted,) = statefulset["spec"]["volumeClaimTemplates"]
    (have,) = (live.get("spec") or {}).get("volumeClaimTemplates") or [{}]
    size, before = _storage(wanted), _storage(have)
    wanted_class = wanted["spec"].get("storageClassName")
    if wanted_class is not None and wanted_class != (have.get("spec") or {}).get(
        "storageClassName"
    ):
        why = "a volume keeps the StorageClass it was provisioned with"
        progress.failures.append((f"StatefulSet/{name}", f"{field}.storageClassName: {why}"))
        return True
    if size is None or before is None or parse_quantity(size) == parse_quantity(before):
        return False
    if parse_quantity(size) < parse_quantity(before):
        why = f"{field}.size {size} is below the volume's {before}: a claim cannot shrink"
        progress.failures.append((f"StatefulSet/{name}", why))
        return True
    prefix = f"{wanted['metadata']['name']}-{name}-"
    selector = ",".join(f"{k}={v}" for k, v in live["spec"]["selector"]["matchLabels"].items())
    for claim in await api.list_objects("v1", "PersistentVolumeClaim", namespace, selector):
        claim_name = claim["metadata"]["name"]
        if not claim_name.startswith(prefix) or not claim_name[len(prefix) :].isdigit():
            continue
        requested = _storage(claim)
        if requested is not None and parse_quantity(requested) >= parse_quantity(size):
            continue
        try:
            await api.request_storage(claim, size)
        except ApiError as error:
            if error.status not in (403, 422):
                raise
            progress.not_expandable.append(
                (
                    key,
                    f"{field}.size {size}: volume {claim_name} stays {requested}: {error.message}",
                )
            )
            return True
    await api.delete(live, propagation="Orphan")
    progress.resizing.append(
        (key, f"volumes grow from {before} to {size}; StatefulSet {name} is re-created, "
              "its pods serve meanwhile")
    )  # fmt: skip
    kopf.event(
        _body(rc.body),
        type="Normal",
        reason=s.Reason.RESIZING_VOLUMES,
        message=f"{field}.size {before} -> {size}: volumes expanded, StatefulSet {name} re-created",
    )
    return True


def _storage(claim: Obj) -> str | None:
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    storage = requests.get("storage")
    return str(storage) if storage is not None else None


def _volume_of(rc: ReconcileContext, statefulset: str) -> tuple[str, str]:
    """(status.components key, the Shop field that sizes it) of a StatefulSet."""
    for service in c.DATABASE_SERVICES:
        if rc.shop.names.database(service) == statefulset:
            return f"{service}-db", f"spec.databases.{service}.managed"
    return "bus", "spec.bus"


async def hand_replicas_over(api: KubernetesApi, deployment: Obj) -> None:
    """Before the operator stops applying a Deployment's replicas (autoscaling turned on),
    give the field a second owner with its live value, so that it stays as it is for the HPA
    to take over instead of being removed and defaulted to one pod.

    Server-side apply removes a field that its only manager stops applying, and the
    Deployment's defaulting then sets replicas to 1 (merge/update.go Updater.prune,
    SetDefaults_Deployment); the Kubernetes docs' "Transferring ownership" (server-side apply)
    hands a field over by applying it under another field manager first. Done only while the
    operator's own apply still owns the field: afterwards the HPA's scale writes own it."""
    meta = deployment["metadata"]
    live = await api.get("apps/v1", "Deployment", meta["namespace"], meta["name"])
    if live is None or not _applies_replicas(live):
        return
    replicas = (live.get("spec") or {}).get("replicas")
    if replicas is None:
        return
    handover = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }
    await api.apply(handover, manager=HANDOVER_MANAGER)


def _applies_replicas(live: Obj) -> bool:
    """Whether the operator's apply owns spec.replicas (from metadata.managedFields)."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
            return "f:replicas" in spec
    return False


async def prune(api: KubernetesApi, rc: ReconcileContext, progress: Progress) -> None:
    """Delete what this Shop made earlier and no longer wants (never Secrets, never PVCs).

    Only objects labelled as this Shop's and managed by the operator, and owned (by uid) by
    this very Shop: a namesake's leftovers or someone else's objects are never touched. A
    database switched to external loses its StatefulSet but never its data: the StatefulSet
    is first told to retain its PVCs (spec.pvcDeletionPolicy: Delete is about deleting the
    Shop, not about moving one database out of it). A child that failed to apply is still
    wanted, so it is never pruned for its failure.
    """
    wanted = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in rc.children}
    selector = f"{c.LABEL_INSTANCE}={rc.name},{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
    for api_version, kind in PRUNED_KINDS:
        if (api_version, kind) == SERVICE_MONITOR and not progress.monitoring_served:
            continue  # not served: nothing of that kind can exist
        try:
            found = await api.list_objects(api_version, kind, rc.namespace, selector)
        except REQUEST_ERRORS as error:
            progress.failed(f"{kind} (listing to prune)", error)
            continue
        for obj in found:
            name = obj["metadata"]["name"]
            refs = obj["metadata"].get("ownerReferences") or []
            if not rc.uid or not any(ref.get("uid") == rc.uid for ref in refs):
                continue
            if (api_version, kind, name) in wanted:
                continue
            try:
                if kind == "StatefulSet":
                    await api.retain_volumes(obj)
                    if not await _claims_released(api, obj):
                        why = "its claims still name it as owner: deleting it would delete the data"
                        progress.failures.append((f"{kind}/{name} (pruning)", why))
                        continue
                deleted = await api.delete(obj)
            except REQUEST_ERRORS as error:
                progress.failed(f"{kind}/{name} (pruning)", error)
                continue
            if deleted:
                kopf.event(
                    _body(rc.body),
                    type="Normal",
                    reason="Deleted",
                    message=f"{kind} {name}: no longer in the spec",
                )


async def _claims_released(
    api: KubernetesApi, statefulset: Obj, attempts: int = 20, interval: float = 0.25
) -> bool:
    """Whether no claim of the StatefulSet has it as owner any more. After the retention
    policy is set to Retain, the StatefulSet controller takes its ownerReference off each
    claim (updateClaimOwnerRefForSetAndPod, pkg/controller/statefulset); until it has, deleting
    the StatefulSet lets the garbage collector delete those claims, and the data with them."""
    uid = statefulset["metadata"].get("uid")
    labels = (((statefulset.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
    # Its claims carry its selector's labels; whichever are listed, ownership decides.
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    namespace = statefulset["metadata"]["namespace"]
    for attempt in range(attempts):
        claims = await api.list_objects("v1", "PersistentVolumeClaim", namespace, selector)
        owned = [
            claim
            for claim in claims
            if any(ref.get("uid") == uid for ref in claim["metadata"].get("ownerReferences") or [])
        ]
        if not owned:
            return True
        if attempt + 1 < attempts:
            await asyncio.sleep(interval)
    return False


async def observe_workloads(api: KubernetesApi, rc: ReconcileContext) -> dict[tuple[str, str], Obj]:
    """The workloads as they are (a paused Shop applies nothing, so nothing came back)."""
    found: dict[tuple[str, str], Obj] = {}
    for component in components(rc.shop):
        body = await api.get("apps/v1", component.kind, rc.namespace, component.name)
        if body is not None:
            found[component.kind, component.name] = {**body, "kind": component.kind}
    return found


def observation_of(
    rc: ReconcileContext,
    observed: dict[tuple[str, str], Obj],
    *,
    paused: bool = False,
    service_monitor: bool | None = None,
    failures: tuple[tuple[str, str], ...] = (),
) -> s.Observation:
    desired = {(o["kind"], o["metadata"]["name"]): o for o in rc.children}
    readiness = {
        component.key: s.workload_readiness(
            observed.get((component.kind, component.name)),
            desired.get((component.kind, component.name)),
        )
        for component in components(rc.shop)
    }
    gateway = observed.get(("Service", rc.shop.names.service(c.GATEWAY)))
    return s.Observation(
        generation=rc.generation,
        components=readiness,
        gateway_endpoint=s.gateway_endpoint(rc.shop, gateway),
        paused=paused,
        service_monitor=service_monitor,
        failures=failures,
    )


async def report(api: KubernetesApi, body: Obj, observation: s.Observation) -> Obj:
    """Patch the status when it changed (only what changed, removing what is gone); post an
    Event for each condition that flipped. Returns the status as reported."""
    previous = body.get("status")
    status = s.build_status(observation, previous, _now())
    problem = observation.problem is not None or bool(observation.failures)
    for flipped in s.flips(previous, status):
        degraded = flipped["type"] == s.DEGRADED and flipped["status"] == "True"
        if degraded or flipped["reason"] == s.Reason.SERVICE_MONITOR_UNAVAILABLE:
            kopf.event(
                _body(body), type="Warning", reason=flipped["reason"], message=flipped["message"]
            )
        elif problem:
            continue  # Ready and Progressing share the problem's reason: one Warning says it
        elif flipped["type"] == s.READY or flipped["reason"] == s.Reason.PAUSED:
            kopf.event(
                _body(body), type="Normal", reason=flipped["reason"], message=flipped["message"]
            )
    patch = s.status_patch(dict(previous) if previous else None, status)
    if patch is not None:
        await api.patch_status(body, patch)
    return status


def owned(child: Obj, shop: Obj) -> Obj:
    # append_owner_reference rather than kopf.adopt: adopt also copies the Shop's labels
    # onto children, and `microshop render` must print exactly what is applied.
    kopf.append_owner_reference(child, owner=_body(shop))
    return child


def _body(shop: Obj) -> kopf.Body:
    """kopf's view of a plain dict, for its event and owner-reference helpers."""
    return kopf.Body(cast(Any, shop))


def _generation(body: Obj) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


def _summary(changed: list[str]) -> str:
    shown = ", ".join(changed[:10])
    return f"applied {shown}" + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
