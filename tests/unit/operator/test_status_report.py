"""The Shop's status derived from what a reconcile observed, to the letter: each condition's
status, reason and message, when lastTransitionTime moves, and what the stanza carries."""

from __future__ import annotations

from typing import Any

import pytest

from microshop_operator.builders import ShopContext
from microshop_operator.status import (
    DEGRADED,
    PROGRESSING,
    READY,
    SERVICE_MONITOR_APPLIED,
    Observation,
    Readiness,
    Reason,
    build_status,
    conditions,
    flips,
    gateway_endpoint,
    status_patch,
    workload_readiness,
)

Obj = dict[str, Any]
READY_ALL = {"users": Readiness(1, 1), "users-db": Readiness(1, 1), "bus": Readiness(1, 1)}


def test_reasons_are_the_documented_camel_case_names() -> None:
    assert (READY, PROGRESSING, DEGRADED, SERVICE_MONITOR_APPLIED) == (
        "Ready",
        "Progressing",
        "Degraded",
        "ServiceMonitorApplied",
    )
    assert {k: v for k, v in vars(Reason).items() if not k.startswith("_")} == {
        "ALL_COMPONENTS_READY": "AllComponentsReady",
        "COMPONENTS_NOT_READY": "ComponentsNotReady",
        "DATABASE_NOT_READY": "DatabaseNotReady",
        "BUS_NOT_READY": "BusNotReady",
        "INVALID_SPEC": "InvalidSpec",
        "APPLY_FAILED": "ApplyFailed",
        "PROGRESS_DEADLINE_EXCEEDED": "ProgressDeadlineExceeded",
        "RESIZING_VOLUMES": "ResizingVolumes",
        "VOLUME_EXPANSION_NOT_ALLOWED": "VolumeExpansionNotAllowed",
        "PAUSED": "Paused",
        "ROLLING_OUT": "RollingOut",
        "RECONCILED": "Reconciled",
        "AS_EXPECTED": "AsExpected",
        "APPLIED": "Applied",
        "SERVICE_MONITOR_UNAVAILABLE": "ServiceMonitorUnavailable",
    }


def deployment(generation: int = 2, wanted: int = 1, **status: Any) -> Obj:
    return {
        "kind": "Deployment",
        "metadata": {"generation": generation},
        "spec": {"replicas": wanted},
        "status": status,
    }


def statefulset(generation: int = 2, wanted: int = 1, **status: Any) -> Obj:
    return {
        "kind": "StatefulSet",
        "metadata": {"generation": generation},
        "spec": {"replicas": wanted},
        "status": status,
    }


DONE = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
        "availableReplicas": 1}  # fmt: skip
STALLED = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
           "message": 'ReplicaSet "demo-users-7f" has timed out progressing.'}  # fmt: skip


