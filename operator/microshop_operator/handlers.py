"""What the kopf handlers call: settings, the API connection, and when a Shop is reconciled.

Every trigger (create, update, resume, the periodic re-apply, drift of an owned child) runs
the same level-triggered reconcile (reconcile.py), serialised per Shop and measured.

What a child's watch event triggers is decided by `Reconciler.child_changed`: the echo of the
operator's own apply changes nothing; a change of a child's status only (a Deployment's
controller reporting its rollout) re-derives the Shop's status from the event, without
re-applying anything; only drift (a child edited or deleted by someone else) re-applies the
whole Shop. So with nothing changing the operator sends nothing, and a Shop costs the same
requests however many Shops there are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

import aiohttp
import kopf
import prometheus_client

from microshop_operator import constants as c
from microshop_operator import reconcile
from microshop_operator import status as s
from microshop_operator.apply import KubernetesApi
from microshop_operator.config import OperatorConfig
from microshop_operator.spec import InvalidSpec

Obj = dict[str, Any]
Logger = logging.Logger | logging.LoggerAdapter[Any]
ShopKey = tuple[str, str]  # (namespace, name)

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


def filter_watches(settings: kopf.OperatorSettings, children: Iterable[tuple[str, str]]) -> None:
    """Watch owned kinds through a label selector the API server applies, so that the operator
    lists and watches only its own children instead of every object of the kind in the
    cluster and filtering them itself (a kopf `labels=` filter is client-side)."""
    for group, plural in children:
        settings.watching.label_selectors[group, plural] = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"


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
    return KubernetesApi(info, timeout=timeout, relogin=login, retry=config.api_retry)


WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


@dataclasses.dataclass
class _ShopState:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    pending: bool = False
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    # What the last complete reconcile applied: "Kind/name" -> the fingerprint of its result
    # (everything but status and bookkeeping), so a watch event tells drift from status.
    # Empty until a reconcile of this process succeeded (then the Shop's own handlers run).
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)
    # The newest body seen of each workload and Service (no managedFields): what a status-only
    # report derives the Shop's status from.
    observed: dict[tuple[str, str], Obj] = dataclasses.field(default_factory=dict)
    service_monitor: bool | None = None
    # Watch events waiting for the lock: "Kind/name" -> fingerprint (None: deleted).
    dirty: dict[str, str | None] = dataclasses.field(default_factory=dict)
    report: bool = False  # a status-only change is waiting to be reported


# Uids of deleted Shops remembered, so that a run still under way at a deletion cannot count its
# Shop again (far more than the reconciles that can be in flight at once).
FORGOTTEN_KEPT = 10_000


class Reconciler:
    """One per operator process (kept in kopf's memo); serialises reconciles per Shop."""

    def __init__(self, api: KubernetesApi, *, concurrency: int = 16, debounce: float = 0.0) -> None:
        self.api = api
        self._shops: dict[ShopKey, _ShopState] = {}
        # Full reconciles running at once: bounds the operator's memory (each holds its Shop's
        # children and their results) and its share of the API server when many Shops start.
        self._slots = asyncio.Semaphore(concurrency)
        # How long a child's event waits for the rest of its burst before it is acted on.
        self._debounce = debounce
        # What each Shop's status last said, for the Shops-by-condition gauge only: a report
        # kept for metrics, never read to decide what to apply.
        self._conditions: dict[ShopKey, dict[str, str]] = {}
        # The uids of Shops forgotten (deleted), newest last: a reconcile or report that began
        # before the deletion and ends after it must not count its Shop again. Bounded: only
        # runs in flight at a deletion can be late.
        self._forgotten: dict[str, None] = {}

    async def reconcile(self, shop: Obj, logger: Logger) -> None:
        """Apply the Shop's whole desired state and report it; raises for kopf's retries."""
        state = self._state(shop)
        async with state.lock, self._slots:
            await self._measured(shop, state, logger)

    async def reconcile_periodically(self, shop: Obj, logger: Logger) -> None:
        """The timer's run: an invalid Shop is already reported in its status, so stay quiet."""
        try:
            await self.reconcile(shop, logger)
        except kopf.PermanentError as error:
            logger.debug(f"periodic reconcile: {error}")

    async def child_changed(
        self, owner: ShopKey, child: Obj, event: str | None, logger: Logger
    ) -> None:
        """A watch event of an owned child: drift re-applies the Shop, a status-only change
        re-reports it, the echo of our own apply does nothing; bursts coalesce into one run."""
        state = self._shops.setdefault(owner, _ShopState())
        ident = f"{child.get('kind')}/{child['metadata']['name']}"
        if event != "DELETED" and _observe(state, child):
            state.report = True  # newer than what the Shop's status was derived from
        # Drift or our own echo: told apart under the lock, once the apply that may have
        # caused it has recorded its result.
        state.dirty[ident] = None if event == "DELETED" else fingerprint(child)
        if state.pending:
            return  # a run is already queued and will see this change too
        state.pending = True
        if self._debounce:
            await asyncio.sleep(self._debounce)
        async with state.lock:
            state.pending = False
            dirty, state.dirty = state.dirty, {}
            report, state.report = state.report, False
            if not state.fingerprints:
                return  # not reconciled by this process yet: the Shop's own handlers will
            # Only a child the Shop wants can drift; anything else is pruning's business.
            drifted = any(
                i in state.fingerprints and state.fingerprints[i] != f for i, f in dirty.items()
            )
            if not drifted and not report:
                return
            shop = await self.api.get(c.API_VERSION, c.KIND, *owner)
            if shop is None or shop["metadata"].get("deletionTimestamp"):
                return
            try:
                if drifted:
                    async with self._slots:
                        await self._measured(shop, state, logger)
                else:
                    await self._report_observed(shop, state)
            except (kopf.PermanentError, kopf.TemporaryError) as error:
                logger.warning(f"reconcile of {owner[0]}/{owner[1]} after a child change: {error}")

    async def _report_observed(self, shop: Obj, state: _ShopState) -> None:
        """The status derived from the children as their watches last showed them."""
        try:
            rc = reconcile.ReconcileContext.of(shop)
        except InvalidSpec:
            state.fingerprints.clear()  # the Shop's own handlers report it
            return
        observation = reconcile.observation_of(
            rc,
            state.observed,
            paused=rc.shop.spec.paused,
            service_monitor=state.service_monitor,
        )
        self._remember(shop, await reconcile.report(self.api, shop, observation))

    def forget(self, shop: Obj) -> None:
        if uid := _uid(shop):
            self._forgotten[uid] = None
            while len(self._forgotten) > FORGOTTEN_KEPT:
                del self._forgotten[next(iter(self._forgotten))]
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

    async def _measured(self, shop: Obj, state: _ShopState, logger: Logger) -> None:
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

    async def _reconcile(self, shop: Obj, state: _ShopState, logger: Logger) -> None:
        progress = await reconcile.reconcile(
            self.api,
            shop,
            state.versions,
            logger,
            reported=lambda status: self._remember(shop, status),
        )
        if progress is None:
            return  # paused: nothing applied, what was applied before is still what is wanted
        # (a reconcile that raised keeps the previous fingerprints: drift still re-applies)
        state.fingerprints = {
            f"{kind}/{name}": fingerprint(result)
            for (kind, name), result in progress.applied.items()
        }
        for result in progress.applied.values():
            _observe(state, result)
        state.service_monitor = progress.service_monitor

    def _remember(self, shop: Obj, status: Obj) -> None:
        if _uid(shop) in self._forgotten:
            return  # deleted while this run was under way: counted no more
        self._conditions[_key(shop)] = {
            str(item["type"]): str(item["status"]) for item in status.get("conditions", [])
        }
        self._count_shops()


def owner_of(child: kopf.Body | Obj) -> ShopKey | None:
    """The (namespace, name) of the Shop that controls this child, if any."""
    meta = child.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("apiVersion") == c.API_VERSION and ref.get("kind") == c.KIND:
            return str(meta.get("namespace")), str(ref.get("name"))
    return None


def fingerprint(child: Obj) -> str:
    """What a child is apart from its status and the server's bookkeeping: equal fingerprints
    mean nobody changed what the operator applied (a controller's status write keeps it)."""
    meta = {
        k: v
        for k, v in (child.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "generation", "annotations")
    }
    # Annotations the controllers write (deployment.kubernetes.io/revision) are not drift.
    meta["annotations"] = {
        k: v
        for k, v in ((child.get("metadata") or {}).get("annotations") or {}).items()
        if "kubernetes.io/" not in k
    }
    kept = {k: v for k, v in child.items() if k not in ("status", "metadata", "apiVersion", "kind")}
    text = json.dumps([meta, kept], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _observe(state: _ShopState, child: Obj) -> bool:
    """Keep the newest body of a workload or Service (only what the status reads); whether it
    was newer than the one kept."""
    kind, name = str(child.get("kind")), child["metadata"]["name"]
    if kind not in WORKLOAD_KINDS and kind != "Service":
        return False
    kept = state.observed.get((kind, name))
    if kept is not None and _version(kept) >= _version(child):
        return False
    state.observed[kind, name] = _lean(child)
    return True


def _lean(child: Obj) -> Obj:
    """What the status derivation reads of a workload or Service (status.workload_readiness,
    status.gateway_endpoint), so that 500 Shops' observed children stay small."""
    meta = child.get("metadata") or {}
    spec = child.get("spec") or {}
    lean: Obj = {
        "apiVersion": child.get("apiVersion"),
        "kind": child.get("kind"),
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "generation", "resourceVersion") if k in meta
        },
        "spec": {k: spec[k] for k in ("replicas", "type") if k in spec},
    }
    if "status" in child:
        lean["status"] = child["status"]
    return lean


def _version(child: Obj) -> int:
    try:
        return int(child["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def _key(shop: Obj) -> ShopKey:
    return shop["metadata"]["namespace"], shop["metadata"]["name"]


def _uid(shop: Obj) -> str | None:
    uid: str | None = (shop.get("metadata") or {}).get("uid")
    return uid


__all__ = ["Reconciler", "configure", "connect", "fingerprint", "owner_of"]
