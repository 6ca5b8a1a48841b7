"""Two operator replicas peered as the chart runs them: only the leader works; a standby takes over.

Each replica is `kopf run` with the flags and variables of the chart's StatefulSet pod template
(charts/microshop-operator/templates/_helpers.tpl, replicaCount > 1): `--peering=<name>`,
`--priority=<pod index>`, `--log-format=json` and MICROSHOP_OPERATOR_PEERING_NAME; the peering
CRD is the chart's crds/kopf-peering.yaml and the peering object is templates/peering.yaml's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import RunningApi
from test_operator import CRD, all_applied, apply_shop, live, shop_manifest

from microshop_operator.builders import build_children
from tests.support.kopf import TEST_TIMINGS, kopf_run
from tests.support.polling import wait_until
from tests.support.servers import free_port

pytestmark = pytest.mark.operator

ROOT = Path(__file__).resolve().parents[2]
PEERING_CRD = ROOT / "charts" / "microshop-operator" / "crds" / "kopf-peering.yaml"
PEERING = "microshop-operator"
PEERINGS = "/apis/kopf.dev/v1/clusterkopfpeerings"
# Short, so that a standby gives up on a leader that died silently within the test's time;
# the default (60 s) is what a real cluster gets.
LIFETIME = 8


class Replica:
    """One peered operator replica: the chart's container args, run as a local process."""

    def __init__(self, api: RunningApi, log: Path, index: int) -> None:
        self.index = index
        self.log_path = log
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        env = {
            **os.environ,
            # The chart's ServiceAccount: the emulator holds it to the chart's RBAC.
            "KUBECONFIG": str(api.operator_kubeconfig),
            "MICROSHOP_OPERATOR_PEERING_NAME": PEERING,
            "MICROSHOP_OPERATOR_PEERING_LIFETIME_SECONDS": str(LIFETIME),
            "MICROSHOP_OPERATOR_RECONCILE_INTERVAL_SECONDS": "5",
            **TEST_TIMINGS,
        }
        self._log = log.open("w")
        self.process = subprocess.Popen(
            kopf_run(
                self.liveness, "--log-format=json", f"--peering={PEERING}", f"--priority={index}"
            ),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.liveness, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            assert self.process.poll() is None, self.log_path.read_text()
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records this replica wrote so far (kopf's and the operator's)."""
        found = []
        for line in self.log_path.read_text().splitlines():
            # Not every line is a record: a traceback, a warning printed outside logging.
            with contextlib.suppress(json.JSONDecodeError):
                found.append(json.loads(line))
        return found

    def about(self, namespace: str) -> list[str]:
        """The messages this replica logged about objects in a namespace (kopf tags each)."""
        return [
            r["message"]
            for r in self.records()
            if (r.get("object") or {}).get("namespace") == namespace
        ]

    def said(self, text: str) -> bool:
        return any(text in str(r.get("message")) for r in self.records())


def peers(api: RunningApi) -> dict[str, dict[str, Any]]:
    """The peering object's status: one record (priority, lifetime, lastseen) per replica."""
    status: dict[str, dict[str, Any]] = (api.get(f"{PEERINGS}/{PEERING}") or {}).get("status") or {}
    return status


@pytest.fixture()
def replicas(module_api: RunningApi, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    """A standby (priority 0) and a leader (priority 1), both peered and settled."""
    api = module_api
    api.kubectl("apply", "--validate=false", "-f", str(CRD), "-f", str(PEERING_CRD))
    api.kubectl(
        "apply", "--validate=false", "-f", "-",
        input=f"apiVersion: kopf.dev/v1\nkind: ClusterKopfPeering\nmetadata: {{name: {PEERING}}}\n",
    )  # fmt: skip
    # The leader starts first, so that the standby never sees the peering without it (started
    # together, a standby may work for a moment until the leader's record appears).
    leader = Replica(api, tmp_path / "replica-1.log", 1)
    standby: Replica | None = None
    try:
        wait_until(leader.alive, timeout=20, what="the leader's liveness endpoint")
        # A replica with mandatory peering starts paused and resumes once no peer outranks it.
        wait_until(
            lambda: leader.said("Resuming operations"), what="the leader to resume", timeout=15
        )
        standby = Replica(api, tmp_path / "replica-0.log", 0)
        wait_until(standby.alive, timeout=20, what="the standby's liveness endpoint")
        wait_until(
            lambda: sorted(p["priority"] for p in peers(api).values()) == [0, 1],
            what="both replicas in the peering object",
            timeout=15,
        )
        yield standby, leader
    finally:
        for replica in (leader, standby):
            if replica is None:
                continue
            replica.stop()
            print(f"\n--- replica {replica.index} log ---\n{replica.log_path.read_text()[-6000:]}")


def test_only_the_leader_works_and_a_standby_takes_over_when_it_dies(
    module_api: RunningApi,
    replicas: tuple[Replica, Replica],
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api, (standby, leader) = module_api, replicas
    shop = shop_manifest(namespace)

    apply_shop(api, shop)
    wait_until(lambda: all_applied(api, shop), timeout=30, what="every child")

    # The log line follows the writes it reports.
    wait_until(
        lambda: any(m.startswith("applied ") for m in leader.about(namespace)),
        timeout=5,
        what="the leader's log of the children it applied",
    )
    assert standby.about(namespace) == []
    assert not standby.said("Resuming operations")

    # The leader dies without a word (a lost node, an OOM kill): its peering record stays
    # until its lifetime runs out, then the standby resumes and sees the change made meanwhile.
    leader.stop(signal.SIGKILL)
    died = time.monotonic()
    changed = shop_manifest(namespace, services={"users": {"replicas": 3}})
    apply_shop(api, changed)
    users = next(o for o in build_children(changed) if o["kind"] == "Deployment"
                 and o["metadata"]["name"] == "demo-users")  # fmt: skip
    wait_until(
        lambda: (live(api, users) or {}).get("spec", {}).get("replicas") == 3,
        # The record outlives the last keep-alive (1-3 s before the kill) by LIFETIME seconds;
        # then the standby resumes, re-lists and reconciles (about a second here).
        timeout=LIFETIME + 7,
        what="the standby to apply the change",
    )
    took_over = time.monotonic() - died

    wait_until(
        lambda: any(m.startswith("applied ") and "Deployment/demo-users" in m
                    for m in standby.about(namespace)),
        timeout=5,
        what="the standby's log of the change",
    )  # fmt: skip
    assert standby.said("Resuming operations")
    with capsys.disabled():
        print(f"\nleader killed -> standby applied the change: {took_over:.1f} s")
