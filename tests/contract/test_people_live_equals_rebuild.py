"""For any touchpoints whose customer ids and identifiers overlap at random, recorded in any
batches, with duplicates and late arrivals: the views kept live equal a rebuild from zero,
and both equal folding each person's touchpoints, as the identity graph joins them, in the
order they happened. The funnel counts people, not identifiers."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definition import load_definition
from engine.identity import IdentityGraph
from engine.sealing import Sealing
from engine.touchpoints import Touchpoint, touchpoint_from_record
from engine.vault import MasterKeys
from projections.machine import StageMachine
from projections.position import Position
from projections.runner import ProjectionRunner
from stores.sqlite.views import SQLiteJourneyView
from tests.conftest import DAY, HOUR, T0, engine_on_fresh_store
from tests.contract.test_live_equals_rebuild import KINDS, TICKS

NOW = T0 + 400 * DAY


@st.composite
def touchpoints(draw: st.DrawFn) -> Touchpoint | int:
    """A touchpoint naming its person by a customer id, identifiers, or both; now and then
    a clock event (its time)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(TICKS))
    number = draw(st.integers(0, 40))
    # The same event id always carries the same touchpoint, as a producer's retry would.
    channel, kind, attributes, rep, outcome = KINDS[(number * 7) % len(KINDS)]
    rng = number * 2654435761
    record = {
        "event_id": f"e{number}",
        "customer_id": (None, "C-1", "C-2", None, "C-3")[rng % 5],
        "email": (None, "a@x.com", "B@X.com", None)[rng // 5 % 4],
        "phone": (None, "+4520000001", None)[rng // 20 % 3],
        "cookie_id": ("k1", "k2", None, "k3")[rng // 60 % 4],
        "channel": channel,
        "type": kind,
        "occurred_at": T0 + (number * 37 % 23) * 19 * HOUR,
        "source": "test",
        "rep_id": rep,
        "outcome": outcome,
        "attributes": attributes,
    }
    if not (record["customer_id"] or record["email"] or record["phone"] or record["cookie_id"]):
        record["cookie_id"] = "k4"
    return touchpoint_from_record(record, now_ms=NOW)


def expected_positions(
    delivered: Sequence[Touchpoint | int], sealing: Sealing | None = None
) -> dict[str, Position]:
    """Each person's unique touchpoints (first delivery wins), joined by the identity graph
    read in arrival order, folded in occurrence order, then time moved to the last tick.
    With `sealing`, identifiers are known by their digests, as a sealed store keeps them."""
    definition = load_definition()
    machine = StageMachine(definition)
    graph = IdentityGraph(definition.identity)

    def identifiers_of(tp: Touchpoint) -> dict[str, str]:
        if sealing is None:
            return tp.identifiers
        digests = {kind: sealing.digest(kind, value) for kind, value in tp.identifiers.items()}
        return {kind: digest for kind, digest in digests.items() if digest}

    def key_of(tp: Touchpoint) -> str:
        return tp.customer_id if sealing is None else sealing.key_of(tp)

    first: dict[str, Touchpoint] = {}
    for tp in delivered:
        if isinstance(tp, Touchpoint) and tp.event_id not in first:
            first[tp.event_id] = tp
            customer = None if tp.anonymous else tp.customer_id
            graph.place(len(first), tp.event_id, customer, identifiers_of(tp))
    person_of: dict[str, str] = {}
    for tp in first.values():
        customer = None if tp.anonymous else tp.customer_id
        identifiers, _ = graph.identifiers_of(customer, identifiers_of(tp), {})
        person_of[tp.event_id] = graph.person_of(identifiers[0]) or key_of(tp)
    positions: dict[str, Position] = {}
    for tp in sorted(first.values(), key=lambda t: t.occurred_at):  # stable: arrival breaks ties
        person = person_of[tp.event_id]
        position = positions.get(person) or Position(person)
        positions[person] = machine.evolve(position, machine.mark_touchpoint(tp))
    clock = max((at for at in delivered if isinstance(at, int)), default=None)
    if clock is not None:
        for position in positions.values():
            machine.advance(position, clock)
    return positions


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
@pytest.mark.parametrize("sealed", [False, True], ids=["clear", "sealed"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    delivered=st.lists(touchpoints(), min_size=1, max_size=50),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    page_size=st.integers(1, 7),
)
def test_live_views_of_people_equal_a_rebuild_and_the_fold_in_occurrence_order(
    request: pytest.FixtureRequest,
    *,
    store: str,
    sealed: bool,
    delivered: list[Touchpoint | int],
    cuts: list[int],
    page_size: int,
) -> None:
    master_key = MasterKeys.new_line("k") if sealed else None
    with engine_on_fresh_store(
        request, store, page_size=page_size, master_key=master_key
    ) as engine:
        start = 0
        for size in [*cuts, len(delivered)]:
            for is_tick, run in groupby(delivered[start : start + size], type):
                items = list(run)
                if is_tick is int:
                    for at in items:
                        engine.journeys.tick(at)  # type: ignore[arg-type]
                else:
                    engine.journeys.record(items)  # type: ignore[arg-type]
            engine.runner.catch_up()
            start += size
            if start >= len(delivered):
                break
        rebuilt = SQLiteJourneyView(engine.settings.data_dir / "rebuilt.db")
        ProjectionRunner(engine.journeys, rebuilt, engine.definition, page_size=97).catch_up()

        expected = expected_positions(delivered, engine.sealing)
        ladder = engine.definition.ladder
        assert sum(step.current for step in engine.view.funnel(ladder)) == len(expected)
        assert engine.view.funnel(ladder) == rebuilt.funnel(ladder)
        for person, position in expected.items():
            assert engine.view.position(person) == position
            assert rebuilt.position(person) == position
            assert engine.view.keys_of(person) == rebuilt.keys_of(person)
            assert engine.view.frictions(customer_id=person, open_only=False) == (
                rebuilt.frictions(customer_id=person, open_only=False)
            )
        rebuilt.close()
