"""Frictions and moments of truth, folded from lists of touchpoints and clock events, with no
database: each detector of the default journey, and the projector's handling of time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from engine.definition import load_definition
from engine.journeys import touchpoint_fields
from engine.touchpoints import Touchpoint
from projections.log import Folded
from projections.machine import StageMachine
from projections.position import OUTCOMES, Mark, Position
from projections.runner import JourneyProjector, MarkedPage
from tests.conftest import DAY, HOUR, T0, touchpoint

DEFINITION = load_definition()
MACHINE = StageMachine(DEFINITION)
MINUTE = 60_000


def fold(items: Iterable[Touchpoint | int], machine: StageMachine = MACHINE) -> Position:
    """Folds touchpoints in the order they arrive; an int is a clock event at that time."""
    position = Position("C-1")
    arrived: list[Mark] = []
    now: int | None = None
    for item in items:
        if isinstance(item, int):
            now = item
            machine.advance(position, now)
            continue
        mark = machine.mark_touchpoint(item)
        position = machine.evolve(position, mark, lambda p: arrived[: p.touchpoints], now)
        arrived.append(mark)
    return position


def opened(position: Position) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Open frictions by kind: when they opened and the touchpoints behind them."""
    return {f.kind: (f.opened_at, f.events) for f in position.frictions if f.resolved_at is None}


def visit(event_id: str, at: int, rep: str = "ann", outcome: str = "positive") -> Touchpoint:
    return touchpoint(event_id, "visit", channel="visit", at=at, rep_id=rep, outcome=outcome)


def call_out(event_id: str, at: int, rep: str = "ann") -> Touchpoint:
    return touchpoint(event_id, "call_outbound", channel="phone", at=at, rep_id=rep)


def test_a_visit_nobody_followed_up_opens_a_friction_when_the_window_closes() -> None:
    position = fold([visit("v", T0), touchpoint("p", at=T0 + 3 * DAY, page="home")])

    assert opened(position) == {"no_follow_up": (T0 + 2 * DAY, ("v",))}


def test_a_follow_up_within_the_window_leaves_no_friction() -> None:
    position = fold([visit("v", T0), call_out("c", T0 + 2 * DAY), T0 + 5 * DAY])

    assert position.frictions == []


def test_a_late_follow_up_resolves_the_friction_when_it_happens() -> None:
    position = fold([visit("v", T0), T0 + 4 * DAY, call_out("c", T0 + 5 * DAY)])

    (friction,) = position.frictions
    assert (friction.kind, friction.opened_at, friction.resolved_at) == (
        "no_follow_up",
        T0 + 2 * DAY,
        T0 + 5 * DAY,
    )
    assert friction.events == ("v", "c")


def test_the_clock_closes_the_window_of_a_silent_customer() -> None:
    silent = fold([visit("v", T0)])
    ticked = fold([visit("v", T0), T0 + 3 * DAY])

    assert opened(silent) == {}
    assert opened(ticked) == {"no_follow_up": (T0 + 2 * DAY, ("v",))}


def test_a_follow_up_that_happened_in_time_but_arrived_after_the_clock_moved_on_counts() -> None:
    position = fold([visit("v", T0), T0 + 4 * DAY, call_out("c", T0 + DAY)])

    assert position.frictions == []


def test_a_visit_reported_after_the_clock_passed_its_window_opens_the_friction_at_once() -> None:
    position = fold([touchpoint("p", at=T0 - DAY), T0 + 4 * DAY, visit("v", T0)])

    assert opened(position) == {"no_follow_up": (T0 + 2 * DAY, ("v",))}


def test_a_missed_call_not_returned_within_a_day_is_unanswered() -> None:
    missed = touchpoint("m", "call_missed", channel="phone", at=T0)

    assert opened(fold([missed, T0 + 25 * HOUR])) == {"unanswered": (T0 + DAY, ("m",))}
    assert opened(fold([missed, call_out("c", T0 + 3 * HOUR), T0 + 2 * DAY])) == {}


