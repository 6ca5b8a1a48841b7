"""checkov on everything we ship: no failed check that tools/checkov/suppressions.yaml does not
explain, and no explanation left over once its finding is fixed."""

from __future__ import annotations

import os

import pytest

from tests.support.chart import NON_DEFAULT_VALUES, SERVICE_MONITOR_API
from tools.manifests import render
from tools.security_scan import (
    CHECKOV,
    Scan,
    default_sets,
    load_suppressions,
    scan,
    unexplained,
    unused,
)


@pytest.fixture(scope="session")
def report() -> Scan:
    """One checkov run (it takes seconds to start) over the chart with default and non-default
    values and every object the operator makes for each example Shop."""
    if not CHECKOV.exists():
        message = f"{CHECKOV.relative_to(CHECKOV.parents[2])} is missing: run `make scan-env`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    sets = default_sets()
    sets["chart-non-default.yaml"] = render(NON_DEFAULT_VALUES, api_versions=SERVICE_MONITOR_API)
    return scan(sets)


def test_the_scan_sees_the_chart_and_both_example_shops(report: Scan) -> None:
    assert report.files == {
        "chart-default.yaml",
        "chart-non-default.yaml",
        "shop-minimal.yaml",
        "shop.yaml",
    }


def test_every_failed_check_is_explained(report: Scan) -> None:
    left = unexplained(report.findings, load_suppressions())

    assert not left, "checkov findings not explained in tools/checkov/suppressions.yaml:\n" + (
        "\n".join(map(str, left))
    )


def test_every_suppression_still_covers_a_finding(report: Scan) -> None:
    stale = unused(report.findings, load_suppressions())

    assert not stale, f"suppressions that cover nothing any more: {[s.check for s in stale]}"
