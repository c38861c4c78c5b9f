"""What each action rule achieved: a pure function of the decisions, what sales people did with
them (their outcomes, in the log) and the journeys that followed.

For every action decided in a period, grouped by rule, owner or team: how many were proposed,
taken up (accepted or done), done, dismissed (and why), snoozed, and ended by the journey
(expired, cancelled, superseded); how long the owner took to act; and what the customer did in
the `within` days after the decision, for the actions acted on against the rest: moved on to
a later stage, went dormant, or turned negative (a touchpoint the definition's `negative`
friction matches: a complaint, a bounce, an unsubscribe, a negative outcome). An action
counts as acted on if its owner accepted it or did it within that window.
Comparing the two groups is what says whether a rule moves customers, not only whether reps
follow it."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.action_store import ActionRow
from engine.actions import ActionOutcome
from engine.definition import JourneyDefinition, Match, Negative
from projections.position import Position

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
GROUPINGS = ("rule", "owner", "team")
ENDED_BY_THE_JOURNEY = ("expired", "cancelled", "superseded")


@dataclass(slots=True)
class NextSteps:
    """What the customers of a group of actions did in the days after the decision. Only
    actions whose window had passed by the journey's clock count."""

    actions: int = 0
    moved_on: int = 0
    dormant: int = 0
    negative: int = 0

    def to_json(self) -> dict[str, Any]:
        def share(count: int) -> float | None:
            return round(count / self.actions, 4) if self.actions else None

        return {
            "actions": self.actions,
            "moved_on": self.moved_on,
            "went_dormant": self.dormant,
            "turned_negative": self.negative,
            "moved_on_share": share(self.moved_on),
            "went_dormant_share": share(self.dormant),
            "turned_negative_share": share(self.negative),
        }


@dataclass(slots=True)
class Effect:
    """One group's actions (a rule's, an owner's or a team's)."""

    key: str
    proposed: int = 0
    taken_up: int = 0  # accepted or done, at any point
    accepted: int = 0  # accepted at some point
    done: int = 0
    dismissed: int = 0
    snoozed: int = 0  # snoozed at some point
    expired: int = 0
    cancelled: int = 0
    superseded: int = 0
    still_open: int = 0
    dismissed_because: Counter[str] = field(default_factory=Counter)
    hours_to_act: list[float] = field(default_factory=list)
    acted: NextSteps = field(default_factory=NextSteps)
    not_acted: NextSteps = field(default_factory=NextSteps)

    @property
    def median_hours_to_act(self) -> float | None:
        return round(statistics.median(self.hours_to_act), 1) if self.hours_to_act else None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "proposed": self.proposed,
            "taken_up": self.taken_up,
            "accepted": self.accepted,
            "done": self.done,
            "dismissed": self.dismissed,
            "snoozed": self.snoozed,
            "expired": self.expired,
            "cancelled": self.cancelled,
            "superseded": self.superseded,
            "still_open": self.still_open,
            "dismissed_because": [
                {"reason": reason, "actions": count}
                for reason, count in sorted(
                    self.dismissed_because.items(), key=lambda item: (-item[1], item[0])
                )
            ],
            "median_hours_to_act": self.median_hours_to_act,
            "acted_on": self.acted.to_json(),
            "not_acted_on": self.not_acted.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Period:
    """Actions decided from `since` (inclusive) until `until` (exclusive), journey time."""

    since: int | None = None
    until: int | None = None

    def holds(self, at: int) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


class _Taken:
    """What sales people did with one action, from its outcomes."""

    __slots__ = ("accepted", "acted_at", "outcomes", "snoozed")

    def __init__(self) -> None:
        self.outcomes: list[ActionOutcome] = []
        self.accepted = False
        self.snoozed = False
        self.acted_at: int | None = None  # the first accept or done that counted

    def judge(self, action: ActionRow) -> None:
        """Counts the outcomes the decider took: an accept or a snooze after the journey
        ended the action did not take it up again (a done or a dismissal still closes it)."""
        ended_at = action.status_at if action.status in ENDED_BY_THE_JOURNEY else None
        for outcome in sorted(self.outcomes, key=lambda o: (o.occurred_at, o.event_id)):
            late = ended_at is not None and outcome.occurred_at >= ended_at
            if outcome.status in ("accepted", "snoozed") and late:
                continue
            if outcome.status in ("accepted", "done") and self.acted_at is None:
                self.acted_at = outcome.occurred_at
            self.accepted |= outcome.status == "accepted"
            self.snoozed |= outcome.status == "snoozed"


