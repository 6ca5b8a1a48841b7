"""Talking to a kind cluster from the e2e suite: prerequisites, commands, kubectl."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_NAME = "microshop-e2e"
IMAGE_REGISTRY = "ghcr.io/microshop"
IMAGE_TAG = "0.1.0"
IMAGES = {
    "microshop-services": ROOT / "services" / "Dockerfile",
    "microshop-operator": ROOT / "operator" / "Dockerfile",
}
OPERATOR_NAMESPACE = "microshop-system"
SHOP_NAMESPACE = "shop"


def kubectl_binary() -> str | None:
    bundled = Path(sys.executable).parent / "kubectl"
    return str(bundled) if bundled.exists() else shutil.which("kubectl")


def missing_prerequisites() -> str | None:
    """Why the suite cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    try:
        engine = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out: no Docker engine answers"
    if engine.returncode != 0:
        return "no Docker engine answers (`docker info` failed)"
    if shutil.which("kind") is None:
        return "kind is not installed (https://kind.sigs.k8s.io/)"
    if kubectl_binary() is None:
        return "kubectl is not installed"
    return None


def run(*command: str, timeout: float = 600, **kwargs: object) -> str:
    """Run a command, fail the test with its output when it fails."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path

    def kubectl(self, *args: str, timeout: float = 600) -> str:
        binary = kubectl_binary()
        assert binary is not None
        return run(binary, "--kubeconfig", str(self.kubeconfig), *args, timeout=timeout)