def test_a_call_soon_after_a_failed_form_is_a_channel_jump() -> None:
    failed = touchpoint("f", "form_failed", at=T0, outcome="negative", form="quote")

    def call(at: int) -> Touchpoint:
        return touchpoint("c", "call_inbound", channel="phone", at=at)

    soon = fold([failed, call(T0 + 40 * MINUTE)])
    later = fold([failed, call(T0 + 3 * HOUR)])

    assert opened(soon)["channel_jump"] == (T0 + 40 * MINUTE, ("f", "c"))
    assert "channel_jump" not in opened(later)


def test_a_stage_held_beyond_its_budget_is_a_stall_until_the_customer_moves_on() -> None:
    pricing = touchpoint("p", at=T0, page="pricing")  # considering: a budget of 14 days
    stalled = fold([pricing, T0 + 15 * DAY])
    moved = fold([pricing, T0 + 15 * DAY, touchpoint("d", "demo_requested", at=T0 + 16 * DAY)])

    assert opened(stalled) == {"stall": (T0 + 14 * DAY, ())}
    (stall,) = moved.frictions
    assert stall.resolved_at == T0 + 16 * DAY


def test_the_same_step_four_times_in_one_stage_is_a_loop() -> None:
    views = [touchpoint(f"p{i}", at=T0 + i * HOUR, page="pricing") for i in range(4)]

    assert opened(fold(views[:3])) == {}
    assert opened(fold(views)) == {"loop": (T0 + 3 * HOUR, ("p0", "p3"))}


def test_moving_back_a_stage_is_a_regression_until_the_customer_is_back() -> None:
    signed = touchpoint("s", "contract_signed", channel="visit", at=T0)
    referral = touchpoint("r", "referral_given", channel="email", at=T0 + DAY)
    complaint = touchpoint("c", "complaint", channel="email", at=T0 + 2 * DAY)
    review = touchpoint("v", "review", outcome="positive", at=T0 + 3 * DAY)

    fell = fold([signed, referral, complaint])
    back = fold([signed, referral, complaint, review])

    assert opened(fell)["regression"] == (T0 + 2 * DAY, ("c",))
    assert [f.resolved_at for f in back.frictions if f.kind == "regression"] == [T0 + 3 * DAY]


def test_meeting_someone_other_than_the_customers_rep_is_a_hand_off_break() -> None:
    position = fold([call_out("c", T0, rep="kathrine"), visit("v", T0 + DAY, rep="peter")])

    assert position.rep == "kathrine"
    assert opened(position)["hand_off"] == (T0 + DAY, ("v",))
    mended = fold(
        [
            call_out("c", T0, rep="kathrine"),
            visit("v", T0 + DAY, rep="peter"),
            call_out("k", T0 + DAY + HOUR, rep="kathrine"),
        ]
    )
    assert "hand_off" not in opened(mended)


def test_negative_experiences_join_one_friction_until_a_positive_contact() -> None:
    def bad(event_id: str, at: int) -> Touchpoint:
        return touchpoint(event_id, "call_inbound", channel="phone", at=at, outcome="negative")

    two = fold([bad("b1", T0), bad("b2", T0 + HOUR)])
    recovered = fold([bad("b1", T0), bad("b2", T0 + HOUR), visit("v", T0 + DAY)])

    assert opened(two) == {"negative": (T0, ("b1", "b2"))}
    assert [f.resolved_at for f in recovered.frictions] == [T0 + DAY]


def test_an_offer_other_than_the_referrers_location_leaves_the_referral_unused() -> None:
    referral = touchpoint("r", "referral", channel="email", at=T0, referrer_location="A")
    offer_b = touchpoint("o", "call_outbound", channel="phone", at=T0 + DAY, location="B")
    offer_a = touchpoint("a", "call_outbound", channel="phone", at=T0 + DAY, location="A")

    assert opened(fold([referral, offer_b]))["referral_unused"] == (T0 + DAY, ("r", "o"))
    assert "referral_unused" not in opened(fold([referral, offer_a]))


