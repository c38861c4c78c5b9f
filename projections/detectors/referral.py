"""A referral not used: the offer went elsewhere than where the referral pointed."""

from __future__ import annotations

from engine.definition import ReferralMismatch
from projections.detectors.base import Compile, Detector, ValueIndex, register
from projections.position import Mark, Position, open_at, open_frictions, resolve_all


class ReferralDetector(Detector):
    def __init__(self, rule: ReferralMismatch, compile_: Compile, value_index: ValueIndex) -> None:
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
            # What it remembers: the referral, [where it points, which touchpoint].
            position.memory[self.kind] = [referred, mark.event_id]
            return
        offered = values[self._offered]
        known = position.memory.get(self.kind)
        if offered is None or known is None or self._offer.isdisjoint(rules):
            return
        wanted, referral_event = known
        if offered == wanted:
            resolve_all(position, self.kind, mark.occurred_at, mark.event_id)
        elif not open_frictions(position, self.kind):
            open_at(position, self.kind, mark, (referral_event, mark.event_id), mark.rep_id)


register(ReferralMismatch, ReferralDetector)
