"""The journey-position fold, with lists of events and no database."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from engine.definition import load_definition, parse_definition
from engine.touchpoints import Touchpoint
from projections.machine import StageMachine
from projections.position import Mark, Position, StageEntry, Touch
from tests.conftest import DAY, HOUR, T0, touchpoint

MACHINE = StageMachine(load_definition())


def fold(touchpoints: Iterable[Touchpoint], machine: StageMachine = MACHINE) -> Position:
    """Folds touchpoints in the order they arrive, as the runner does."""
    position = Position("C-1")
    arrived: list[Mark] = []
    for tp in touchpoints:
        mark = machine.mark_touchpoint(tp)
        position = machine.evolve(position, mark, lambda p: arrived[: p.touchpoints])
        arrived.append(mark)
    return position


def stages(position: Position) -> list[str]:
    return [entry.stage for entry in position.history]


def test_a_first_touchpoint_makes_a_customer_aware_since_it_happened() -> None:
    position = fold([touchpoint("e1", at=T0)])

    assert position.stage == "aware"
    assert position.since == T0
    assert position.history[0].event_id == "e1"


def test_repeat_visits_engage_only_once_the_rule_count_is_reached() -> None:
    two = fold([touchpoint("e1", page="home"), touchpoint("e2", at=T0 + HOUR, page="blog")])
    three = fold([*[touchpoint(f"e{i}", at=T0 + i * HOUR, page="home") for i in range(3)]])

    assert two.stage == "aware"
    assert three.stage == "engaged"
    assert three.since == T0 + 2 * HOUR


def test_stages_may_be_skipped() -> None:
    position = fold([touchpoint("e1"), touchpoint("e2", "demo_requested", at=T0 + HOUR)])

    assert stages(position) == ["aware", "evaluating"]


def test_earlier_stage_signals_do_not_move_a_customer_back() -> None:
    position = fold(
        [
            touchpoint("e1", "contract_signed", channel="visit"),
            touchpoint("e2", at=T0 + HOUR, page="pricing"),
            touchpoint("e3", "call_inbound", channel="phone", at=T0 + 2 * HOUR),
        ]
    )

    assert position.stage == "customer"


def test_a_complaint_makes_an_advocate_regress_to_customer() -> None:
    position = fold(
        [
            touchpoint("e1", "contract_signed", channel="visit"),
            touchpoint("e2", "referral_given", channel="email", at=T0 + DAY),
            touchpoint("e3", "complaint", channel="email", at=T0 + 2 * DAY, outcome="negative"),
        ]
    )

    assert stages(position) == ["customer", "advocate", "customer"]
    assert position.peak_rank == MACHINE.ranks["advocate"]


def test_a_silent_prospect_went_dormant_and_the_next_touchpoint_wakes_them() -> None:
    position = fold(
        [
            touchpoint("e1", page="pricing"),
            touchpoint("e2", at=T0 + 90 * DAY, page="home"),
        ]
    )

    assert stages(position) == ["considering", "dormant", "aware"]
    assert position.history[1].entered_at == T0 + 60 * DAY
    assert position.history[1].event_id is None


def test_a_late_touchpoint_gives_the_same_journey_as_if_it_had_arrived_in_order() -> None:
    monday_visit = touchpoint("visit", "visit", channel="visit", at=T0, outcome="positive")
    tuesday = touchpoint("tue", "email_clicked", channel="email", at=T0 + DAY)
    wednesday = touchpoint("wed", "proposal_sent", channel="email", at=T0 + 2 * DAY)

    late = fold([tuesday, wednesday, monday_visit])
    in_order = fold([monday_visit, tuesday, wednesday])

    assert late.history == in_order.history
    assert late.touchpoints == 3
    assert (late.first_at, late.last_at) == (T0, T0 + 2 * DAY)


def test_a_definition_change_changes_what_moves_a_customer() -> None:
    strict = parse_definition(
        '[journey]\nname = "strict"\n'
        '[[stages]]\nid = "aware"\nlabel = "Aware"\nenter = [{types = ["*"]}]\n'
        '[[stages]]\nid = "engaged"\nlabel = "Engaged"\n'
        'enter = [{types = ["page_view"], min_count = 5}]\n',
        origin="strict",
    )
    views = [touchpoint(f"e{i}", at=T0 + i) for i in range(3)]

    assert fold(views).stage == "engaged"
    assert fold(views, StageMachine(strict)).stage == "aware"


def test_a_position_survives_its_stored_form() -> None:
    position = fold([touchpoint("e1"), touchpoint("e2", "demo", channel="visit", at=T0 + DAY)])

    restored = Position.from_state("C-1", position.to_state())

    assert restored == position


def test_a_position_stored_by_release_0_1_0_reads_as_it_was() -> None:
    """Release 0.1.0 stored a position with one-letter keys and kept a channel jump's failed
    step, a loop's steps and a referral in a field per kind of memory."""
    stored = {
        "p": 2,
        "f": T0,
        "l": T0 + DAY,
        "n": 3,
        "h": [["aware", T0, "e1"], ["considering", T0 + DAY, "e3"]],
        "c": [[0, 1], [4, 1]],
        "r": "kim",
        "x": [["loop:e1", "loop", T0 + 1, None, ["e1", "e2"], "aware", "web", None]],
        "m": [["first_contact", T0, "e1", "web", None, "positive", None, None, None]],
        "w": [["no_follow_up", T0 + 2 * DAY, "e3", "considering", "visit", "kim"]],
        "j": {"channel_jump": [T0 + DAY, "e3"]},
        "s": {"loop|page_view|pricing": [2, "e1"], "loop|page_view|": [1, "e2"]},
        "e": {"referral_mismatch": ["Leeds", "e1"]},
        "o": {"web": [1, 0, 0]},
        "d": T0 + 2 * DAY,
        "z": None,
    }

    position = Position.from_state("C-1", stored)

    assert position.stage == "considering"
    assert position.since == T0 + DAY
    assert position.frictions[0].events == ("e1", "e2")
    assert position.windows[0].deadline == T0 + 2 * DAY
    assert position.memory == {
        "channel_jump": [T0 + DAY, "e3"],
        "loop": {"page_view|pricing": [2, "e1"], "page_view|": [1, "e2"]},
        "referral_mismatch": ["Leeds", "e1"],
    }
    assert Position.from_state("C-1", position.to_state()) == position


