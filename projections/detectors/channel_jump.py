"""A channel jump: a failed step on one channel, then the customer tries another soon after."""

from __future__ import annotations

from engine.definition import ChannelJump
from projections.detectors.base import MINUTE_MS, Compile, Detector, ValueIndex, register
from projections.position import Mark, Position, Touch, open_at, resolve_all, touch


class JumpDetector(Detector):
    def __init__(self, rule: ChannelJump, compile_: Compile, value_index: ValueIndex) -> None:
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
        # What it remembers: the last failed step, [when, which touchpoint, its Touch] (the
        # Touch from version 3 of the stored position on).
        failure = position.memory.get(self.kind)
        if failure is not None and not self._then.isdisjoint(rules):
            failed_at, failed_event, *failed = failure
            del position.memory[self.kind]
            if at - failed_at <= self._within:
                # The friction is about the step that failed: what the caller tried.
                step = Touch(*failed[0]) if failed else None
                events = (failed_event, mark.event_id)
                open_at(position, self.kind, mark, events, mark.rep_id, touched=step)
        if not self._failed.isdisjoint(rules):
            position.memory[self.kind] = [at, mark.event_id, list(touch(mark))]


register(ChannelJump, JumpDetector)
