"""Deciding next-best-actions: a pure function of a customer's journey position, what the
decider remembers of their actions, and the journey's time. No I/O and no wall clock, so the
same log gives the same decisions.

Each action rule of the journey definition proposes candidates from the customer's state
(one per open friction, moment of truth or stage entry it watches). Arbitration keeps at most
`max_open` open actions per customer, the highest priority first: a more important candidate
supersedes the least important action nobody has taken up yet. The contact policy holds back
what would exceed a customer's or an owner's daily limit, what a rep dismissed recently, and
everything for customers who opted out or went dormant.

The journey ends an open action by itself when it no longer makes sense: it is cancelled when
its triggering friction resolves or the customer opts out or goes dormant, and it expires when
its window passes with nothing done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from consumers import briefs, reasons
from consumers.briefs import Booking, Context
from engine.actions import CANCELLED, EXPIRED, SUPERSEDED, ActionOutcome, action_id
from engine.definition import ActionPolicy, ActionRule, JourneyDefinition, Match
from projections.position import Friction, Mark, Position, Touch

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


class OpenAction(NamedTuple):
    action_id: str
    rule: str
    owner: str
    priority: float
    status: str  # open, accepted or snoozed
    friction: str | None  # the friction it answers, if a friction rule decided it
    # When it expires if nobody does it; None for an action stored by a release before
    # actions expired, until the decider loads it and dates it (`Deciding.date_expiries`).
    expires_at: int | None = None


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
    context: Context = field(default_factory=Context)  # what a brief before a meeting tells
    # Those they referred who entered a stage a rule watches: [customer, stage, trigger, at].
    referred: list[list[Any]] = field(default_factory=list)
    # The ids this person was known by before people were joined or split: an action any
    # of them had for a trigger is not decided again under this id.
    aliases: list[str] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        return {
            "k": self.context.to_state(),
            "h": self.referred,
            "c": self.channels,
            "o": self.opted_out,
            "x": self.closed_channels,
            "a": [list(action) for action in self.open.values()],
            "d": self.decided,
            "s": self.suppressed,
            "t": [self.day, self.today],
            "r": self.retry_at,
            **({"m": self.aliases} if self.aliases else {}),
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
            context=Context.from_state(state.get("k")),
            referred=list(state.get("h", ())),
            aliases=list(state.get("m", ())),
        )


class Referrer(NamedTuple):
    """The customer who referred this one, as the engine knows them."""

    customer_id: str
    place: str | None  # where they deal with the company
    rep: str | None
    stage: str | None


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
    expires_at: int | None = None  # when it is moot, if its trigger says (a meeting held)


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


class Ended(NamedTuple):
    """An open action the journey ended: superseded, expired or cancelled, and why, in words."""

    action_id: str
    status: str
    at: int
    why: str
    replaced_by: str | None = None


@dataclass(slots=True)
class CustomerDecisions:
    decisions: list[Decision] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)


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
        self._dormant = definition.dormancy.stage if definition.dormancy else None
        # Stages that, entered by someone a customer referred, may give that customer an action.
        self.referred_stages = {
            rule.referred_entered for rule in definition.actions.rules if rule.referred_entered
        }
        self._rules = {rule.id: rule for rule in definition.actions.rules}
        self._follow_up_rules = {f.id for f in definition.frictions if f.detector == "no_follow_up"}
        # A brief is written when it falls due, before its meeting, from all known by then.
        self._briefs = any(rule.booked for rule in definition.actions.rules)
        self._brief_lead = int(self.policy.briefing.due_before_hours * HOUR_MS)
        # What every touchpoint and every decision asks of the policy, read once: a customer
        # is decided at each of their touchpoints, and reading the definition's models costs
        # more than the deciding itself does most of the time.
        self._noticing = briefs.Noticing(self.policy.briefing)
        self._opt_out = _patterns(self.policy.opt_out)
        self._opt_in = _patterns(self.policy.opt_in)
        self._channel_opt_out = [
            (channel, _patterns(matches))
            for channel, matches in self.policy.channel_opt_out.items()
        ]
        self._watched = [_Watched(rule) for rule in self.policy.rules]
        # The stages whose entry a rule acts on (its only trigger being there).
        self._entered = {
            w.entered
            for w in self._watched
            if not (w.referred_entered or w.booked) and w.friction is None and w.moment is None
        }

    def observe(
        self, state: ActionState, mark: Mark, attributes: Mapping[str, str] | None = None
    ) -> bool:
        """Takes what the decider needs from a touchpoint (channels, consent, and with its
        attributes what a brief tells); True if the state changed."""
        changed = False
        if attributes:
            changed = briefs.observe(state.context, self._noticing, mark, attributes)
        if mark.channel and mark.channel not in state.channels:
            state.channels.append(mark.channel)
            changed = True
        if _matches(self._opt_out, mark) and not state.opted_out:
            state.opted_out, changed = True, True
        elif _matches(self._opt_in, mark) and state.opted_out:
            state.opted_out, changed = False, True
        for channel, patterns in self._channel_opt_out:
            if channel not in state.closed_channels and _matches(patterns, mark):
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
        elif outcome.status == "snoozed" and outcome.snoozed_until is not None:
            # The action is due again when the snooze ends, and its window starts again then;
            # a brief still ends when its meeting begins.
            expires_at = outcome.snoozed_until + self._expiry_ms(action.rule)
            rule = self._rules.get(action.rule)
            if rule is not None and rule.booked and action.expires_at is not None:
                expires_at = action.expires_at
            state.open[outcome.action_id] = action._replace(status="snoozed", expires_at=expires_at)
        else:
            state.open[outcome.action_id] = action._replace(status=outcome.status)
        return action

    def decide(
        self,
        position: Position,
        state: ActionState,
        now: int,
        owner_today: Mapping[str, int],
        referrer: Referrer | None = None,
    ) -> CustomerDecisions:
        """What to do next for one customer at `now` (the journey's time). `owner_today`
        counts each owner's new actions on now's day so far; the caller adds these.
        `referrer` is the known customer who referred them, if any."""
        result = CustomerDecisions()
        if state.open:
            self._end_moot(position, state, now, result, referrer)
        if state.suppressed:
            state.suppressed = {r: until for r, until in state.suppressed.items() if until > now}
        if state.opted_out:
            state.retry_at = None
            return result
        day = now // DAY_MS
        if state.day != day:
            state.day, state.today = day, 0
        proposals = self._proposals(position, state, now, referrer)
        state.retry_at = None
        if state.suppressed:
            # A dismissed rule stays quiet for a while; its proposals come back when that ends.
            quiet = [p for p in proposals if p.candidate.rule in state.suppressed]
            proposals = [p for p in proposals if p.candidate.rule not in state.suppressed]
            state.retry_at = min((state.suppressed[p.candidate.rule] for p in quiet), default=None)
        if proposals:  # most of the time, none
            self._arbitrate(
                proposals,
                position,
                state,
                now,
                owner_today=owner_today,
                referrer=referrer,
                result=result,
            )
        state.retry_at = self._next_visit(state, now)
        return result

    def _arbitrate(
        self,
        proposals: list[_Proposal],
        position: Position,
        state: ActionState,
        now: int,
        *,
        owner_today: Mapping[str, int],
        referrer: Referrer | None,
        result: CustomerDecisions,
    ) -> None:
        """Decides the most important proposals the contact policy lets through, superseding
        less important open actions; the others wait, for a free slot or a later day."""
        proposals.sort(key=_importance)
        day = now // DAY_MS
        chosen: list[_Proposal] = []
        held: list[dict[str, Any]] = []
        counted: dict[str, int] = {}
        for proposal in proposals:
            candidate = proposal.candidate
            why = None
            if state.today + len(chosen) >= self.policy.per_customer_per_day:
                why = "the customer's daily limit"
            elif (
                owner_today.get(candidate.owner, 0) + counted.get(candidate.owner, 0)
                >= self.policy.per_owner_per_day
            ):
                why = f"{candidate.owner}'s daily limit"
            elif len(state.open) >= self.policy.max_open:
                replaced = self._least_important(state, candidate)
                if replaced is None:
                    why = "no free slot"
                else:
                    del state.open[replaced.action_id]
                    result.ended.append(
                        Ended(
                            replaced.action_id,
                            SUPERSEDED,
                            now,
                            f"replaced by a more important action: {self._label(candidate)}",
                            candidate.action_id,
                        )
                    )
            if why is None:
                chosen.append(proposal)
                counted[candidate.owner] = counted.get(candidate.owner, 0) + 1
                state.open[candidate.action_id] = OpenAction(
                    candidate.action_id,
                    candidate.rule,
                    candidate.owner,
                    candidate.priority,
                    "open",
                    candidate.friction,
                    candidate.expires_at or candidate.due_at + self._expiry_ms(candidate.rule),
                )
                state.decided.append(candidate.action_id)
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
        for proposal in chosen:
            candidate = self._worded(proposal, position, state, now, referrer)
            result.decisions.append(Decision(candidate, now, tuple(held)))
        state.today += len(chosen)

    def _next_visit(self, state: ActionState, now: int) -> int | None:
        """When to come back: the soonest of when held-back candidates may be decided, when
        the first open action expires, and when the next brief falls due."""
        soonest = state.retry_at
        for action in state.open.values():
            if action.expires_at is not None and (soonest is None or action.expires_at < soonest):
                soonest = action.expires_at
        if self._briefs:
            for booking in state.context.bookings.values():
                due = booking.at - self._brief_lead
                if due > now and (soonest is None or due < soonest):
                    soonest = due
        return soonest

    def date_expiries(self, state: ActionState, due: Mapping[str, int]) -> None:
        """Gives open actions decided without an expiry the one their rule gives, counted
        from when they were due."""
        for action in list(state.open.values()):
            if action.expires_at is None and action.action_id in due:
                expires_at = due[action.action_id] + self._expiry_ms(action.rule)
                state.open[action.action_id] = action._replace(expires_at=expires_at)

    def _least_important(self, state: ActionState, candidate: Candidate) -> OpenAction | None:
        """The open action `candidate` would supersede: the least important one nobody has
        taken up yet (a rep's accepted or snoozed action stays), if it is less important."""
        untaken = [a for a in state.open.values() if a.status == "open"]
        if not untaken:
            return None
        least = min(untaken, key=lambda a: (a.priority, a.action_id))
        return least if least.priority < candidate.priority else None

    def _expiry_ms(self, rule_id: str) -> int:
        rule = self._rules.get(rule_id)
        hours = rule.expires_hours if rule is not None else None
        return int((hours or self.policy.expire_after_hours) * HOUR_MS)

    def _label(self, candidate: Candidate) -> str:
        rule = self._rules.get(candidate.rule)
        label = rule.label if rule is not None and rule.label else candidate.action_type
        return label[:1].lower() + label[1:]

    def candidates(
        self,
        position: Position,
        state: ActionState,
        now: int,
        referrer: Referrer | None = None,
    ) -> list[Candidate]:
        """What the rules propose, before arbitration, with their reasons."""
        return [
            self._worded(proposal, position, state, now, referrer)
            for proposal in self._proposals(position, state, now, referrer)
        ]

    def _proposals(
        self,
        position: Position,
        state: ActionState,
        now: int,
        referrer: Referrer | None,
    ) -> list[_Proposal]:
        """What the rules propose, their reasons not yet written."""
        found: list[_Proposal] = []
        decided: set[str] | None = None
        dormant = position.stage is not None and position.stage == self._dormant
        # What could trigger a rule at all, found once: most rules, most of the time, have
        # nothing to act on, and a customer is decided at each of their touchpoints.
        open_kinds = {f.kind for f in position.frictions if f.resolved_at is None}
        if referrer is not None:
            open_kinds.update(self._referral_rules)
        moment_kinds = {m.kind for m in position.moments}
        triggered = open_kinds or moment_kinds or state.referred or state.context.bookings
        if not triggered and position.stage not in self._entered:
            return found  # no rule has a trigger to look at
        for watched in self._watched:
            if watched.stages is None:
                if dormant:
                    continue
            elif position.stage not in watched.stages:
                continue
            if watched.referred_entered:  # in the order `_triggers` looks
                if not state.referred:
                    continue
            elif watched.booked:
                if not state.context.bookings:
                    continue
            elif watched.friction is not None:
                if watched.friction not in open_kinds:
                    continue
            elif watched.moment is not None:
                if watched.moment not in moment_kinds:
                    continue
            elif position.stage != watched.entered:
                continue
            if watched.without_moments and not moment_kinds.isdisjoint(watched.without_moments):
                continue
            rule = watched.rule
            triggers = self._triggers(rule, position, state, now, referrer)
            if not triggers:  # most rules, most of the time
                continue
            channel = self._channel(rule, state)
            if channel is None:
                continue
            if decided is None:
                decided = set(state.decided)
            for trigger in triggers:
                if rule.within_days is not None and now - trigger.at > rule.within_days * DAY_MS:
                    continue
                identity = action_id(position.customer_id, rule.id, trigger.id)
                if identity in decided or (
                    state.aliases
                    and any(action_id(a, rule.id, trigger.id) in decided for a in state.aliases)
                ):
                    continue
                candidate = self._candidate(
                    rule,
                    position,
                    state=state,
                    now=now,
                    channel=channel,
                    trigger=trigger,
                    identity=identity,
                )
                found.append(_Proposal(candidate, rule, trigger))
        return found

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
        if owner == "host":
            owner = trigger.booking.host if trigger.booking and trigger.booking.host else "rep"
        if owner == "rep":
            owner = position.rep or self.policy.unassigned_owner
        due_at = now + int(rule.due_hours * HOUR_MS)
        expires_at = None
        if trigger.booking is not None:
            due_at, expires_at = now, trigger.booking.at
        return Candidate(
            identity,
            rule.id,
            rule.action,
            owner,
            channel,
            priority,
            score,
            "",  # written once it is chosen (`_worded`)
            trigger.events,
            trigger.id,
            trigger.at,
            due_at,
            trigger.id if rule.friction else None,
            expires_at,
        )

    def _worded(
        self,
        proposal: _Proposal,
        position: Position,
        state: ActionState,
        now: int,
        referrer: Referrer | None,
    ) -> Candidate:
        """The candidate with its reason in words: written only for those that win, as
        what is held back is proposed again at the customer's every touchpoint."""
        candidate, rule, trigger = proposal
        fields = self._reason_fields(rule, position, now, trigger)
        fields |= self._referral_fields(state, referrer, trigger, fields["referral"])
        if trigger.booking is not None:
            fields |= self._brief_fields(trigger.booking, position, state, candidate.owner, now)
        return candidate._replace(reason=rule.reason.format(**fields))

    def note_referred(self, state: ActionState, referred: Position) -> bool:
        """Someone this customer referred moved: True if they entered a stage a rule watches
        that was not noted yet (each entry once, however the log was paged)."""
        noted = False
        seen = {entry[2] for entry in state.referred}
        for entry in referred.history:
            if entry.stage not in self.referred_stages:
                continue
            trigger = f"{referred.customer_id}:{entry.stage}:{entry.event_id or entry.entered_at}"
            if trigger not in seen:
                noted_entry = [referred.customer_id, entry.stage, trigger, entry.entered_at]
                state.referred.append(noted_entry)
                seen.add(trigger)
                noted = True
        return noted

    def _referral_fields(
        self, state: ActionState, referrer: Referrer | None, trigger: _Trigger, referral: str
    ) -> dict[str, str]:
        referred_by = state.context.referral[1] if state.context.referral else None
        fields = {
            "referrer": referred_by or "the referrer",
            "referrer_rep": (referrer.rep if referrer else None) or "their rep",
            "referred": trigger.subject or "",
        }
        if referrer is not None and referrer.place and referral == "the referrer's":
            fields["referral"] = referrer.place  # the referral did not say; their history does
        return fields

    def _brief_fields(
        self, booking: Booking, position: Position, state: ActionState, host: str, now: int
    ) -> dict[str, str]:
        return {
            "meeting": briefs.meeting(booking),
            "meeting_at": reasons.day_and_time(booking.at, now),
            "host": host,
            "brief": briefs.brief(state.context, position, self._labels, now),
        }

    def _triggers(
        self,
        rule: ActionRule,
        position: Position,
        state: ActionState,
        now: int,
        referrer: Referrer | None = None,
    ) -> list[_Trigger]:
        if rule.referred_entered:
            return [
                _Trigger(trigger, at, (), None, "referred", subject=referred, since=at)
                for referred, stage, trigger, at in state.referred
                if stage == rule.referred_entered
            ]
        if rule.booked:
            return [
                _Trigger(
                    b.event_id,
                    b.booked_at,
                    (b.event_id,),
                    b.channel,
                    "booked",
                    booking=b,
                    since=b.booked_at,
                )
                for b in briefs.upcoming(state.context, now)
                if b.at - self._brief_lead <= now
            ]
        if rule.friction is not None:
            found = [
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
            if rule.friction in self._referral_rules and referrer is not None:
                found += self._unused_referral(rule.friction, position, state, referrer)
            return found
        if rule.moment is not None:
            return [
                _Trigger(
                    m.event_id,
                    m.at,
                    (m.event_id,),
                    m.channel,
                    rule.moment,
                    m.outcome,
                    touch=m.touch,
                    since=m.at,
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

    def _unused_referral(
        self, kind: str, position: Position, state: ActionState, referrer: Referrer
    ) -> list[_Trigger]:
        """A referral the customer's own touchpoints could not judge (it did not say where the
        referrer is), judged by the referrer's history: they were offered another place than
        the referrer's."""
        offered, referral = state.context.place, state.context.referral
        if (
            any(f.kind == kind for f in position.frictions)  # the referral said; the fold judged
            or referrer.place is None
            or offered is None
            or referral is None
            or offered[0] < referral[0]
            or offered[1] == referrer.place
        ):
            return []
        trigger = f"{kind}:{referrer.customer_id}"
        return [_Trigger(trigger, offered[0], (), None, kind, since=offered[0])]

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

    def _end_moot(
        self,
        position: Position,
        state: ActionState,
        now: int,
        result: CustomerDecisions,
        referrer: Referrer | None,
    ) -> None:
        """Ends the open actions that no longer make sense, saying why."""
        still_open = {f.id for f in position.frictions if f.resolved_at is None}
        kinds = {f.id: f.kind for f in position.frictions}
        if referrer is not None:  # a referral judged by the referrer's history is open too
            for kind in self._referral_rules:
                for trigger in self._unused_referral(kind, position, state, referrer):
                    still_open.add(trigger.id)
                    kinds[trigger.id] = kind
        dormant = position.stage is not None and position.stage == self._dormant
        for action in list(state.open.values()):
            if state.opted_out:
                status, why = CANCELLED, "the customer opted out of contact"
            elif dormant and not self._acts_when_dormant(action.rule):
                status, why = CANCELLED, "the customer went dormant"
            elif action.friction is not None and action.friction not in still_open:
                kind = kinds.get(action.friction) or action.friction.split(":", 1)[0]
                label = self._labels.get(kind, kind)
                status, why = CANCELLED, f"the friction it answered resolved: {label}"
            elif action.expires_at is not None and action.expires_at <= now:
                rule = self._rules.get(action.rule)
                began = rule is not None and rule.booked
                why = "the meeting it prepares for began" if began else "nobody did it in time"
                status = EXPIRED
            else:
                continue
            del state.open[action.action_id]
            result.ended.append(Ended(action.action_id, status, now, why))

    def joined(
        self, states: Mapping[str, ActionState], gone: Iterable[str], at: int
    ) -> list[tuple[str, Ended]]:
        """People were joined or split: `states` holds every id involved. Each id that names
        no one any more has its open actions cancelled; every id involved remembers what all
        of them decided, so that no trigger gets a second action under another id."""
        decided = sorted({action for state in states.values() for action in state.decided})
        known = sorted(
            {i for state in states.values() for i in (state.customer_id, *state.aliases)}
        )
        ended: list[tuple[str, Ended]] = []
        for customer_id in gone:
            state = states[customer_id]
            why = "the customer's journey is now part of another person's"
            for action in state.open.values():
                ended.append((customer_id, Ended(action.action_id, CANCELLED, at, why)))
            state.open.clear()
            state.retry_at = None
        for state in states.values():
            state.decided = list(decided)
            state.aliases = [i for i in known if i != state.customer_id]
        return ended

    def _acts_when_dormant(self, rule_id: str) -> bool:
        rule = self._rules.get(rule_id)
        return rule is not None and rule.stages is not None and self._dormant in rule.stages


class _Trigger(NamedTuple):
    id: str
    at: int
    events: tuple[str, ...]
    channel: str | None
    source: str  # the friction, moment or stage id
    outcome: str | None = None
    booking: Booking | None = None  # the meeting, for a booked trigger
    subject: str | None = None  # the other customer it is about, for a referred_entered one
    touch: Touch | None = None  # the touchpoint that matters, if the position knows it
    since: int = 0  # when the silence the reason names began


class _Pattern:
    """A `Match` of the contact policy, as every touchpoint is checked against it."""

    def __init__(self, match: Match) -> None:
        self.types = None if "*" in match.types else frozenset(match.types)  # None: any
        self.channels = None if match.channels is None else frozenset(match.channels)
        self.outcomes = None if match.outcomes is None else frozenset(match.outcomes)


def _patterns(matches: Iterable[Match]) -> list[_Pattern]:
    return [_Pattern(match) for match in matches]


def _matches(patterns: list[_Pattern], mark: Mark) -> bool:
    for pattern in patterns:
        if pattern.types is not None and mark.type not in pattern.types:
            continue
        if pattern.channels is not None and mark.channel not in pattern.channels:
            continue
        if pattern.outcomes is not None and mark.outcome not in pattern.outcomes:
            continue
        return True
    return False


class _Watched:
    """What an action rule waits for, read once from the definition: `candidates` asks each
    rule at every decision, and most rules, most of the time, have nothing to act on."""

    def __init__(self, rule: ActionRule) -> None:
        self.rule = rule
        self.stages = None if rule.stages is None else frozenset(rule.stages)  # None: any
        self.referred_entered = rule.referred_entered
        self.booked = rule.booked
        self.friction = rule.friction
        self.moment = rule.moment
        self.entered = rule.entered
        self.without_moments = frozenset(rule.without_moments)


class _Proposal(NamedTuple):
    """A candidate, its reason not yet written, with the rule and trigger that write it."""

    candidate: Candidate
    rule: ActionRule
    trigger: _Trigger


def _importance(proposal: _Proposal) -> tuple[float, str, str]:
    """The order arbitration takes proposals in: the highest priority first."""
    c = proposal.candidate
    return (-c.priority, c.rule, c.action_id)