@pytest.mark.parametrize(
    ("observed", "desired", "readiness"),
    [
        # The desired count is the builder's; the observed one only where the builder leaves
        # it out (an HPA owns it); nothing at all means one.
        (deployment(wanted=3, **{**DONE, "readyReplicas": 2}), {"spec": {"replicas": 2}},
         Readiness(2, 2, rolled_out=False)),
        (deployment(wanted=3, **{**DONE, "readyReplicas": 2}), None,
         Readiness(2, 3, rolled_out=False)),
        (deployment(wanted=3, observedGeneration=2), {"spec": {}},
         Readiness(0, 3, rolled_out=False)),
        (None, {"spec": {"replicas": 2}}, Readiness(0, 2, rolled_out=False)),
        (None, None, Readiness(0, 1, rolled_out=False)),
        ({"kind": "Deployment", "spec": {}, "status": None}, {"spec": None},
         Readiness(0, 1, rolled_out=False)),
        # kubectl rollout status, Deployment: done when the controller saw this generation,
        # every desired pod is updated, no old one is left and the updated ones are available.
        (deployment(**DONE), None, Readiness(1, 1)),
        (deployment(generation=3, **DONE), None, Readiness(1, 1, rolled_out=False)),
        (deployment(**{**DONE, "updatedReplicas": 0}), None, Readiness(1, 1, rolled_out=False)),
        # A new version that does not start: the old pod serves, the surge pod is not ready.
        (deployment(**{**DONE, "replicas": 2}), None, Readiness(1, 1, rolled_out=False)),
        (deployment(**{**DONE, "availableReplicas": 0}), None,
         Readiness(1, 1, rolled_out=False)),
        (deployment(wanted=0, observedGeneration=2), {"spec": {"replicas": 0}},
         Readiness(0, 0)),
        # ... and stalled once the Deployment's progress deadline passed for this generation.
        (deployment(**{**DONE, "replicas": 2, "conditions": [STALLED]}), None,
         Readiness(1, 1, rolled_out=False, stalled=STALLED["message"])),
        (deployment(generation=3, **{**DONE, "conditions": [STALLED]}), None,
         Readiness(1, 1, rolled_out=False)),
        # A deadline without a message still stalls; a Progressing condition with another
        # reason (the rollout went fine) or another condition type does not.
        (deployment(**{**DONE, "replicas": 2, "conditions": [{**STALLED, "message": None}]}),
         None, Readiness(1, 1, rolled_out=False, stalled="progress deadline exceeded")),
        (deployment(**{**DONE, "conditions": [{**STALLED, "reason": "NewReplicaSetAvailable",
                                              "status": "True"}]}), None, Readiness(1, 1)),
        (deployment(**{**DONE, "conditions": [{**STALLED, "type": "Available"}]}), None,
         Readiness(1, 1)),
        # The first generation counts once the controller has observed it, and only then:
        # no observedGeneration means the controller has not looked yet (generation 1 or none).
        (deployment(generation=1, **{**DONE, "observedGeneration": 1}), None, Readiness(1, 1)),
        (deployment(generation=1, **{k: v for k, v in DONE.items() if k != "observedGeneration"}),
         None, Readiness(1, 1, rolled_out=False)),
        ({"kind": "Deployment", "metadata": {}, "spec": {"replicas": 1},
          "status": {k: v for k, v in DONE.items() if k != "observedGeneration"}}, None,
         Readiness(1, 1, rolled_out=False)),
        # StatefulSet: this generation seen, every pod ready, the update revision reached.
        (statefulset(observedGeneration=2, readyReplicas=1, currentRevision="db-1",
                     updateRevision="db-1"), None, Readiness(1, 1)),
        (statefulset(observedGeneration=2, readyReplicas=1, currentRevision="db-1",
                     updateRevision="db-2"), None, Readiness(1, 1, rolled_out=False)),
        (statefulset(observedGeneration=1, readyReplicas=1, currentRevision="db-1",
                     updateRevision="db-1"), None, Readiness(1, 1, rolled_out=False)),
        (statefulset(observedGeneration=2, readyReplicas=0, currentRevision="db-1",
                     updateRevision="db-1"), None, Readiness(0, 1, rolled_out=False)),
    ],
)  # fmt: skip
def test_workload_readiness_is_what_kubectl_rollout_status_says(
    observed: Obj | None, desired: Obj | None, readiness: Readiness
) -> None:
    """The rules of k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go
    (DeploymentStatusViewer, StatefulSetStatusViewer)."""
    assert workload_readiness(observed, desired) == readiness


@pytest.mark.parametrize(
    ("readiness", "is_ready", "described"),
    [
        (Readiness(1, 1), True, "users 1/1"),
        (Readiness(2, 1), True, "users 2/1"),
        (Readiness(0, 1), False, "users 0/1"),
        (Readiness(0, 0), True, "users 0/0"),
        (Readiness(1, 1, rolled_out=False), False, "users 1/1 rolling out"),
        (Readiness(0, 1, rolled_out=False), False, "users 0/1"),
    ],
)
def test_a_component_is_ready_rolled_out_with_as_many_ready_pods_as_wanted(
    readiness: Readiness, is_ready: bool, described: str
) -> None:
    assert readiness.is_ready is is_ready
    assert readiness.describe("users") == described


