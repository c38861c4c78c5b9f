"""No follow-up: a touchpoint matching `after` opens a window; one matching `expect` closes
it, and resolves the friction if the window had already closed."""

from __future__ import annotations

from engine.definition import NoFollowUp
from projections.detectors.base import HOUR_MS, Compile, Detector, ValueIndex, register
from projections.position import Mark, Position, Window, resolve_all, touch


class FollowUpDetector(Detector):
    def __init__(self, rule: NoFollowUp, compile_: Compile, value_index: ValueIndex) -> None:
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
                    touch(mark),
                )
            )


register(NoFollowUp, FollowUpDetector)
