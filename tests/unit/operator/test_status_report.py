"""The Shop's status derived from what a reconcile observed, to the letter: each condition's
status, reason and message, when lastTransitionTime moves, and what the stanza carries."""

from __future__ import annotations

from typing import Any

import pytest

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
        "PAUSED": "Paused",
        "ROLLING_OUT": "RollingOut",
        "RECONCILED": "Reconciled",
        "AS_EXPECTED": "AsExpected",
        "APPLIED": "Applied",
        "SERVICE_MONITOR_UNAVAILABLE": "ServiceMonitorUnavailable",
    }


@pytest.mark.parametrize(
    ("observed", "desired", "readiness"),
    [
        (
            {"spec": {"replicas": 3}, "status": {"readyReplicas": 2}},
            {"spec": {"replicas": 2}},
            (2, 2),
        ),
        ({"spec": {"replicas": 3}, "status": {"readyReplicas": 2}}, None, (2, 3)),
        ({"spec": {"replicas": 3}, "status": {}}, {"spec": {}}, (0, 3)),
        ({"status": {"readyReplicas": None}}, {"spec": {"replicas": 0}}, (0, 0)),
        (None, {"spec": {"replicas": 2}}, (0, 2)),
        (None, None, (0, 1)),
        ({"spec": {}, "status": None}, {"spec": None}, (0, 1)),
    ],
)
def test_workload_readiness_counts_ready_pods_out_of_the_wanted_ones(
    observed: Obj | None, desired: Obj | None, readiness: tuple[int, int]
) -> None:
    assert workload_readiness(observed, desired) == Readiness(*readiness)


@pytest.mark.parametrize(
    ("ready", "desired", "is_ready"), [(1, 1, True), (2, 1, True), (0, 1, False), (0, 0, True)]
)
def test_a_component_is_ready_with_as_many_ready_pods_as_wanted(
    ready: int, desired: int, is_ready: bool
) -> None:
    assert Readiness(ready, desired).is_ready is is_ready


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
