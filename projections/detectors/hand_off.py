"""A hand-off break: a contact by someone other than the customer's rep."""

from __future__ import annotations

from engine.definition import HandOff
from projections.detectors.base import Compile, Detector, ValueIndex, register
from projections.position import FRICTIONS, Mark, Position, join_or_open, resolve_all


class HandOffDetector(Detector):
    def __init__(self, rule: HandOff, compile_: Compile, value_index: ValueIndex) -> None:
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


register(HandOff, HandOffDetector)
