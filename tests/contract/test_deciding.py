"""The decider on every store: deciding again from the same log position gives the same
actions, a page that fails leaves nothing behind, and outcomes close and suppress actions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import islice
from typing import Any

import pytest

from consumers.action_store import ActionStore, DeciderConflict, DeciderPage
from consumers.decider import Decider, DeciderOutOfDate
from consumers.outcomes import check_outcome, record_outcomes
from engine.actions import ActionOutcome, CustomerActions
from engine.definition import definition_from_mapping, load_definition
from engine.errors import InvalidOutcome
from engine.settings import Settings
from engine.touchpoints import Touchpoint, touchpoint_from_record
from journey.bootstrap import Engine, build_engine
from journey.console import now_ms
from journey.demo import demo_touchpoints
from projections.log import JourneyLog
from schemas.codec import contract
from tests.conftest import DAY, HOUR, T0, touchpoint
from tests.stories import warm_referral_gone_cold

DECIDER_TABLES = (
    "journey_decider_tracking",
    "journey_decider_customers",
    "journey_owner_days",
    "journey_next_actions",
    "journey_action_outbox",
)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    built = build_engine(replace(settings, page_size=500))
    yield built
    built.close()


def record_history(engine: Engine) -> None:
    """A few hundred demo customers, with the clock ticking every other day."""
    touchpoints = list(demo_touchpoints(customers=150, seed=11, start=T0))
    clock = T0
    for start in range(0, len(touchpoints), 400):
        batch = touchpoints[start : start + 400]
        engine.journeys.record(batch)
        while clock + 2 * DAY < max(tp.occurred_at for tp in batch):
            clock += 2 * DAY
            engine.journeys.tick(clock)


def decided(store: ActionStore) -> list[tuple[Any, ...]]:
    """Every action with its record, explanation and status, and the outbox's bytes."""
    rows = store.actions(open_only=False)
    outbox: dict[str, tuple[bytes, ...]] = {}
    for _, action_id, _, value in store.unsent(100_000):
        outbox[action_id] = (*outbox.get(action_id, ()), value)
    return sorted((*row, outbox.get(row.action_id)) for row in rows)


def forget_decisions(engine: Engine) -> None:
    """Empties the decider's tables (its decision events stay in the log)."""
    database = engine.actions._db
    for table in DECIDER_TABLES:
        database.execute(f"DELETE FROM {{t}}{table}")


def test_deciding_again_from_the_same_position_gives_the_same_actions(engine: Engine) -> None:
    record_history(engine)
    # Restarted after every page, as if killed: only what each page committed survives.
    while (
        Decider(engine.journeys, engine.actions, engine.definition, page_size=300)
        .catch_up(max_pages=1)
        .pages
    ):
        pass
    restarted = decided(engine.actions)
    forget_decisions(engine)

    straight = Decider(engine.journeys, engine.actions, engine.definition, page_size=300)
    done = straight.catch_up()

    assert done.decisions == len(restarted) > 50
    assert decided(engine.actions) == restarted
    rules = {row[5] for row in restarted}
    assert {"follow_up_visit", "call_back_channel_jump", "recovery_call"} <= rules


def test_each_decision_is_an_event_with_its_explanation(engine: Engine) -> None:
    record_history(engine)
    engine.decider.catch_up()
    action = engine.actions.actions(limit=1)[0]

    stream = engine.journeys.recorder.select_events(CustomerActions.create_id(action.customer_id))
    events = [engine.journeys.mapper.to_domain_event(stored) for stored in stream]
    decisions = {e.action_id: e for e in events if isinstance(e, CustomerActions.Decided)}

    event = decisions[action.action_id]
    assert event.action == action.record
    assert event.explanation == action.explanation
    assert set(event.explanation) >= {"rule", "events", "score", "weights", "priority", "beat"}
    assert event.explanation["events"] == action.record["triggering_event_ids"]


class FailingStore(ActionStore):
    """Fails its page's writes after the decision events are in the transaction."""

    def write(self, page: Any) -> Any:
        def fail(cursor: Any) -> None:
            raise RuntimeError("the database went away mid-page")

        return fail


def test_a_page_that_fails_leaves_no_decision_behind(engine: Engine) -> None:
    record_history(engine)
    failing = FailingStore(engine.actions._db)
    log = JourneyLog(engine.journeys)
    head = log.head()

    with pytest.raises(RuntimeError, match="went away"):
        Decider(engine.journeys, failing, engine.definition).catch_up()

    assert log.head() == head  # no decision event
    assert engine.actions.actions(open_only=False) == []
    assert engine.actions.tracking() == (0, None)
    assert engine.decider.catch_up().decisions > 0


