"""For any history, the decider proposes the same actions however the log was paged: decided
live after each batch as it was recorded, decided again from zero a line at a time, or in
pages of any size. Every record, explanation, status and published byte is the same, since
each customer is decided at the journey time of each of their touchpoints, outcomes and clock
events, not at the end of whatever page held them; and what goes out on the topic goes in the
same order."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.decider import Decider
from consumers.outcomes import record_outcomes
from engine.actions import ActionOutcome
from engine.identifiers import stream_key
from engine.touchpoints import Touchpoint
from journey.bootstrap import Engine
from journey.demo import demo_touchpoints
from tests.conftest import DAY, HOUR, T0, engine_on_fresh_store
from tests.contract.test_deciding import decided, forget_decisions

CUSTOMERS = ("C-1", "C-2", "C-3", "C-4")
KINDS: tuple[tuple[str, str, dict[str, str], str | None, str | None], ...] = (
    ("web", "page_view", {"page": "pricing"}, None, None),
    ("web", "form_failed", {"form": "quote"}, None, "negative"),
    ("phone", "call_inbound", {}, None, None),
    ("phone", "call_missed", {}, None, None),
    ("visit", "visit", {"location": "B"}, "ann", "negative"),
    ("visit", "demo", {"location": "B"}, "ann", "positive"),
    ("email", "proposal_sent", {}, "ann", None),
    ("email", "complaint", {}, None, "negative"),
    ("visit", "contract_signed", {}, "bo", "positive"),
    ("email", "referral", {"referred_by": "C-1", "referrer_location": "A"}, None, None),
    ("phone", "call_outbound", {"location": "A"}, "bo", "positive"),
    ("email", "unsubscribe", {}, None, "negative"),
)
OUTCOMES = ("done", "dismissed", "accepted", "snoozed")
TICKS = [T0 + day * DAY for day in range(0, 40, 2)]

# An entry of a generated history: a touchpoint, a clock event (its time), or a rep's outcome
# for one of the open actions at that point (its status, and which one).
Entry = Touchpoint | int | tuple[str, int]


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    roll = draw(st.integers(0, 11))
    if roll == 0:
        return draw(st.sampled_from(TICKS))
    if roll == 1:
        return (draw(st.sampled_from(OUTCOMES)), draw(st.integers(0, 5)))
    number = draw(st.integers(0, 60))
    channel, kind, attributes, rep, outcome = KINDS[(number * 7) % len(KINDS)]
    # Now and then a touchpoint carries a cookie, or only a cookie: people are joined (and
    # a cookie two customers carried is a conflict) at different points of the log.
    cookie = f"k{number % 6}" if number % 5 < 2 else None
    anonymous = number % 5 == 0
    key = stream_key({"cookie_id": cookie}) if anonymous else CUSTOMERS[number % 4]
    return Touchpoint(
        f"e{number}",
        str(key),
        channel,
        kind,
        T0 + (number * 37 % 29) * 17 * HOUR,
        "test",
        rep_id=rep,
        outcome=outcome,
        cookie_id=cookie,
        attributes=attributes,
        anonymous=anonymous,
    )


def live(engine: Engine, history: list[Entry], cuts: list[int], page_size: int) -> None:
    """Records the history in batches cut at `cuts`, deciding after each as the live decider
    does; an outcome is reported on an action open at that point."""
    decider = Decider(engine.journeys, engine.actions, engine.definition, page_size=page_size)
    cut = iter(cuts)
    batch: list[Touchpoint] = []
    size = next(cut, len(history))
    for number, entry in enumerate(history):
        if isinstance(entry, Touchpoint):
            batch.append(entry)
        else:
            engine.journeys.record(batch)
            batch = []
            if isinstance(entry, int):
                engine.journeys.tick(entry)
            else:
                decider.catch_up()
                report(engine, *entry, number)
        if len(batch) >= size:
            engine.journeys.record(batch)
            batch = []
            decider.catch_up()
            size = next(cut, len(history))
    engine.journeys.record(batch)
    decider.catch_up()


def report(engine: Engine, status: str, which: int, number: int) -> None:
    """A rep's outcome on one of the open actions, at the journey's time."""
    open_actions = engine.actions.actions(limit=None)
    if not open_actions:
        return
    action = sorted(open_actions, key=lambda a: a.action_id)[which % len(open_actions)]
    at = max(action.decided_at, engine.actions.ticked() or 0) + HOUR
    outcome = ActionOutcome(
        f"o{number}",
        action.action_id,
        action.customer_id,
        status,
        "not now" if status == "dismissed" else None,
        at + 3 * DAY if status == "snoozed" else None,
        action.owner,
        at,
    )
    record_outcomes(engine.journeys, [outcome])


def decided_and_sent(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[str, bytes]]]:
    """Every action with its record, explanation and status; and what goes out on the topic,
    in the order it goes out (an ending before what replaced it, for the same owner)."""
    sent = [(owner, value) for _, _, owner, value in engine.actions.unsent(100_000)]
    return decided(engine.actions), sent


def decide_again(
    engine: Engine, page_sizes: list[int]
) -> tuple[list[tuple[Any, ...]], list[tuple[str, bytes]]]:
    """Forgets every decision and decides from zero, each page of the next size in turn, a
    decider restarted for each, as if killed between pages."""
    forget_decisions(engine)
    sizes = iter(page_sizes)
    while True:
        size = next(sizes, 10_000)
        decider = Decider(engine.journeys, engine.actions, engine.definition, page_size=size)
        if not decider.catch_up(max_pages=1).pages:
            return decided_and_sent(engine)


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
    history=st.lists(entries(), min_size=1, max_size=50),
    cuts=st.lists(st.integers(1, 9), max_size=20),
    page_sizes=st.lists(st.integers(1, 9), max_size=20),
)
def test_live_a_line_at_a_time_and_any_pages_give_the_same_actions(
    request: pytest.FixtureRequest,
    store: str,
    history: list[Entry],
    cuts: list[int],
    page_sizes: list[int],
) -> None:
    with engine_on_fresh_store(request, store) as engine:
        live(engine, history, cuts, page_size=3)
        live_actions = decided_and_sent(engine)

        assert decide_again(engine, [1] * 10_000) == live_actions
        assert decide_again(engine, page_sizes) == live_actions
        assert decide_again(engine, [10_000]) == live_actions


def demo_history() -> list[Entry]:
    """A realistic history of 60 customers over months, the clock ticking every other day,
    and reps reporting on some of their actions as they go."""
    touchpoints = list(demo_touchpoints(customers=60, seed=5, start=T0))
    touchpoints.sort(key=lambda tp: tp.occurred_at)
    rng = random.Random(5)
    history: list[Entry] = []
    clock = T0
    for tp in touchpoints:
        while clock + 2 * DAY < tp.occurred_at:
            clock += 2 * DAY
            history.append(clock)
            history.append((rng.choice(OUTCOMES), rng.randrange(20)))
        history.append(tp)
    history.append(clock + 30 * DAY)
    return history


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_demo_history_gives_the_same_actions_live_and_in_pages_of_any_size(
    request: pytest.FixtureRequest, store: str
) -> None:
    cuts = [random.Random(1).randint(1, 200) for _ in range(400)]
    with engine_on_fresh_store(request, store) as engine:
        live(engine, demo_history(), cuts, page_size=50)
        live_actions = decided_and_sent(engine)
        statuses = {row[7] for row in live_actions[0]}

        assert len(live_actions[0]) > 50
        assert {"done", "dismissed", "expired", "cancelled"} <= statuses
        assert decide_again(engine, [1] * 100_000) == live_actions
        assert decide_again(engine, [2_000]) == live_actions
        pages = [random.Random(2).randint(1, 500) for _ in range(1_000)]
        assert decide_again(engine, pages) == live_actions
