"""The journey views: what they hold and the port every store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import JourneyError
from projections.position import Position

JOURNEY_PROJECTION = "journey"


class ViewConflict(JourneyError):
    """The view moved on under this runner (another runner wrote it): reload and go on."""


class ViewOutOfDate(JourneyError):
    """The view was built with another journey definition and must be rebuilt."""


@dataclass(frozen=True, slots=True)
class PageChanges:
    """What one page of events changed, committed in one transaction with its position."""

    positions: Sequence[Position]
    clock: int | None
    position: int


@dataclass(frozen=True, slots=True)
class StageCount:
    stage: str
    reached: int  # customers who got at least this far on the ladder
    current: int  # customers in the stage now


class JourneyView(ABC):
    """Positions and funnel counts, with the log position they reflect."""

    @abstractmethod
    def tracking(self, projection: str) -> tuple[int, str | None]:
        """The last log position committed for a projection (0 if none) and the digest of the
        journey definition it was built with."""

    @abstractmethod
    def load_positions(self, customer_ids: Iterable[str]) -> dict[str, Position]:
        """The stored positions of those customers that have one."""

    @abstractmethod
    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        """Writes a page's changes and its position in one transaction. Raises ViewConflict if
        the stored position is not behind the page's."""

    @abstractmethod
    def reset(self) -> None:
        """Empties the views, so that they can be rebuilt from the start of the log."""

    @abstractmethod
    def position(self, customer_id: str) -> Position | None: ...

    @abstractmethod
    def funnel(self, ladder: Sequence[str]) -> list[StageCount]:
        """Counts per stage of the ladder (and of any other stage a customer is in)."""

    @abstractmethod
    def clock(self) -> int | None:
        """The journey's clock: the latest time any touchpoint happened."""

    @abstractmethod
    def close(self) -> None: ...


def funnel_counts(
    ladder: Sequence[str], current: dict[str | None, int], peaks: dict[int, int]
) -> list[StageCount]:
    """Stage counts from customers per current stage and per highest ladder rank reached."""
    current = dict(current)
    counts = []
    for rank, stage in enumerate(ladder):
        reached = sum(n for peak, n in peaks.items() if peak >= rank)
        counts.append(StageCount(stage, reached, current.pop(stage, 0)))
    counts.extend(StageCount(stage, n, n) for stage, n in sorted(current.items(), key=str) if stage)
    return counts


def position_row(position: Position, state: bytes | str) -> tuple[Any, ...]:
    """A position as a row of the positions table, with its encoded state."""
    p = position
    return (
        p.customer_id,
        p.stage,
        p.since,
        p.peak_rank,
        p.first_at,
        p.last_at,
        p.touchpoints,
        state,
    )
