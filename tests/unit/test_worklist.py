"""A sales person's day from their actions, as a pure function of the actions, the journey's
clock and a time zone; priorities in words; entry rules in words."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from consumers.action_store import ActionRow
from engine.definition import load_definition
from journey.render import priority_level
from journey.stages import entry_words
from journey.worklist import worklist
from tests.conftest import DAY, HOUR, T0

UTC = ZoneInfo("UTC")
NOW = T0 + 9 * HOUR  # Monday 2 March 2026, 18:00 UTC


def action(name: str, *, due: int | None, status: str = "open", **changes: object) -> ActionRow:
    row = ActionRow(
        action_id=name,
        customer_id=f"C-{name}",
        owner="kathrine",
        action_type="follow_up",
        channel="phone",
        rule="follow_up_visit",
        priority=0.5,
        status=status,
        decided_at=T0 - DAY,
        due_at=due,
        reason="because",
        status_at=None,
        status_reason=None,
        snoozed_until=None,
        log_position=1,
        record={"triggering_event_ids": []},
        explanation={},
    )
    return row._replace(**changes)


def groups(actions: list[ActionRow], zone: ZoneInfo = UTC) -> dict[str, list[str]]:
    day = worklist("kathrine", actions, NOW, zone)
    return {group: [a.action_id for a in rows] for group, rows in day.groups.items()}


def test_overdue_comes_first_then_today_then_later_each_the_earliest_due_first() -> None:
    actions = [
        action("tomorrow", due=NOW + DAY),
        action("tonight", due=NOW + 2 * HOUR),
        action("no-due-time", due=None),
        action("last-week", due=NOW - 7 * DAY),
        action("this-morning", due=NOW - 8 * HOUR),
        action("tonight-urgent", due=NOW + 2 * HOUR, priority=0.9),
    ]

    assert groups(actions) == {
        "overdue": ["last-week", "this-morning"],
        "today": ["tonight-urgent", "tonight"],
        "later": ["tomorrow", "no-due-time"],
    }


def test_a_snoozed_action_is_left_out_until_its_time_and_any_other_status_is_closed() -> None:
    actions = [
        action("snoozed-past", due=NOW - HOUR, status="snoozed", snoozed_until=NOW - 1),
        action("snoozed-future", due=NOW - HOUR, status="snoozed", snoozed_until=NOW + 1),
        action("accepted", due=NOW - 2 * HOUR, status="accepted"),
        action("done", due=NOW - HOUR, status="done"),
        action("superseded", due=NOW - HOUR, status="superseded"),
    ]

    day = worklist("kathrine", actions, NOW, UTC)

    assert [a.action_id for a in day.groups["overdue"]] == ["accepted", "snoozed-past"]
    assert day.snoozed == 1
    assert day.days == [(day.today, 2)]


def test_a_day_ends_at_midnight_in_the_zone_asked_for() -> None:
    # 18:00 UTC is 03:00 the next morning in Tokyo: 10:00 UTC tomorrow is 19:00 that day.
    actions = [
        action("at-eight", due=NOW + 2 * HOUR),
        action("at-ten-tomorrow", due=NOW + 16 * HOUR),
    ]

    assert groups(actions)["today"] == ["at-eight"]
    assert groups(actions, ZoneInfo("Asia/Tokyo"))["today"] == ["at-eight", "at-ten-tomorrow"]


@pytest.mark.parametrize(
    ("priority", "word"),
    [
        (0.93, "high"),
        (0.8, "high"),
        (0.7999999999, "high"),
        (0.73, "medium"),
        (0.6, "medium"),
        (0.58, "low"),
        (0.0, "low"),
    ],
)
def test_a_priority_is_high_medium_or_low(priority: float, word: str) -> None:
    assert priority_level(priority) == word


def test_what_moves_a_customer_into_a_stage_reads_as_words() -> None:
    definition = load_definition()

    def said(stage: str) -> list[str]:
        return [entry_words(definition, rule) for rule in definition.stage(stage).enter]

    assert said("aware") == ["any touchpoint"]
    assert said("engaged")[0] == "3 page views"
    assert said("considering") == [
        "a page view with page=pricing",
        "a call inbound or webinar attended",
    ]
    assert said("customer")[1] == "a complaint, from Advocate"
    assert said("advocate")[1] == "a review going positive"
