"""Attribution and sales velocity, from a customer's touchpoints and position, with no
database."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.attribution import (
    MODELS,
    Attribution,
    Touched,
    credits,
    shares,
    velocity,
)
from projections.position import Friction, Position, StageEntry
from tests.conftest import DAY, HOUR, T0


def touched(event_id: str, at: int, channel: str = "web", **attributes: str) -> Touched:
    return Touched(event_id, at, channel, attributes)


def position(*entries: tuple[str, int], frictions: tuple[Friction, ...] = ()) -> Position:
    history = [StageEntry(stage, at, None) for stage, at in entries]
    return Position(
        "C-1",
        stage=history[-1].stage if history else None,
        first_at=history[0].entered_at if history else None,
        history=history,
        frictions=list(frictions),
    )


MAIL = touched("e1", T0, "email", campaign="spring")
PRICING = touched("e2", T0 + HOUR, page="pricing")
GUIDE = touched("e3", T0 + 2 * HOUR, asset="guide.pdf")
DEMO = touched("e4", T0 + 3 * HOUR, campaign="demo-week", page="demo")


def credited(model: str, stage: str, customer: Position, touchpoints: list[Touched]) -> dict:
    return {
        c.touch.event_id: c.share
        for c in credits(customer, touchpoints)
        if c.model == model and c.conversion.name == stage
    }


def test_first_touch_credits_the_campaign_that_brought_the_customer_for_every_stage() -> None:
    customer = position(("aware", T0), ("evaluating", DEMO.occurred_at))

    assert credited("first_touch", "evaluating", customer, [MAIL, PRICING, GUIDE, DEMO]) == {
        "e1": 1.0
    }


def test_last_touch_credits_the_touchpoint_that_moved_them() -> None:
    customer = position(("aware", T0), ("evaluating", DEMO.occurred_at))

    assert credited("last_touch", "evaluating", customer, [MAIL, PRICING, GUIDE, DEMO]) == {
        "e4": 1.0
    }


def test_position_based_gives_the_ends_forty_percent_and_splits_the_rest() -> None:
    customer = position(("aware", T0), ("evaluating", DEMO.occurred_at))

    assert credited("position_based", "evaluating", customer, [MAIL, PRICING, GUIDE, DEMO]) == {
        "e1": pytest.approx(0.4),
        "e2": pytest.approx(0.1),
        "e3": pytest.approx(0.1),
        "e4": pytest.approx(0.4),
    }


def test_touchpoints_after_a_stage_entry_get_none_of_its_credit() -> None:
    customer = position(("aware", T0), ("engaged", PRICING.occurred_at))

    for model in MODELS:
        assert set(credited(model, "engaged", customer, [MAIL, PRICING, GUIDE, DEMO])) <= {
            "e1",
            "e2",
        }


def test_a_friction_is_credited_to_the_touchpoints_before_it_opened() -> None:
    missed = Friction(
        "f", "no_follow_up", GUIDE.occurred_at + DAY, None, ("e3",), "aware", "web", None
    )
    customer = position(("aware", T0), frictions=(missed,))

    given_credit = [
        c
        for c in credits(customer, [MAIL, PRICING, GUIDE, DEMO])
        if c.conversion.kind == "friction"
    ]

    assert {c.touch.event_id for c in given_credit if c.model == "last_touch"} == {"e4"}
    assert {c.conversion.stage for c in given_credit} == {"aware"}


def test_touchpoints_without_the_attribute_are_credited_as_unknown_not_left_out() -> None:
    summed = Attribution(("campaign",))
    summed.add(position(("aware", T0), ("evaluating", DEMO.occurred_at)), [MAIL, PRICING, DEMO])

    by_value = {
        key.value: credit
        for key, credit in summed.rows()
        if key.model == "position_based" and key.name == "evaluating"
    }
    assert by_value == {
        "spring": pytest.approx(0.4),
        "unknown": pytest.approx(0.2),
        "demo-week": pytest.approx(0.4),
    }
    assert summed.conversions["stage", "evaluating"] == 1


@given(st.integers(min_value=1, max_value=200), st.sampled_from(MODELS))
def test_the_shares_of_one_conversion_sum_to_one(count: int, model: str) -> None:
    assert sum(shares(count, model)) == pytest.approx(1.0)


touchpoints = st.lists(
    st.builds(
        touched,
        st.text("abcdef", min_size=1, max_size=4),
        st.integers(min_value=T0, max_value=T0 + 10 * DAY),
        st.sampled_from(["web", "email", "phone"]),
        campaign=st.sampled_from(["spring", "autumn", "demo-week"]),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda t: t.event_id,
)


@given(touchpoints, st.randoms(use_true_random=False), st.integers(min_value=0, max_value=10 * DAY))
def test_each_stage_entry_gives_one_credit_per_model_whatever_order_its_touchpoints_arrived(
    arrived: list[Touched], shuffler: object, later: int
) -> None:
    first = min(t.occurred_at for t in arrived)
    customer = position(("aware", first), ("evaluating", first + later))
    shuffled = list(arrived)
    shuffler.shuffle(shuffled)  # type: ignore[attr-defined]

    credit = credits(customer, arrived)

    assert credit == credits(customer, shuffled)
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for c in credit:
        totals[c.model, c.conversion.name] += c.share
    assert all(total == pytest.approx(1.0) for total in totals.values())
    assert set(totals) == {(m, s) for m in MODELS for s in ("aware", "evaluating")}


def test_velocity_is_the_median_days_from_first_touch_to_each_stage_by_month_of_first_touch() -> (
    None
):
    march = [
        position(("aware", T0), ("evaluating", T0 + 2 * DAY)),
        position(("aware", T0), ("evaluating", T0 + 4 * DAY), ("aware", T0 + 9 * DAY)),
        position(("aware", T0), ("evaluating", T0 + 10 * DAY)),
    ]
    april = [position(("aware", T0 + 31 * DAY), ("evaluating", T0 + 32 * DAY))]

    found = velocity([*march, *april], order=("aware", "evaluating"))

    assert [(v.month, v.stage, v.customers, v.median_days) for v in found] == [
        ("2026-03", "aware", 3, 0.0),
        ("2026-03", "evaluating", 3, 4.0),
        ("2026-04", "aware", 1, 0.0),
        ("2026-04", "evaluating", 1, 1.0),
    ]