def test_everything_ready_is_ready_reconciled_and_not_degraded() -> None:
    assert conditions(Observation(generation=1, components=READY_ALL)) == [
        (READY, "True", "AllComponentsReady", "every component is ready"),
        (PROGRESSING, "False", "Reconciled", "the desired state is applied"),
        (DEGRADED, "False", "AsExpected", ""),
    ]


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        ({"users-db": Readiness(0, 1), "bus": Readiness(0, 1)}, "DatabaseNotReady"),
        ({"bus": Readiness(0, 1), "users": Readiness(0, 1)}, "BusNotReady"),
        ({"users": Readiness(0, 2)}, "ComponentsNotReady"),
    ],
)
def test_what_is_not_ready_is_named_the_store_first(
    waiting: dict[str, Readiness], reason: str
) -> None:
    components = {**READY_ALL, **waiting}
    observed = Observation(generation=2, components=components)
    # In the order the components were observed.
    described = "not ready: " + ", ".join(
        f"{k} {r.ready}/{r.desired}" for k, r in components.items() if k in waiting
    )

    assert conditions(observed) == [
        (READY, "False", reason, described),
        (PROGRESSING, "True", "RollingOut", described),
        (DEGRADED, "False", "AsExpected", ""),
    ]


def test_a_paused_shop_is_not_progressing_and_says_why() -> None:
    observed = Observation(generation=1, components={"users": Readiness(0, 1)}, paused=True)

    assert conditions(observed)[1] == (
        PROGRESSING,
        "False",
        "Paused",
        "spec.paused is true: the operator changes nothing until it is unset",
    )
    assert conditions(observed)[0] == (READY, "False", "ComponentsNotReady", "not ready: users 0/1")


def test_a_problem_makes_the_shop_degraded_and_neither_ready_nor_progressing() -> None:
    observed = Observation(
        generation=3,
        components=READY_ALL,
        problem=("InvalidSpec", "spec.replicas: must be at least 1"),
    )

    assert conditions(observed) == [
        (READY, "False", "InvalidSpec", "spec.replicas: must be at least 1"),
        (PROGRESSING, "False", "InvalidSpec", "spec.replicas: must be at least 1"),
        (DEGRADED, "True", "InvalidSpec", "spec.replicas: must be at least 1"),
    ]


@pytest.mark.parametrize(
    ("service_monitor", "expected"),
    [
        (None, []),
        (True, [(SERVICE_MONITOR_APPLIED, "True", "Applied", "the ServiceMonitor is applied")]),
        (
            False,
            [
                (
                    SERVICE_MONITOR_APPLIED,
                    "False",
                    "ServiceMonitorUnavailable",
                    "spec asks for a ServiceMonitor but the API serves no monitoring.coreos.com/v1 "
                    "servicemonitors (install the Prometheus operator's CRDs); not applied",
                )
            ],
        ),
    ],
)
def test_the_service_monitor_has_its_own_condition_only_when_asked_for(
    service_monitor: bool | None, expected: list[tuple[str, str, str, str]]
) -> None:
    healthy = Observation(generation=1, components=READY_ALL, service_monitor=service_monitor)
    broken = Observation(
        generation=1, problem=("ApplyFailed", "x"), service_monitor=service_monitor
    )

    assert conditions(healthy)[3:] == expected
    assert conditions(broken)[3:] == expected


def test_the_status_stanza_carries_generation_components_and_endpoint() -> None:
    observed = Observation(
        generation=4,
        components={"users": Readiness(1, 2)},
        gateway_endpoint="http://shop.example.com",
    )

    status = build_status(observed, None, "2026-01-01T00:00:00Z")

    assert status["observedGeneration"] == 4
    assert status["components"] == {"users": {"ready": 1, "desired": 2}}
    assert status["gateway"] == {"endpoint": "http://shop.example.com"}
    assert [c["type"] for c in status["conditions"]] == [READY, PROGRESSING, DEGRADED]
    assert {c["observedGeneration"] for c in status["conditions"]} == {4}
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {"2026-01-01T00:00:00Z"}
    assert status["conditions"][0] == {
        "type": READY,
        "status": "False",
        "reason": "ComponentsNotReady",
        "message": "not ready: users 1/2",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 4,
    }


def test_an_empty_observation_reports_no_components_and_no_endpoint() -> None:
    status = build_status(Observation(generation=1), None, "t0")

    assert set(status) == {"observedGeneration", "conditions"}


