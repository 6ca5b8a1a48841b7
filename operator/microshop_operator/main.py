"""The operator's index: every kopf registration, each handing off to `handlers` in one call.

Run with `kopf run --module=microshop_operator.main --liveness=http://0.0.0.0:8080/healthz`.
"""

from __future__ import annotations

from typing import Any

import kopf
import prometheus_client

from microshop_operator import constants as c
from microshop_operator import handlers
from microshop_operator.config import OperatorConfig

CONFIG = OperatorConfig()
SHOP = (c.GROUP, c.VERSION, c.PLURAL)
DEPLOYMENTS = ("apps", "v1", "deployments")
STATEFULSETS = ("apps", "v1", "statefulsets")
# The other children the operator applies: a hand edit or deletion of any of them triggers a
# reconcile at once, not at the next timer run. Not Secrets: watching them would mean reading
# every Secret in the cluster; a deleted generated Secret comes back on the timer. Not
# ServiceMonitors: their CRD may not exist.
CHILDREN = (
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "configmaps"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
)
OWNED_KINDS = (DEPLOYMENTS, STATEFULSETS, *CHILDREN)
# Every resource kopf lists and watches for the handlers below (operator/rbac.yaml grants it);
# the owned kinds only through a label selector the server applies (handlers.filter_watches).
WATCHED = (SHOP, *OWNED_KINDS)
OWNED = {c.LABEL_MANAGED_BY: c.MANAGED_BY}


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    handlers.configure(settings, CONFIG)
    handlers.filter_watches(settings, [(group, plural) for group, _, plural in OWNED_KINDS])
    if CONFIG.metrics_port:
        prometheus_client.start_http_server(CONFIG.metrics_port)
    memo.reconciler = handlers.Reconciler(
        handlers.connect(settings, CONFIG),
        concurrency=CONFIG.max_concurrent_reconciles,
        debounce=CONFIG.child_debounce_seconds,
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.reconciler.api.close()


@kopf.on.resume(*SHOP, backoff=CONFIG.retry_backoff_seconds)
@kopf.on.create(*SHOP, backoff=CONFIG.retry_backoff_seconds)
@kopf.on.update(*SHOP, backoff=CONFIG.retry_backoff_seconds)
async def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    await memo.reconciler.reconcile(dict(body), logger)


# The periodic full re-apply: a safety net for what no watch sees (a deleted generated Secret,
# a ServiceMonitor), off the hot path: drift of every watched child is caught by its watch.
@kopf.timer(
    *SHOP,
    interval=CONFIG.reconcile_interval_seconds,
    initial_delay=CONFIG.reconcile_interval_seconds,
    backoff=CONFIG.retry_backoff_seconds,
)
async def reconcile_periodically(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    await memo.reconciler.reconcile_periodically(dict(body), logger)


async def child_changed(
    body: kopf.Body, type: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    owner = handlers.owner_of(body)
    if owner is not None:
        await memo.reconciler.child_changed(owner, dict(body), type, logger)


for _child in OWNED_KINDS:
    kopf.on.event(*_child, labels=OWNED)(child_changed)


@kopf.on.delete(*SHOP, optional=True)
async def forget(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.forget(dict(body))


# A Shop can be gone without its deletion handler having run: its finalizer removed by hand
# while no operator ran, or its namespace's deletion finishing first. The watch still says so,
# and its gauges must not count it any more.
@kopf.on.event(*SHOP)
async def forget_deleted(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        memo.reconciler.forget(dict(body))
