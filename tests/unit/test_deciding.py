"""Deciding next-best-actions from positions, with no database: the rules' triggers,
arbitration, the contact policy, consent and what reps did with earlier actions."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers import briefs
from consumers.briefs import KEPT, Context
from consumers.deciding import ActionState, CustomerDecisions, Deciding, Ended
from engine.actions import ActionOutcome
from engine.definition import definition_from_mapping, load_definition
from engine.errors import DefinitionError
from engine.touchpoints import Touchpoint
from projections.machine import StageMachine
from projections.position import Position
from tests.conftest import DAY, HOUR, T0, touchpoint

DEFINITION = load_definition()


def compiled(**policy: object) -> tuple[StageMachine, Deciding]:
    """The default journey, with some of its action policy changed."""
    document = DEFINITION.model_dump(by_alias=True, exclude_none=True)
    document["actions"].update(policy)
    definition = definition_from_mapping(document, origin="test")
    return StageMachine(definition), Deciding(definition)


MACHINE, DECIDING = compiled()


def state_after(
    touchpoints: Sequence[Touchpoint],
    now: int,
    machine: StageMachine = MACHINE,
    deciding: Deciding = DECIDING,
) -> tuple[Position, ActionState]:
    marks = [machine.mark_touchpoint(tp) for tp in touchpoints]
    state = ActionState("C-1")
    for tp, mark in zip(touchpoints, marks, strict=True):
        deciding.observe(state, mark, tp.attributes)
    return machine.replay("C-1", marks, now), state


def decide(
    position: Position,
    state: ActionState,
    now: int,
    deciding: Deciding = DECIDING,
    owner_today: dict[str, int] | None = None,
) -> CustomerDecisions:
    return deciding.decide(position, state, now, owner_today or {})


def rules(result: CustomerDecisions) -> list[str]:
    return [d.candidate.rule for d in result.decisions]


# A referred prospect, called by Kim, toured by someone else, then silence: two actions.
REFERRED = [
    touchpoint("r1", "referral", channel="email", referrer_location="A"),
    touchpoint("c1", "call_outbound", channel="phone", rep_id="kim", at=T0 + DAY, location="B"),
    touchpoint("t1", "tour", channel="visit", rep_id="lee", at=T0 + 2 * DAY, location="B"),
]


def test_a_visit_nobody_followed_up_asks_the_customers_rep_to_follow_up() -> None:
    position, state = state_after(REFERRED[1:], T0 + 5 * DAY)

    (decision,) = decide(position, state, T0 + 5 * DAY).decisions

    c = decision.candidate
    assert (c.rule, c.action_type, c.owner, c.channel) == (
        "follow_up_visit",
        "follow_up",
        "kim",
        "phone",
    )
    assert c.events == ("t1",)
    assert c.due_at == T0 + 6 * DAY  # within the rule's 24 hours
    assert c.score == {"value": 0.9, "urgency": 0.9, "fit": 0.8}
    assert c.priority == 0.88
    assert "3 days" in c.reason


def test_fit_is_halved_on_a_channel_the_customer_never_used() -> None:
    visit = touchpoint("v1", "visit", channel="visit", rep_id="kim")
    position, state = state_after([visit], T0 + 3 * DAY)

    (decision,) = decide(position, state, T0 + 3 * DAY).decisions

    assert decision.candidate.channel == "phone"  # the rule's first choice
    assert decision.candidate.score["fit"] == 0.4


def test_arbitration_keeps_the_highest_priority_and_explains_what_it_beat() -> None:
    machine, deciding = compiled(max_open=1)
    position, state = state_after(REFERRED, T0 + 5 * DAY, machine, deciding)

    result = decide(position, state, T0 + 5 * DAY, deciding)

    (decision,) = result.decisions
    assert decision.candidate.rule == "follow_up_visit"
    (beaten,) = decision.explanation(deciding.policy)["beat"]
    assert (beaten["rule"], beaten["held_by"]) == ("introduction_referral", "no free slot")
    assert beaten["priority"] < decision.candidate.priority
    # The slot frees when the rep is done; the introduction comes next.
    done = ActionOutcome(
        "o1", decision.candidate.action_id, "C-1", "done", None, None, "kim", T0 + 6 * DAY
    )
    deciding.apply_outcome(state, done)
    assert rules(decide(position, state, T0 + 6 * DAY, deciding)) == ["introduction_referral"]


def test_the_customers_daily_limit_holds_an_action_until_the_next_day() -> None:
    machine, deciding = compiled(per_customer_per_day=1)
    position, state = state_after(REFERRED, T0 + 5 * DAY, machine, deciding)

    first = decide(position, state, T0 + 5 * DAY, deciding)

    assert rules(first) == ["follow_up_visit"]
    assert first.decisions[0].beaten[0]["held_by"] == "the customer's daily limit"
    assert state.retry_at == (T0 + 6 * DAY) // DAY * DAY
    assert rules(decide(position, state, T0 + 5 * DAY + HOUR, deciding)) == []
    assert rules(decide(position, state, T0 + 6 * DAY, deciding)) == ["introduction_referral"]


def test_an_owners_daily_limit_holds_their_actions() -> None:
    machine, deciding = compiled(per_owner_per_day=3)
    position, state = state_after(REFERRED, T0 + 5 * DAY, machine, deciding)

    result = decide(position, state, T0 + 5 * DAY, deciding, owner_today={"kim": 2})

    assert rules(result) == ["follow_up_visit"]
    assert result.decisions[0].beaten[0]["held_by"] == "kim's daily limit"


def test_an_action_is_never_decided_twice() -> None:
    position, state = state_after(REFERRED, T0 + 5 * DAY)
    first = decide(position, state, T0 + 5 * DAY)
    for decision in first.decisions:
        done = ActionOutcome(
            "o", decision.candidate.action_id, "C-1", "done", None, None, None, T0 + 5 * DAY
        )
        DECIDING.apply_outcome(state, done)

    assert len(first.decisions) == 2
    assert decide(position, state, T0 + 6 * DAY).decisions == []


def test_deciding_is_a_function_of_its_inputs() -> None:
    position, state = state_after(REFERRED, T0 + 5 * DAY)
    again = copy.deepcopy(state)

    assert decide(position, state, T0 + 5 * DAY) == decide(position, again, T0 + 5 * DAY)
    assert state == again


def test_opting_out_cancels_open_actions_and_stops_new_ones() -> None:
    position, state = state_after(REFERRED, T0 + 5 * DAY)
    (follow_up, _) = decide(position, state, T0 + 5 * DAY).decisions
    DECIDING.observe(state, MACHINE.mark_touchpoint(touchpoint("x", "opted_out", channel="email")))

    result = decide(position, state, T0 + 6 * DAY)

    assert result.decisions == []
    assert (follow_up.candidate.action_id, "cancelled", "the customer opted out of contact") in {
        (e.action_id, e.status, e.why) for e in result.ended
    }
    assert state.open == {}


def test_an_unsubscribed_customer_is_not_offered_email() -> None:
    views = [touchpoint(f"p{i}", "page_view", at=T0 + i * HOUR, page="pricing") for i in range(4)]
    left = touchpoint("u1", "unsubscribed", channel="email", at=T0 + 5 * HOUR)
    position, state = state_after(
        [*views, touchpoint("e", "email_opened", channel="email"), left], T0 + DAY
    )

    (offer,) = decide(position, state, T0 + DAY).decisions

    assert (offer.candidate.rule, offer.candidate.channel) == ("consultation_offer", "phone")


def test_a_recent_negative_complaint_only() -> None:
    complaint = touchpoint("k1", "complaint", channel="email", outcome="negative")
    position, state = state_after([complaint], T0 + 20 * DAY)

    assert decide(position, state, T0 + 20 * DAY).decisions == []  # older than 14 days


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"friction": "no_such"}, "actions.rules[0].friction: unknown friction 'no_such'"),
        ({}, "actions.rules[0]: needs exactly one trigger"),
        ({"friction": "loop", "entered": "aware"}, "needs exactly one trigger"),
        ({"friction": "loop", "reason": "{nope}"}, "reason: unknown field {nope}"),
        ({"friction": "loop", "reason": "{brief}"}, "{brief} is only known to a booked trigger"),
        ({"friction": "loop", "channels": ["fax"]}, "channels: unknown channel 'fax'"),
        ({"friction": "loop", "stages": ["nowhere"]}, "unknown stage 'nowhere'"),
    ],
)
def test_a_bad_action_rule_is_refused_naming_the_key(rule: dict[str, object], message: str) -> None:
    document = DEFINITION.model_dump(by_alias=True, exclude_none=True)
    document["actions"]["rules"] = [
        {"id": "r", "action": "call", "channels": ["phone"], "reason": "Call.", **rule}
    ]

    with pytest.raises(DefinitionError, match=message.replace("[", r"\[").replace("{", r"\{")):
        definition_from_mapping(document, origin="test")


def test_a_more_important_action_supersedes_the_least_important_one_nobody_took_up() -> None:
    machine, deciding = compiled(max_open=1)
    position, state = state_after(REFERRED[:2], T0 + DAY + HOUR, machine, deciding)
    (introduction,) = decide(position, state, T0 + DAY + HOUR, deciding).decisions
    position, _ = state_after(REFERRED, T0 + 5 * DAY, machine, deciding)

    result = decide(position, state, T0 + 5 * DAY, deciding)

    (follow_up,) = result.decisions
    assert follow_up.candidate.rule == "follow_up_visit"
    assert result.ended == [
        Ended(
            introduction.candidate.action_id,
            "superseded",
            T0 + 5 * DAY,
            "replaced by a more important action: follow up after the visit",
            follow_up.candidate.action_id,
        )
    ]
    assert list(state.open) == [follow_up.candidate.action_id]


def test_an_action_a_rep_accepted_is_not_superseded() -> None:
    machine, deciding = compiled(max_open=1)
    position, state = state_after(REFERRED[:2], T0 + DAY + HOUR, machine, deciding)
    (introduction,) = decide(position, state, T0 + DAY + HOUR, deciding).decisions
    accepted = ActionOutcome(
        "o1", introduction.candidate.action_id, "C-1", "accepted", None, None, "kim", T0 + DAY
    )
    deciding.apply_outcome(state, accepted)
    position, _ = state_after(REFERRED, T0 + 5 * DAY, machine, deciding)

    result = decide(position, state, T0 + 5 * DAY, deciding)

    assert (result.decisions, result.ended) == ([], [])
    assert list(state.open) == [introduction.candidate.action_id]


def test_an_action_nobody_did_expires_when_its_window_passes_and_is_not_decided_again() -> None:
    position, state = state_after(REFERRED[1:], T0 + 5 * DAY)
    (follow_up,) = decide(position, state, T0 + 5 * DAY).decisions
    expires_at = follow_up.candidate.due_at + 336 * HOUR

    assert state.retry_at == expires_at  # the decider comes back to the customer then
    assert decide(position, state, expires_at - 1).ended == []
    result = decide(position, state, expires_at)

    assert [(e.action_id, e.status, e.why) for e in result.ended] == [
        (follow_up.candidate.action_id, "expired", "nobody did it in time")
    ]
    assert result.decisions == []
    assert state.open == {}


def test_a_snooze_starts_an_actions_window_again_when_it_ends() -> None:
    position, state = state_after(REFERRED[1:], T0 + 5 * DAY)
    (follow_up,) = decide(position, state, T0 + 5 * DAY).decisions
    until = T0 + 30 * DAY
    snoozed = ActionOutcome(
        "o1", follow_up.candidate.action_id, "C-1", "snoozed", None, until, "kim", T0 + 5 * DAY
    )
    DECIDING.apply_outcome(state, snoozed)

    assert decide(position, state, T0 + 29 * DAY).ended == []
    assert state.retry_at == until + 336 * HOUR
    assert [e.status for e in decide(position, state, until + 336 * HOUR).ended] == ["expired"]


def test_a_customer_who_goes_dormant_has_their_actions_cancelled_and_gets_no_new_ones() -> None:
    position, state = state_after(REFERRED, T0 + 5 * DAY)
    opened = decide(position, state, T0 + 5 * DAY).decisions
    assert len(opened) == 2
    dormant, _ = state_after(REFERRED, T0 + 70 * DAY)
    assert dormant.stage == "dormant"

    result = decide(dormant, state, T0 + 70 * DAY)

    assert sorted((e.action_id, e.status, e.why) for e in result.ended) == sorted(
        (d.candidate.action_id, "cancelled", "the customer went dormant") for d in opened
    )
    assert result.decisions == []
    # What the rules would propose afresh: something while the customer is active, nothing
    # once they are dormant.
    assert proposed(position, T0 + 5 * DAY) != []
    assert proposed(dormant, T0 + 70 * DAY) == []


def proposed(position: Position, now: int) -> list[str]:
    return [c.rule for c in DECIDING.candidates(position, ActionState("C-1"), now)]


BOOKED = [
    touchpoint("r1", "referral", channel="email", referred_by="C-17", referrer_location="A"),
    touchpoint(
        "c1",
        "call_outbound",
        channel="phone",
        rep_id="kim",
        at=T0 + DAY,
        outcome="positive",
        booked="demo",
        booked_for="2026-03-09T14:00:00+01:00",
        host="lee",
        promised="a price list",
    ),
    touchpoint("p1", "page_view", at=T0 + 2 * DAY, page="pricing"),
    touchpoint("p2", "page_view", at=T0 + 2 * DAY + HOUR, page="cases"),
    touchpoint("p3", "page_view", at=T0 + 3 * DAY, page="pricing"),
    touchpoint("d1", "content_download", at=T0 + 3 * DAY, asset="brochure"),
]


@given(st.permutations(BOOKED))
def test_a_brief_says_the_same_whatever_order_the_touchpoints_arrived_in(
    arrived: list[Touchpoint],
) -> None:
    position, state = state_after(arrived, T0 + 4 * DAY)
    due = T0 + 7 * DAY + 2 * HOUR  # 13:00 UTC, two hours before the demo
    assert not [
        d
        for d in decide(position, state, T0 + 4 * DAY).decisions
        if d.candidate.rule == "meeting_brief"
    ]
    assert state.retry_at == due  # the decider comes back when the brief falls due

    (brief,) = [
        d for d in decide(position, state, due).decisions if d.candidate.rule == "meeting_brief"
    ]

    assert brief.candidate.owner == "lee"
    assert brief.candidate.due_at == due
    assert brief.candidate.reason == (
        "Before the demo on Mon 9 Mar at 13:00 UTC, which lee holds: "
        "They read cases, pricing. They downloaded brochure. C-17 referred them, from A. "
        "They met kim (call from us on Tue 3 Mar, positive), who promised a price list."
    )


@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.sampled_from("abcdefgh"), st.sampled_from(["kim", ""])),
        max_size=30,
    ).flatmap(lambda seen: st.tuples(st.just(seen), st.permutations(seen)))
)
def test_what_a_brief_keeps_is_the_newest_whatever_the_arrival_order(
    seen_and_arrived: tuple[list[tuple[int, str, str]], list[tuple[int, str, str]]],
) -> None:
    seen, arrived = seen_and_arrived
    briefing = briefs.Noticing(DEFINITION.actions.briefing)

    def kept(order: list[tuple[int, str, str]]) -> Context:
        context = Context()
        for at, page, rep in order:
            mark = MACHINE.mark_touchpoint(
                touchpoint(f"e{at}{page}", at=T0 + at * HOUR, rep_id=rep or None, page=page)
            )
            briefs.observe(context, briefing, mark, {"page": page})
        return context

    newest = sorted(
        {page: max(at for at, p, _ in seen if p == page) for _, page, _ in seen}.items(),
        key=lambda item: (item[1], item[0]),
    )[-KEPT:]
    assert kept(arrived) == kept(seen)
    assert [(at - T0) // HOUR for at, _ in kept(arrived).read] == [at for _, at in newest]


def test_a_snoozed_brief_still_ends_when_its_meeting_begins() -> None:
    position, state = state_after(BOOKED, T0 + 4 * DAY)
    (brief,) = [
        d
        for d in decide(position, state, T0 + 7 * DAY + 2 * HOUR).decisions
        if d.candidate.rule == "meeting_brief"
    ]
    meeting = T0 + 7 * DAY + 4 * HOUR  # 14:00 at +01:00
    snoozed = ActionOutcome(
        "o1",
        brief.candidate.action_id,
        "C-1",
        "snoozed",
        None,
        meeting - HOUR,
        "lee",
        meeting - 90 * 60_000,
    )
    DECIDING.apply_outcome(state, snoozed)

    ended = decide(position, state, meeting).ended

    assert [(e.action_id, e.status, e.why) for e in ended] == [
        (brief.candidate.action_id, "expired", "the meeting it prepares for began")
    ]
