"""Argo CD: the Shop health check run by a real Lua interpreter over health_test.yaml's table,
the generated argocd-cm, and the Applications' ordering (operator before any Shop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

from tools.manifests import ARGOCD_CM, argocd_cm

ROOT = Path(__file__).resolve().parents[3]
ARGOCD = ROOT / "manifests" / "argocd"
HEALTH = ARGOCD / "health"
CASES = yaml.safe_load((HEALTH / "health_test.yaml").read_text())["tests"]


def run_health_check(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Evaluate a health.lua as Argo CD does: `obj` is a global table, the script returns hs."""
    lua = lupa.LuaRuntime(register_eval=False, register_builtins=False)
    env = lua.globals()
    # Argo CD's sandbox opens no os/io; a script that reaches for them must fail here too.
    for library in ("os", "io", "require", "dofile", "loadfile"):
        env[library] = None
    env.obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(script)
    return {"status": hs["status"], "message": hs["message"]}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_shop_health(case: dict[str, Any]) -> None:
    shop = yaml.safe_load((HEALTH / case["inputPath"]).read_text())

    health = run_health_check((HEALTH / "shop.lua").read_text(), shop)

    assert health == case["healthStatus"]


def test_every_fixture_is_in_the_table_and_every_status_is_covered() -> None:
    fixtures = {f"testdata/{p.name}" for p in (HEALTH / "testdata").glob("*.yaml")}
    assert fixtures == {case["inputPath"] for case in CASES}
    statuses = {case["healthStatus"]["status"] for case in CASES}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, {"status": "Progressing", "message": ""}),
        ({"health": {"status": "Healthy"}}, {"status": "Healthy", "message": ""}),
        (
            {"health": {"status": "Degraded", "message": "CrashLoopBackOff"}},
            {"status": "Degraded", "message": "CrashLoopBackOff"},
        ),
    ],
)
def test_application_health_lets_the_app_of_apps_wait(status: Any, expected: dict) -> None:
    application: dict[str, Any] = {"kind": "Application", "metadata": {"name": "op"}}
    if status is not None:
        application["status"] = status

    health = run_health_check((HEALTH / "application.lua").read_text(), application)

    assert health == expected


def test_argocd_cm_is_generated_from_the_lua_files() -> None:
    assert ARGOCD_CM.read_text() == argocd_cm(), "run `make manifests`"
    config = yaml.safe_load(ARGOCD_CM.read_text())
    assert config["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    key = "resource.customizations.health.microshop.dev_Shop"
    assert config["data"][key] == (HEALTH / "shop.lua").read_text()


def load_app(name: str) -> dict[str, Any]:
    app: dict[str, Any] = yaml.safe_load((ARGOCD / "apps" / name).read_text())
    return app


def test_the_operator_syncs_before_any_shop() -> None:
    operator, shop = load_app("operator.yaml"), load_app("shop.yaml")
    wave = "argocd.argoproj.io/sync-wave"

    assert int(operator["metadata"]["annotations"][wave]) < int(
        shop["metadata"]["annotations"][wave]
    )
    assert "SkipDryRunOnMissingResource=true" in shop["spec"]["syncPolicy"]["syncOptions"]
    assert operator["spec"]["source"]["path"] == "charts/microshop-operator"
    assert (ROOT / operator["spec"]["source"]["path"] / "Chart.yaml").exists()
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    root = yaml.safe_load((ARGOCD / "root.yaml").read_text())
    assert root["spec"]["source"]["path"] == "manifests/argocd/apps"


def test_the_shop_application_points_at_the_example() -> None:
    shop = load_app("shop.yaml")
    source = shop["spec"]["source"]
    example = ROOT / source["path"] / source["directory"]["include"]
    assert example.exists(), f"the Shop Application points at {example.relative_to(ROOT)}"

    documents = [doc for doc in yaml.safe_load_all(example.read_text()) if doc]

    assert [doc["kind"] for doc in documents] == ["Shop"]
    assert documents[0]["apiVersion"] == "microshop.dev/v1alpha1"


def _shop_reported_by_the_operator(observation: Any, paused: bool = False) -> dict[str, Any]:
    from microshop_operator.status import build_status

    return {
        "apiVersion": "microshop.dev/v1alpha1",
        "kind": "Shop",
        "metadata": {"name": "demo", "namespace": "shop", "generation": observation.generation},
        "spec": {"paused": paused},
        "status": build_status(observation, None, "2025-01-01T10:00:00Z"),
    }


def test_health_of_every_status_the_operator_writes() -> None:
    """The contract between microshop_operator.status and the Lua, on real status stanzas."""
    from microshop_operator.status import Observation, Readiness, Reason

    ready = {"demo-gateway": Readiness(1, 1), "demo-orders-db": Readiness(1, 1)}
    cases = [
        (Observation(2, ready, "http://demo-gateway.shop.svc:8080"), False, "Healthy"),
        (Observation(2, {"demo-orders-db": Readiness(0, 1)}), False, "Progressing"),
        (Observation(2, {"bus": Readiness(0, 1)}), False, "Progressing"),
        (Observation(2, {"demo-gateway": Readiness(1, 2)}), False, "Progressing"),
        (Observation(2, {"users": Readiness(1, 1, rolled_out=False)}), False, "Progressing"),
        (Observation(2, {"users": Readiness(1, 1, False, "timed out")}), False, "Degraded"),
        (
            Observation(2, ready, failures=(("Deployment/demo-users", "Forbidden"),)),
            False,
            "Degraded",
        ),
        (Observation(2, problem=(Reason.INVALID_SPEC, "bad")), False, "Degraded"),
        (Observation(2, problem=(Reason.APPLY_FAILED, "denied")), False, "Degraded"),
        (Observation(2, ready, paused=True), True, "Suspended"),
    ]
    script = (HEALTH / "shop.lua").read_text()

    for observation, paused, expected in cases:
        shop = _shop_reported_by_the_operator(observation, paused)
        assert run_health_check(script, shop)["status"] == expected, observation
