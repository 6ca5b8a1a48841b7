"""The kind cluster the end-to-end suite runs on, built once per session.

Needs Docker (with a running engine) and kind; without them every e2e test is skipped and the
reason says which is missing. The images are built from this checkout and loaded into kind, the
operator is installed from charts/microshop-operator through the Helm SDK, and the cluster is
deleted afterwards (set MICROSHOP_E2E_KEEP_CLUSTER=1 to keep it for debugging).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.kind import (
    CLUSTER_NAME,
    IMAGE_REGISTRY,
    IMAGE_TAG,
    IMAGES,
    OPERATOR_NAMESPACE,
    ROOT,
    Cluster,
    kubectl_binary,
    missing_prerequisites,
    run,
)
from tests.support.servers import free_port

SKIP_REASON = missing_prerequisites()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SKIP_REASON is None:
        return
    skip = pytest.mark.skip(reason=f"e2e needs Docker and kind: {SKIP_REASON}")
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    run("kind", "create", "cluster", "--name", CLUSTER_NAME, "--kubeconfig", str(kubeconfig),
        "--wait", "180s")  # fmt: skip
    try:
        yield Cluster(kubeconfig)
    finally:
        if not os.environ.get("MICROSHOP_E2E_KEEP_CLUSTER"):
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER_NAME], check=False)


@pytest.fixture(scope="session")
def images(cluster: Cluster) -> dict[str, str]:
    """Build both images from this checkout and load them into the kind nodes."""
    built = {}
    for name, dockerfile in IMAGES.items():
        reference = f"{IMAGE_REGISTRY}/{name}:{IMAGE_TAG}"
        run("docker", "build", "-f", str(dockerfile), "-t", reference, str(ROOT), timeout=1800)
        run("kind", "load", "docker-image", reference, "--name", CLUSTER_NAME)
        built[name] = reference
    return built


@pytest.fixture(scope="session")
def operator(cluster: Cluster, images: dict[str, str]) -> str:
    """`helm install` the operator chart (Helm SDK) and wait until its pod is ready."""
    import helm_python as helm

    with helm.Config(kubeconfig_path=cluster.kubeconfig, namespace=OPERATOR_NAMESPACE) as config:
        config.install(
            ROOT / "charts" / "microshop-operator",
            "microshop-operator",
            {"image": {"repository": f"{IMAGE_REGISTRY}/microshop-operator", "tag": IMAGE_TAG}},
            create_namespace=True,
            wait="watcher",
            timeout=300,
        )
    cluster.kubectl("--namespace", OPERATOR_NAMESPACE, "rollout", "status",
                    "deployment/microshop-operator", "--timeout=300s")  # fmt: skip
    return "microshop-operator"


@pytest.fixture
def port_forward(cluster: Cluster) -> Iterator[object]:
    """Start `kubectl port-forward` to a Service; returns a function giving the local URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def forward(namespace: str, service: str, remote_port: int) -> str:
        local = free_port()
        binary = kubectl_binary()
        assert binary is not None
        process = subprocess.Popen(
            [binary, "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace,
             "port-forward", f"service/{service}", f"{local}:{remote_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        processes.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", local)) == 0:
                    return f"http://127.0.0.1:{local}"
            time.sleep(0.2)
        pytest.fail(f"port-forward to {namespace}/{service} did not open")

    yield forward
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
