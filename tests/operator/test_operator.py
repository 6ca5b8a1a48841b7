"""The real operator process against the API emulator, driven with the real kubectl."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver import KUBECTL, RunningApi

from microshop_operator.builders import build_children, build_generated_secrets
from tests.support.kopf import TEST_TIMINGS, kopf_run
from tests.support.polling import wait_until
from tests.support.servers import free_ports

pytestmark = pytest.mark.operator

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "shop.yaml"
MINIMAL_SHOP = ROOT / "manifests" / "examples" / "shop-minimal.yaml"
OPERATOR_LOG_LINES = 80

# (apiVersion, URL collection) of every kind the operator applies, to find its children.
CHILD_KINDS = {
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
}
SHOPS = "/apis/microshop.dev/v1alpha1/namespaces/{ns}/shops"
SERVICE_MONITORS = "/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors"
# The Prometheus operator's CRD, reduced to what serves the kind.
SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"plural": "servicemonitors", "singular": "servicemonitor",
                  "kind": "ServiceMonitor", "listKind": "ServiceMonitorList"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object",
                                 "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}  # fmt: skip


class Operator:
    """`kopf run` of microshop_operator.main as a subprocess, with its log kept for failures."""

    def __init__(
        self,
        api: RunningApi,
        log: Path,
        liveness_port: int,
        metrics_port: int,
        reconcile_interval_seconds: int = 5,
    ) -> None:
        self.api = api
        self.log_path = log
        self.liveness = f"http://127.0.0.1:{liveness_port}/healthz"
        self.metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        env = {
            **os.environ,
            "MICROSHOP_OPERATOR_METRICS_PORT": str(metrics_port),
            # The chart's ServiceAccount: the emulator holds it to the chart's RBAC.
            "KUBECONFIG": str(api.operator_kubeconfig),
            "MICROSHOP_OPERATOR_RECONCILE_INTERVAL_SECONDS": str(reconcile_interval_seconds),
            **TEST_TIMINGS,
        }
        self._log = log.open("w")
        self.process = subprocess.Popen(
            kopf_run(self.liveness, "--standalone"),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()

    def tail(self) -> str:
        return "".join(self.log_path.read_text().splitlines(keepends=True)[-OPERATOR_LOG_LINES:])


@contextlib.contextmanager
def running_operator(
    api: RunningApi, directory: Path, reconcile_interval_seconds: int = 5
) -> Iterator[Operator]:
    """The CRD applied and the operator started and alive; stopped (log printed) at exit."""
    api.kubectl("apply", "--validate=false", "-f", str(CRD))
    running = Operator(api, directory / "kopf.log", *free_ports(2), reconcile_interval_seconds)

    def alive() -> bool:
        try:
            with urllib.request.urlopen(running.liveness, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            assert running.process.poll() is None, running.tail()
            return False

    try:
        wait_until(alive, timeout=20, what="the operator's liveness endpoint")
        yield running
    finally:
        running.stop()
        print(f"\n--- operator log (last {OPERATOR_LOG_LINES} lines) ---\n{running.tail()}")


@pytest.fixture(scope="module")
def operator(
    module_api: RunningApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    with running_operator(module_api, tmp_path_factory.mktemp("operator")) as running:
        yield running


def shop_manifest(namespace: str, name: str = "demo", **spec: Any) -> dict[str, Any]:
    shop: dict[str, Any] = yaml.safe_load(MINIMAL_SHOP.read_text())
    shop["metadata"] = {"name": name, "namespace": namespace}
    shop["spec"] = spec
    return shop


@contextlib.contextmanager
def crd_without_cel_rules(api: RunningApi) -> Iterator[None]:
    """The Shop CRD as an older or hand-edited cluster may have it: without its CEL rules, so a
    Shop the current CRD refuses reaches the operator. The real CRD is back afterwards."""

    def stripped(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: stripped(v) for k, v in node.items() if k != "x-kubernetes-validations"}
        if isinstance(node, list):
            return [stripped(v) for v in node]
        return node

    older = stripped(yaml.safe_load(CRD.read_text()))
    api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(older))
    try:
        yield
    finally:
        api.kubectl("apply", "--validate=false", "-f", str(CRD))


def apply_shop(api: RunningApi, shop: dict[str, Any]) -> None:
    api.kubectl("apply", "--server-side", "--validate=false", "-f", "-", input=json.dumps(shop))


def desired(shop: dict[str, Any]) -> list[dict[str, Any]]:
    """What the builders say the Shop consists of: generated Secrets and every other child."""
    return build_generated_secrets(shop, generate=False) + build_children(shop)


def live(api: RunningApi, obj: dict[str, Any]) -> dict[str, Any] | None:
    meta = obj["metadata"]
    return api.get(f"{CHILD_KINDS[obj['kind']].format(ns=meta['namespace'])}/{meta['name']}")


def children_in(api: RunningApi, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with api.client() as client:
        for kind, collection in CHILD_KINDS.items():
            listed = client.get(collection.format(ns=namespace)).json()
            found += [{**item, "kind": kind} for item in listed["items"]]
    return found


def all_applied(api: RunningApi, shop: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The live objects in the builders' order once every desired one exists, else None."""
    found = {
        (o["kind"], o["metadata"]["name"]): o
        for o in children_in(api, shop["metadata"]["namespace"])
    }
    wanted = [found.get((o["kind"], o["metadata"]["name"])) for o in desired(shop)]
    return None if None in wanted else wanted  # type: ignore[return-value]


def condition(api: RunningApi, shop: dict[str, Any], kind: str) -> dict[str, Any]:
    meta = shop["metadata"]
    body = api.get(f"{SHOPS.format(ns=meta['namespace'])}/{meta['name']}") or {}
    status = body.get("status") or {}
    for item in status.get("conditions") or []:
        if item["type"] == kind:
            return {**item, "shopGeneration": body["metadata"]["generation"]}
    return {}