class RacingStore(ActionStore):
    """Lets a rival decider decide the next page first, as its own decider writes it."""

    def __init__(self, engine: Engine, rival: Decider) -> None:
        super().__init__(engine.actions._db)
        self._rival = rival
        self._log = JourneyLog(engine.journeys)
        self.head_after_rival = 0

    def write(self, page: Any) -> Any:
        self._rival.catch_up(max_pages=1)
        self.head_after_rival = self._log.head()
        return super().write(page)


def test_a_page_a_rival_decider_wrote_first_is_dropped_and_the_rivals_stands(
    engine: Engine,
) -> None:
    record_history(engine)
    rival = Decider(engine.journeys, engine.actions, engine.definition)
    racing = RacingStore(engine, rival)

    with pytest.raises(DeciderConflict):
        Decider(engine.journeys, racing, engine.definition).catch_up(max_pages=1)

    assert JourneyLog(engine.journeys).head() == racing.head_after_rival
    assert engine.actions.tracking()[0] == rival.position() > 0
    engine.decider.catch_up()
    after_the_race = decided(engine.actions)
    forget_decisions(engine)
    Decider(engine.journeys, engine.actions, engine.definition).catch_up()
    assert decided(engine.actions) == after_the_race


class CountingStore(ActionStore):
    """Counts the queries of the decider's customers' rows."""

    reads = 0

    def _customers(self, customer_ids: Any) -> list[tuple[Any, ...]]:
        self.reads += 1
        return super()._customers(customer_ids)


def test_a_pages_positions_and_action_states_are_read_in_one_query(engine: Engine) -> None:
    record_history(engine)
    engine.decider.catch_up()
    customers = sorted({action.customer_id for action in engine.actions.actions()})[:5]
    store = CountingStore(engine.actions._db)

    store.begin_page()
    store.load_positions([*customers, "nobody"])
    states = store.load_states([*customers, "nobody"])
    assert store.reads == 1
    assert states == engine.actions.load_states(customers)
    assert len(states) == len(customers)

    store.write(DeciderPage(0, 0, None, ""))  # the page's write changes them
    assert store.load_states(customers) == states
    assert store.reads == 2


def test_a_dismissed_action_closes_and_keeps_its_rule_quiet(engine: Engine) -> None:
    visit = touchpoint("v1", "visit", channel="visit", rep_id="kim", outcome="positive")
    engine.journeys.record([visit])
    engine.journeys.tick(T0 + 3 * DAY)  # nobody followed the visit up
    engine.decider.catch_up()
    (action,) = engine.actions.actions(customer_id="C-1")
    assert (action.rule, action.owner, action.status) == ("follow_up_visit", "kim", "open")

    dismissed = ActionOutcome(
        "o1", action.action_id, "C-1", "dismissed", "met at a fair", None, "kim", T0 + 3 * DAY
    )
    record_outcomes(engine.journeys, [dismissed, dismissed])  # delivered twice, recorded once
    # A second visit nobody follows up, within the week the dismissal keeps the rule quiet.
    engine.journeys.record(
        [touchpoint("v2", "visit", channel="visit", rep_id="kim", at=T0 + 4 * DAY)]
    )
    engine.journeys.tick(T0 + 7 * DAY)
    engine.decider.catch_up()

    (closed,) = engine.actions.actions(customer_id="C-1", open_only=False)
    assert (closed.status, closed.status_reason) == ("dismissed", "met at a fair")

    # After the week, the rule speaks again for the visit still not followed up.
    engine.journeys.tick(T0 + 11 * DAY)
    engine.decider.catch_up()
    (again,) = engine.actions.actions(customer_id="C-1")
    assert again.record["triggering_event_ids"] == ["v2"]
    assert again.decided_at == T0 + 11 * DAY


