"""The operator as a local process: `kopf run` as its image starts it (operator/Dockerfile's
ENTRYPOINT, every namespace, kopf's liveness probe), for the operator tests, the leader-election
test and the operator benchmark alike."""

from __future__ import annotations

import sys

# operator/Dockerfile's ENTRYPOINT after `kopf run` (tests/unit/packaging checks they agree).
MODULE = "--module=microshop_operator.main"
# Short waits, so a test sees a watch restart or a retry within its time; the defaults are what
# a real cluster gets (operator/microshop_operator/config.py).
TEST_TIMINGS = {
    "MICROSHOP_OPERATOR_WATCH_SERVER_TIMEOUT_SECONDS": "30",
    "MICROSHOP_OPERATOR_WATCH_CLIENT_TIMEOUT_SECONDS": "40",
    "MICROSHOP_OPERATOR_RETRY_BACKOFF_SECONDS": "1",
}


def kopf_run(liveness: str, *flags: str) -> list[str]:
    """The command line of the operator watching every namespace, its liveness probe served at
    `liveness`, with `flags`: `--standalone` for one replica, or the chart's peering flags."""
    return [
        sys.executable, "-m", "kopf", "run", MODULE, "--all-namespaces",
        f"--liveness={liveness}", *flags,
    ]  # fmt: skip