def wait_for_condition(
    api: RunningApi, shop: dict[str, Any], kind: str, timeout: float = 20, **expected: str
) -> dict[str, Any]:
    """Poll until the Shop's `kind` condition has the `expected` fields; return it."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: (
            (found := condition(api, shop, kind))
            and all(found.get(key) == value for key, value in expected.items())
            and found
        ),
        timeout=timeout,
        what=f"{kind} with {expected}",
    )


def mark_workloads_ready(
    api: RunningApi, shop: dict[str, Any], only: Callable[[str], bool] = lambda name: True
) -> None:
    """Every pod of the Deployments and StatefulSets (whose name `only` accepts) passes its
    readiness probe; the emulator's controllers report it in the workloads' status."""
    for obj in build_children(shop):
        if obj["kind"] in ("Deployment", "StatefulSet") and only(obj["metadata"]["name"]):
            api.emulator.set_ready(obj["metadata"]["namespace"], obj["metadata"]["name"])


def applied_event(api: RunningApi, events_url: str) -> list[dict[str, Any]]:
    found = [e for e in (api.get(events_url) or {})["items"]
             if e.get("involvedObject", {}).get("name") == "demo"]  # fmt: skip
    return found if any(e["reason"] == "Applied" for e in found) else []


def test_a_shop_becomes_all_its_children_owned_by_it(
    operator: Operator, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = shop_manifest(namespace)

    started = time.monotonic()
    apply_shop(operator.api, shop)
    applied = wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    elapsed = time.monotonic() - started

    shop_uid = (operator.api.get(f"{SHOPS.format(ns=namespace)}/demo") or {})["metadata"]["uid"]
    for obj in applied:
        refs = obj["metadata"].get("ownerReferences") or []
        owners = [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs]
        # Under the default pvcDeletionPolicy (Retain) the generated Secrets outlive the Shop
        # with the volumes whose data they open (defect 3): nobody owns them.
        expected = [] if obj["kind"] == "Secret" else [("Shop", "demo", shop_uid, True)]
        assert owners == expected, obj["metadata"]["name"]
    events_url = f"/api/v1/namespaces/{namespace}/events"
    events = wait_until(
        # the Applied Event follows the last apply and the prune: wait for it, not the first
        lambda: applied_event(operator.api, events_url),
        what="Kubernetes Events about the Shop", timeout=15)  # fmt: skip
    assert "Applied" in {e["reason"] for e in events}
    with capsys.disabled():
        print(f"\nShop creation -> all {len(applied)} children applied: {elapsed:.2f} s")


def test_the_shop_turns_ready_when_its_workloads_are(operator: Operator, namespace: str) -> None:
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    assert condition(operator.api, shop, "Ready").get("status") != "True"

    mark_workloads_ready(operator.api, shop)
    waited = operator.api.kubectl(
        "wait", "--for=condition=Ready", "shop/demo", "-n", namespace, "--timeout=20s"
    )

    assert "condition met" in waited
    body = operator.api.get(f"{SHOPS.format(ns=namespace)}/demo") or {}
    assert body["status"]["components"]["users"] == {"ready": 1, "desired": 1}
    assert body["status"]["gateway"]["endpoint"] == f"http://demo-gateway.{namespace}.svc:8080"


def test_a_replicas_change_rolls_only_that_deployment(operator: Operator, namespace: str) -> None:
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    before = {(o["kind"], o["metadata"]["name"]): o for o in children_in(operator.api, namespace)}

    changed = shop_manifest(namespace, services={"users": {"replicas": 3}})
    apply_shop(operator.api, changed)
    wait_until(
        lambda: condition(operator.api, changed, "Progressing").get("observedGeneration") == 2,
        what="the operator to report the new generation",
        timeout=15,
    )

    after = {(o["kind"], o["metadata"]["name"]): o for o in children_in(operator.api, namespace)}
    moved = {key for key in before if before[key]["metadata"]["resourceVersion"]
             != after[key]["metadata"]["resourceVersion"]}  # fmt: skip
    assert moved == {("Deployment", "demo-users")}
    assert after["Deployment", "demo-users"]["spec"]["replicas"] == 3


def test_a_deleted_child_comes_back(operator: Operator, namespace: str) -> None:
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    gone = next(o for o in build_children(shop) if o["kind"] == "Deployment")
    old_uid = (live(operator.api, gone) or {})["metadata"]["uid"]

    operator.api.kubectl("delete", "deployment", gone["metadata"]["name"], "-n", namespace)

    back = wait_until(lambda: live(operator.api, gone), timeout=15, what="the Deployment to return")
    assert back["metadata"]["uid"] != old_uid


def test_an_invalid_shop_is_degraded_and_nothing_is_applied(
    operator: Operator, namespace: str
) -> None:
    # The current CRD refuses this Shop (a CEL rule): it reaches the operator as it would on a
    # cluster whose CRD was edited or is older than the operator.
    shop = shop_manifest(
        namespace, services={"users": {"replicas": 2, "autoscaling": {"enabled": True}}}
    )
    with crd_without_cel_rules(operator.api):
        apply_shop(operator.api, shop)

    degraded = wait_for_condition(operator.api, shop, "Degraded", status="True")
    assert degraded["reason"] == "InvalidSpec"
    assert "autoscaling" in degraded["message"]
    assert condition(operator.api, shop, "Ready")["status"] == "False"
    assert children_in(operator.api, namespace) == []


def _scrape(operator: Operator) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(operator.metrics, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_reconciles_are_measured_per_shop_and_shops_counted_by_condition(
    operator: Operator, namespace: str
) -> None:
    """Exact values per label set: every earlier test's namespace (and its Shops) is gone, so
    the Shops gauge counts these two Shops only, and this namespace's counters carry exactly
    the outcomes and reasons these two Shops produce."""
    good = shop_manifest(namespace)
    bad = shop_manifest(
        namespace, "broken", services={"users": {"replicas": 2, "autoscaling": {"enabled": True}}}
    )
    apply_shop(operator.api, good)
    with crd_without_cel_rules(operator.api):  # as in the test above
        apply_shop(operator.api, bad)
    wait_until(lambda: all_applied(operator.api, good), timeout=30, what="every child")
    wait_for_condition(operator.api, bad, "Degraded", status="True")
    wait_for_condition(operator.api, good, "Progressing", status="True")

    def shops_gauge() -> dict[tuple[str, str], float]:
        return {
            (labels["condition"], labels["status"]): value
            for (name, frozen), value in _scrape(operator).items()
            if name == "microshop_operator_shops"
            for labels in [dict(frozen)]
            if value
        }

    # demo waits for its pods (Ready False, Progressing True); broken is refused.
    expected = {
        ("Ready", "False"): 2,
        ("Progressing", "True"): 1,
        ("Progressing", "False"): 1,
        ("Degraded", "False"): 1,
        ("Degraded", "True"): 1,
    }
    gauge = wait_until(
        lambda: (found := shops_gauge()) == expected or found,
        what="the Shops gauge to count exactly these two Shops",
        timeout=15,
    )
    assert gauge is True or gauge == expected, gauge

    samples = _scrape(operator)
    mine = {
        (name, frozenset((k, v) for k, v in labels if k != "namespace")): value
        for (name, labels), value in samples.items()
        if ("namespace", namespace) in labels
    }
    outcomes = {
        (dict(labels)["shop"], dict(labels)["outcome"])
        for (name, labels) in mine
        if name == "microshop_operator_reconciles_total"
    }
    errors = {
        (dict(labels)["shop"], dict(labels)["reason"])
        for (name, labels) in mine
        if name == "microshop_operator_reconcile_errors_total"
    }
    assert outcomes == {("demo", "success"), ("broken", "invalid")}
    assert errors == {("broken", "InvalidSpec")}
    for shop, outcome in outcomes:
        counted = mine["microshop_operator_reconciles_total",
                       frozenset({("shop", shop), ("outcome", outcome)})]  # fmt: skip
        timed = mine["microshop_operator_reconcile_seconds_count", frozenset({("shop", shop)})]
        assert counted >= 1
        assert timed == counted  # every reconcile is timed once, in the same scrape
    invalid = mine["microshop_operator_reconcile_errors_total",
                   frozenset({("shop", "broken"), ("reason", "InvalidSpec")})]  # fmt: skip
    assert invalid == mine["microshop_operator_reconciles_total",
                           frozenset({("shop", "broken"), ("outcome", "invalid")})]  # fmt: skip


def test_a_paused_shop_is_left_alone_and_says_so(operator: Operator, namespace: str) -> None:
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    deployment = next(o for o in build_children(shop) if o["metadata"]["name"] == "demo-users")
    before = (live(operator.api, deployment) or {})["metadata"]["resourceVersion"]

    # The controllers' first status writes trigger reconciles; let them finish before pausing.
    operator.api.settle()
    paused = shop_manifest(namespace, paused=True, services={"users": {"replicas": 4}})
    apply_shop(operator.api, paused)
    progressing = wait_for_condition(operator.api, paused, "Progressing", reason="Paused")
    handled = f"[{namespace}/demo-orders] Handler 'child_changed' succeeded"
    seen = operator.log_path.read_text().count(handled)
    operator.api.kubectl("delete", "deployment", "demo-orders", "-n", namespace)
    wait_until(
        lambda: operator.log_path.read_text().count(handled) > seen,
        what="the operator to handle the deletion (it would restore an unpaused Shop's child)",
        timeout=15,
    )

    assert progressing["status"] == "False"
    assert (live(operator.api, deployment) or {})["metadata"]["resourceVersion"] == before
    assert operator.api.get(f"{CHILD_KINDS['Deployment'].format(ns=namespace)}/demo-orders") is None


def test_deleting_the_shop_removes_its_children_and_keeps_volumes(
    operator: Operator, namespace: str
) -> None:
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    # Play the StatefulSet controller: it makes one PVC per replica from the claim template,
    # owned by no one (persistentVolumeClaimRetentionPolicy whenDeleted=Retain).
    claims = []
    for sts in (o for o in build_children(shop) if o["kind"] == "StatefulSet"):
        template = sts["spec"]["volumeClaimTemplates"][0]
        name = f"{template['metadata']['name']}-{sts['metadata']['name']}-0"
        claims.append(name)
        pvc = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": template["spec"],
        }
        operator.api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pvc))

    operator.api.kubectl("delete", "shop", "demo", "-n", namespace, "--wait=true", "--timeout=20s")

    # Under the default pvcDeletionPolicy (Retain) the generated credentials stay with the data.
    generated = {s["metadata"]["name"] for s in build_generated_secrets(shop, generate=False)}
    wait_until(
        lambda: (
            {(o["kind"], o["metadata"]["name"]) for o in children_in(operator.api, namespace)}
            == {("Secret", name) for name in generated}
        ),
        what="every child but the generated Secrets to go",
        timeout=15,
    )
    remaining = operator.api.kubectl("get", "pvc", "-n", namespace, "-o", "name").split()
    assert sorted(remaining) == sorted(f"persistentvolumeclaim/{name}" for name in claims)


def test_render_prints_what_the_operator_applies(operator: Operator, namespace: str) -> None:
    shop = shop_manifest(namespace, services={"payments": {"replicas": 2}})
    apply_shop(operator.api, shop)
    applied = wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")

    rendered = subprocess.run(
        [sys.executable, "-m", "microshop_operator.cli", "render", "-", "-n", namespace],
        input=yaml.safe_dump(shop),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    printed = [doc for doc in yaml.safe_load_all(rendered) if doc]

    def content(obj: dict[str, Any]) -> dict[str, Any]:
        """Everything but server-set metadata, status, and generated secret values."""
        kept = {
            k: v for k, v in obj.items() if k not in ("metadata", "status", "data", "stringData")
        }
        meta = obj["metadata"]
        kept["metadata"] = {k: meta.get(k) for k in ("name", "namespace", "labels", "annotations")}
        if obj["kind"] != "Secret":
            kept["data"] = obj.get("data")
        return kept

    # What the operator sent (the API server adds its defaults to what it stores).
    sent = [
        {**(operator.api.emulator.sent(CHILD_KINDS[o["kind"]].rsplit("/", 1)[-1],
                                       namespace, o["metadata"]["name"]) or {}), "kind": o["kind"]}
        for o in applied
    ]  # fmt: skip
    assert [content(obj) for obj in printed] == [content(obj) for obj in sent]


def test_generated_secrets_are_made_once_and_never_rotated(
    operator: Operator, namespace: str
) -> None:
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    secrets = build_generated_secrets(shop, generate=False)

    def content(secret: dict[str, Any]) -> dict[str, str]:
        # The emulator keeps stringData as written (a real API server folds it into data).
        body = live(operator.api, secret) or {}
        return dict(body.get("data") or body.get("stringData") or {})

    before = {s["metadata"]["name"]: content(s) for s in secrets}
    assert all(before.values())

    # A spec change and a timer run later (the test operator's timer is 5 s) ...
    changed = shop_manifest(namespace, services={"orders": {"replicas": 2}})
    apply_shop(operator.api, changed)
    wait_until(
        lambda: condition(operator.api, changed, "Progressing").get("observedGeneration") == 2,
        what="the operator to report the new generation",
        timeout=15,
    )

    def reconciles() -> float:
        labels = {"namespace": namespace, "shop": "demo", "outcome": "success"}
        return _scrape(operator).get(
            ("microshop_operator_reconciles_total", frozenset(labels.items())), 0.0
        )

    # Two more reconciles (the test operator's timer runs every 5 s) without a spec change.
    counted = reconciles()
    wait_until(lambda: reconciles() >= counted + 2, timeout=20, what="two more reconciles")
    # ... every generated Secret holds exactly what it held.
    after = {s["metadata"]["name"]: content(s) for s in secrets}
    assert after == before

    # One deleted by hand is made again (new material: the old is gone).
    jwt = next(s for s in secrets if s["metadata"]["name"].endswith("-jwt"))
    operator.api.kubectl("delete", "secret", jwt["metadata"]["name"], "-n", namespace)
    wait_until(lambda: live(operator.api, jwt), timeout=15, what="the Secret to return")
    assert content(jwt) != before[jwt["metadata"]["name"]]


def events_about(api: RunningApi, shop: dict[str, Any]) -> list[dict[str, Any]]:
    meta = shop["metadata"]
    listed = api.get(f"/api/v1/namespaces/{meta['namespace']}/events") or {}
    return [e for e in listed["items"] if e.get("involvedObject", {}).get("name") == meta["name"]]


def test_children_the_shop_no_longer_wants_are_deleted(operator: Operator, namespace: str) -> None:
    scaled = shop_manifest(
        namespace,
        services={"users": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}}},
        gateway={"ingress": {"host": "shop.example.com"}},
    )
    apply_shop(operator.api, scaled)
    wait_until(lambda: all_applied(operator.api, scaled), timeout=30, what="every child")
    # Labelled like a child but owned by no Shop: not the operator's to delete.
    stranger = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "demo-stranger", "namespace": namespace,
                     "labels": {"app.kubernetes.io/instance": "demo",
                                "app.kubernetes.io/managed-by": "microshop-operator"}},
    }  # fmt: skip
    operator.api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(stranger))
    before = {(o["kind"], o["metadata"]["name"]): o for o in children_in(operator.api, namespace)}
    assert {("HorizontalPodAutoscaler", "demo-users"), ("PodDisruptionBudget", "demo-users"),
            ("Ingress", "demo-gateway")} <= before.keys()  # fmt: skip

    plain = shop_manifest(namespace)
    apply_shop(operator.api, plain)
    unwanted = wait_until(
        lambda: (
            condition(operator.api, plain, "Progressing").get("observedGeneration") == 2
            and {(o["kind"], o["metadata"]["name"]) for o in children_in(operator.api, namespace)}
        ),
        what="the operator to apply the new generation",
        timeout=15,
    )

    after = {(o["kind"], o["metadata"]["name"]): o for o in children_in(operator.api, namespace)}
    assert before.keys() - after.keys() == {
        ("HorizontalPodAutoscaler", "demo-users"),
        ("PodDisruptionBudget", "demo-users"),
        ("Ingress", "demo-gateway"),
    }, unwanted
    assert {(o["kind"], o["metadata"]["name"]) for o in desired(plain)} | {
        ("ConfigMap", "demo-stranger")
    } == after.keys()
    moved = {key for key in after if before[key]["metadata"]["resourceVersion"]
             != after[key]["metadata"]["resourceVersion"]}  # fmt: skip
    # Only the Deployment whose replicas the HPA had managed changes (it now says 1).
    assert moved == {("Deployment", "demo-users")}
    deleted = wait_until(
        lambda: (
            {e["message"] for e in events_about(operator.api, plain) if e["reason"] == "Deleted"}
            if len([e for e in events_about(operator.api, plain) if e["reason"] == "Deleted"]) >= 3
            else None
        ),
        what="an Event per deletion",
        timeout=15,
    )
    assert deleted == {
        "HorizontalPodAutoscaler demo-users: no longer in the spec",
        "PodDisruptionBudget demo-users: no longer in the spec",
        "Ingress demo-gateway: no longer in the spec",
    }


def test_a_service_monitor_waits_for_its_crd_without_degrading_the_shop(
    operator: Operator, namespace: str
) -> None:
    shop = shop_manifest(namespace, observability={"metrics": {"serviceMonitor": True}})
    workloads = [o for o in build_children(shop) if o["kind"] in ("Deployment", "StatefulSet")]
    apply_shop(operator.api, shop)
    wait_until(
        lambda: all(live(operator.api, o) for o in workloads), what="the workloads", timeout=15
    )

    mark_workloads_ready(operator.api, shop)
    operator.api.kubectl(
        "wait", "--for=condition=Ready", "shop/demo", "-n", namespace, "--timeout=20s"
    )

    skipped = condition(operator.api, shop, "ServiceMonitorApplied")
    assert (skipped["status"], skipped["reason"]) == ("False", "ServiceMonitorUnavailable")
    assert condition(operator.api, shop, "Degraded")["status"] == "False"
    warned = wait_until(
        lambda: [e for e in events_about(operator.api, shop)
                 if e["reason"] == "ServiceMonitorUnavailable"],
        what="a Warning Event about the missing ServiceMonitor kind", timeout=15)  # fmt: skip
    assert warned[0]["type"] == "Warning"

    # The Prometheus operator's CRD arrives: the next reconcile (the timer) applies it.
    operator.api.kubectl(
        "apply", "--validate=false", "-f", "-", input=json.dumps(SERVICE_MONITOR_CRD)
    )
    try:
        monitor = wait_until(
            lambda: operator.api.get(f"{SERVICE_MONITORS.format(ns=namespace)}/demo"),
            timeout=15,
            what="the ServiceMonitor",
        )
        applied = wait_until(
            lambda: condition(operator.api, shop, "ServiceMonitorApplied").get("status") == "True",
            what="ServiceMonitorApplied=True",
            timeout=15,
        )
    finally:
        operator.api.kubectl("delete", "crd", "servicemonitors.monitoring.coreos.com")
    assert applied
    assert monitor["metadata"]["ownerReferences"][0]["name"] == "demo"
    assert condition(operator.api, shop, "Ready")["status"] == "True"


def test_ready_names_what_it_waits_for_and_moves_its_time_only_on_a_flip(
    operator: Operator, namespace: str
) -> None:
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")

    def ready_because(reason: str) -> dict[str, Any]:
        return wait_for_condition(operator.api, shop, "Ready", reason=reason)

    operator.api.settle()  # the controllers' first status writes and the reconciles they cause

    # The services' pods are ready but they wait on their databases (and the bus).
    mark_workloads_ready(operator.api, shop, only=lambda name: not name.endswith(("-db", "-bus")))
    waiting_for_db = ready_because("DatabaseNotReady")
    time.sleep(1.1)  # lastTransitionTime has a one-second resolution
    # The databases answer; the bus does not yet: a new reason, the same status and time.
    mark_workloads_ready(operator.api, shop, only=lambda name: name.endswith("-db"))
    waiting_for_bus = ready_because("BusNotReady")
    mark_workloads_ready(operator.api, shop, only=lambda name: name.endswith("-bus"))
    ready = ready_because("AllComponentsReady")

    assert waiting_for_db["status"] == waiting_for_bus["status"] == "False"
    assert "users-db 0/1" in waiting_for_db["message"]
    assert waiting_for_bus["message"] == "not ready: bus 0/1"
    assert waiting_for_bus["lastTransitionTime"] == waiting_for_db["lastTransitionTime"]
    assert ready["status"] == "True"
    assert ready["lastTransitionTime"] > waiting_for_bus["lastTransitionTime"]


def test_a_failed_apply_is_reported_as_degraded_with_a_warning(
    operator: Operator, namespace: str
) -> None:
    shop = shop_manifest(namespace)
    policies = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/*"
    operator.api.emulator.fail("PATCH", policies, 500, times=None)
    try:
        apply_shop(operator.api, shop)
        degraded = wait_for_condition(operator.api, shop, "Degraded", status="True")
        warned = wait_until(
            lambda: [e for e in events_about(operator.api, shop) if e["reason"] == "ApplyFailed"],
            what="a Warning Event about the failed apply",
            timeout=15,
        )
    finally:
        operator.api.emulator.clear_faults()

    assert degraded["reason"] == "ApplyFailed"
    assert "injected fault" in degraded["message"]
    assert condition(operator.api, shop, "Ready")["reason"] == "ApplyFailed"
    assert {e["type"] for e in warned} == {"Warning"}
    # The fault cleared, a retry applies everything and the report recovers.
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    wait_until(
        lambda: condition(operator.api, shop, "Degraded").get("status") == "False",
        what="Degraded=False after the retry",
        timeout=15,
    )


def test_a_database_moved_out_keeps_its_volumes_even_under_a_delete_policy(
    operator: Operator, namespace: str
) -> None:
    managed = shop_manifest(namespace, pvcDeletionPolicy="Delete")
    apply_shop(operator.api, managed)
    wait_until(lambda: all_applied(operator.api, managed), timeout=30, what="every child")
    database = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/demo-users-db"
    policy = (operator.api.get(database) or {})["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy["whenDeleted"] == "Delete"  # what the spec asked for the Shop's deletion

    # Hold the deletion once, so the object can be seen just before it goes.
    operator.api.emulator.fail("DELETE", database, 500, times=1)
    external = shop_manifest(
        namespace,
        pvcDeletionPolicy="Delete",
        databases={"users": {"external": {"secretRef": {"name": "users-db-url", "key": "url"}}}},
    )
    apply_shop(operator.api, external)
    held = wait_until(
        lambda: (
            (body := operator.api.get(database))
            and body["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
            and body
        ),
        timeout=20,
        what="the StatefulSet to be told to retain its volumes",
    )
    assert held["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    wait_until(lambda: operator.api.get(database) is None, timeout=20, what="the StatefulSet to go")


def status_patches(api: RunningApi, namespace: str, name: str = "demo") -> int:
    """PATCH requests to this Shop's status subresource so far."""
    return sum(
        1
        for r in list(api.emulator.requests)
        if r.method == "PATCH"
        and r.namespace == namespace
        and r.name == name
        and r.subresource == "status"
    )


