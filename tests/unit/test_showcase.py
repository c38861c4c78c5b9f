"""How the demo picks each story's example customer, on positions made to order."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from consumers.action_store import ActionRow
from journey.demo import STORIES
from journey.showcase import CRITERIA, Shown, best, reported_late
from projections.log import Folded
from projections.position import Moment, Position, StageEntry
from tests.conftest import DAY, T0

BANK = "bank customer on two channels"


def action(customer_id: str, rule: str, owner: str, channel: str = "phone") -> ActionRow:
    return ActionRow(
        action_id=f"{customer_id}-{rule}",
        customer_id=customer_id,
        owner=owner,
        action_type=rule,
        channel=channel,
        rule=rule,
        priority=0.8,
        status="open",
        decided_at=T0,
        due_at=None,
        reason="",
        status_at=None,
        status_reason=None,
        snoozed_until=None,
        log_position=1,
        record={},
        explanation={},
    )


def bank_customer(customer_id: str, *, complaint: bool, recovery_call: bool) -> Shown:
    """A bank customer after a positive branch visit and two calls stuck in the voice menu;
    with `complaint`, after the complaint email too."""
    history = [StageEntry("customer", T0, "1"), StageEntry("advocate", T0 + 200 * DAY, "2")]
    moments = [Moment("first_visit", T0 + 230 * DAY, "3", "visit", "li", "positive")]
    if complaint:
        history.append(StageEntry("customer", T0 + 236 * DAY, "6"))
        moments.append(Moment("first_complaint", T0 + 236 * DAY, "6", "email", None, "negative"))
    position = Position(
        customer_id,
        stage=history[-1].stage,
        history=history,
        moments=moments,
        outcomes={"visit": [2, 0, 0], "phone": [0, 0, 2]},
    )
    actions = (action(customer_id, "recovery_call", "branch_manager"),) if recovery_call else ()
    return Shown(position, actions, (), "li")


def reader(
    shown: Mapping[str, Shown],
) -> tuple[list[list[str]], Callable[[Sequence[str]], dict[str, Shown]]]:
    """What `best` reads the customers with, and the lists of ids it asked for."""
    asked: list[list[str]] = []

    def read(customer_ids: Sequence[str]) -> dict[str, Shown]:
        asked.append(list(customer_ids))
        return {c: shown[c] for c in customer_ids if c in shown}

    return asked, read


def test_every_story_the_demo_generates_says_what_defines_it() -> None:
    assert set(CRITERIA) == {name for name, _, _ in STORIES}
    for features in CRITERIA.values():
        assert any(feature.defining for feature in features)


def test_the_example_is_the_customer_who_shows_most_of_the_story_not_the_first() -> None:
    shown = {
        "C-000001": bank_customer("C-000001", complaint=False, recovery_call=False),
        "C-000002": bank_customer("C-000002", complaint=True, recovery_call=False),
        "C-000003": bank_customer("C-000003", complaint=True, recovery_call=True),
        "C-000004": bank_customer("C-000004", complaint=True, recovery_call=True),
    }
    _, read = reader(shown)

    example = best(BANK, reversed(list(shown)), read)

    assert example.customer_id == "C-000003"  # C-000004 shows as much: the lower id wins
    assert example.summary("2026-12-07") == (
        "C-000003 shows 4 of the story's 4 signs: a negative first complaint, positive in "
        "person but negative by phone, a regression from Advocate or Customer, a recovery call "
        "by the branch manager"
    )


def test_an_example_without_every_sign_says_which_it_lacks() -> None:
    shown = {"C-000002": bank_customer("C-000002", complaint=True, recovery_call=False)}
    _, read = reader(shown)

    example = best(BANK, list(shown), read)

    assert example.customer_id == "C-000002"
    assert example.summary("2026-12-07").endswith(
        "; not shown: a recovery call by the branch manager"
    )


def test_a_story_no_customer_shows_gets_no_example_and_the_demo_says_so() -> None:
    shown = {"C-000001": bank_customer("C-000001", complaint=False, recovery_call=True)}
    _, read = reader(shown)

    example = best(BANK, list(shown), read)

    assert example.customer_id is None
    assert example.summary("2026-12-07") == (
        "No example: no customer of the 1 generated for this story shows a negative first "
        "complaint up to 2026-12-07."
    )


def test_customers_are_read_until_one_shows_everything() -> None:
    shown = {
        f"C-{n:06d}": bank_customer(f"C-{n:06d}", complaint=True, recovery_call=n == 40)
        for n in range(1, 201)
    }
    asked, read = reader(shown)

    example = best(BANK, list(shown), read)

    assert example.customer_id == "C-000040"
    assert sum(len(few) for few in asked) < len(shown)


def test_a_touchpoint_recorded_after_one_that_happened_later_was_reported_late() -> None:
    arrivals = [
        Folded(event_id="web", occurred_at=T0),
        Folded(event_id="email", occurred_at=T0 + 2 * DAY),
        Folded(event_id="visit", occurred_at=T0 + DAY),
        Folded(event_id="call", occurred_at=T0 + 3 * DAY),
    ]

    assert [tp.event_id for tp in reported_late(arrivals)] == ["visit"]
