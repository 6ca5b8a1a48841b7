"""The operator as the chart starts it: the image's ENTRYPOINT followed by the chart's args."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from apiserver import RunningApi
from test_operator import CRD

from tests.support.polling import wait_until
from tests.support.servers import free_port
from tools.manifests import render

pytestmark = pytest.mark.operator

DOCKERFILE = Path(__file__).resolve().parents[2] / "operator" / "Dockerfile"


def entrypoint() -> list[str]:
    (line,) = [ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("ENTRYPOINT ")]
    argv: list[str] = json.loads(line.removeprefix("ENTRYPOINT "))
    return argv


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_chart_s_health_port_is_where_the_operator_listens(
    module_api: RunningApi, tmp_path: Path
) -> None:
    """Defect 10. A container's `args` replace the image's CMD and keep its ENTRYPOINT
    (Kubernetes docs, "Define a Command and Arguments for a Container": args without command);
    the probes look at the container port named `health`, which is values.healthPort."""
    port = free_port()
    deployment = next(o for o in render({"healthPort": port}) if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probed: dict[str, Any] = container["livenessProbe"]["httpGet"]
    assert "command" not in container
    assert ports[probed["port"]] == port
    argv = entrypoint() + container["args"]
    assert argv[0] == "kopf"

    module_api.kubectl("apply", "--validate=false", "-f", str(CRD))
    log = (tmp_path / "kopf.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", *argv],
        env={**os.environ, "KUBECONFIG": str(module_api.operator_kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: (
                answers(f"http://127.0.0.1:{port}{probed['path']}")
                or (process.poll() is not None and "exited")
            ),
            timeout=30,
            what=f"the operator's liveness endpoint on the probed port {port}",
        )
        assert process.poll() is None, (tmp_path / "kopf.log").read_text()
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
