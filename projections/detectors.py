"""Frictions and moments of truth: detectors folded over a customer's touchpoints in the order
they happened, beside the stage machine.

Each detector is one of the journey definition's `[[frictions]]` or `[[moments]]`, compiled
against the machine's patterns. A detector reads one touchpoint's mark and the customer's
position, and updates the position; it never reads a clock. Windows ("no follow-up within
48 hours") close when time passes them: the customer's own later touchpoints, or the clock
events the engine appends to the log (see `StageMachine.advance`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from engine.definition import (
    ChannelJump,
    HandOff,
    Loop,
    Match,
    MomentOfTruth,
    Negative,
    NoFollowUp,
    ReferralMismatch,
)

if TYPE_CHECKING:
    from projections.position import Mark, Position

HOUR_MS = 3_600_000
MINUTE_MS = 60_000


class Friction(NamedTuple):
    """A friction the customer met. `id` is deterministic (the detector and the touchpoint or
    stage entry behind it), so a replay finds the same one. `events` are the touchpoints
    behind it, the resolving one last once it resolved."""

    id: str
    kind: str
    opened_at: int
    resolved_at: int | None
    events: tuple[str, ...]
    stage: str | None
    channel: str | None
    rep_id: str | None

    def resolve(self, at: int, event_id: str | None) -> Friction:
        events = self.events if event_id is None else (*self.events, event_id)
        return self._replace(resolved_at=at, events=events)


class Moment(NamedTuple):
    """A moment of truth: which touchpoint, how it went, and how it was resolved if the
    definition asks."""

    kind: str
    at: int
    event_id: str
    channel: str
    rep_id: str | None
    outcome: str | None
    resolved_at: int | None = None
    resolved_by: str | None = None
    resolution: str | None = None


class Window(NamedTuple):
    """A touchpoint waiting for its follow-up until `deadline`."""

    kind: str
    deadline: int
    event_id: str
    stage: str | None
    channel: str
    rep_id: str | None


# What changed in a position beyond its own row: which of the detail views to rewrite.
FRICTIONS, MOMENTS, OUTCOMES = 1, 2, 4
ALL_DETAILS = FRICTIONS | MOMENTS | OUTCOMES

PatternIds = frozenset[int]
Compile = Callable[[tuple[Match, ...]], PatternIds]


def open_frictions(position: Position, kind: str) -> list[int]:
    """Indexes of the customer's open frictions of one kind."""
    frictions = position.frictions
    if not frictions:
        return []
    return [
        index
        for index, friction in enumerate(frictions)
        if friction.resolved_at is None and friction.kind == kind
    ]


def resolve_all(position: Position, kind: str, at: int, event_id: str | None) -> None:
    frictions = position.frictions
    if not frictions:
        return
    for index, friction in enumerate(frictions):
        if friction.resolved_at is None and friction.kind == kind:
            frictions[index] = friction.resolve(at, event_id)
            position.details_changed |= FRICTIONS


def add_friction(position: Position, friction: Friction) -> None:
    position.frictions.append(friction)
    position.details_changed |= FRICTIONS


def open_at(
    position: Position, kind: str, mark: Mark, events: tuple[str, ...], rep_id: str | None
) -> None:
    """Opens a friction at a touchpoint (which also names it), in the customer's stage."""
    friction = Friction(
        f"{kind}:{mark.event_id}",
        kind,
        mark.occurred_at,
        None,
        events,
        position.stage,
        mark.channel,
        rep_id,
    )
    add_friction(position, friction)


def join_or_open(position: Position, kind: str, mark: Mark) -> None:
    """Adds the touchpoint to the open friction of this kind, or opens one at it."""
    opened = open_frictions(position, kind)
    if not opened:
        open_at(position, kind, mark, (mark.event_id,), mark.rep_id)
        return
    friction = position.frictions[opened[-1]]
    position.frictions[opened[-1]] = friction._replace(events=(*friction.events, mark.event_id))
    position.details_changed |= FRICTIONS


class Detector:
    """Reads the marks that match any of `patterns`."""

    patterns: PatternIds  # set by each detector

    def see(self, position: Position, mark: Mark) -> None:
        raise NotImplementedError


class FollowUpDetector(Detector):
    def __init__(self, rule: NoFollowUp, compile_: Compile) -> None:
        self.kind = rule.id
        self._after = compile_(rule.after)
        self._expect = compile_(rule.expect)
        self._within = int(rule.within_hours * HOUR_MS)
        self._stages = frozenset(rule.stages) if rule.stages is not None else None
        self.patterns = self._after | self._expect

    def see(self, position: Position, mark: Mark) -> None:
        rules = mark.rules
        if not self._expect.isdisjoint(rules):
            if position.windows:
                position.windows = [w for w in position.windows if w.kind != self.kind]
            resolve_all(position, self.kind, mark.occurred_at, mark.event_id)
        if not self._after.isdisjoint(rules) and (
            self._stages is None or position.stage in self._stages
        ):
            position.windows.append(
                Window(
                    self.kind,
                    mark.occurred_at + self._within,
                    mark.event_id,
                    position.stage,
                    mark.channel,
                    mark.rep_id,
                )
            )


def expire(position: Position, window: Window) -> None:
    """The window closed with no follow-up: the friction opens at its deadline."""
    position.windows.remove(window)
    add_friction(
        position,
        Friction(
            f"{window.kind}:{window.event_id}",
            window.kind,
            window.deadline,
            None,
            (window.event_id,),
            window.stage,
            window.channel,
            window.rep_id,
        ),
    )