def reconciles(operator: Operator, namespace: str, name: str = "demo") -> float:
    labels = {"namespace": namespace, "shop": name, "outcome": "success"}
    return _scrape(operator).get(
        ("microshop_operator_reconciles_total", frozenset(labels.items())), 0.0
    )


def shop_status(api: RunningApi, namespace: str, name: str = "demo") -> dict[str, Any]:
    body = api.get(f"{SHOPS.format(ns=namespace)}/{name}") or {}
    return dict(body.get("status") or {})


def test_a_database_moved_out_leaves_the_status_and_an_unchanged_status_is_not_patched(
    operator: Operator, namespace: str
) -> None:
    """Defect 13. A JSON merge patch (RFC 7386) merges objects key by key: a component left
    out of the patch stays, only a null removes it."""
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    mark_workloads_ready(operator.api, shop)
    wait_for_condition(operator.api, shop, "Ready", status="True")
    assert "users-db" in shop_status(operator.api, namespace)["components"]

    external = shop_manifest(
        namespace,
        databases={"users": {"external": {"secretRef": {"name": "users-db-url", "key": "url"}}}},
    )
    apply_shop(operator.api, external)
    wait_until(
        lambda: shop_status(operator.api, namespace).get("observedGeneration") == 2,
        what="the operator to report the new generation",
        timeout=15,
    )
    operator.api.settle()

    components = shop_status(operator.api, namespace)["components"]
    assert "users-db" not in components
    assert set(components) == {
        *("orders-db", "payments-db", "notifications-db", "bus"),
        *("users", "orders", "payments", "notifications", "gateway"),
    }

    # The timer's next reconcile (every 5 s) may still move a condition the change set off;
    # the one after it finds nothing changed and patches nothing (the defect patched on every
    # reconcile). Counting from the second keeps a late convergence from looking like it.
    counted = reconciles(operator, namespace)
    wait_until(lambda: reconciles(operator, namespace) >= counted + 1, timeout=20, what="one")
    patched, counted = status_patches(operator.api, namespace), reconciles(operator, namespace)
    wait_until(lambda: reconciles(operator, namespace) >= counted + 1, timeout=20, what="another")
    assert status_patches(operator.api, namespace) == patched


