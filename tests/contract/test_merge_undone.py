"""A person's merge, undone, leaves the views as if it had never been made; while it holds,
the two are one journey; and no triggering touchpoint gets a second action because of
either, live or decided again from the start."""

from __future__ import annotations

from collections import Counter
from itertools import groupby

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.touchpoints import Touchpoint
from journey.bootstrap import Engine
from journey.identity import merge, unmerge
from tests.conftest import engine_on_fresh_store
from tests.contract.test_people_live_equals_rebuild import expected_positions, touchpoints


def record(engine: Engine, delivered: list[Touchpoint | int]) -> None:
    for is_tick, run in groupby(delivered, type):
        items = list(run)
        if is_tick is int:
            for at in items:
                engine.journeys.tick(at)  # type: ignore[arg-type]
        else:
            engine.journeys.record(items)  # type: ignore[arg-type]
    engine.runner.catch_up()
    engine.decider.catch_up()


def views(engine: Engine, people: list[str]) -> dict[str, object]:
    ladder = engine.definition.ladder
    return {
        "funnel": engine.view.funnel(ladder),
        **{
            person: (
                engine.view.position(person),
                engine.view.frictions(customer_id=person, open_only=False),
                engine.view.keys_of(person),
            )
            for person in people
        },
    }


def triggers_decided(engine: Engine) -> Counter[tuple[str, tuple[str, ...]]]:
    return Counter(
        (row.rule, tuple(row.record["triggering_event_ids"]))
        for row in engine.actions.actions(open_only=False, limit=None)
    )


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    delivered=st.lists(touchpoints(), min_size=2, max_size=40),
    data=st.data(),
)
def test_a_merge_undone_leaves_the_views_as_if_never_made(
    request: pytest.FixtureRequest,
    store: str,
    delivered: list[Touchpoint | int],
    data: st.DataObject,
) -> None:
    people = sorted(expected_positions(delivered))
    cut = data.draw(st.integers(1, len(delivered) - 1))
    with engine_on_fresh_store(request, store) as never:
        record(never, delivered)
        expected = views(never, people)
    with engine_on_fresh_store(request, store) as engine:
        record(engine, delivered[:cut])
        known = sorted(expected_positions(delivered[:cut]))
        if len(known) < 2:
            return
        a, b = data.draw(st.sampled_from(known)), data.draw(st.sampled_from(known))
        if a == b:
            return
        done = merge(engine, a, b, by="eve", reason="looks the same")
        # One journey: the other id names no one's until the merge is undone.
        assert [engine.view.position(who) is None for who in sorted({a, b})].count(True) == 1
        assert engine.view.person_of(a) == engine.view.person_of(b) == done.people[0]
        record(engine, delivered[cut:])
        unmerge(engine, done.merge_id, by="eve", reason="they are not")
        engine.decider.catch_up()

        assert views(engine, people) == expected
        assert max(triggers_decided(engine).values(), default=1) == 1
