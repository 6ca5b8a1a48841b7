"""Faults on a schedule under a steady order load; then nothing may be lost, doubled or stuck.

`make chaos` runs the full schedule (MICROSHOP_CHAOS_SCHEDULE=full); `make test` a short one.
The table printed at the end is the suite's report (docs/reliability.md keeps one run's).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.conftest import SCHEDULE
from tests.chaos.harness import SCHEDULES, Chaos, judge, settle, table


# The whole schedule is one test; its own bound replaces the per-test default.
@pytest.mark.timeout(SCHEDULES[SCHEDULE]["timeout"])
def test_nothing_is_lost_doubled_or_stuck_whatever_fails(chaos: Chaos, tmp_path: Path) -> None:
    outcomes = []
    for fault in SCHEDULES[SCHEDULE]["faults"]():
        chaos.say(f"fault: {fault.name}")
        placements, healed_at = fault.run(chaos)
        recovered_in = settle(chaos.ledger, placements, healed_at, chaos.recovery_budget)
        outcome = judge(fault.name, placements, chaos.ledger, recovered_in)
        outcomes.append(outcome)
        chaos.say(f"  {outcome}")
        for service in chaos.shop.services.values():  # every process back before the next one
            service.wait_ready(timeout=120)

    # Once the last fault has settled, nothing may be left anywhere in flight.
    deadline = time.monotonic() + 60
    while True:
        backlog = chaos.ledger.outbox_backlog()
        queues = {q: d for q, d in chaos.ledger.queue_depths().items() if any(d)}
        if (not any(backlog.values()) and not queues) or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    report = "\n".join(
        [
            f"schedule: {SCHEDULE}",
            table(outcomes),
            f"outboxes (events not yet published): {backlog}",
            f"queues holding messages (ready, unacked): {queues or 'none'}",
            *[f"- {o.fault}: {note}" for o in outcomes for note in o.notes[:5]],
        ]
    )
    (tmp_path / "chaos-report.md").write_text(report + "\n")
    print("\n" + report, flush=True)
    assert all(o.clean for o in outcomes), report
    assert not any(backlog.values()), report
    assert not queues, report