class JumpDetector(Detector):
    def __init__(self, rule: ChannelJump, compile_: Compile) -> None:
        self.kind = rule.id
        self._failed = compile_(rule.failed)
        self._then = compile_(rule.then)
        self._resolved_by = compile_(rule.resolved_by)
        self._within = int(rule.within_minutes * MINUTE_MS)
        self.patterns = self._failed | self._then | self._resolved_by

    def see(self, position: Position, mark: Mark) -> None:
        rules, at = mark.rules, mark.occurred_at
        if not self._resolved_by.isdisjoint(rules):
            resolve_all(position, self.kind, at, mark.event_id)
        failure = position.failures.get(self.kind)
        if failure is not None and not self._then.isdisjoint(rules):
            failed_at, failed_event = failure
            del position.failures[self.kind]
            if at - failed_at <= self._within:
                open_at(position, self.kind, mark, (failed_event, mark.event_id), mark.rep_id)
        if not self._failed.isdisjoint(rules):
            position.failures[self.kind] = (at, mark.event_id)


class LoopDetector(Detector):
    def __init__(self, rule: Loop, compile_: Compile, value_index: Callable[[str], int]) -> None:
        self.kind = rule.id
        self.patterns = compile_(rule.steps)
        self._values = tuple(value_index(name) for name in rule.step_attributes)
        self._repeats = rule.repeats

    def see(self, position: Position, mark: Mark) -> None:
        values = mark.values
        key = f"{self.kind}|{mark.type}"
        for index in self._values:
            key = f"{key}|{values[index] or ''}"
        step = position.steps.get(key)
        if step is None:
            position.steps[key] = [1, mark.event_id]
            return
        step[0] += 1
        if step[0] == self._repeats:
            add_friction(
                position,
                Friction(
                    f"{self.kind}:{step[1]}",
                    self.kind,
                    mark.occurred_at,
                    None,
                    (step[1], mark.event_id),
                    position.stage,
                    mark.channel,
                    mark.rep_id,
                ),
            )


class HandOffDetector(Detector):
    def __init__(self, rule: HandOff, compile_: Compile) -> None:
        self.kind = rule.id
        self.patterns = compile_(rule.contacts)

    def see(self, position: Position, mark: Mark) -> None:
        rep = mark.rep_id
        if rep is None:
            return
        if position.rep is None:
            position.rep = rep
            if position.frictions:  # their owner in the frictions view is the customer's rep
                position.details_changed |= FRICTIONS
        elif rep == position.rep:
            resolve_all(position, self.kind, mark.occurred_at, mark.event_id)
        else:
            join_or_open(position, self.kind, mark)


class NegativeDetector(Detector):
    def __init__(self, rule: Negative, compile_: Compile) -> None:
        self.kind = rule.id
        self._when = compile_(rule.when)
        self._resolved_by = compile_(rule.resolved_by)
        self.patterns = self._when | self._resolved_by

    def see(self, position: Position, mark: Mark) -> None:
        rules = mark.rules
        if not self._resolved_by.isdisjoint(rules):
            resolve_all(position, self.kind, mark.occurred_at, mark.event_id)
        if not self._when.isdisjoint(rules):
            join_or_open(position, self.kind, mark)


class ReferralDetector(Detector):
    def __init__(
        self, rule: ReferralMismatch, compile_: Compile, value_index: Callable[[str], int]
    ) -> None:
        self.kind = rule.id
        self._referral = compile_(rule.referral)
        self._offer = compile_(rule.offer)
        self._referred = value_index(rule.referral_attribute)
        self._offered = value_index(rule.offer_attribute)
        self.patterns = self._referral | self._offer

    def see(self, position: Position, mark: Mark) -> None:
        rules, values = mark.rules, mark.values
        referred = values[self._referred]
        if referred is not None and not self._referral.isdisjoint(rules):
            position.referrals[self.kind] = (referred, mark.event_id)
            return
        offered = values[self._offered]
        known = position.referrals.get(self.kind)
        if offered is None or known is None or self._offer.isdisjoint(rules):
            return
        wanted, referral_event = known
        if offered == wanted:
            resolve_all(position, self.kind, mark.occurred_at, mark.event_id)
        elif not open_frictions(position, self.kind):
            open_at(position, self.kind, mark, (referral_event, mark.event_id), mark.rep_id)


class MomentDetector(Detector):
    def __init__(self, rule: MomentOfTruth, compile_: Compile) -> None:
        self.kind = rule.id
        self._when = compile_(rule.when)
        self._resolved_by = compile_(rule.resolved_by)
        self._first_only = rule.first_only
        self.patterns = self._when | self._resolved_by

    def see(self, position: Position, mark: Mark) -> None:
        rules, moments = mark.rules, position.moments
        if not self._resolved_by.isdisjoint(rules):
            for index, moment in enumerate(moments):
                if moment.kind == self.kind and moment.resolved_at is None:
                    moments[index] = moment._replace(
                        resolved_at=mark.occurred_at,
                        resolved_by=mark.event_id,
                        resolution=mark.outcome,
                    )
                    position.details_changed |= MOMENTS
        if self._when.isdisjoint(rules):
            return
        if self._first_only and any(moment.kind == self.kind for moment in moments):
            return
        moments.append(
            Moment(
                self.kind,
                mark.occurred_at,
                mark.event_id,
                mark.channel,
                mark.rep_id,
                mark.outcome,
            )
        )
        position.details_changed |= MOMENTS
