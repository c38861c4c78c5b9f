"""Reasons in words: an action's reason names the touchpoint behind it (what, where, with whom,
when, how it went) and the silence since the event that matters, never bare event ids."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import reasons
from consumers.deciding import ActionState, Deciding
from engine.definition import (
    MEETING_FIELDS,
    REASON_FIELDS,
    definition_from_mapping,
    load_definition,
)
from engine.touchpoints import Touchpoint, millis
from projections.machine import StageMachine
from projections.position import Position
from tests.conftest import DAY, HOUR, T0, touchpoint

DEFINITION = load_definition()
MACHINE, DECIDING = StageMachine(DEFINITION), Deciding(DEFINITION)
MINUTE = 60_000


def reasons_after(
    touchpoints: Sequence[Touchpoint], now: int, deciding: Deciding = DECIDING
) -> dict[str, str]:
    """The reasons of the actions decided at `now`, by rule."""
    marks = [MACHINE.mark_touchpoint(tp) for tp in touchpoints]
    state = ActionState("C-1")
    for mark in marks:
        deciding.observe(state, mark)
    position = MACHINE.replay("C-1", marks, now)
    return decided(position, state, now, deciding)


def decided(
    position: Position, state: ActionState, now: int, deciding: Deciding = DECIDING
) -> dict[str, str]:
    result = deciding.decide(position, state, now, {})
    return {d.candidate.rule: d.candidate.reason for d in result.decisions}


def test_a_follow_up_names_the_tour_where_with_whom_when_and_how_it_went() -> None:
    tour = touchpoint(
        "t1", "tour", channel="visit", rep_id="peter", at=T0, outcome="neutral", location="B"
    )

    reason = reasons_after([tour], T0 + 5 * DAY)["follow_up_visit"]

    assert reason == (
        "Nobody followed up their tour at B with peter on Mon 2 Mar (neutral), and they have "
        "heard nothing for 5 days since. Get back to them."
    )


def test_the_silence_counts_from_the_visit_not_from_a_newsletter_opened_since() -> None:
    visit = touchpoint("v1", "visit", channel="visit", rep_id="kim", at=T0)
    opened = touchpoint("n1", "email_opened", channel="email", at=T0 + 4 * DAY)

    reason = reasons_after([visit, opened], T0 + 4 * DAY + HOUR)["follow_up_visit"]

    assert "heard nothing for 4 days since" in reason


def test_an_unanswered_call_names_the_call_and_its_time_not_when_the_friction_opened() -> None:
    missed = touchpoint("m1", "call_missed", channel="phone", at=T0 + 5 * HOUR + 5 * MINUTE)

    reason = reasons_after([missed], T0 + 30 * HOUR)["call_back_unanswered"]

    # The friction opened a day after the call, on Tuesday; the reason dates the call.
    assert reason == (
        "Their missed call on Mon 2 Mar at 14:05 UTC is still unanswered: 24 hours of silence."
    )


def test_a_loop_of_page_views_says_which_page() -> None:
    views = [touchpoint(f"p{i}", at=T0 + i * DAY, page="pricing") for i in range(4)]

    reason = reasons_after(views, T0 + 4 * DAY)["consultation_offer"]

    assert "(page view 'pricing', Thu 5 Mar)" in reason


def test_a_long_detail_is_shown_on_one_line_and_cut_short() -> None:
    link = "Offices in\n the   city centre: " + "x" * 200
    clicks = [
        touchpoint(f"c{i}", "email_clicked", channel="email", at=T0 + i * DAY, link=link)
        for i in range(4)
    ]

    reason = reasons_after(clicks, T0 + 4 * DAY)["consultation_offer"]

    shown = "Offices in the city centre: " + "x" * 31 + "…"
    assert f"(email click '{shown}', Thu 5 Mar)" in reason


def test_a_channel_jump_names_the_step_that_failed() -> None:
    failed = touchpoint("f1", "form_failed", outcome="negative", form="quote")
    called = touchpoint("c1", "call_inbound", channel="phone", at=T0 + 20 * MINUTE)

    reason = reasons_after([failed, called], T0 + HOUR)["call_back_channel_jump"]

    assert reason.startswith(
        "A step online failed (failed form 'quote', Mon 2 Mar at 09:00 UTC) and they turned "
        "to the phone within the hour."
    )


def test_a_day_in_another_year_carries_its_year() -> None:
    new_year = millis(datetime(2027, 1, 2, tzinfo=UTC))

    assert reasons.day(T0, new_year) == "Mon 2 Mar 2026"
    assert reasons.day(T0, T0) == "Mon 2 Mar"


def with_reason(template: str) -> Deciding:
    """The default journey with the follow-up rule's reason replaced."""
    document = DEFINITION.model_dump(by_alias=True, exclude_none=True)
    for rule in document["actions"]["rules"]:
        if rule["id"] == "follow_up_visit":
            rule["reason"] = template
    return Deciding(definition_from_mapping(document, origin="test"))