def test_one_child_that_fails_never_blocks_the_others_and_is_named(
    operator: Operator, namespace: str
) -> None:
    """Defect 2: a refused child is reported by name and why; the rest are still applied and
    what is no longer wanted is still pruned."""
    before = shop_manifest(namespace, gateway={"ingress": {"host": "shop.example.com"}})
    apply_shop(operator.api, before)
    wait_until(lambda: all_applied(operator.api, before), timeout=30, what="every child")
    users = f"/apis/apps/v1/namespaces/{namespace}/deployments/demo-users"
    operator.api.emulator.fail("PATCH", users, 500, times=None)
    try:
        # The users Deployment comes first among the services; the Ingress goes; the
        # notifications Deployment (applied after users) changes too.
        after = shop_manifest(
            namespace,
            services={"users": {"replicas": 2}, "notifications": {"replicas": 3}},
        )
        apply_shop(operator.api, after)
        degraded = wait_for_condition(
            operator.api, after, "Degraded", status="True", observedGeneration=2
        )
        deployments = CHILD_KINDS["Deployment"].format(ns=namespace)
        notifications = operator.api.get(f"{deployments}/demo-notifications")
        ingress = operator.api.get(f"{CHILD_KINDS['Ingress'].format(ns=namespace)}/demo-gateway")
        users_now = operator.api.get(users) or {}
    finally:
        operator.api.emulator.clear_faults()

    assert degraded["reason"] == "ApplyFailed"
    assert degraded["message"] == (
        f"not applied: Deployment/demo-users: InternalError: injected fault: PATCH {users}"
    )
    assert (notifications or {})["spec"]["replicas"] == 3
    assert ingress is None
    assert users_now["spec"]["replicas"] == 1
    # The fault gone, the next retry applies the last child too.
    wait_until(
        lambda: (operator.api.get(users) or {})["spec"]["replicas"] == 2,
        what="the users Deployment to be applied on a retry",
        timeout=20,
    )
    wait_for_condition(operator.api, after, "Degraded", status="False")


