"""The Pod Security Standard check itself: each restricted control catches its violation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.pss import assert_restricted, violations


def restricted_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "metadata": {},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "web",
                            "image": "web:1",
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": "web"}},
                    ],
                },
            }
        },
    }


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def container(obj: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = pod(obj)["containers"][0]
    return first


Breaker = Callable[[dict[str, Any]], None]

BREAKERS: list[tuple[str, Breaker, str]] = [
    ("host network", lambda o: pod(o).update(hostNetwork=True), "hostNetwork"),
    ("host PID", lambda o: pod(o).update(hostPID=True), "hostPID"),
    ("host IPC", lambda o: pod(o).update(hostIPC=True), "hostIPC"),
    (
        "hostPath volume",
        lambda o: pod(o)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "hostPath",
    ),
    (
        "nfs volume",
        lambda o: pod(o)["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "nfs",
    ),
    ("privileged", lambda o: container(o)["securityContext"].update(privileged=True), "privileged"),
    (
        "privilege escalation allowed",
        lambda o: container(o)["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    (
        "runAsNonRoot missing",
        lambda o: pod(o)["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot",
    ),
    (
        "container runAsNonRoot false",
        lambda o: container(o)["securityContext"].update(runAsNonRoot=False),
        "runAsNonRoot",
    ),
    ("root user", lambda o: container(o)["securityContext"].update(runAsUser=0), "runAsUser"),
    (
        "seccomp missing",
        lambda o: pod(o)["securityContext"].pop("seccompProfile"),
        "seccompProfile",
    ),
    (
        "seccomp unconfined",
        lambda o: container(o)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile",
    ),
    (
        "capabilities not dropped",
        lambda o: container(o)["securityContext"].pop("capabilities"),
        "capabilities.drop",
    ),
    (
        "capability added",
        lambda o: container(o)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
        "NET_ADMIN",
    ),
    (
        "host port",
        lambda o: container(o).update(ports=[{"containerPort": 80, "hostPort": 80}]),
        "hostPort",
    ),
    (
        "unsafe sysctl",
        lambda o: pod(o)["securityContext"].update(
            sysctls=[{"name": "kernel.msgmax", "value": "1"}]
        ),
        "sysctls",
    ),
    (
        "SELinux user",
        lambda o: container(o)["securityContext"].update(seLinuxOptions={"user": "root"}),
        "seLinuxOptions.user",
    ),
    (
        "unmasked /proc",
        lambda o: container(o)["securityContext"].update(procMount="Unmasked"),
        "procMount",
    ),
    (
        "init container escalates",
        lambda o: pod(o).update(initContainers=[{"name": "init", "image": "i"}]),
        "initContainers[0](init)",
    ),
    (
        "AppArmor unconfined",
        lambda o: o["spec"]["template"]["metadata"].update(
            annotations={"container.apparmor.security.beta.kubernetes.io/web": "unconfined"}
        ),
        "apparmor",
    ),
]


def test_a_restricted_pod_passes() -> None:
    assert violations(restricted_deployment()) == []
    assert assert_restricted([restricted_deployment(), {"kind": "Service"}]) == 1


def test_net_bind_service_is_the_one_capability_that_may_be_added() -> None:
    obj = restricted_deployment()
    container(obj)["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert violations(obj) == []


@pytest.mark.parametrize(("case", "breaker", "field"), BREAKERS, ids=[b[0] for b in BREAKERS])
def test_each_control_catches_its_violation(case: str, breaker: Breaker, field: str) -> None:
    obj = copy.deepcopy(restricted_deployment())
    breaker(obj)

    found = violations(obj)

    assert found, f"{case} was not caught"
    assert any(field in problem for problem in found), found
    with pytest.raises(AssertionError, match="restricted"):
        assert_restricted([obj])


def test_cronjob_and_bare_pod_templates_are_found() -> None:
    template = restricted_deployment()["spec"]["template"]
    cronjob = {
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": copy.deepcopy(template)}}},
    }
    bare = {"kind": "Pod", "metadata": {"name": "p"}, "spec": copy.deepcopy(template["spec"])}
    bare["spec"]["hostNetwork"] = True

    assert violations(cronjob) == []
    assert any("hostNetwork" in problem for problem in violations(bare))
