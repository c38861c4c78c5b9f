"""Folding a page of the log an entry at a time, for a reader that acts on the positions as
of each touchpoint and each clock event (the decider, and a backtest replaying it). Compiled
with the machine (scripts/compile.py): it runs once for every touchpoint the decider reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.identity import Regrouped
from projections.people import Decision, Sighting
from projections.position import Mark, Position
from projections.views import DetailRows, PageChanges

if TYPE_CHECKING:
    from projections.runner import JourneyProjector

# (log position, the key a touchpoint was recorded under, what the fold keeps, whose it
# says it is beyond its key); a clock event has no key, and its mark holds only its time; a
# people's decision about who is who has no key either, and comes last.
MarkedPage = list[tuple[int, str | None, Mark, Sighting | Decision | None]]


class StepwiseFold:
    """One page folded an entry at a time, in log order: after each touchpoint, its
    person's position is as a page ending there would leave it, and each clock event says
    whose positions time moved. A late touchpoint replays its person at once, and so does
    a touchpoint that joins people (or a split), rather than once at the end of the page as
    `JourneyProjector.fold` does, so that what a reader sees in between does not depend on
    where pages begin and end. At the end, the positions are the ones `fold` leaves."""

    def __init__(self, projector: JourneyProjector) -> None:
        """`projector` holds the page's people's positions (`JourneyProjector.stepwise`)."""
        self._projector = projector
        self._machine = projector.machine
        self._people = projector.people
        # The projector's own dict, which it only ever empties in place.
        self._positions = projector.positions
        self.ticked = projector.ticked  # the time of the last clock event folded
        self._changed: dict[str, Position] = {}
        self._removed: set[str] = set()
        self._clock = 0

    def touchpoint(
        self, log_position: int, key: str, mark: Mark, seen: Sighting | None
    ) -> tuple[str, Position, Regrouped]:
        """The person the touchpoint is part of, their position after it (as of the last
        clock event), and how it changed who is who."""
        machine = self._machine
        positions = self._positions
        at = mark.occurred_at
        self._clock = max(self._clock, at)
        ticked = self.ticked
        person, moved = self._people.place(log_position, key, seen, mark.event_id, at)
        # Not `if moved`: compiled, a named tuple is true whenever it has fields.
        if moved.changed or moved.gone:
            self._regroup(moved, log_position)
            return person, positions[person], moved
        position = positions.get(person) or self._projector.positions_of([person])[person]
        if machine.is_late(position, mark):
            earlier = self._people.touchpoints([person], before=log_position).get(person, [])
            position = machine.replay(person, [*map(machine.mark_folded, earlier), mark], ticked)
            positions[person] = position
        else:
            machine.step(position, mark)
            if ticked is not None and ticked > at:
                machine.advance(position, ticked)
        self._changed[person] = position
        return person, position, moved

    def decision(self, log_position: int, decision: Decision) -> Regrouped:
        """A people's decision about who is who: the people it changed are folded again at
        once, and the ids it ended leave."""
        moved = self._people.decide(log_position, decision)
        if moved.changed or moved.gone:
            self._regroup(moved, log_position)
        return moved

    def _regroup(self, moved: Regrouped, log_position: int) -> None:
        machine, positions = self._machine, self._positions
        found = self._people.touchpoints(moved.changed, before=log_position + 1)
        for gone in moved.gone:
            positions.pop(gone, None)
            self._changed.pop(gone, None)
            self._removed.add(gone)
        for changed in moved.changed:
            marks = [machine.mark_folded(e) for e in found.get(changed, [])]
            replayed = machine.replay(changed, marks, self.ticked)
            positions[changed] = self._changed[changed] = replayed
            self._removed.discard(changed)

    def clock(self, at: int) -> list[str]:
        """Time has reached `at`: the customers whose positions it moved, in id order (none
        if the clock was there already)."""
        if self.ticked is not None and at <= self.ticked:
            return []
        self._projector.set_ticked(at)
        self.ticked = at
        moved: dict[str, Position] = {}
        self._projector.tick(at, moved)
        self._changed.update(moved)
        return sorted(moved)

    def changes(self, log_position: int) -> PageChanges:
        """What the page changed, once every entry up to `log_position` is folded."""
        projector = self._projector
        projector.note_written(self._changed)
        changed = self._changed.values()
        return PageChanges(
            list(changed),
            self._clock or None,
            log_position,
            ticked=self.ticked,
            details=DetailRows([p for p in changed if p.details_changed], projector.severity),
            removed=tuple(sorted(self._removed)),
            aliases=self._people.take_aliases(),
        )
