"""The Shop's status as a report: conditions, observedGeneration, components, gateway endpoint.

Pure functions of what one reconcile observed. Nothing here is read back to decide what to
create; the previous status is only consulted so that `lastTransitionTime` moves when a
condition's status flips, not on every report, and so that the patch removes what is gone
and is skipped when nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from microshop_operator import constants as c

if TYPE_CHECKING:
    from microshop_operator.builders.meta import ShopContext

Obj = dict[str, Any]

# Condition types (Kubernetes API conventions: Ready is the summary `kubectl wait` uses).
READY: Final = "Ready"
PROGRESSING: Final = "Progressing"
DEGRADED: Final = "Degraded"
# Only when spec.observability.metrics.serviceMonitor asks for one: whether it could be applied.
# Its own condition, not Degraded: a missing Prometheus operator is the cluster's choice, and
# the shop itself runs fine without it.
SERVICE_MONITOR_APPLIED: Final = "ServiceMonitorApplied"

# The keys of `status` this module writes; any other key (none today) is left alone.
STATUS_KEYS: Final = ("observedGeneration", "conditions", "components", "gateway")


class Reason:
    """Every CamelCase reason the operator reports, in one place."""

    ALL_COMPONENTS_READY: Final = "AllComponentsReady"
    COMPONENTS_NOT_READY: Final = "ComponentsNotReady"
    DATABASE_NOT_READY: Final = "DatabaseNotReady"
    BUS_NOT_READY: Final = "BusNotReady"
    INVALID_SPEC: Final = "InvalidSpec"
    APPLY_FAILED: Final = "ApplyFailed"
    PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
    RESIZING_VOLUMES: Final = "ResizingVolumes"
    VOLUME_EXPANSION_NOT_ALLOWED: Final = "VolumeExpansionNotAllowed"
    PAUSED: Final = "Paused"
    ROLLING_OUT: Final = "RollingOut"
    RECONCILED: Final = "Reconciled"
    AS_EXPECTED: Final = "AsExpected"
    APPLIED: Final = "Applied"
    SERVICE_MONITOR_UNAVAILABLE: Final = "ServiceMonitorUnavailable"


@dataclass(frozen=True)
class Readiness:
    """One workload as `kubectl rollout status` sees it, plus its ready/desired pod counts.

    `rolled_out`: the controller saw the current generation and every desired pod runs the
    current template (rollout status's "successfully rolled out"); `stalled`: the Deployment's
    Progressing condition says ProgressDeadlineExceeded (its message)."""

    ready: int
    desired: int
    rolled_out: bool = True
    stalled: str | None = None

    @property
    def is_ready(self) -> bool:
        return self.rolled_out and self.ready >= self.desired

    def describe(self, key: str) -> str:
        counts = f"{key} {self.ready}/{self.desired}"
        # The counts say why unless every pod is ready but not all run the new template.
        return counts if self.ready < self.desired or self.rolled_out else f"{counts} rolling out"


@dataclass(frozen=True)
class Observation:
    """What one reconcile saw.

    `problem` is (reason, message) when the Shop could not be applied at all (an invalid
    spec); `failures` names each child (Kind/name) that could not be applied or pruned, and
    why, while the rest were."""

    generation: int
    components: dict[str, Readiness] = field(default_factory=dict)
    gateway_endpoint: str | None = None
    problem: tuple[str, str] | None = None
    paused: bool = False
    # None: no ServiceMonitor wanted; True: applied; False: its kind is not served.
    service_monitor: bool | None = None
    failures: tuple[tuple[str, str], ...] = ()
    # (component, what is happening) while volumes grow; (component, why not) where the
    # StorageClass (or anything else) refuses the expansion.
    resizing: tuple[tuple[str, str], ...] = ()
    not_expandable: tuple[tuple[str, str], ...] = ()


def workload_readiness(observed: Obj | None, desired: Obj | None) -> Readiness:
    """A Deployment's or StatefulSet's readiness, as `kubectl rollout status` decides it.

    The rules of kubectl's DeploymentStatusViewer and StatefulSetStatusViewer
    (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go): the controller has observed
    the current generation; a Deployment has `updatedReplicas` = desired, no old replicas
    left (`replicas` = `updatedReplicas`) and `availableReplicas` = `updatedReplicas`, and
    is stalled once its Progressing condition says ProgressDeadlineExceeded; a StatefulSet has
    `readyReplicas` = desired and `currentRevision` = `updateRevision`. A missing workload
    has no pod ready and is not rolled out.
    """
    wanted = _replicas(desired) if desired is not None else None
    if wanted is None:
        wanted = _replicas(observed) if observed is not None else None
    replicas = 1 if wanted is None else wanted
    if observed is None:
        return Readiness(ready=0, desired=replicas, rolled_out=False)
    status = observed.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    generation = int((observed.get("metadata") or {}).get("generation") or 0)
    seen = int(status.get("observedGeneration") or 0)
    current = seen >= generation and seen > 0
    if observed.get("kind") == "StatefulSet":
        revision = status.get("updateRevision")
        rolled_out = (
            current
            and ready >= replicas
            and (revision is None or status.get("currentRevision") == revision)
        )
        return Readiness(ready=ready, desired=replicas, rolled_out=rolled_out)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    rolled_out = current and updated >= replicas and total <= updated and available >= updated
    stalled = None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and (
            condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            stalled = str(condition.get("message") or "progress deadline exceeded")
    # A deadline passed for an older generation says nothing about the one just applied.
    return Readiness(
        ready=ready, desired=replicas, rolled_out=rolled_out, stalled=stalled if current else None
    )


def _replicas(workload: Obj) -> int | None:
    replicas = (workload.get("spec") or {}).get("replicas")
    return int(replicas) if replicas is not None else None


def gateway_endpoint(ctx: ShopContext, service: Obj | None) -> str | None:
    """Where the shop answers: the Ingress host, a load balancer's address, or in-cluster DNS."""
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


Condition = tuple[str, str, str, str]


def conditions(observation: Observation) -> list[Condition]:
    """(type, status, reason, message) for Ready, Progressing and Degraded."""
    if observation.problem is not None:
        reason, message = observation.problem
        return _failed(observation, reason, message)
    if observation.failures:
        message = _describe_failures(observation.failures)
        return _failed(observation, Reason.APPLY_FAILED, message)
    waiting = {key: r for key, r in observation.components.items() if not r.is_ready}
    if observation.not_expandable:
        # The shop runs on, on the volumes it has; growing them needs a person (another
        # StorageClass, or the size put back).
        message = "; ".join(f"{key}: {why}" for key, why in observation.not_expandable)
        return [
            _ready(waiting),
            (PROGRESSING, "False", Reason.VOLUME_EXPANSION_NOT_ALLOWED, message),
            (DEGRADED, "True", Reason.VOLUME_EXPANSION_NOT_ALLOWED, message),
            *_service_monitor(observation),
        ]
    stalled = {key: r for key, r in waiting.items() if r.stalled is not None}
    if stalled:
        # The rollout needs a person (a crash-looping or unpullable version): the old pods
        # keep serving, the Shop is not Ready and says which component is stuck.
        message = "; ".join(f"{key}: {r.stalled}" for key, r in stalled.items())
        described = _describe(waiting)
        return [
            (READY, "False", Reason.PROGRESS_DEADLINE_EXCEEDED, f"{message} ({described})"),
            (PROGRESSING, "False", Reason.PROGRESS_DEADLINE_EXCEEDED, message),
            (DEGRADED, "True", Reason.PROGRESS_DEADLINE_EXCEEDED, message),
            *_service_monitor(observation),
        ]
    ready = _ready(waiting)
    if observation.paused:
        progressing = (
            PROGRESSING,
            "False",
            Reason.PAUSED,
            "spec.paused is true: the operator changes nothing until it is unset",
        )
    elif observation.resizing:
        message = "; ".join(f"{key}: {what}" for key, what in observation.resizing)
        progressing = (PROGRESSING, "True", Reason.RESIZING_VOLUMES, message)
    elif waiting:
        progressing = (PROGRESSING, "True", Reason.ROLLING_OUT, _describe(waiting))
    else:
        progressing = (PROGRESSING, "False", Reason.RECONCILED, "the desired state is applied")
    degraded = (DEGRADED, "False", Reason.AS_EXPECTED, "")
    return [ready, progressing, degraded, *_service_monitor(observation)]


def _ready(waiting: dict[str, Readiness]) -> Condition:
    if not waiting:
        return (READY, "True", Reason.ALL_COMPONENTS_READY, "every component is ready")
    return (READY, "False", _not_ready_reason(waiting), _describe(waiting))


def _failed(observation: Observation, reason: str, message: str) -> list[Condition]:
    return [
        (READY, "False", reason, message),
        (PROGRESSING, "False", reason, message),
        (DEGRADED, "True", reason, message),
        *_service_monitor(observation),
    ]


def _describe_failures(failures: tuple[tuple[str, str], ...]) -> str:
    return "not applied: " + "; ".join(f"{child}: {why}" for child, why in failures)


def _service_monitor(observation: Observation) -> list[Condition]:
    if observation.service_monitor is None:
        return []
    if observation.service_monitor:
        return [(SERVICE_MONITOR_APPLIED, "True", Reason.APPLIED, "the ServiceMonitor is applied")]
    return [
        (
            SERVICE_MONITOR_APPLIED,
            "False",
            Reason.SERVICE_MONITOR_UNAVAILABLE,
            "spec asks for a ServiceMonitor but the API serves no monitoring.coreos.com/v1 "
            "servicemonitors (install the Prometheus operator's CRDs); not applied",
        )
    ]


def _not_ready_reason(waiting: dict[str, Readiness]) -> str:
    # The services wait on their stores, so a store that is not ready explains the rest.
    if any(key.endswith("-db") for key in waiting):
        return Reason.DATABASE_NOT_READY
    if "bus" in waiting:
        return Reason.BUS_NOT_READY
    return Reason.COMPONENTS_NOT_READY


def _describe(waiting: dict[str, Readiness]) -> str:
    return "not ready: " + ", ".join(r.describe(k) for k, r in waiting.items())


def build_status(observation: Observation, previous: Obj | None, now: str) -> Obj:
    """The whole status stanza; a condition keeps its lastTransitionTime unless it flipped."""
    before = {item.get("type"): item for item in ((previous or {}).get("conditions") or [])}
    rendered = []
    for kind, value, reason, message in conditions(observation):
        old = before.get(kind) or {}
        flipped = old.get("status") != value
        rendered.append(
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now if flipped else old.get("lastTransitionTime", now),
                "observedGeneration": observation.generation,
            }
        )
    status: Obj = {"observedGeneration": observation.generation, "conditions": rendered}
    if observation.components:
        status["components"] = {
            key: {"ready": r.ready, "desired": r.desired}
            for key, r in observation.components.items()
        }
    if observation.gateway_endpoint:
        status["gateway"] = {"endpoint": observation.gateway_endpoint}
    return status


def status_patch(previous: Obj | None, current: Obj) -> Obj | None:
    """The JSON merge patch (RFC 7386) that turns `previous` into `current`, None if equal.

    A merge patch merges objects key by key, so a component or stanza that is gone has to be
    sent as null to be removed; lists (conditions) are replaced whole."""
    old = previous or {}
    patch: Obj = {}
    for key in STATUS_KEYS:
        if key not in current:
            if old.get(key) is not None:
                patch[key] = None
        elif key == "components" and isinstance(old.get(key), dict):
            gone = {name: None for name in old[key] if name not in current[key]}
            changed = {k: v for k, v in current[key].items() if old[key].get(k) != v}
            if gone or changed:
                patch[key] = {**gone, **changed}
        elif old.get(key) != current[key]:
            patch[key] = current[key]
    return patch or None


def flips(previous: Obj | None, current: Obj) -> list[Obj]:
    """Conditions whose status changed since the previous report (for Kubernetes Events)."""
    before = {i.get("type"): i.get("status") for i in ((previous or {}).get("conditions") or [])}
    return [i for i in current["conditions"] if before.get(i["type"]) != i["status"]]
