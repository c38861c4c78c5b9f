"""A sales person's day: their actions still to do, overdue first, then due today, then
later, with how many fall due on each day. Shared by `journey worklist` and GET
/api/worklist.

"Now" is the journey's clock (the latest time a touchpoint or a clock event names), not the
wall clock: history recorded at past times (the demo, a replay, the tests) has a day of its
own, and "overdue" means overdue by that day. Days begin at midnight in the zone asked for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consumers.action_store import OPEN_STATUSES, ActionRow
from engine.definition import JourneyDefinition
from engine.errors import JourneyError, UnknownOwner
from engine.touchpoints import from_millis
from journey import render
from journey.bootstrap import Engine

GROUPS = ("overdue", "today", "later")
UTC_ZONE = ZoneInfo("UTC")


class UnknownZone(JourneyError):
    def __init__(self, zone: str) -> None:
        super().__init__(f"zone: unknown time zone {zone!r} (an IANA name such as Europe/Paris)")


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(name) from None


def to_do(action: ActionRow, now: int) -> bool:
    """Open, accepted, or snoozed until a time that has come. Every other status is closed,
    whatever its name."""
    if action.status not in OPEN_STATUSES:
        return False
    if action.status == "snoozed":
        return action.snoozed_until is None or action.snoozed_until <= now
    return True


@dataclass(frozen=True)
class Worklist:
    owner: str
    now: int
    zone: ZoneInfo
    groups: dict[str, list[ActionRow]] = field(default_factory=dict)
    days: list[tuple[date, int]] = field(default_factory=list)  # due per day, in `zone`
    snoozed: int = 0  # snoozed until after now: not shown until then

    @property
    def items(self) -> list[tuple[str, ActionRow]]:
        return [(group, action) for group in GROUPS for action in self.groups[group]]

    @property
    def today(self) -> date:
        return self.day_of(self.now)

    def day_of(self, ms: int) -> date:
        return from_millis(ms).astimezone(self.zone).date()


def worklist(owner: str, actions: Iterable[ActionRow], now: int, zone: ZoneInfo) -> Worklist:
    """The owner's actions to do as of `now`: overdue (due before now), due later today, and
    later (due another day, or with no due time); in each group the earliest due first, the
    highest priority first among equals."""
    open_actions = [a for a in actions if a.status in OPEN_STATUSES]
    doing = sorted(
        (a for a in open_actions if to_do(a, now)),
        key=lambda a: (a.due_at is None, a.due_at or 0, -a.priority, a.action_id),
    )
    shaped = Worklist(owner, now, zone, {group: [] for group in GROUPS})
    today = shaped.today
    for action in doing:
        if action.due_at is not None and action.due_at < now:
            group = "overdue"
        elif action.due_at is not None and shaped.day_of(action.due_at) == today:
            group = "today"
        else:
            group = "later"
        shaped.groups[group].append(action)
    per_day = Counter(shaped.day_of(a.due_at) for a in doing if a.due_at is not None)
    return Worklist(
        owner,
        now,
        zone,
        shaped.groups,
        sorted(per_day.items()),
        snoozed=len(open_actions) - len(doing),
    )


def read_worklist(engine: Engine, owner: str, zone: ZoneInfo, now_ms: int) -> Worklist:
    """The owner's worklist as of the journey's clock (`now_ms`, the wall clock, only while
    nothing is recorded). An owner no action was ever decided for is a mistake, not an empty
    day: their name is likely misspelt."""
    if engine.actions.action_page(owner=owner, open_only=False, limit=1)[0] == 0:
        raise UnknownOwner(owner)
    now = engine.view.clock() or now_ms
    return worklist(owner, engine.actions.actions(owner=owner, open_only=True), now, zone)


def item_json(
    definition: JourneyDefinition, group: str, action: ActionRow, times: render.TimeText
) -> dict[str, Any]:
    return {
        **render.action_json(action, times=times),
        "group": group,
        "label": label_of(definition, action),
    }


def label_of(definition: JourneyDefinition, action: ActionRow) -> str:
    """What to do, as the action's rule names it (its type, for a rule no longer defined)."""
    rule = definition.action_rule(action.rule)
    return rule.label if rule and rule.label else action.action_type.replace("_", " ")


def counts_json(shown: Worklist) -> dict[str, int]:
    return {
        **{group: len(shown.groups[group]) for group in GROUPS},
        "snoozed": shown.snoozed,
    }


def days_json(shown: Worklist) -> list[dict[str, Any]]:
    return [{"day": day.isoformat(), "actions": n} for day, n in shown.days]


def day_text(day: date) -> str:
    """Mon 7 Dec 2026."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def moment_text(ms: int, zone: ZoneInfo) -> str:
    """Mon 7 Dec 2026, 09:00 UTC: with its zone's name, so nobody takes it for local time."""
    at = datetime.fromtimestamp(ms / 1000, zone)
    return f"{day_text(at.date())}, {at:%H:%M %Z}"
