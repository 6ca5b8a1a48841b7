"""The operator's robustness settings reach kopf as configured (MICROSHOP_OPERATOR_* variables)."""

from __future__ import annotations

import operator
from typing import Any

import kopf
import pytest

from microshop_operator.config import OperatorConfig
from microshop_operator.handlers import configure


def configured(monkeypatch: pytest.MonkeyPatch, **env: str) -> kopf.OperatorSettings:
    for name, value in env.items():
        monkeypatch.setenv(f"MICROSHOP_OPERATOR_{name}", value)
    settings = kopf.OperatorSettings()
    configure(settings, OperatorConfig())
    return settings


@pytest.mark.parametrize(
    ("variable", "value", "setting", "expected"),
    [
        ("WATCH_SERVER_TIMEOUT_SECONDS", "123", "watching.server_timeout", 123),
        ("WATCH_CLIENT_TIMEOUT_SECONDS", "150.5", "watching.client_timeout", 150.5),
        ("CONNECT_TIMEOUT_SECONDS", "7", "watching.connect_timeout", 7),
        ("CONNECT_TIMEOUT_SECONDS", "7", "networking.connect_timeout", 7),
        ("REQUEST_TIMEOUT_SECONDS", "45", "networking.request_timeout", 45),
        ("PEERING_NAME", "shops", "peering.name", "shops"),
        ("PEERING_NAME", "shops", "peering.standalone", False),
        ("PEERING_NAME", "shops", "peering.mandatory", True),
        # A standby takes over from a replica that died silently this long after its last sign.
        ("PEERING_LIFETIME_SECONDS", "12", "peering.lifetime", 12),
    ],
)
def test_a_variable_sets_its_kopf_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, setting: str, expected: Any
) -> None:
    settings = configured(monkeypatch, **{variable: value})

    assert operator.attrgetter(setting)(settings) == expected


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        # Without bounds a watch whose connection silently died is never noticed.
        ("watching.server_timeout", 300),
        ("watching.client_timeout", 330),
        ("watching.connect_timeout", 10),
        ("networking.connect_timeout", 10),
        ("networking.request_timeout", 30),
        # Without a peering name one replica assumes it is alone.
        ("peering.standalone", True),
    ],
)
def test_defaults_bound_every_watch_and_request(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: Any
) -> None:
    for name in ("WATCH_SERVER_TIMEOUT_SECONDS", "WATCH_CLIENT_TIMEOUT_SECONDS",
                 "CONNECT_TIMEOUT_SECONDS", "REQUEST_TIMEOUT_SECONDS", "PEERING_NAME"):  # fmt: skip
        monkeypatch.delenv(f"MICROSHOP_OPERATOR_{name}", raising=False)

    assert operator.attrgetter(setting)(configured(monkeypatch)) == expected


def test_events_name_the_replica_that_posted_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "microshop-operator-1")

    assert configured(monkeypatch).posting.reporting_instance == "microshop-operator-1"


def test_every_timeout_variable_is_covered() -> None:
    """A new OperatorConfig timeout must reach kopf and be added to the table above."""
    timeouts = {name for name in OperatorConfig.model_fields if "timeout" in name}

    assert timeouts == {
        "watch_server_timeout_seconds",
        "watch_client_timeout_seconds",
        "connect_timeout_seconds",
        "request_timeout_seconds",
    }