def test_moments_of_truth_keep_the_first_of_each_and_how_a_complaint_was_resolved() -> None:
    position = fold(
        [
            visit("v1", T0, outcome="negative"),
            visit("v2", T0 + DAY, outcome="positive"),
            touchpoint("c", "complaint", channel="email", at=T0 + 2 * DAY, outcome="negative"),
            call_out("r", T0 + 3 * DAY)._replace(outcome="positive"),
        ]
    )

    moments = {m.kind: m for m in position.moments}
    assert (moments["first_visit"].event_id, moments["first_visit"].outcome) == ("v1", "negative")
    complaint = moments["first_complaint"]
    assert (complaint.resolved_by, complaint.resolution) == ("r", "positive")


def test_positive_in_person_and_negative_by_phone_is_inconsistent() -> None:
    position = fold(
        [
            visit("v", T0, outcome="positive"),
            touchpoint("p", "call_inbound", channel="phone", at=T0 + DAY, outcome="negative"),
        ]
    )

    assert position.inconsistent_channels
    assert position.outcomes == {"visit": [1, 0, 0], "phone": [0, 0, 1]}


class _Store:
    """What the projector reads from a store, kept in memory."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.log: list[tuple[int, Folded]] = []  # the touchpoints recorded, in log order
        self.ticked: int | None = None

    def folded(self, after: int, limit: int, stop: int | None = None) -> list[tuple[int, Folded]]:
        last = stop if stop is not None else len(self.log)
        return [(p, e) for p, e in self.log if after < p <= last][:limit]

    def folded_entries(self, keys: Sequence[str]) -> dict[str, list[tuple[int, Folded]]]:
        streams: dict[str, list[tuple[int, Folded]]] = {}
        for position, e in self.log:
            if e.customer_id in keys:
                streams.setdefault(e.customer_id, []).append((position, e))
        return streams

    def load(self, ids: list[str]) -> dict[str, Position]:
        return {
            i: Position.from_state(i, self.positions[i].to_state())
            for i in ids
            if i in self.positions
        }

    def due(self, at: int) -> list[str]:
        return [i for i, p in self.positions.items() if p.due is not None and p.due < at]


def test_the_projector_closes_windows_for_stored_customers_when_the_clock_ticks() -> None:
    store = _Store()
    projector = JourneyProjector(DEFINITION, store.load, store, store.due, lambda: store.ticked)
    tp = visit("v", T0)
    first: MarkedPage = [(1, "C-1", MACHINE.mark_touchpoint(tp), None)]
    store.log.append((1, msgspec.convert(touchpoint_fields(tp), Folded)))
    changes = projector.fold(first)
    store.positions.update((p.customer_id, p) for p in changes.positions)
    projector.forget()  # a new process: only the store remembers

    ticked = projector.fold([(2, None, Mark(T0 + 3 * DAY, "", ()), None)])

    (position,) = ticked.positions
    assert opened(position) == {"no_follow_up": (T0 + 2 * DAY, ("v",))}
    assert ticked.ticked == T0 + 3 * DAY
    frictions = next(rows for table, _, _, rows in ticked.details.tables() if "friction" in table)
    assert [row[1] for row in frictions] == ["no_follow_up:v"]


def test_a_new_outcome_alone_marks_the_customers_details_for_writing() -> None:
    position = fold([touchpoint("p", at=T0, page="home")])
    position.details_changed = 0

    MACHINE.evolve(position, MACHINE.mark_touchpoint(visit("v", T0 + HOUR)._replace(type="x")))

    assert position.outcomes == {"visit": [1, 0, 0]}
    assert position.details_changed == OUTCOMES
