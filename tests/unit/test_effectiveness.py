"""What each rule achieved, from decisions, outcomes and the journeys that followed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.action_store import ActionRow
from consumers.effectiveness import Period, effectiveness, is_negative, negative_matches
from engine.actions import ActionOutcome
from engine.definition import load_definition
from projections.position import Position, StageEntry
from tests.conftest import DAY, HOUR, T0

DEFINITION = load_definition()


def action(
    number: int,
    rule: str = "follow_up_visit",
    owner: str = "kim",
    status: str = "open",
    *,
    at: int = T0,
    customer: str | None = None,
    reason: str | None = None,
) -> ActionRow:
    return ActionRow(
        f"a{number}",
        customer or f"C-{number}",
        owner,
        "follow_up",
        "phone",
        rule,
        0.8,
        status,
        at,
        at + DAY,
        "why",
        None,
        reason,
        None,
        number,
        {},
        {},
    )


def outcome(number: int, status: str, at: int, action_number: int | None = None) -> ActionOutcome:
    target = action_number if action_number is not None else number
    return ActionOutcome(
        f"o{number}{status}", f"a{target}", f"C-{target}", status, None, None, "kim", at
    )


def journey(customer: str, *entries: tuple[str, int]) -> Position:
    position = Position(customer)
    position.history = [StageEntry(stage, at, None) for stage, at in entries]
    return position


def test_a_rule_counts_what_owners_did_and_how_fast() -> None:
    actions = [
        action(1, status="done"),
        action(2, status="dismissed", reason="not a fit"),
        action(3, status="expired"),
        action(4, status="accepted"),
        action(5, status="dismissed"),
    ]
    outcomes = [
        outcome(1, "accepted", T0 + 2 * HOUR),
        outcome(1, "done", T0 + 30 * HOUR),
        outcome(2, "dismissed", T0 + HOUR),
        outcome(4, "accepted", T0 + 6 * HOUR),
        outcome(5, "snoozed", T0 + HOUR),
        outcome(5, "dismissed", T0 + 2 * DAY),
    ]

    (effect,) = effectiveness(DEFINITION, actions, outcomes, {}, by="rule", clock=T0 + DAY)

    assert effect.key == "follow_up_visit"
    assert (effect.proposed, effect.taken_up, effect.accepted, effect.done) == (5, 2, 2, 1)
    assert (effect.dismissed, effect.snoozed, effect.expired, effect.still_open) == (2, 1, 1, 1)
    assert dict(effect.dismissed_because) == {"not a fit": 1, "no reason given": 1}
    assert effect.median_hours_to_act == 4.0  # 2 h and 6 h: the first accept counts


def test_what_customers_did_next_is_compared_for_actions_acted_on_and_not() -> None:
    decided = T0 + 10 * DAY
    actions = [action(n, at=decided) for n in range(1, 5)]
    outcomes = [outcome(1, "done", decided + HOUR), outcome(2, "accepted", decided + HOUR)]
    journeys = {
        # Acted on: one moves on to deciding within the fortnight, one only after it.
        "C-1": journey("C-1", ("aware", T0), ("evaluating", T0 + DAY), ("deciding", decided + DAY)),
        "C-2": journey("C-2", ("evaluating", T0), ("deciding", decided + 20 * DAY)),
        # Not acted on: one goes dormant, one complains and falls back a stage.
        "C-3": journey("C-3", ("engaged", T0), ("dormant", decided + 5 * DAY)),
        "C-4": journey("C-4", ("evaluating", T0), ("engaged", decided + DAY)),
    }
    # C-4 complained before the decision and again after it: the second counts.
    negative = {"C-4": [decided - DAY, decided + 2 * DAY], "C-1": [decided - DAY]}

    (effect,) = effectiveness(
        DEFINITION,
        actions,
        outcomes,
        journeys,
        negative=negative,
        by="rule",
        clock=decided + 30 * DAY,
    )

    assert (effect.acted.actions, effect.acted.moved_on, effect.acted.dormant) == (2, 1, 0)
    assert (effect.not_acted.actions, effect.not_acted.moved_on) == (2, 0)
    assert (effect.not_acted.dormant, effect.not_acted.negative) == (1, 1)


def test_a_window_not_yet_over_is_left_out_of_what_happened_next() -> None:
    actions = [action(1, at=T0), action(2, at=T0 + 10 * DAY)]
    journeys = {c: journey(c, ("aware", T0)) for c in ("C-1", "C-2")}

    (effect,) = effectiveness(DEFINITION, actions, [], journeys, by="rule", clock=T0 + 15 * DAY)

    assert effect.proposed == 2
    assert effect.not_acted.actions == 1


def test_a_period_holds_actions_decided_from_its_start_until_before_its_end() -> None:
    actions = [action(n, at=T0 + n * DAY) for n in range(1, 6)]
    period = Period(T0 + 2 * DAY, T0 + 4 * DAY)

    (effect,) = effectiveness(DEFINITION, actions, [], {}, by="rule", clock=T0, period=period)

    assert effect.proposed == 2


def test_owners_are_grouped_into_their_teams() -> None:
    definition = DEFINITION.model_copy(update={"teams": {"north": ("kim",), "south": ("bo",)}})
    actions = [
        action(1, owner="kim"),
        action(2, owner="kim"),
        action(3, owner="bo"),
        action(4, owner="ops"),
    ]

    found = effectiveness(definition, actions, [], {}, by="team", clock=T0)

    assert [(e.key, e.proposed) for e in found] == [("north", 2), ("no team", 1), ("south", 1)]


STATUSES = (
    "open",
    "accepted",
    "snoozed",
    "done",
    "dismissed",
    "expired",
    "cancelled",
    "superseded",
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(("follow_up_visit", "recovery_call", "thank_you_referral")),
            st.sampled_from(("kim", "bo", "ann")),
            st.sampled_from(STATUSES),
            st.lists(st.sampled_from(("accepted", "done", "snoozed", "dismissed")), max_size=3),
        ),
        max_size=40,
    )
)
def test_every_action_is_counted_once_whichever_way_they_are_grouped(
    drawn: list[tuple[str, str, str, list[str]]],
) -> None:
    actions = [action(n, rule, owner, status) for n, (rule, owner, status, _) in enumerate(drawn)]
    outcomes = [
        outcome(n * 10 + i, status, T0 + i * HOUR, action_number=n)
        for n, (_, _, _, reported) in enumerate(drawn)
        for i, status in enumerate(reported)
    ]

    totals = set()
    for by in ("rule", "owner", "team"):
        found = effectiveness(DEFINITION, actions, outcomes, {}, by=by, clock=T0)
        for e in found:
            ended = e.done + e.dismissed + e.expired + e.cancelled + e.superseded
            assert ended + e.still_open == e.proposed
            assert e.taken_up <= e.proposed
        totals.add(
            (
                sum(e.proposed for e in found),
                sum(e.taken_up for e in found),
                sum(e.snoozed for e in found),
                sum(len(e.hours_to_act) for e in found),
            )
        )
    assert len(totals) == 1
    assert next(iter(totals))[0] == len(drawn)


def test_taking_up_an_action_after_the_journey_ended_it_is_not_taking_it_up() -> None:
    actions = [
        action(1, status="expired")._replace(status_at=T0 + 17 * DAY),
        action(2, status="expired")._replace(status_at=T0 + 17 * DAY),
    ]
    outcomes = [
        outcome(1, "accepted", T0 + 29 * DAY),  # too late: the decider did not reopen it
        outcome(2, "accepted", T0 + 2 * HOUR),  # in time, though nobody did it after
    ]

    (effect,) = effectiveness(DEFINITION, actions, outcomes, {}, by="rule", clock=T0)

    assert (effect.expired, effect.taken_up, effect.accepted) == (2, 1, 1)
    assert effect.median_hours_to_act == 2.0


def test_an_action_acted_on_only_after_its_window_counts_as_not_acted_on() -> None:
    actions = [action(1, at=T0), action(2, at=T0)]
    outcomes = [outcome(1, "done", T0 + DAY), outcome(2, "done", T0 + 20 * DAY)]
    journeys = {c: journey(c, ("aware", T0 - DAY)) for c in ("C-1", "C-2")}

    (effect,) = effectiveness(
        DEFINITION, actions, outcomes, journeys, by="rule", clock=T0 + 30 * DAY
    )

    assert (effect.acted.actions, effect.not_acted.actions) == (1, 1)
    assert effect.taken_up == 2


def test_a_touchpoint_is_negative_as_the_definitions_negative_friction_says() -> None:
    matches = negative_matches(DEFINITION)

    assert is_negative(matches, "complaint", "email", None, {})
    assert is_negative(matches, "call_inbound", "phone", "negative", {})
    assert not is_negative(matches, "call_inbound", "phone", "positive", {})
