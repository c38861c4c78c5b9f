"""A backtest on every store: the current definition, replayed beside what the decider
logged, proposes exactly the logged actions with the same ends and outcomes; a definition
with one rule changed differs in that rule only; and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.backtest import Backtest, Window, backtest
from engine.definition import JourneyDefinition, definition_from_mapping
from journey.bootstrap import Engine
from tests.conftest import engine_on_fresh_store
from tests.contract.test_deciding import decided
from tests.contract.test_same_actions_however_paged import demo_history, live

DIFFERENCES = ("added", "dropped", "changed")


def record_and_decide(engine: Engine) -> None:
    cuts = [7 + n % 150 for n in range(400)]
    live(engine, demo_history(), cuts, page_size=50)


def run(engine: Engine, candidate: JourneyDefinition, **options: Any) -> Backtest:
    return backtest(
        engine.log,
        candidate,
        engine.actions.actions(open_only=False),
        engine.actions.tracking()[0],
        page_size=97,
        **options,
    )


def with_reason(definition: JourneyDefinition, rule_id: str, reason: str) -> JourneyDefinition:
    document = definition.model_dump(by_alias=True, exclude_none=True)
    for rule in document["actions"]["rules"]:
        if rule["id"] == rule_id:
            rule["reason"] = reason
    return definition_from_mapping(document, origin="candidate")


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_the_current_definition_proposes_exactly_what_was_logged(
    request: pytest.FixtureRequest, store: str
) -> None:
    with engine_on_fresh_store(request, store) as engine:
        record_and_decide(engine)
        logged = engine.actions.actions(open_only=False)
        before = (decided(engine.actions), engine.log.head(), engine.actions.tracking())

        result = run(engine, engine.definition)

        totals = result.totals
        assert totals.proposed == totals.logged == totals.same == len(logged) > 50
        assert [getattr(totals, d) for d in DIFFERENCES] == [0, 0, 0]
        # The reps' outcomes and the journey's own ends, replayed, are the logged statuses.
        assert totals.outcomes == {
            status: sum(1 for row in logged if row.status == status)
            for status in {row.status for row in logged}
        }
        assert {"done", "dismissed", "expired"} <= totals.outcomes.keys()
        assert (decided(engine.actions), engine.log.head(), engine.actions.tracking()) == before


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_changed_rule_differs_in_that_rule_only(
    request: pytest.FixtureRequest, store: str
) -> None:
    with engine_on_fresh_store(request, store) as engine:
        record_and_decide(engine)
        candidate = with_reason(engine.definition, "follow_up_visit", "Call {rep}'s customer.")

        result = run(engine, candidate)

        by_rule = {r.rule: r for r in result.rules}
        follow_ups = by_rule.pop("follow_up_visit")
        assert follow_ups.changed == follow_ups.proposed == follow_ups.logged > 0
        assert follow_ups.changed_fields == {"reason": follow_ups.changed}
        assert all(r.changed == r.added == r.dropped == 0 for r in by_rule.values())


def test_the_window_and_the_customer_narrow_what_is_compared(
    request: pytest.FixtureRequest,
) -> None:
    with engine_on_fresh_store(request, "sqlite") as engine:
        record_and_decide(engine)
        logged = engine.actions.actions(open_only=False)
        middle = sorted(row.decided_at for row in logged)[len(logged) // 2]
        customer = logged[0].customer_id

        later = run(engine, engine.definition, window=Window(start=middle), customer_id=customer)

        assert later.totals.logged == sum(1 for row in logged if row.decided_at >= middle)
        assert {pair.any.customer_id for pair in later.pairs} == {customer}
        assert all(pair.candidate == pair.logged for pair in later.pairs)


def test_what_became_of_the_actions_a_candidate_drops_is_counted(
    request: pytest.FixtureRequest,
) -> None:
    with engine_on_fresh_store(request, "sqlite") as engine:
        record_and_decide(engine)
        document = engine.definition.model_dump(by_alias=True, exclude_none=True)
        document["actions"]["rules"] = [
            rule for rule in document["actions"]["rules"] if rule["id"] != "follow_up_visit"
        ]
        logged = engine.actions.actions(open_only=False)

        result = run(engine, definition_from_mapping(document, origin="candidate"))

        follow_ups = next(r for r in result.rules if r.rule == "follow_up_visit")
        assert follow_ups.proposed == 0
        assert follow_ups.dropped == follow_ups.logged > 0
        assert follow_ups.dropped_outcomes == {
            status: n
            for status in {row.status for row in logged if row.rule == "follow_up_visit"}
            if (n := sum(1 for r in logged if r.rule == "follow_up_visit" and r.status == status))
        }
