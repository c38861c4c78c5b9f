"""For any touchpoints, in any batch sizes, with duplicates and late arrivals, the views kept
live equal a rebuild from zero, and both equal folding each customer's touchpoints in the
order they happened."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definition import load_definition
from engine.settings import Settings
from engine.touchpoints import Touchpoint
from journey.bootstrap import build_engine
from projections.position import Mark, Position, StageMachine
from projections.runner import ProjectionRunner
from projections.sqlite_view import SQLiteJourneyView
from projections.timeline import timeline
from tests import services
from tests.conftest import DAY, T0

CUSTOMERS = ("C-1", "C-2", "C-3")
KINDS = (
    ("web", "page_view", {"page": "home"}),
    ("web", "page_view", {"page": "pricing"}),
    ("email", "email_clicked", {}),
    ("phone", "call_inbound", {}),
    ("visit", "demo", {}),
    ("email", "proposal_sent", {}),
    ("visit", "contract_signed", {}),
    ("email", "referral_given", {}),
    ("email", "complaint", {}),
)


@st.composite
def touchpoints(draw: st.DrawFn) -> Touchpoint:
    number = draw(st.integers(0, 40))
    # The same event id always carries the same touchpoint, as a producer's retry would.
    customer = CUSTOMERS[number % 3]
    channel, kind, attributes = KINDS[(number * 7) % len(KINDS)]
    at = T0 + (number * 37 % 23) * 5 * DAY + draw(st.sampled_from((0, 0, 1)))
    return Touchpoint(f"e{number}", customer, channel, kind, at, "test", attributes=attributes)


def occurrence_order(delivered: Sequence[Touchpoint], customer: str) -> list[str]:
    first: dict[str, Touchpoint] = {}
    for tp in delivered:
        first.setdefault(tp.event_id, tp)
    mine = [tp for tp in first.values() if tp.customer_id == customer]
    return [tp.event_id for tp in sorted(mine, key=lambda t: t.occurred_at)]


def expected_positions(delivered: Sequence[Touchpoint]) -> dict[str, Position]:
    """Each customer's unique touchpoints, first delivery wins, folded in occurrence order."""
    machine = StageMachine(load_definition())
    first: dict[str, Touchpoint] = {}
    for tp in delivered:
        first.setdefault(tp.event_id, tp)
    positions: dict[str, Position] = {}
    for tp in sorted(first.values(), key=lambda t: t.occurred_at):  # stable: arrival breaks ties
        rules = machine.matching_rules(tp.type, tp.channel, tp.outcome, tp.attributes)
        position = positions.get(tp.customer_id) or Position(tp.customer_id)
        positions[tp.customer_id] = machine.evolve(
            position, Mark(tp.occurred_at, tp.event_id, rules)
        )
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
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        data = Path(tmp)
        postgres: dict[str, str] = {}
        if store == "postgres":
            url = request.getfixturevalue("postgres_url")
            schema = stack.enter_context(services.fresh_schema(url))
            postgres = Settings.from_env(
                {"JOURNEY_DATABASE_URL": url, "POSTGRES_SCHEMA": schema}
            ).postgres
        engine = build_engine(Settings(data_dir=data, page_size=page_size, postgres=postgres))
        start = 0
        for size in [*cuts, len(delivered)]:
            engine.journeys.record(delivered[start : start + size])
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
            if customer in expected:
                assert live is not None
                assert live.history == expected[customer].history
                shown = timeline(engine.log.stream(customer))
                assert [t.event_id for t in shown] == occurrence_order(delivered, customer)
            else:
                assert live is None
        assert engine.view.funnel(engine.definition.ladder) == rebuilt.funnel(
            engine.definition.ladder
        )
        rebuilt.close()
        engine.close()