def effectiveness(
    definition: JourneyDefinition,
    actions: Iterable[ActionRow],
    outcomes: Iterable[ActionOutcome],
    journeys: Mapping[str, Position],
    *,
    negative: Mapping[str, Sequence[int]] | None = None,
    by: str,
    clock: int,
    period: Period = Period(),
    within_days: int = 14,
) -> list[Effect]:
    """Each group's effect, the group with the most actions first. `clock` is the journey's
    time now; `journeys` holds the customers' positions (their stage history), `negative`
    the times of their negative touchpoints (see `negative_times`)."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}, not {by!r}")
    taken: dict[str, _Taken] = {}
    for outcome in outcomes:
        taken.setdefault(outcome.action_id, _Taken()).outcomes.append(outcome)
    key = _grouping(definition, by)
    next_steps = _NextSteps(definition, within_days * DAY_MS, negative or {})
    groups: dict[str, Effect] = {}
    for action in actions:
        if not period.holds(action.decided_at):
            continue
        group = key(action)
        effect = groups.get(group)
        if effect is None:
            effect = groups[group] = Effect(group)
        done_with = taken.get(action.action_id)
        if done_with is not None:
            done_with.judge(action)
        _count(effect, action, done_with)
        journey = journeys.get(action.customer_id)
        end = action.decided_at + next_steps.window
        if journey is not None and end <= clock:
            acted = done_with is not None and (done_with.acted_at or end + 1) <= end
            next_steps.add(effect.acted if acted else effect.not_acted, journey, action.decided_at)
    return sorted(groups.values(), key=lambda e: (-e.proposed, e.key))


def _count(effect: Effect, action: ActionRow, taken: _Taken | None) -> None:
    effect.proposed += 1
    status = action.status
    if status == "done":
        effect.done += 1
    elif status == "dismissed":
        effect.dismissed += 1
        effect.dismissed_because[action.status_reason or "no reason given"] += 1
    elif status in ENDED_BY_THE_JOURNEY:
        setattr(effect, status, getattr(effect, status) + 1)
    else:  # open, accepted or snoozed: nothing ended it yet
        effect.still_open += 1
    if taken is None:
        return
    effect.accepted += taken.accepted
    effect.snoozed += taken.snoozed
    if taken.acted_at is not None:
        effect.taken_up += 1
        effect.hours_to_act.append(max(0, taken.acted_at - action.decided_at) / HOUR_MS)


def _grouping(definition: JourneyDefinition, by: str) -> Callable[[ActionRow], str]:
    if by == "rule":
        return lambda action: action.rule
    if by == "owner":
        return lambda action: action.owner
    return lambda action: definition.team_of(action.owner) or "no team"


class _NextSteps:
    """Judges what a customer did in the window after a decision, from their position."""

    def __init__(
        self, definition: JourneyDefinition, window: int, negative: Mapping[str, Sequence[int]]
    ) -> None:
        self.window = window
        self._ranks = {stage: rank for rank, stage in enumerate(definition.ladder)}
        self._dormant = definition.dormancy.stage if definition.dormancy else None
        self._negative = negative

    def add(self, steps: NextSteps, journey: Position, decided_at: int) -> None:
        end = decided_at + self.window
        steps.actions += 1
        before = None
        moved = dormant = False
        for entry in journey.history:
            if entry.entered_at <= decided_at:
                before = entry.stage
            elif entry.entered_at <= end:
                if entry.stage == self._dormant:
                    dormant = True
                elif self._rank(entry.stage) > self._rank(before):
                    moved = True
        steps.moved_on += moved
        steps.dormant += dormant
        steps.negative += any(
            decided_at < at <= end for at in self._negative.get(journey.customer_id, ())
        )

    def _rank(self, stage: str | None) -> int:
        return self._ranks.get(stage, -1) if stage is not None else -1


def negative_matches(definition: JourneyDefinition) -> tuple[Match, ...]:
    """What makes a touchpoint negative: the `when` of the definition's negative frictions."""
    return tuple(m for f in definition.frictions if isinstance(f, Negative) for m in f.when)


def is_negative(
    matches: Sequence[Match],
    kind: str,
    channel: str,
    outcome: str | None,
    attributes: Mapping[str, str],
) -> bool:
    """Whether a touchpoint matches one of `matches`."""
    for match in matches:
        if "*" not in match.types and kind not in match.types:
            continue
        if match.channels is not None and channel not in match.channels:
            continue
        if match.outcomes is not None and outcome not in match.outcomes:
            continue
        if any(attributes.get(k) != v for k, v in match.attributes.items()):
            continue
        return True
    return False