def test_a_follow_up_cancels_the_action_it_makes_moot_and_publishes_it_again(
    engine: Engine,
) -> None:
    engine.journeys.record([touchpoint("v1", "visit", channel="visit", rep_id="kim")])
    engine.journeys.tick(T0 + 3 * DAY)
    engine.decider.catch_up()
    engine.journeys.record(
        [touchpoint("c1", "call_outbound", channel="phone", rep_id="kim", at=T0 + 3 * DAY + 1)]
    )
    engine.decider.catch_up()

    (action,) = engine.actions.actions(customer_id="C-1", open_only=False)
    assert (action.status, action.status_reason) == (
        "cancelled",
        "the friction it answered resolved: Visit with no follow-up",
    )
    assert action.status_at == T0 + 3 * DAY + 1
    stream = engine.journeys.recorder.select_events(CustomerActions.create_id("C-1"))
    events = [engine.journeys.mapper.to_domain_event(stored) for stored in stream]
    (ended,) = [e for e in events if isinstance(e, CustomerActions.Ended)]
    assert (ended.action_id, ended.status, ended.at) == (
        action.action_id,
        "cancelled",
        action.status_at,
    )
    published = [
        contract("NextAction").decode(value) for _, _, _, value in engine.actions.unsent(100)
    ]
    assert [(r["action_id"], r["status"]) for r in published] == [
        (action.action_id, "open"),
        (action.action_id, "cancelled"),
    ]
    assert published[1]["status_reason"] == action.status_reason
    assert {k: v for k, v in published[1].items() if not k.startswith(("status", "replaced"))} == {
        k: v for k, v in published[0].items() if not k.startswith(("status", "replaced"))
    }


def test_an_outcome_must_name_an_action_of_its_customer(engine: Engine) -> None:
    engine.journeys.record([touchpoint("v1", "visit", channel="visit", rep_id="kim")])
    engine.journeys.tick(T0 + 3 * DAY)
    engine.decider.catch_up()
    (action,) = engine.actions.actions(customer_id="C-1")

    with pytest.raises(InvalidOutcome, match="no action 'nope'"):
        check_outcome(
            engine.actions, ActionOutcome("o", "nope", "C-1", "done", None, None, None, T0)
        )
    with pytest.raises(InvalidOutcome, match="is for customer 'C-1', not 'C-2'"):
        check_outcome(
            engine.actions,
            ActionOutcome("o", action.action_id, "C-2", "done", None, None, None, T0),
        )


def test_no_action_for_a_customer_who_opted_out(engine: Engine) -> None:
    engine.journeys.record(
        [
            touchpoint("v1", "visit", channel="visit", rep_id="kim"),
            touchpoint("x1", "opted_out", channel="email", at=T0 + DAY),
        ]
    )
    engine.journeys.tick(T0 + 3 * DAY)
    engine.decider.catch_up()

    assert engine.actions.actions(customer_id="C-1", open_only=False) == []


def test_the_demo_history_decides_in_pages(engine: Engine) -> None:
    touchpoints = list(islice(demo_touchpoints(customers=40, seed=3, start=T0), 600))
    engine.journeys.record(touchpoints)
    engine.journeys.tick(max(tp.occurred_at for tp in touchpoints) + DAY)

    done = engine.decider.catch_up()

    assert done.pages >= 1
    assert engine.actions.outbox_counts() == (done.decisions, done.published)


def test_after_a_definition_change_the_decider_asks_to_refold_and_then_decides_on(
    engine: Engine, settings: Settings
) -> None:
    engine.journeys.record([touchpoint("v1", "visit", channel="visit", rep_id="kim")])
    engine.journeys.tick(T0 + 3 * DAY)
    engine.decider.catch_up()
    document = engine.definition.model_dump(by_alias=True, exclude_none=True)
    # Visits now count as Considering, no longer Evaluating.
    stages = {stage["id"]: stage for stage in document["stages"]}
    stages["evaluating"]["enter"] = [{"types": ["demo"]}]
    stages["considering"]["enter"] = [*stages["considering"]["enter"], {"types": ["visit"]}]
    changed = definition_from_mapping(document, origin="test")
    decider = Decider(engine.journeys, engine.actions, changed)

    with pytest.raises(DeciderOutOfDate, match="journey decide --refold"):
        decider.catch_up()

    assert decider.refold() == 1
    assert engine.actions.load_positions(["C-1"])["C-1"].stage == "considering"
    engine.journeys.record(
        [touchpoint("d1", "demo", channel="visit", rep_id="kim", at=T0 + 4 * DAY)]
    )
    decider.catch_up()
    assert engine.actions.load_positions(["C-1"])["C-1"].stage == "evaluating"
    assert len(engine.actions.actions(customer_id="C-1", open_only=False)) == 1  # nothing twice