def test_a_template_written_for_the_old_fields_still_fills_them() -> None:
    deciding = with_reason("{label}: {events} on {when}, {channel}, {outcome}, {rep}, {silence}.")
    tour = touchpoint("t1", "tour", channel="visit", rep_id="peter", at=T0, outcome="neutral")

    reason = reasons_after([tour], T0 + 3 * DAY, deciding)["follow_up_visit"]

    assert reason == ("Visit with no follow-up: t1 on 2026-03-04, visit, neutral, peter, 3 days.")


def test_every_field_a_template_may_name_is_filled() -> None:
    # A meeting's fields are for a booked trigger only (tests/unit/test_deciding.py).
    fields = [name for name in REASON_FIELDS if name not in MEETING_FIELDS]
    deciding = with_reason(" | ".join(f"{{{name}}}" for name in fields))
    tour = touchpoint("t1", "tour", channel="visit", rep_id="peter", at=T0, location="B")

    reason = reasons_after([tour], T0 + 3 * DAY, deciding)["follow_up_visit"]

    assert len(reason.split(" | ")) == len(fields)
    assert "{" not in reason
    assert "tour at B with peter on Mon 2 Mar | tour | Mon 2 Mar | Mon 2 Mar at 09:00 UTC | B" in (
        reason
    )


def test_a_position_stored_before_it_kept_touchpoints_still_gets_a_reason() -> None:
    """Version 2 stored no touchpoint with a friction: the reason falls back on its time."""
    stored = {
        "version": 2,
        "peak_rank": 3,
        "first_at": T0,
        "last_at": T0,
        "touchpoints": 1,
        "history": [["aware", T0, "t1"], ["evaluating", T0, "t1"]],
        "counts": [],
        "rep": "peter",
        "frictions": [
            [
                "no_follow_up:t1",
                "no_follow_up",
                T0 + 2 * DAY,
                None,
                ["t1"],
                "evaluating",
                "visit",
                "peter",
            ],
        ],
        "moments": [["first_visit", T0, "t1", "visit", "peter", "neutral", None, None, None]],
        "windows": [],
        "memory": {},
        "outcomes": {"visit": [0, 1, 0]},
        "due": None,
        "horizon": T0 + 2 * DAY,
    }
    position = Position.from_state("C-1", stored)

    reason = decided(position, ActionState("C-1", channels=["visit"]), T0 + 5 * DAY)[
        "follow_up_visit"
    ]

    assert reason == (
        "Nobody followed up their touchpoint on Wed 4 Mar (neutral), and they have heard "
        "nothing for 3 days since. Get back to them."
    )


KINDS: tuple[tuple[str, str, dict[str, str], str | None, str | None], ...] = (
    ("web", "page_view", {"page": "pricing"}, None, None),
    ("web", "form_failed", {"form": "quote"}, None, "negative"),
    ("email", "email_opened", {"campaign": "news"}, None, None),
    ("email", "email_inbound", {}, None, None),
    ("email", "referral", {"referrer_location": "A"}, None, None),
    ("email", "complaint", {"topic": "billing"}, None, "negative"),
    ("email", "referral_given", {}, None, "positive"),
    ("phone", "call_missed", {}, None, None),
    ("phone", "call_inbound", {}, "kim", "neutral"),
    ("phone", "call_outbound", {"location": "B"}, "kim", "positive"),
    ("visit", "tour", {"location": "B"}, "lee", "negative"),
    ("visit", "contract_signed", {}, "kim", "positive"),
)


@st.composite
def journeys(draw: st.DrawFn) -> list[Touchpoint]:
    steps = draw(
        st.lists(st.tuples(st.integers(0, len(KINDS) - 1), st.integers(0, 72)), max_size=12)
    )
    at, journey = T0, []
    for number, (kind, hours) in enumerate(steps):
        channel, type_, attributes, rep, outcome = KINDS[kind]
        at += hours * HOUR
        journey.append(
            touchpoint(
                f"evt-{number}-{type_}",
                type_,
                at=at,
                channel=channel,
                rep_id=rep,
                outcome=outcome,
                **attributes,
            )
        )
    return journey


@settings(max_examples=60, deadline=None)
@given(journey=journeys(), later=st.integers(0, 20 * 24))
def test_reasons_never_cite_event_ids_and_read_the_same_from_a_stored_position(
    journey: list[Touchpoint], later: int
) -> None:
    now = (journey[-1].occurred_at if journey else T0) + later * HOUR
    marks = [MACHINE.mark_touchpoint(tp) for tp in journey]
    state = ActionState("C-1")
    for mark in marks:
        DECIDING.observe(state, mark)
    position = MACHINE.replay("C-1", marks, now)
    stored = Position.from_state("C-1", position.to_state())
    again = ActionState.from_state("C-1", state.to_state())

    words = decided(position, state, now)

    assert words == decided(stored, again, now)
    for reason in words.values():
        assert not re.search(r"evt-\d+", reason), reason
        assert "{" not in reason, reason
        assert "None" not in reason, reason
