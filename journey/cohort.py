"""The customers an analysis is about: those first seen in a date range, with their positions
and, for attribution, their recorded touchpoints. Shared by the report and the API, which
only present what `projections.attribution` computes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice

from journey.bootstrap import Engine
from journey.people import people_touchpoints
from projections.attribution import Attribution, Touched, Velocity, velocity
from projections.position import Position

CHUNK = 500  # customers whose touchpoints are read at once


@dataclass(frozen=True, slots=True)
class Range:
    """Customers whose first touchpoint happened on or after `first` and on or before `last`
    (days, UTC); either end may be open."""

    first: date | None = None
    last: date | None = None

    @property
    def start(self) -> int | None:
        """The first millisecond in range."""
        return None if self.first is None else _millis(self.first)

    @property
    def end(self) -> int | None:
        """The first millisecond after the range."""
        return None if self.last is None else _millis(self.last + timedelta(days=1))

    def holds(self, position: Position) -> bool:
        at = position.first_at
        if at is None:
            return self.first is None and self.last is None
        start, end = self.start, self.end
        return (start is None or at >= start) and (end is None or at < end)

    def words(self) -> str:
        """What the range applies to, as titles say it."""
        if self.first is None and self.last is None:
            return "all customers"
        if self.last is None:
            return f"customers first seen on or after {self.first} (UTC)"
        if self.first is None:
            return f"customers first seen on or before {self.last} (UTC)"
        return f"customers first seen {self.first} to {self.last} (UTC)"

    def query(self) -> dict[str, str]:
        """The range as the API's query parameters."""
        given = {"from": self.first, "to": self.last}
        return {name: day.isoformat() for name, day in given.items() if day is not None}


def _millis(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def positions(engine: Engine, within: Range) -> Iterator[Position]:
    """The positions of the customers in range, by customer id."""
    return (p for p in engine.view.all_positions() if within.holds(p))


def with_touchpoints(
    engine: Engine, found: Iterator[Position]
) -> Iterator[tuple[Position, list[Touched]]]:
    """Each position with its customer's recorded touchpoints, read a chunk of customers at
    a time."""
    while chunk := list(islice(found, CHUNK)):
        streams = people_touchpoints(engine, [p.customer_id for p in chunk])
        for position in chunk:
            yield (
                position,
                [
                    Touched(str(tp.event_id), tp.occurred_at, tp.channel, tp.attributes)
                    for tp in streams.get(position.customer_id, ())
                ],
            )


def attribution(engine: Engine, within: Range, attributes: Sequence[str]) -> Attribution:
    """Credit for stage entries and frictions of the customers in range."""
    summed = Attribution(tuple(attributes))
    for position, touchpoints in with_touchpoints(engine, positions(engine, within)):
        summed.add(position, touchpoints)
    return summed


def sales_velocity(engine: Engine, within: Range) -> list[Velocity]:
    """Sales velocity of the customers in range."""
    return velocity(positions(engine, within), engine.definition.stage_ids)
