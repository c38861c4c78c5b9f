"""Owners and their worklists on every store: what the store counts per owner is what the
worklist of each owner holds, snoozed actions counted once their time has come."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from consumers.outcomes import record_outcomes
from engine.actions import ActionOutcome
from journey.bootstrap import Engine
from journey.demo import demo_touchpoints
from journey.worklist import worklist
from tests.conftest import DAY, T0


def test_each_owners_counts_are_what_their_worklist_holds(engine: Engine) -> None:
    engine.journeys.record(list(demo_touchpoints(customers=60, seed=5, start=T0)))
    engine.decider.catch_up()
    engine.runner.catch_up()
    now = engine.view.clock()
    assert now is not None
    # The latest due, so that no window of theirs passes while the test looks.
    latest = sorted(engine.actions.actions(), key=lambda a: -(a.due_at or 0))
    first, second, third = latest[:3]
    record_outcomes(
        engine.journeys,
        [
            ActionOutcome("o1", first.action_id, first.customer_id, "done", None, None, None, now),
            ActionOutcome(
                "o2", second.action_id, second.customer_id, "snoozed", None, now + DAY, None, now
            ),
            ActionOutcome(
                "o3", third.action_id, third.customer_id, "snoozed", None, now - DAY, None, now
            ),
        ],
    )
    engine.decider.catch_up()

    counted = engine.actions.owners(now)

    every = engine.actions.actions(open_only=False)
    assert [owner for owner, _, _ in counted] == sorted({a.owner for a in every})
    for owner, to_do, overdue in counted:
        day = worklist(owner, [a for a in every if a.owner == owner], now, ZoneInfo("UTC"))
        groups = Counter(group for group, _ in day.items)
        assert (to_do, overdue) == (len(day.items), groups["overdue"]), owner
    statuses = {a.action_id: (a.status, a.snoozed_until) for a in every}
    assert statuses[second.action_id] == ("snoozed", now + DAY)  # counted from tomorrow
    assert statuses[third.action_id] == ("snoozed", now - DAY)  # counted again
    waiting = [a for a in engine.actions.actions() if a.action_id != second.action_id]
    assert sum(to_do for _, to_do, _ in counted) == len(waiting)