def test_last_transition_time_moves_only_when_a_condition_flips() -> None:
    first = build_status(Observation(1, {"users": Readiness(0, 1)}), None, "t0")

    same = build_status(Observation(2, {"users": Readiness(0, 1)}), first, "t1")
    flipped = build_status(Observation(3, {"users": Readiness(1, 1)}), same, "t2")

    assert [c["lastTransitionTime"] for c in same["conditions"]] == ["t0", "t0", "t0"]
    # Ready and Progressing flipped; Degraded stayed False.
    assert [c["lastTransitionTime"] for c in flipped["conditions"]] == ["t2", "t2", "t0"]
    assert [c["observedGeneration"] for c in flipped["conditions"]] == [3, 3, 3]


def test_a_previous_condition_without_a_time_gets_now() -> None:
    previous = {"conditions": [{"type": READY, "status": "True"}]}

    status = build_status(Observation(1, READY_ALL), previous, "t5")

    assert status["conditions"][0]["lastTransitionTime"] == "t5"


def test_flips_are_the_conditions_whose_status_changed() -> None:
    before = build_status(Observation(1, {"users": Readiness(0, 1)}), None, "t0")
    after = build_status(Observation(2, {"users": Readiness(1, 1)}), before, "t1")

    assert [(c["type"], c["status"]) for c in flips(before, after)] == [
        (READY, "True"),
        (PROGRESSING, "False"),
    ]
    assert flips(after, after) == []
    assert [c["type"] for c in flips(None, after)] == [READY, PROGRESSING, DEGRADED]


