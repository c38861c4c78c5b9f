"""For any touchpoints and clock events, in any batch sizes, with duplicates and late arrivals,
the views kept live equal a rebuild from zero, and both equal folding each customer's
touchpoints in the order they happened up to the last clock event: stages, frictions and
moments of truth alike."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definition import load_definition
from engine.touchpoints import Touchpoint
from projections.machine import StageMachine
from projections.position import Position
from projections.runner import ProjectionRunner
from projections.timeline import timeline
from stores.sqlite.views import SQLiteJourneyView
from tests.conftest import DAY, HOUR, T0, engine_on_fresh_store

CUSTOMERS = ("C-1", "C-2", "C-3")
KINDS: tuple[tuple[str, str, dict[str, str], str | None, str | None], ...] = (
    ("web", "page_view", {"page": "home"}, None, None),
    ("web", "page_view", {"page": "pricing"}, None, None),
    ("email", "email_clicked", {}, None, None),
    ("phone", "call_inbound", {}, None, None),
    ("visit", "demo", {"location": "B"}, "ann", "positive"),
    ("email", "proposal_sent", {}, "ann", None),
    ("visit", "contract_signed", {}, "bo", "positive"),
    ("email", "referral_given", {}, None, None),
    ("email", "complaint", {}, None, "negative"),
    ("web", "form_failed", {"form": "quote"}, None, "negative"),
    ("phone", "call_missed", {}, None, None),
    ("phone", "call_outbound", {"location": "A"}, "bo", "positive"),
    ("email", "referral", {"referrer_location": "A"}, None, None),
    ("visit", "tour", {}, "ann", "negative"),
)
TICKS = [T0 + day * DAY for day in range(0, 21)]


@st.composite
def touchpoints(draw: st.DrawFn) -> Touchpoint | int:
    """A touchpoint, or now and then a clock event (its time)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(TICKS))
    number = draw(st.integers(0, 40))
    # The same event id always carries the same touchpoint, as a producer's retry would.
    customer = CUSTOMERS[number % 3]
    channel, kind, attributes, rep, outcome = KINDS[(number * 7) % len(KINDS)]
    at = T0 + (number * 37 % 23) * 19 * HOUR + draw(st.sampled_from((0, 0, 1)))
    return Touchpoint(
        f"e{number}",
        customer,
        channel,
        kind,
        at,
        "test",
        rep_id=rep,
        outcome=outcome,
        attributes=attributes,
    )


def only_touchpoints(delivered: Sequence[Touchpoint | int]) -> list[Touchpoint]:
    return [tp for tp in delivered if isinstance(tp, Touchpoint)]


def occurrence_order(delivered: Sequence[Touchpoint], customer: str) -> list[str]:
    first: dict[str, Touchpoint] = {}
    for tp in delivered:
        first.setdefault(tp.event_id, tp)
    mine = [tp for tp in first.values() if tp.customer_id == customer]
    return [tp.event_id for tp in sorted(mine, key=lambda t: t.occurred_at)]


def expected_positions(delivered: Sequence[Touchpoint | int]) -> dict[str, Position]:
    """Each customer's unique touchpoints, first delivery wins, folded in occurrence order,
    then time moved on to the last clock event."""
    machine = StageMachine(load_definition())
    first: dict[str, Touchpoint] = {}
    for tp in only_touchpoints(delivered):
        first.setdefault(tp.event_id, tp)
    positions: dict[str, Position] = {}
    for tp in sorted(first.values(), key=lambda t: t.occurred_at):  # stable: arrival breaks ties
        position = positions.get(tp.customer_id) or Position(tp.customer_id)
        positions[tp.customer_id] = machine.evolve(position, machine.mark_touchpoint(tp))
    clock = max((at for at in delivered if isinstance(at, int)), default=None)
    if clock is not None:
        for position in positions.values():
            machine.advance(position, clock)
    return positions


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    delivered=st.lists(touchpoints(), min_size=1, max_size=60),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    page_size=st.integers(1, 7),
)
def test_live_views_equal_a_rebuild_and_the_fold_in_occurrence_order(
    request: pytest.FixtureRequest,
    store: str,
    delivered: list[Touchpoint],
    cuts: list[int],
    page_size: int,
) -> None:
    with engine_on_fresh_store(request, store, page_size=page_size) as engine:
        data = engine.settings.data_dir
        start = 0
        for size in [*cuts, len(delivered)]:
            # Touchpoints delivered together are recorded in one batch; a clock event ticks
            # between batches.
            for is_tick, run in groupby(delivered[start : start + size], type):
                items = list(run)
                if is_tick is int:
                    for at in items:
                        engine.journeys.tick(at)
                else:
                    engine.journeys.record(items)
            engine.runner.catch_up()
            start += size
            if start >= len(delivered):
                break
        rebuilt = SQLiteJourneyView(data / "rebuilt.db")
        ProjectionRunner(engine.journeys, rebuilt, engine.definition, page_size=97).catch_up()

        expected = expected_positions(delivered)
        for customer in CUSTOMERS:
            live, fresh = engine.view.position(customer), rebuilt.position(customer)
            assert live == fresh
            assert engine.view.frictions(customer_id=customer, open_only=False) == (
                rebuilt.frictions(customer_id=customer, open_only=False)
            )
            if customer in expected:
                assert live is not None
                assert live == expected[customer]
                shown = timeline(engine.log.stream(customer))
                assert [t.event_id for t in shown] == occurrence_order(
                    only_touchpoints(delivered), customer
                )
            else:
                assert live is None
        assert engine.view.funnel(engine.definition.ladder) == rebuilt.funnel(
            engine.definition.ladder
        )
        assert engine.view.moment_outcomes() == rebuilt.moment_outcomes()
        assert engine.view.consistency("channel") == rebuilt.consistency("channel")
        rebuilt.close()