def test_whoever_holds_a_booked_tour_gets_a_brief_due_before_it(engine: Engine) -> None:
    story = [touchpoint_from_record(r, now_ms=now_ms()) for r in warm_referral_gone_cold()]
    booked, tour = story[:-1], story[-1]
    engine.journeys.record(booked)  # up to the reading, days before the tour
    engine.decider.catch_up()
    assert [
        a for a in engine.actions.actions(customer_id="S1-ANNA") if a.rule == "meeting_brief"
    ] == []

    engine.journeys.tick(tour.occurred_at - 2 * HOUR)  # the brief is written when it falls due
    engine.decider.catch_up()

    (brief,) = [
        a for a in engine.actions.actions(customer_id="S1-ANNA") if a.rule == "meeting_brief"
    ]
    assert (brief.owner, brief.action_type) == ("peter", "brief")  # the stand-in, not kathrine
    assert brief.due_at == tour.occurred_at - 2 * HOUR
    assert brief.reason == (
        "Before the tour at B on Mon 9 Mar at 09:00 UTC, which peter holds: "
        "They read programmes, amenities. C-17 referred them, from A. "
        "They met kathrine (call from us on Wed 4 Mar, positive). "
        "Still open: Referral not used."
    )

    engine.journeys.record([tour])  # the tour begins, and nobody read the brief
    engine.decider.catch_up()

    (ended,) = [
        a
        for a in engine.actions.actions(customer_id="S1-ANNA", open_only=False)
        if a.rule == "meeting_brief"
    ]
    assert (ended.status, ended.status_reason) == ("expired", "the meeting it prepares for began")


def referred_by_a_known_customer() -> list[Touchpoint]:
    """Maria's customer C-17 deals with location A; they refer S-NEW without saying where,
    and Kim offers S-NEW location B."""
    return [
        touchpoint(
            "m1", "visit", customer_id="C-17", channel="visit", rep_id="maria", location="A"
        ),
        touchpoint(
            "m2",
            "contract_signed",
            customer_id="C-17",
            channel="visit",
            rep_id="maria",
            at=T0 + HOUR,
            location="A",
        ),
        touchpoint(
            "n1",
            "referral",
            customer_id="S-NEW",
            channel="email",
            at=T0 + DAY,
            referred_by="C-17",
        ),
        touchpoint(
            "n2",
            "call_outbound",
            customer_id="S-NEW",
            channel="phone",
            rep_id="kim",
            at=T0 + 2 * DAY,
            location="B",
        ),
    ]


def test_a_referral_by_a_known_customer_proposes_their_place_and_thanks_them_on_signing(
    engine: Engine,
) -> None:
    engine.journeys.record(referred_by_a_known_customer())
    engine.decider.catch_up()

    (introduction,) = engine.actions.actions(customer_id="S-NEW")
    assert (introduction.rule, introduction.owner) == ("introduction_referral", "kim")
    assert "Propose A, with an introduction through C-17 and maria." in introduction.reason
    assert engine.actions.actions(customer_id="C-17") == []

    engine.journeys.record(
        [
            touchpoint(
                "n3",
                "contract_signed",
                customer_id="S-NEW",
                channel="visit",
                rep_id="kim",
                at=T0 + 9 * DAY,
            )
        ]
    )
    engine.decider.catch_up()

    (thanks,) = engine.actions.actions(customer_id="C-17")
    assert (thanks.rule, thanks.owner, thanks.action_type) == (
        "thank_referrer",
        "maria",
        "thank_you",
    )
    assert thanks.reason == "S-NEW, whom they referred, signed on Wed 11 Mar. Thank them."
    assert thanks.decided_at == T0 + 9 * DAY
    engine.journeys.record([touchpoint("n4", "page_view", customer_id="S-NEW", at=T0 + 10 * DAY)])
    engine.decider.catch_up()
    assert len(engine.actions.actions(customer_id="C-17", open_only=False)) == 1  # thanked once


@pytest.mark.parametrize("page_size", [1, 1000])
def test_a_referrer_is_thanked_once_however_the_log_is_paged(
    engine: Engine, page_size: int
) -> None:
    decider = Decider(engine.journeys, engine.actions, engine.definition, page_size=page_size)
    engine.journeys.record(
        [
            touchpoint("m1", "visit", customer_id="C-17", channel="visit", rep_id="maria"),
            touchpoint(
                "n1",
                "referral",
                customer_id="S-NEW",
                channel="email",
                at=T0 + DAY,
                referred_by="C-17",
            ),
            touchpoint(
                "n2",
                "contract_signed",
                customer_id="S-NEW",
                channel="visit",
                rep_id="kim",
                at=T0 + 2 * DAY,
            ),
            # Signed, then at once an advocate: the signing still counts.
            touchpoint(
                "n3",
                "referral_given",
                customer_id="S-NEW",
                channel="email",
                at=T0 + 2 * DAY + HOUR,
            ),
        ]
    )

    decider.catch_up()

    rules = [a.rule for a in engine.actions.actions(customer_id="C-17", open_only=False)]
    assert rules == ["thank_referrer"]