ROLLING = Readiness(1, 1, rolled_out=False)
STUCK = Readiness(1, 1, rolled_out=False, stalled="ReplicaSet has timed out progressing.")
MONITOR_MISSING = (
    SERVICE_MONITOR_APPLIED,
    "False",
    "ServiceMonitorUnavailable",
    "spec asks for a ServiceMonitor but the API serves no monitoring.coreos.com/v1 "
    "servicemonitors (install the Prometheus operator's CRDs); not applied",
)
FAILURES = (
    ("Deployment/demo-users", "Forbidden: deployments is forbidden"),
    ("NetworkPolicy (listing to prune)", "the API did not answer: TimeoutError()"),
)
NOT_APPLIED = (
    "not applied: Deployment/demo-users: Forbidden: deployments is forbidden; "
    "NetworkPolicy (listing to prune): the API did not answer: TimeoutError()"
)


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        # Every component rolled out and ready.
        (Observation(1, READY_ALL), [
            (READY, "True", "AllComponentsReady", "every component is ready"),
            (PROGRESSING, "False", "Reconciled", "the desired state is applied"),
            (DEGRADED, "False", "AsExpected", "")]),
        # Waiting: the store first, then the bus, then anything else; a rollout in progress.
        (Observation(1, {**READY_ALL, "users-db": Readiness(0, 1), "bus": Readiness(0, 1)}), [
            (READY, "False", "DatabaseNotReady", "not ready: users-db 0/1, bus 0/1"),
            (PROGRESSING, "True", "RollingOut", "not ready: users-db 0/1, bus 0/1"),
            (DEGRADED, "False", "AsExpected", "")]),
        (Observation(1, {**READY_ALL, "bus": Readiness(0, 1)}), [
            (READY, "False", "BusNotReady", "not ready: bus 0/1"),
            (PROGRESSING, "True", "RollingOut", "not ready: bus 0/1"),
            (DEGRADED, "False", "AsExpected", "")]),
        (Observation(1, {**READY_ALL, "users": ROLLING}), [
            (READY, "False", "ComponentsNotReady", "not ready: users 1/1 rolling out"),
            (PROGRESSING, "True", "RollingOut", "not ready: users 1/1 rolling out"),
            (DEGRADED, "False", "AsExpected", "")]),
        # A rollout past its deadline: not Ready, Degraded, naming the component.
        (Observation(1, {**READY_ALL, "users": STUCK, "bus": Readiness(0, 1)}), [
            (READY, "False", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing. "
             "(not ready: users 1/1 rolling out, bus 0/1)"),
            (PROGRESSING, "False", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing."),
            (DEGRADED, "True", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing.")]),
        # Children the API refused: each named with why, the rest were applied.
        (Observation(1, READY_ALL, failures=FAILURES), [
            (READY, "False", "ApplyFailed", NOT_APPLIED),
            (PROGRESSING, "False", "ApplyFailed", NOT_APPLIED),
            (DEGRADED, "True", "ApplyFailed", NOT_APPLIED)]),
        # An invalid spec wins over everything.
        (Observation(1, READY_ALL, problem=("InvalidSpec", "spec.x: bad"), failures=FAILURES), [
            (READY, "False", "InvalidSpec", "spec.x: bad"),
            (PROGRESSING, "False", "InvalidSpec", "spec.x: bad"),
            (DEGRADED, "True", "InvalidSpec", "spec.x: bad")]),
        # Paused: not progressing whatever is ready.
        (Observation(1, {"users": ROLLING}, paused=True), [
            (READY, "False", "ComponentsNotReady", "not ready: users 1/1 rolling out"),
            (PROGRESSING, "False", "Paused",
             "spec.paused is true: the operator changes nothing until it is unset"),
            (DEGRADED, "False", "AsExpected", "")]),
        # The ServiceMonitor condition rides along with any of them.
        (Observation(1, READY_ALL, failures=FAILURES, service_monitor=False), [
            (READY, "False", "ApplyFailed", NOT_APPLIED),
            (PROGRESSING, "False", "ApplyFailed", NOT_APPLIED),
            (DEGRADED, "True", "ApplyFailed", NOT_APPLIED), MONITOR_MISSING]),
        # Volumes growing: progressing while the StatefulSet is re-created.
        (Observation(1, READY_ALL, resizing=(("users-db", "volumes grow from 1Gi to 2Gi"),)), [
            (READY, "True", "AllComponentsReady", "every component is ready"),
            (PROGRESSING, "True", "ResizingVolumes", "users-db: volumes grow from 1Gi to 2Gi"),
            (DEGRADED, "False", "AsExpected", "")]),
        # Two at once: each named, one after the other.
        (Observation(1, READY_ALL, resizing=(("users-db", "1Gi to 2Gi"), ("bus", "1Gi to 3Gi"))), [
            (READY, "True", "AllComponentsReady", "every component is ready"),
            (PROGRESSING, "True", "ResizingVolumes", "users-db: 1Gi to 2Gi; bus: 1Gi to 3Gi"),
            (DEGRADED, "False", "AsExpected", "")]),
        (Observation(1, READY_ALL, not_expandable=(("users-db", "refused"), ("bus", "no"))), [
            (READY, "True", "AllComponentsReady", "every component is ready"),
            (PROGRESSING, "False", "VolumeExpansionNotAllowed", "users-db: refused; bus: no"),
            (DEGRADED, "True", "VolumeExpansionNotAllowed", "users-db: refused; bus: no")]),
        # A StorageClass that cannot expand: the shop runs on, Degraded says what to fix.
        (Observation(1, {**READY_ALL, "bus": Readiness(0, 1)},
                     not_expandable=(("users-db", "2Gi: refused"),),
                     resizing=(("bus", "growing"),)), [
            (READY, "False", "BusNotReady", "not ready: bus 0/1"),
            (PROGRESSING, "False", "VolumeExpansionNotAllowed", "users-db: 2Gi: refused"),
            (DEGRADED, "True", "VolumeExpansionNotAllowed", "users-db: 2Gi: refused")]),
        # Two rollouts past their deadline: both named, one after the other.
        (Observation(1, {"users": STUCK, "orders": STUCK}), [
            (READY, "False", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing.; "
             "orders: ReplicaSet has timed out progressing. "
             "(not ready: users 1/1 rolling out, orders 1/1 rolling out)"),
            (PROGRESSING, "False", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing.; "
             "orders: ReplicaSet has timed out progressing."),
            (DEGRADED, "True", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing.; "
             "orders: ReplicaSet has timed out progressing.")]),
        (Observation(1, {"users": STUCK}, service_monitor=True), [
            (READY, "False", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing. (not ready: users 1/1 rolling out)"),
            (PROGRESSING, "False", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing."),
            (DEGRADED, "True", "ProgressDeadlineExceeded",
             "users: ReplicaSet has timed out progressing."),
            (SERVICE_MONITOR_APPLIED, "True", "Applied", "the ServiceMonitor is applied")]),
    ],
)  # fmt: skip
def test_every_condition_and_reason(observation: Observation, expected: list[Any]) -> None:
    assert conditions(observation) == expected


STATUS: Obj = {
    "observedGeneration": 1,
    "conditions": [{"type": READY, "status": "True"}],
    "components": {"users": {"ready": 1, "desired": 1}, "users-db": {"ready": 1, "desired": 1}},
    "gateway": {"endpoint": "http://demo-gateway.shop.svc:8080"},
}


@pytest.mark.parametrize(
    ("previous", "current", "patch"),
    [
        # Nothing changed: nothing is sent.
        (STATUS, STATUS, None),
        (None, STATUS, STATUS),
        # A database moved out: its component is removed (null in a merge patch), not kept.
        (STATUS, {**STATUS, "components": {"users": {"ready": 1, "desired": 1}}},
         {"components": {"users-db": None}}),
        # Only what changed is sent; a component that is new or different goes as a whole.
        (STATUS, {**STATUS, "components": {"users": {"ready": 0, "desired": 1},
                                           "users-db": {"ready": 1, "desired": 1},
                                           "bus": {"ready": 0, "desired": 1}}},
         {"components": {"users": {"ready": 0, "desired": 1}, "bus": {"ready": 0, "desired": 1}}}),
        # A stanza that is gone goes as null; conditions (a list) are replaced whole.
        ({**STATUS, "observedGeneration": 2},
         {"observedGeneration": 2, "conditions": [{"type": READY, "status": "False"}]},
         {"conditions": [{"type": READY, "status": "False"}], "components": None,
          "gateway": None}),
        ({"observedGeneration": 1, "somethingElse": {"a": 1}}, {"observedGeneration": 1}, None),
    ],
)  # fmt: skip
def test_the_status_patch_sends_what_changed_and_removes_what_is_gone(
    previous: Obj | None, current: Obj, patch: Obj | None
) -> None:
    assert status_patch(previous, current) == patch


def _context(**spec: Any) -> ShopContext:
    return ShopContext.of({"metadata": {"name": "demo", "namespace": "shop"}, "spec": spec})


GATEWAY_SERVICE: Obj = {"metadata": {"name": "demo-gateway"}, "status": {}}
BALANCED: Obj = {
    "metadata": {"name": "demo-gateway"},
    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}},
}


@pytest.mark.parametrize(
    ("spec", "service", "endpoint"),
    [
        ({}, GATEWAY_SERVICE, "http://demo-gateway.shop.svc:8080"),
        ({}, None, None),
        ({"gateway": {"ingress": {"host": "shop.example.com"}}}, None, "http://shop.example.com"),
        ({"gateway": {"ingress": {"host": "shop.example.com", "tlsSecretName": "tls"}}},
         GATEWAY_SERVICE, "https://shop.example.com"),
        ({"gateway": {"ingress": {"className": "nginx"}}}, GATEWAY_SERVICE,
         "http://demo-gateway.shop.svc:8080"),
        ({"gateway": {"serviceType": "LoadBalancer"}}, BALANCED, "http://203.0.113.7:8080"),
        ({"gateway": {"serviceType": "LoadBalancer"}},
         {**BALANCED, "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}}},
         "http://lb.example.net:8080"),
        # Not yet given an address: in-cluster DNS until it is.
        ({"gateway": {"serviceType": "LoadBalancer"}}, GATEWAY_SERVICE,
         "http://demo-gateway.shop.svc:8080"),
        # A balancer's address on a ClusterIP Service (left from before) is not the endpoint.
        ({}, BALANCED, "http://demo-gateway.shop.svc:8080"),
    ],
)  # fmt: skip
def test_the_gateway_endpoint_is_where_the_shop_answers(
    spec: Obj, service: Obj | None, endpoint: str | None
) -> None:
    assert gateway_endpoint(_context(**spec), service) == endpoint
