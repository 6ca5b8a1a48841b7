"""The chart ships the shop's Grafana dashboard as a ConfigMap the Grafana sidecar loads."""

from __future__ import annotations

import json

import kubernetes_validate

from tests.support.chart import by_kind
from tools.manifests import CHART_DIR, KUBE_VERSION, render

DASHBOARD = CHART_DIR / "dashboards" / "microshop.json"


def dashboard_configmaps(values: dict | None = None) -> list[dict]:
    return [
        cm
        for cm in by_kind(render(values), "ConfigMap")
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]


def test_no_dashboard_by_default() -> None:
    assert dashboard_configmaps() == []


def test_enabled_dashboards_ship_the_json_unchanged_with_the_sidecar_label() -> None:
    (configmap,) = dashboard_configmaps(
        {"dashboards": {"enabled": True, "namespace": "monitoring", "labels": {"team": "shop"}}}
    )
    kubernetes_validate.validate(configmap, KUBE_VERSION, strict=True)
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["team"] == "shop"
    shipped = json.loads(configmap["data"]["microshop.json"])
    assert shipped == json.loads(DASHBOARD.read_text())
    assert shipped["panels"] and all(p["targets"] for p in shipped["panels"])
