"""The Shop's status as a report: conditions, observedGeneration, components, gateway endpoint.

Pure functions of what one reconcile observed. Nothing here is read back to decide what to
create; the previous conditions are only consulted so that `lastTransitionTime` moves when
a condition's status flips, not on every report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

Obj = dict[str, Any]

# Condition types (Kubernetes API conventions: Ready is the summary `kubectl wait` uses).
READY: Final = "Ready"
PROGRESSING: Final = "Progressing"
DEGRADED: Final = "Degraded"
# Only when spec.observability.metrics.serviceMonitor asks for one: whether it could be applied.
# Its own condition, not Degraded: a missing Prometheus operator is the cluster's choice, and
# the shop itself runs fine without it.
SERVICE_MONITOR_APPLIED: Final = "ServiceMonitorApplied"


class Reason:
    """Every CamelCase reason the operator reports, in one place."""

    ALL_COMPONENTS_READY: Final = "AllComponentsReady"
    COMPONENTS_NOT_READY: Final = "ComponentsNotReady"
    DATABASE_NOT_READY: Final = "DatabaseNotReady"
    BUS_NOT_READY: Final = "BusNotReady"
    INVALID_SPEC: Final = "InvalidSpec"
    APPLY_FAILED: Final = "ApplyFailed"
    PAUSED: Final = "Paused"
    ROLLING_OUT: Final = "RollingOut"
    RECONCILED: Final = "Reconciled"
    AS_EXPECTED: Final = "AsExpected"
    APPLIED: Final = "Applied"
    SERVICE_MONITOR_UNAVAILABLE: Final = "ServiceMonitorUnavailable"


@dataclass(frozen=True)
class Readiness:
    ready: int
    desired: int

    @property
    def is_ready(self) -> bool:
        return self.ready >= self.desired


@dataclass(frozen=True)
class Observation:
    """What one reconcile saw; `problem` is (reason, message) when it could not apply."""

    generation: int
    components: dict[str, Readiness] = field(default_factory=dict)
    gateway_endpoint: str | None = None
    problem: tuple[str, str] | None = None
    paused: bool = False
    # None: no ServiceMonitor wanted; True: applied; False: its kind is not served.
    service_monitor: bool | None = None


def workload_readiness(observed: Obj | None, desired: Obj | None) -> Readiness:
    """Ready pods out of wanted pods for a Deployment or StatefulSet (missing: none ready)."""
    wanted = _replicas(desired) if desired is not None else None
    if wanted is None:
        wanted = _replicas(observed) if observed is not None else None
    ready = int(((observed or {}).get("status") or {}).get("readyReplicas") or 0)
    return Readiness(ready=ready, desired=1 if wanted is None else wanted)


def _replicas(workload: Obj) -> int | None:
    replicas = (workload.get("spec") or {}).get("replicas")
    return int(replicas) if replicas is not None else None


def conditions(observation: Observation) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) for Ready, Progressing and Degraded."""
    if observation.problem is not None:
        reason, message = observation.problem
        return [
            (READY, "False", reason, message),
            (PROGRESSING, "False", reason, message),
            (DEGRADED, "True", reason, message),
            *_service_monitor(observation),
        ]
    waiting = {key: r for key, r in observation.components.items() if not r.is_ready}
    if not waiting:
        ready = (READY, "True", Reason.ALL_COMPONENTS_READY, "every component is ready")
    else:
        ready = (READY, "False", _not_ready_reason(waiting), _describe(waiting))
    if observation.paused:
        progressing = (
            PROGRESSING,
            "False",
            Reason.PAUSED,
            "spec.paused is true: the operator changes nothing until it is unset",
        )
    elif waiting:
        progressing = (PROGRESSING, "True", Reason.ROLLING_OUT, _describe(waiting))
    else:
        progressing = (PROGRESSING, "False", Reason.RECONCILED, "the desired state is applied")
    degraded = (DEGRADED, "False", Reason.AS_EXPECTED, "")
    return [ready, progressing, degraded, *_service_monitor(observation)]


def _service_monitor(observation: Observation) -> list[tuple[str, str, str, str]]:
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
    return "not ready: " + ", ".join(f"{k} {r.ready}/{r.desired}" for k, r in waiting.items())


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


def flips(previous: Obj | None, current: Obj) -> list[Obj]:
    """Conditions whose status changed since the previous report (for Kubernetes Events)."""
    before = {i.get("type"): i.get("status") for i in ((previous or {}).get("conditions") or [])}
    return [i for i in current["conditions"] if before.get(i["type"]) != i["status"]]
