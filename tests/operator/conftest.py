"""Fixtures for the operator tests: a fresh or a per-module emulator, and a namespace per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver import RunningApi


@pytest.fixture()
def api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningApi]:
    """A fresh emulator per test: the emulator's own tests need a clean cluster."""
    marker = request.node.get_closest_marker("emulator")
    with RunningApi(tmp_path, **(marker.kwargs if marker else {})) as running:
        yield running
        assert running.emulator.controller_errors == []


@pytest.fixture(scope="module")
def module_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """One emulator for a module whose tests each work in their own namespace. Pods run but are
    not Ready until a test says so (`api.emulator.set_ready(namespace, workload)`), so a test
    sees a Shop before and after its workloads are ready."""
    with RunningApi(tmp_path_factory.mktemp("api"), pods_ready=False) as running:
        yield running
        # The emulator's own controllers never failed (a real one logs and retries; a failure
        # here is a bug of the emulator that could hide behind a passing test).
        assert running.emulator.controller_errors == []


@pytest.fixture()
def namespace(module_api: RunningApi) -> Iterator[str]:
    """A namespace of the test's own, torn down after it (with every Shop in it), so nothing a
    test leaves behind (a Shop counted in a gauge, a child) can satisfy a later test."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    # `kubectl create namespace` speaks protobuf, which the emulator does not; apply speaks JSON.
    module_api.kubectl(
        "apply",
        "--validate=false",
        "-f",
        "-",
        input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n",
    )
    yield name
    tear_down(module_api, name)


def tear_down(api: RunningApi, namespace: str, patience: float = 20) -> None:
    """Delete the namespace and wait until it is gone. The operator removes its finalizer from
    each Shop being deleted; where no operator runs any more (a test that stopped its own),
    the finalizers are removed by hand after `patience` seconds, as an admin would."""
    api.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
    path = f"/api/v1/namespaces/{namespace}"
    deadline, stripped = time.monotonic() + patience, False
    while api.get(path) is not None:
        if time.monotonic() > deadline:
            assert not stripped, f"namespace {namespace} still there after its Shops were freed"
            stripped = True
            shops = api.kubectl("get", "shops", "-n", namespace, "-o", "name", check=False)
            for shop in shops.split():
                api.kubectl("patch", shop, "-n", namespace, "--type=merge",
                            "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
            deadline = time.monotonic() + patience
        time.sleep(0.1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator(**options): options for the `api` emulator fixture"
    )