def deployment_of(api: RunningApi, namespace: str, name: str) -> dict[str, Any]:
    return api.get(f"{CHILD_KINDS['Deployment'].format(ns=namespace)}/{name}") or {}


def test_a_version_that_crash_loops_is_not_ready_and_degrades_at_its_deadline(
    operator: Operator, namespace: str
) -> None:
    """Defect 4: Ready means what `kubectl rollout status` means
    (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go): the new version's pod never
    turns ready, the old one keeps serving (maxUnavailable 0), and the Shop is not Ready; once
    the Deployment's progressDeadlineSeconds pass (deployment/progress.go sets Progressing
    False, ProgressDeadlineExceeded) the Shop is Degraded naming the component."""
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    mark_workloads_ready(operator.api, shop)
    wait_for_condition(operator.api, shop, "Ready", status="True")
    broken_image = "ghcr.io/microshop/microshop-services:0.2.0-broken"
    operator.api.emulator.crash_loop(broken_image)
    try:
        broken = shop_manifest(namespace, services={"users": {"version": "0.2.0-broken"}})
        apply_shop(operator.api, broken)
        rolling = wait_for_condition(
            operator.api, broken, "Ready", observedGeneration=2, reason="ComponentsNotReady"
        )
        serving = deployment_of(operator.api, namespace, "demo-users")["status"]

        operator.api.emulator.advance(601)  # past the default progressDeadlineSeconds (600)
        degraded = wait_for_condition(
            operator.api, broken, "Degraded", status="True", reason="ProgressDeadlineExceeded"
        )
        ready = condition(operator.api, broken, "Ready")
    finally:
        operator.api.emulator.crash_loop(broken_image, crashing=False)

    assert rolling["status"] == "False"
    assert rolling["message"] == "not ready: users 1/1 rolling out"
    assert (serving["readyReplicas"], serving["availableReplicas"]) == (1, 1)
    assert serving["updatedReplicas"] == 1 and serving["replicas"] == 2
    assert degraded["message"].startswith("users: ")
    assert "progress" in degraded["message"]
    assert (ready["status"], ready["reason"]) == ("False", "ProgressDeadlineExceeded")
    # The version heals: the rollout completes and the Shop is Ready again.
    wait_for_condition(operator.api, broken, "Ready", status="True", timeout=30)
    assert condition(operator.api, broken, "Degraded")["status"] == "False"


