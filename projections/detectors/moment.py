"""Moments of truth, and how each was resolved."""

from __future__ import annotations

from engine.definition import MomentOfTruth
from projections.detectors.base import Compile, Detector, ValueIndex, register
from projections.position import MOMENTS, Mark, Moment, Position, touch


class MomentDetector(Detector):
    def __init__(self, rule: MomentOfTruth, compile_: Compile, value_index: ValueIndex) -> None:
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
                touch=touch(mark),
            )
        )
        position.details_changed |= MOMENTS


register(MomentOfTruth, MomentDetector)
