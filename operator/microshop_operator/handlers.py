"""What the kopf handlers call: settings, the API connection, and when a Shop is reconciled.

Every trigger (create, update, resume, the periodic timer, a change to an owned workload)
runs the same level-triggered reconcile (reconcile.py), serialised per Shop and measured.
"""

from __future__ import annotations

import asyncio
import dataclasses
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

    async def reconcile(self, shop: Obj, logger: Logger) -> None:
        """Apply the Shop's whole desired state and report it; raises for kopf's retries."""
        state = self._state(shop)
        async with state.lock:
            await self._measured(shop, state, logger)

    async def reconcile_periodically(self, shop: Obj, logger: Logger) -> None:
        """The timer's run: an invalid Shop is already reported in its status, so stay quiet."""
        try:
            await self.reconcile(shop, logger)
        except kopf.PermanentError as error:
            logger.debug(f"periodic reconcile: {error}")

    async def reconcile_owner(self, namespace: str, name: str, logger: Logger) -> None:
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
        def remember(status: Obj) -> None:
            self._conditions[_key(shop)] = {
                str(item["type"]): str(item["status"]) for item in status.get("conditions", [])
            }
            self._count_shops()

        await reconcile.reconcile(self.api, shop, state.versions, logger, reported=remember)


def owner_of(child: kopf.Body | Obj) -> ShopKey | None:
    """The (namespace, name) of the Shop that controls this child, if any."""
    meta = child.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("apiVersion") == c.API_VERSION and ref.get("kind") == c.KIND:
            return str(meta.get("namespace")), str(ref.get("name"))
    return None


def _key(shop: Obj) -> ShopKey:
    return shop["metadata"]["namespace"], shop["metadata"]["name"]


__all__ = ["Reconciler", "configure", "connect", "owner_of"]