def test_an_action_superseded_on_the_page_that_decided_it_is_published_after_it(
    settings: Settings,
) -> None:
    # One slot: the referrer's thank-you for their referral is decided, and on the same page
    # the more important thanks for the signing takes its place.
    document = load_definition().model_dump(by_alias=True, exclude_none=True)
    document["actions"]["max_open"] = 1
    engine = build_engine(settings)
    decider = Decider(
        engine.journeys, engine.actions, definition_from_mapping(document, origin="test")
    )
    try:
        engine.journeys.record(
            [
                touchpoint(
                    "m1", "contract_signed", customer_id="C-17", channel="visit", rep_id="maria"
                ),
                touchpoint(
                    "m2", "referral_given", customer_id="C-17", channel="email", at=T0 + HOUR
                ),
                touchpoint(
                    "n1",
                    "referral",
                    customer_id="S-NEW",
                    channel="email",
                    at=T0 + DAY,
                    referred_by="C-17",
                ),
                touchpoint(
                    "n2",
                    "contract_signed",
                    customer_id="S-NEW",
                    channel="visit",
                    rep_id="kim",
                    at=T0 + 2 * DAY,
                ),
            ]
        )
        decider.catch_up()

        actions = engine.actions.actions(customer_id="C-17", open_only=False)
        assert sorted((a.rule, a.status) for a in actions) == [
            ("thank_referrer", "open"),
            ("thank_you_referral", "superseded"),
        ]
        superseded = next(a for a in actions if a.status == "superseded")
        published = [
            (action_id, contract("NextAction").decode(value)["status"])
            for _, action_id, _, value in engine.actions.unsent(100)
        ]
        mine = [p for p in published if p[0] == superseded.action_id]
        assert mine == [(superseded.action_id, "open"), (superseded.action_id, "superseded")]
    finally:
        engine.close()


def test_taking_up_an_action_the_journey_ended_does_not_open_it_again(engine: Engine) -> None:
    engine.journeys.record([touchpoint("v1", "visit", channel="visit", rep_id="kim")])
    engine.journeys.tick(T0 + 3 * DAY)
    engine.decider.catch_up()
    (action,) = engine.actions.actions(customer_id="C-1")
    engine.journeys.record(
        [touchpoint("c1", "call_outbound", channel="phone", rep_id="kim", at=T0 + 3 * DAY + 1)]
    )
    engine.decider.catch_up()  # the follow-up happened: the action is cancelled

    late = ActionOutcome("o1", action.action_id, "C-1", "accepted", None, None, "kim", T0 + 4 * DAY)
    record_outcomes(engine.journeys, [late])
    engine.decider.catch_up()

    assert engine.actions.actions(customer_id="C-1") == []
    ended = engine.actions.action(action.action_id)
    assert ended is not None
    assert ended.status == "cancelled"


def test_an_introduction_found_through_the_referrer_ends_once_their_place_is_offered(
    engine: Engine,
) -> None:
    engine.journeys.record(referred_by_a_known_customer())
    engine.decider.catch_up()
    (introduction,) = engine.actions.actions(customer_id="S-NEW")
    offers = [
        touchpoint(
            "n3",
            "call_outbound",
            customer_id="S-NEW",
            channel="phone",
            rep_id="kim",
            at=T0 + 3 * DAY,
            location="C",
        ),
        touchpoint(
            "n4",
            "tour",
            customer_id="S-NEW",
            channel="visit",
            rep_id="kim",
            at=T0 + 4 * DAY,
            location="A",
        ),
    ]

    engine.journeys.record(offers[:1])  # offered yet another place: still one introduction
    engine.decider.catch_up()
    assert [a.action_id for a in engine.actions.actions(customer_id="S-NEW")] == [
        introduction.action_id
    ]
    engine.journeys.record(offers[1:])  # the referrer's place, at last
    engine.decider.catch_up()

    ended = engine.actions.action(introduction.action_id)
    assert ended is not None
    assert (ended.status, ended.status_reason) == (
        "cancelled",
        "the friction it answered resolved: Referral not used",
    )
