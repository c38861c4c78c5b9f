"""The query parameters that narrow what an analysis is about: a date range of first touch
(/api/attribution, /api/velocity, /api/customers), and the filters of /api/customers that
find the customers behind a figure of the analyst report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, HTTPException, Query

from engine.definition import JourneyDefinition
from journey.cohort import Range
from projections.views import CustomersBehind

_FROM = Query(
    alias="from", description="Only customers first seen on or after this day (UTC), as 2026-03-01."
)
_TO = Query(alias="to", description="Only customers first seen on or before this day (UTC).")


async def _range(
    first: Annotated[date | None, _FROM] = None, last: Annotated[date | None, _TO] = None
) -> Range:
    if first is not None and last is not None and last < first:
        raise HTTPException(422, f"to: {last} is before from, {first}")
    return Range(first, last)


Within = Annotated[Range, Depends(_range)]


@dataclass(frozen=True, slots=True)
class Behind:
    """The filters of /api/customers that find the customers behind a figure of the report,
    checked against the journey definition once an engine is at hand."""

    within: Range
    reached: str | None
    moved: tuple[str, str] | None
    friction_stage: str | None
    friction_channel: str | None

    def resolved(self, definition: JourneyDefinition) -> CustomersBehind | None:
        """The filter for the views; None if nothing is asked."""
        asked = (self.reached, self.moved, self.friction_stage, self.friction_channel)
        if all(value is None for value in asked) and self.within == Range():
            return None
        rank = None
        if self.reached is not None:
            if self.reached not in definition.ladder:
                raise HTTPException(422, f"reached: {self.reached!r} is no stage of the ladder")
            rank = definition.ladder.index(self.reached)
        return CustomersBehind(
            first_from=self.within.start,
            first_to=self.within.end,
            reached_rank=rank,
            moved=self.moved,
            friction_stage=self.friction_stage,
            friction_channel=self.friction_channel,
        )


async def _behind(
    within: Within,
    *,
    reached: Annotated[
        str | None, Query(description="Customers who got at least this far on the ladder.")
    ] = None,
    moved_from: Annotated[
        str | None,
        Query(description="With moved_to: customers who moved straight from this stage…"),
    ] = None,
    moved_to: Annotated[str | None, Query(description="…to this one, at any time.")] = None,
    friction_stage: Annotated[
        str | None,
        Query(
            description="Customers who met a friction (open or resolved) in this stage; "
            "empty: in no stage."
        ),
    ] = None,
    friction_channel: Annotated[
        str | None,
        Query(
            description="Customers who met a friction (open or resolved) on this channel; "
            "empty: on none recorded (with friction_stage: the same friction)."
        ),
    ] = None,
) -> Behind:
    if (moved_from is None) != (moved_to is None):
        raise HTTPException(422, "moved_from: given without moved_to, or the other way round")
    moved = (moved_from, moved_to) if moved_from is not None and moved_to is not None else None
    return Behind(within, reached, moved, friction_stage, friction_channel)


CustomersBehindFilter = Annotated[Behind, Depends(_behind)]