def test_turning_autoscaling_on_never_drops_a_service_to_one_pod(
    operator: Operator, namespace: str
) -> None:
    """Defect 6: server-side apply removes a field its only manager stops applying and the
    Deployment's defaulting sets replicas to 1 (merge/update.go Updater.prune,
    SetDefaults_Deployment); the operator hands spec.replicas over first (the Kubernetes
    docs' server-side apply "Transferring ownership"). A real watch (kubectl get -w) sees every
    value the Deployment's replicas take."""
    shop = shop_manifest(namespace, services={"users": {"replicas": 3}})
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    operator.api.settle()
    watch = subprocess.Popen(
        [str(KUBECTL), f"--kubeconfig={operator.api.kubeconfig}", "get", "deployment", "demo-users",
         "-n", namespace, "--watch", "-o", "jsonpath={.spec.replicas}{\"\\n\"}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1)  # the watch is open
        scaled = shop_manifest(
            namespace,
            services={"users": {"autoscaling": {"enabled": True, "minReplicas": 2,
                                                "maxReplicas": 5}}},
        )  # fmt: skip
        apply_shop(operator.api, scaled)
        wait_until(
            lambda: live(operator.api, {"kind": "HorizontalPodAutoscaler",
                                        "metadata": {"namespace": namespace,
                                                     "name": "demo-users"}}),
            what="the HPA", timeout=15,
        )  # fmt: skip
        wait_for_condition(operator.api, scaled, "Progressing", observedGeneration=2)
        operator.api.settle()
    finally:
        watch.terminate()
        seen = [int(v) for v in (watch.communicate(timeout=10)[0] or "").split()]

    assert seen and set(seen) == {3}, seen
    assert deployment_of(operator.api, namespace, "demo-users")["spec"]["replicas"] == 3


def test_the_service_monitor_scrapes_the_metrics_port_with_the_shop_s_labels(
    operator: Operator, namespace: str
) -> None:
    """Defect 11 and the metrics port: kube-prometheus-stack's Prometheus selects
    ServiceMonitors by `release`; the ServiceMonitor's endpoint `port` names a port of the
    selected Services (prometheus-operator's Endpoint.Port), which leads to the container port
    each service serves /metrics on."""
    shop = shop_manifest(
        namespace,
        observability={"metrics": {"serviceMonitor": True,
                                   "serviceMonitorLabels": {"release": "kube-prometheus-stack"}}},
    )  # fmt: skip
    operator.api.kubectl(
        "apply", "--validate=false", "-f", "-", input=json.dumps(SERVICE_MONITOR_CRD)
    )
    try:
        apply_shop(operator.api, shop)
        monitor = wait_until(
            lambda: operator.api.get(f"{SERVICE_MONITORS.format(ns=namespace)}/demo"),
            timeout=20,
            what="the ServiceMonitor",
        )
        service = wait_until(
            lambda: operator.api.get(f"{CHILD_KINDS['Service'].format(ns=namespace)}/demo-users"),
            timeout=20,
            what="the users Service",
        )
        users = wait_until(
            lambda: deployment_of(operator.api, namespace, "demo-users"), timeout=20, what="users"
        )
    finally:
        operator.api.kubectl("delete", "crd", "servicemonitors.monitoring.coreos.com")

    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    (container,) = users["spec"]["template"]["spec"]["containers"]
    served = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert endpoint["port"] == "metrics"
    assert served[port["targetPort"]] == int(env["MICROSHOP_METRICS_PORT"]) == 9090


def test_the_bus_pod_template_carries_the_digest_of_its_configuration(
    operator: Operator, namespace: str
) -> None:
    """Defect 12: RabbitMQ reads /etc/rabbitmq at start only; a StatefulSet restarts its pod
    only when the pod template changes (RollingUpdate), so the template carries the digest of
    the ConfigMap the bus mounts, as the gateway's does for its routes."""
    from microshop_operator.builders.meta import digest

    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")

    config = operator.api.get(f"{CHILD_KINDS['ConfigMap'].format(ns=namespace)}/demo-bus-config")
    bus = operator.api.get(f"{CHILD_KINDS['StatefulSet'].format(ns=namespace)}/demo-bus")
    annotations = (bus or {})["spec"]["template"]["metadata"].get("annotations") or {}
    assert annotations.get("microshop.dev/config-digest") == digest((config or {})["data"])


def secret_contents(api: RunningApi, shop: dict[str, Any]) -> dict[str, dict[str, str]]:
    found = {}
    for secret in build_generated_secrets(shop, generate=False):
        body = live(api, secret) or {}
        found[secret["metadata"]["name"]] = dict(body.get("data") or {})
    return found


def test_a_shop_deleted_under_retain_keeps_its_credentials_with_its_data(
    operator: Operator, namespace: str
) -> None:
    """Defect 3. The postgres, mongo and rabbitmq images set their users up on first boot only
    (docker-entrypoint.sh skips initdb when PGDATA holds a database, the mongo entrypoint skips
    MONGO_INITDB_* when /data/db is initialised, RabbitMQ applies RABBITMQ_DEFAULT_USER only to
    a fresh node): a Shop re-created over retained volumes must find the same credentials. So
    under Retain the generated Secrets carry no ownerReference and the garbage collector
    leaves them; under Delete they go with the Shop."""
    shop = shop_manifest(namespace)
    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    before = secret_contents(operator.api, shop)
    assert all(before.values())
    first_uid = (operator.api.get(f"{SHOPS.format(ns=namespace)}/demo") or {})["metadata"]["uid"]

    operator.api.kubectl("delete", "shop", "demo", "-n", namespace, "--wait=true", "--timeout=20s")
    wait_until(
        lambda: not any(o["kind"] == "StatefulSet" for o in children_in(operator.api, namespace)),
        what="the StatefulSets to go",
        timeout=15,
    )
    assert secret_contents(operator.api, shop) == before

    apply_shop(operator.api, shop)
    wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child again")
    second = operator.api.get(f"{SHOPS.format(ns=namespace)}/demo") or {}
    assert second["metadata"]["uid"] != first_uid
    # The same credentials, which every database, the bus and every service read by name.
    assert secret_contents(operator.api, shop) == before
    for secret in build_generated_secrets(shop, generate=False):
        assert not (live(operator.api, secret) or {})["metadata"].get("ownerReferences")

    # Switched to Delete, the Secrets are the Shop's again and go with it.
    deleting = shop_manifest(namespace, pvcDeletionPolicy="Delete")
    apply_shop(operator.api, deleting)
    wait_until(
        lambda: all(
            [r["uid"] for r in (live(operator.api, s) or {})["metadata"].get("ownerReferences", [])]
            == [second["metadata"]["uid"]]
            for s in build_generated_secrets(shop, generate=False)
        ),
        what="the Secrets to be owned by the Shop",
        timeout=15,
    )
    operator.api.kubectl("delete", "shop", "demo", "-n", namespace, "--wait=true", "--timeout=20s")
    wait_until(
        lambda: children_in(operator.api, namespace) == [], what="everything to go", timeout=15
    )


def test_a_database_moved_out_under_delete_keeps_its_claim_on_a_slow_control_plane(
    operator: Operator, namespace: str
) -> None:
    """Defect 7: under whenDeleted=Delete the StatefulSet owns its claims; after the operator
    sets Retain, the StatefulSet controller takes that ownerReference off each claim
    (updateClaimOwnerRefForSetAndPod), and only then may the StatefulSet go: deleted earlier,
    the garbage collector deletes the still-owned claims and the data. A slow control plane
    (every controller step a second apart) opens that window."""
    managed = shop_manifest(namespace, pvcDeletionPolicy="Delete")
    apply_shop(operator.api, managed)
    wait_until(lambda: all_applied(operator.api, managed), timeout=30, what="every child")
    claim_url = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data-demo-users-db-0"
    database = f"{CHILD_KINDS['StatefulSet'].format(ns=namespace)}/demo-users-db"
    set_uid = (operator.api.get(database) or {})["metadata"]["uid"]
    wait_until(
        lambda: [r["uid"] for r in ((operator.api.get(claim_url) or {}).get("metadata") or {})
                 .get("ownerReferences", [])] == [set_uid],
        what="the claim to be owned by its StatefulSet", timeout=15,
    )  # fmt: skip
    operator.api.settle()

    operator.api.emulator.controllers.latency = 0.5
    try:
        external = shop_manifest(
            namespace,
            pvcDeletionPolicy="Delete",
            databases={"users": {"external": {"secretRef": {"name": "users-db-url"}}}},
        )
        apply_shop(operator.api, external)
        wait_until(lambda: operator.api.get(database) is None, timeout=60, what="the set to go")
        operator.api.settle(quiet=2, timeout=60)
    finally:
        operator.api.emulator.controllers.latency = 0.0

    claim = operator.api.get(claim_url)
    assert claim is not None, "the database's data went with its StatefulSet"
    assert not claim["metadata"].get("deletionTimestamp")
    assert not claim["metadata"].get("ownerReferences")


def test_the_applied_network_policies_allow_exactly_the_documented_flows(
    operator: Operator, namespace: str
) -> None:
    """Defect 8: the NetworkPolicies as the API server holds them (after its defaulting),
    evaluated over tests/support/flows.py's table by networking.k8s.io/v1's semantics: in and
    out, DNS, each component's documented peers, its external database, the OTLP collector."""
    from tests.support.flows import FLOWS, SPEC, places, shop_cluster

    shop = shop_manifest(namespace, **SPEC)
    apply_shop(operator.api, shop)
    applied = wait_until(lambda: all_applied(operator.api, shop), timeout=30, what="every child")
    cluster, pods = shop_cluster(applied, namespace)
    where = places(pods)
    wrong = [
        (source, target, port, protocol, allowed)
        for source, target, port, protocol, allowed in FLOWS
        if cluster.allows(where[source], where[target], port, protocol) is not allowed
    ]
    assert wrong == []
