"""Fixtures for the packaging tests: the chart rendered with default and non-default values."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart import NON_DEFAULT_VALUES, SERVICE_MONITOR_API
from tools.manifests import render


@pytest.fixture(scope="session")
def default_objects() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="session")
def non_default_objects() -> list[dict[str, Any]]:
    return render(NON_DEFAULT_VALUES, api_versions=SERVICE_MONITOR_API)
