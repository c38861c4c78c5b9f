"""Deciding next-best-actions: a pure function of a customer's journey position, what the
decider remembers of their actions, and the journey's time. No I/O and no wall clock, so the
same log gives the same decisions.

Each action rule of the journey definition proposes candidates from the customer's state
(one per open friction, moment of truth or stage entry it watches). Arbitration keeps at most
`max_open` open actions per customer, the highest priority first, and the contact policy
holds back what would exceed a customer's or an owner's daily limit, what a rep dismissed
recently, and everything for customers who opted out. An action whose triggering friction
has resolved is closed; one that has not been decided yet is never decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from consumers import reasons
from engine.actions import ActionOutcome, action_id
from engine.definition import ActionPolicy, ActionRule, JourneyDefinition, Match
from projections.position import Friction, Mark, Position, Touch

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

# Why an open action ended without an outcome from a rep.
RESOLVED = "resolved"  # its triggering friction resolved
WITHDRAWN = "withdrawn"  # the customer opted out of contact


class OpenAction(NamedTuple):
    action_id: str
    rule: str
    owner: str
    priority: float
    status: str  # open, accepted or snoozed
    friction: str | None  # the friction it answers, if a friction rule decided it


@dataclass(slots=True)
class ActionState:
    """What the decider remembers of one customer beyond their journey position."""

    customer_id: str
    channels: list[str] = field(default_factory=list)  # used by the customer, first use first
    opted_out: bool = False
    closed_channels: list[str] = field(default_factory=list)
    open: dict[str, OpenAction] = field(default_factory=dict)
    decided: list[str] = field(default_factory=list)  # every action id ever decided
    suppressed: dict[str, int] = field(default_factory=dict)  # rule -> until
    day: int = 0  # the day `today` counts new actions of
    today: int = 0
    retry_at: int | None = None  # when held-back candidates may be decided

    def to_state(self) -> dict[str, Any]:
        return {
            "c": self.channels,
            "o": self.opted_out,
            "x": self.closed_channels,
            "a": [list(action) for action in self.open.values()],
            "d": self.decided,
            "s": self.suppressed,
            "t": [self.day, self.today],
            "r": self.retry_at,
        }

    @classmethod
    def from_state(cls, customer_id: str, state: Mapping[str, Any]) -> ActionState:
        return cls(
            customer_id,
            channels=list(state["c"]),
            opted_out=state["o"],
            closed_channels=list(state["x"]),
            open={a[0]: OpenAction(*a) for a in state["a"]},
            decided=list(state["d"]),
            suppressed=dict(state["s"]),
            day=state["t"][0],
            today=state["t"][1],
            retry_at=state["r"],
        )


class Candidate(NamedTuple):
    """An action a rule proposes, before arbitration."""

    action_id: str
    rule: str
    action_type: str
    owner: str
    channel: str
    priority: float
    score: dict[str, float]
    reason: str
    events: tuple[str, ...]
    trigger: str
    triggered_at: int
    due_at: int
    friction: str | None


class Decision(NamedTuple):
    """A candidate that won, with why: the candidates it beat or held back."""

    candidate: Candidate
    decided_at: int
    beaten: tuple[dict[str, Any], ...]

    def record(self, customer_id: str) -> dict[str, Any]:
        """The NextAction record, times in milliseconds."""
        c = self.candidate
        return {
            "action_id": c.action_id,
            "customer_id": customer_id,
            "owner": c.owner,
            "action_type": c.action_type,
            "channel": c.channel,
            "rule": c.rule,
            "priority": c.priority,
            "score": c.score,
            "reason": c.reason,
            "triggering_event_ids": list(c.events),
            "decided_at": self.decided_at,
            "due_at": c.due_at,
        }

    def explanation(self, policy: ActionPolicy) -> dict[str, Any]:
        c = self.candidate
        return {
            "rule": c.rule,
            "trigger": c.trigger,
            "triggered_at": c.triggered_at,
            "events": list(c.events),
            "score": c.score,
            "weights": policy.weights.model_dump(),
            "priority": c.priority,
            "beat": list(self.beaten),
        }


class Closed(NamedTuple):
    action_id: str
    status: str  # RESOLVED or WITHDRAWN
    at: int


@dataclass(slots=True)
class CustomerDecisions:
    decisions: list[Decision] = field(default_factory=list)
    closed: list[Closed] = field(default_factory=list)


class Deciding:
    """The action rules of a journey definition, compiled."""

    def __init__(self, definition: JourneyDefinition) -> None:
        self.definition = definition
        self.policy = definition.actions
        self._labels = {
            **{f.id: f.label for f in definition.frictions},
            **{m.id: m.label for m in definition.moments},
            **{s.id: s.label for s in definition.stages},
        }
        self._referral_rules = [
            f.id for f in definition.frictions if f.detector == "referral_mismatch"
        ]
        self._follow_up_rules = {f.id for f in definition.frictions if f.detector == "no_follow_up"}

    def observe(self, state: ActionState, mark: Mark) -> bool:
        """Takes what the decider needs from a touchpoint (channels, consent); True if the
        state changed."""
        changed = False
        policy = self.policy
        if mark.channel and mark.channel not in state.channels:
            state.channels.append(mark.channel)
            changed = True
        if _matches(policy.opt_out, mark) and not state.opted_out:
            state.opted_out, changed = True, True
        elif _matches(policy.opt_in, mark) and state.opted_out:
            state.opted_out, changed = False, True
        for channel, matches in policy.channel_opt_out.items():
            if channel not in state.closed_channels and _matches(matches, mark):
                state.closed_channels.append(channel)
                changed = True
        return changed

    def apply_outcome(self, state: ActionState, outcome: ActionOutcome) -> OpenAction | None:
        """A rep's outcome: accepted and snoozed actions stay open, done and dismissed ones
        close, and a dismissal keeps the rule quiet for the customer for a while. Returns the
        action if it was open."""
        action = state.open.get(outcome.action_id)
        if action is None:
            return None
        if outcome.status in ("done", "dismissed"):
            del state.open[outcome.action_id]
            if outcome.status == "dismissed":
                hours = self.policy.dismissed_suppression_hours
                until = outcome.occurred_at + int(hours * HOUR_MS)
                state.suppressed[action.rule] = max(state.suppressed.get(action.rule, 0), until)
        else:
            state.open[outcome.action_id] = action._replace(status=outcome.status)
        return action

    def decide(
        self,
        position: Position,
        state: ActionState,
        now: int,
        owner_today: Mapping[str, int],
    ) -> CustomerDecisions:
        """What to do next for one customer at `now` (the journey's time). `owner_today`
        counts each owner's new actions on now's day so far; the caller adds these."""
        result = CustomerDecisions()
        self._close_moot(position, state, now, result)
        state.suppressed = {rule: until for rule, until in state.suppressed.items() if until > now}
        if state.opted_out:
            state.retry_at = None
            return result
        day = now // DAY_MS
        if state.day != day:
            state.day, state.today = day, 0
        proposed = sorted(
            self.candidates(position, state, now),
            key=lambda c: (-c.priority, c.rule, c.action_id),
        )
        # A dismissed rule stays quiet for a while; its proposals come back when that ends.
        quiet = [c for c in proposed if c.rule in state.suppressed]
        candidates = [c for c in proposed if c.rule not in state.suppressed]
        state.retry_at = min((state.suppressed[c.rule] for c in quiet), default=None)
        slots = self.policy.max_open - len(state.open)
        chosen: list[Candidate] = []
        held: list[dict[str, Any]] = []
        counted: dict[str, int] = {}
        for candidate in candidates:
            why = None
            if len(chosen) >= slots:
                why = "no free slot"
            elif state.today + len(chosen) >= self.policy.per_customer_per_day:
                why = "the customer's daily limit"
            elif (
                owner_today.get(candidate.owner, 0) + counted.get(candidate.owner, 0)
                >= self.policy.per_owner_per_day
            ):
                why = f"{candidate.owner}'s daily limit"
            if why is None:
                chosen.append(candidate)
                counted[candidate.owner] = counted.get(candidate.owner, 0) + 1
                continue
            held.append(
                {
                    "rule": candidate.rule,
                    "action_id": candidate.action_id,
                    "priority": candidate.priority,
                    "held_by": why,
                }
            )
            if why != "no free slot":
                tomorrow = (day + 1) * DAY_MS
                state.retry_at = min(state.retry_at or tomorrow, tomorrow)
        for candidate in chosen:
            result.decisions.append(Decision(candidate, now, tuple(held)))
            state.open[candidate.action_id] = OpenAction(
                candidate.action_id,
                candidate.rule,
                candidate.owner,
                candidate.priority,
                "open",
                candidate.friction,
            )
            state.decided.append(candidate.action_id)
        state.today += len(chosen)
        return result

    def candidates(self, position: Position, state: ActionState, now: int) -> Iterable[Candidate]:
        decided = set(state.decided)
        for rule in self.policy.rules:
            if rule.stages is not None and position.stage not in rule.stages:
                continue
            if rule.without_moments and any(
                m.kind in rule.without_moments for m in position.moments
            ):
                continue
            channel = self._channel(rule, state)
            if channel is None:
                continue
            for trigger in self._triggers(rule, position):
                if rule.within_days is not None and now - trigger.at > rule.within_days * DAY_MS:
                    continue
                identity = action_id(position.customer_id, rule.id, trigger.id)
                if identity in decided:
                    continue
                yield self._candidate(
                    rule,
                    position,
                    state=state,
                    now=now,
                    channel=channel,
                    trigger=trigger,
                    identity=identity,
                )

    def _candidate(
        self,
        rule: ActionRule,
        position: Position,
        *,
        state: ActionState,
        now: int,
        channel: str,
        trigger: _Trigger,
        identity: str,
    ) -> Candidate:
        weights = self.policy.weights
        fit = rule.fit if channel in state.channels else rule.fit / 2
        score = {"value": rule.value, "urgency": rule.urgency, "fit": fit}
        priority = round(
            weights.value * rule.value + weights.urgency * rule.urgency + weights.fit * fit, 4
        )
        owner = rule.owner
        if owner == "rep":
            owner = position.rep or self.policy.unassigned_owner
        return Candidate(
            identity,
            rule.id,
            rule.action,
            owner,
            channel,
            priority,
            score,
            rule.reason.format(**self._reason_fields(rule, position, now, trigger)),
            trigger.events,
            trigger.id,
            trigger.at,
            now + int(rule.due_hours * HOUR_MS),
            trigger.id if rule.friction else None,
        )

    def _triggers(self, rule: ActionRule, position: Position) -> list[_Trigger]:
        if rule.friction is not None:
            return [
                _Trigger(
                    f.id,
                    f.opened_at,
                    f.events,
                    f.channel,
                    rule.friction,
                    touch=f.touch,
                    since=self._silent_since(f),
                )
                for f in position.frictions
                if f.kind == rule.friction and f.resolved_at is None
            ]
        if rule.moment is not None:
            return [
                _Trigger(
                    m.event_id,
                    m.at,
                    (m.event_id,),
                    m.channel,
                    rule.moment,
                    m.outcome,
                    m.touch,
                    m.at,
                )
                for m in position.moments
                if m.kind == rule.moment
                and (rule.moment_outcomes is None or m.outcome in rule.moment_outcomes)
            ]
        if position.stage != rule.entered or not position.history:
            return []
        entry = position.history[-1]
        events = (entry.event_id,) if entry.event_id else ()
        trigger_id = entry.event_id or f"{entry.stage}@{entry.entered_at}"
        return [
            _Trigger(
                trigger_id,
                entry.entered_at,
                events,
                None,
                entry.stage,
                touch=entry.touch,
                since=entry.entered_at,
            )
        ]

    def _silent_since(self, friction: Friction) -> int:
        """When the silence a friction's reason names began: for a follow-up that never came,
        the touchpoint still waiting for it (anything that answered it would have resolved
        the friction); for any other friction, when it opened."""
        if friction.kind in self._follow_up_rules and friction.touch is not None:
            return friction.touch.at
        return friction.opened_at

    def _channel(self, rule: ActionRule, state: ActionState) -> str | None:
        """The first of the rule's channels the customer used themselves, else the first they
        have not opted out of; None if they opted out of all."""
        allowed = [c for c in rule.channels if c not in state.closed_channels]
        own = [c for c in allowed if c in state.channels]
        return next(iter(own or allowed), None)

    def _reason_fields(
        self, rule: ActionRule, position: Position, now: int, trigger: _Trigger
    ) -> dict[str, str]:
        touch = trigger.touch
        outcome = (
            trigger.outcome
            or (touch.outcome if touch is not None else None)
            or next(
                (m.outcome for m in position.moments if trigger.events[:1] == (m.event_id,)),
                None,
            )
        )
        referral = next(
            (position.memory[r][0] for r in self._referral_rules if r in position.memory),
            None,
        )
        at = touch.at if touch is not None else trigger.at
        return {
            "label": self._labels.get(trigger.source, trigger.source),
            "events": ", ".join(trigger.events) or "none",
            "when": datetime.fromtimestamp(trigger.at / 1000, UTC).strftime("%Y-%m-%d"),
            "silence": reasons.duration(now - trigger.since),
            "channel": trigger.channel or "unknown channel",
            "outcome": outcome or "unknown",
            "rep": position.rep or "nobody yet",
            "referral": referral or "the referrer's",
            "touchpoint": reasons.touchpoint(touch, trigger.at, now),
            "what": reasons.what(touch),
            "day": reasons.day(at, now),
            "time": reasons.day_and_time(at, now),
            "place": reasons.place(touch),
        }

    def _close_moot(
        self, position: Position, state: ActionState, now: int, result: CustomerDecisions
    ) -> None:
        """Closes open actions that no longer apply."""
        still_open = {f.id for f in position.frictions if f.resolved_at is None}
        for action in list(state.open.values()):
            if state.opted_out:
                status = WITHDRAWN
            elif action.friction is not None and action.friction not in still_open:
                status = RESOLVED
            else:
                continue
            del state.open[action.action_id]
            result.closed.append(Closed(action.action_id, status, now))


class _Trigger(NamedTuple):
    id: str
    at: int
    events: tuple[str, ...]
    channel: str | None
    source: str  # the friction, moment or stage id
    outcome: str | None = None
    touch: Touch | None = None  # the touchpoint that matters, if the position knows it
    since: int = 0  # when the silence the reason names began


def _matches(matches: Iterable[Match], mark: Mark) -> bool:
    for match in matches:
        if "*" not in match.types and mark.type not in match.types:
            continue
        if match.channels is not None and mark.channel not in match.channels:
            continue
        if match.outcomes is not None and mark.outcome not in match.outcomes:
            continue
        return True
    return False
