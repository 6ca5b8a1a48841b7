"""The chart's optional PrometheusRule (issue 10.3): off by default, rendered only where the
cluster serves the kind, and a well-formed rule on the delivery metrics every service reports.

Its shape is the Prometheus Operator's PrometheusRule API
(https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.PrometheusRule:
spec.groups[] of {name, rules[] of {alert | record, expr, for, labels, annotations}}), and a
duration is Prometheus's `[0-9]+(ms|s|m|h|d|w|y)` as that API's `Duration` pattern says.
"""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import jsonschema
import pytest

from tests.support.chart import by_kind, one
from tools.manifests import CHART_DIR, KUBE_VERSION, render

RULE_API = ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1/PrometheusRule")
DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {"name": {"pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_no_rule_unless_asked_for_and_served() -> None:
    assert not by_kind(render(api_versions=RULE_API), "PrometheusRule")
    assert not by_kind(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")


def test_the_rule_alerts_on_dead_letters_and_paused_consumers() -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "deadLetterThreshold": 3,
            "for": "15m",
            "labels": {"release": "prom"},
        }
    }
    rule = one(render(values, api_versions=RULE_API), "PrometheusRule")

    jsonschema.validate(rule, RULE_SCHEMA)
    assert rule["metadata"]["labels"]["release"] == "prom"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    dead = alerts["MicroshopDeadLetters"]
    assert dead["expr"] == "max by (namespace, queue) (microshop_bus_dead_letter_messages) > 3"
    assert dead["for"] == "15m"
    paused = alerts["MicroshopConsumerPaused"]
    assert paused["expr"] == "max by (namespace, queue) (microshop_bus_consumer_paused) == 1"
    assert paused["for"] == "10m"
    # Prometheus' own template syntax reaches it intact through Helm's.
    assert "{{ $labels.queue }}" in dead["annotations"]["summary"]
    assert "dead-letters list" in dead["annotations"]["description"]
    for alert in alerts.values():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", alert["alert"])  # a metric-name-like id


def test_the_enabled_chart_still_lints_strict() -> None:
    report = helm.lint(
        CHART_DIR,
        {"prometheusRule": {"enabled": True}},
        strict=True,
        kube_version=f"v{KUBE_VERSION}",
    )
    assert report["errors"] == [], report


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"prometheusRule": {"for": "soon"}}, "for"),
        ({"prometheusRule": {"severity": "page"}}, "severity"),
        ({"prometheusRule": {"deadLetterThreshold": -1}}, "deadLetterThreshold"),
        ({"prometheusRule": {"enable": True}}, "enable"),
    ],
)
def test_schema_refuses_a_bad_rule_value(values: dict[str, Any], complaint: str) -> None:
    with (
        helm.Chart.load(CHART_DIR) as chart,
        pytest.raises(helm.HelmValuesError, match=complaint),
    ):
        chart.validate_schema(chart.merge_values(values))
