"""A negative touchpoint (a complaint, a bounce); later ones join the open friction."""

from __future__ import annotations

from engine.definition import Negative
from projections.detectors.base import Compile, Detector, ValueIndex, register
from projections.position import Mark, Position, join_or_open, resolve_all


class NegativeDetector(Detector):
    def __init__(self, rule: Negative, compile_: Compile, value_index: ValueIndex) -> None:
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


register(Negative, NegativeDetector)