def test_a_position_stored_as_version_2_reads_without_touchpoints_and_folds_on() -> None:
    """Version 2 kept no touchpoint with frictions, moments, windows or stage entries."""
    stored = {
        "version": 2,
        "peak_rank": 3,
        "first_at": T0,
        "last_at": T0,
        "touchpoints": 1,
        "history": [["aware", T0, "t1"], ["evaluating", T0, "t1"]],
        "counts": [[0, 1], [6, 1]],
        "rep": "kim",
        "frictions": [],
        "moments": [["first_visit", T0, "t1", "visit", "kim", "neutral", None, None, None]],
        "windows": [["no_follow_up", T0 + 2 * DAY, "t1", "evaluating", "visit", "kim"]],
        "memory": {"channel_jump": [T0, "t0"]},
        "outcomes": {"visit": [0, 1, 0]},
        "due": T0 + 2 * DAY,
        "horizon": None,
    }

    position = Position.from_state("C-1", stored)
    assert position.history[-1] == StageEntry("evaluating", T0, "t1", None)
    assert position.moments[0].touch is None
    MACHINE.advance(position, T0 + 3 * DAY)

    (friction,) = position.frictions
    assert (friction.kind, friction.events, friction.touch) == ("no_follow_up", ("t1",), None)
    assert position.to_state()["version"] == 3
    assert Position.from_state("C-1", position.to_state()) == position


def test_what_a_friction_keeps_of_its_touchpoint_survives_the_stored_form() -> None:
    tour = touchpoint("t1", "tour", channel="visit", rep_id="kim", outcome="neutral", location="B")
    position = fold([tour, touchpoint("p1", at=T0 + 3 * DAY, page="pricing")])

    restored = Position.from_state("C-1", orjson.loads(orjson.dumps(position.to_state())))

    (follow_up,) = [f for f in restored.frictions if f.kind == "no_follow_up"]
    assert follow_up.touch == Touch("tour", T0, "visit", "neutral", "kim", "B", None)
    assert restored.history[-1].touch is not None
    assert restored == position


def test_a_touchpoint_behind_several_things_is_stored_once() -> None:
    page = touchpoint("p1", page="pricing")
    tour = touchpoint(
        "t1", "tour", channel="visit", rep_id="kim", outcome="neutral", at=T0 + DAY, location="B"
    )
    position = fold([page, tour])

    state = position.to_state()

    # The tour is two moments of truth (first human contact, first visit) and a stage entry.
    moments = [m[-1] for m in state["moments"]]
    assert len(moments) == 2
    assert moments[0] == moments[1] == state["history"][-1][-1]
    assert tuple(state["touches"][moments[0]][:2]) == ("tour", T0 + DAY)
    assert len(state["touches"]) == 1
    # Only the latest stage entry keeps its touchpoint: the only one reasons name.
    assert [entry[-1] for entry in state["history"][:-1]] == [None] * (len(state["history"]) - 1)
    assert Position.from_state("C-1", orjson.loads(orjson.dumps(state))) == position
