"""Marketing's side of the loop, derived from a customer's recorded touchpoints and their
position: which campaigns and content came before each stage entry and each friction
(first-touch, last-touch and position-based credit), and how fast customers reach each stage
(sales velocity).

Pure functions of the log and the views: the touchpoints are put in the order they happened
(ties by event id) before anything is credited, so the same history gives the same credits
however its touchpoints arrived, on every replay.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from projections.position import Position

MODELS = ("first_touch", "last_touch", "position_based")
# The attributes credited unless asked for others: what marketing names its work by.
DEFAULT_ATTRIBUTES: tuple[str, ...] = ("campaign", "page", "asset")
# What a touchpoint without the attribute is credited as: shown, never left out.
UNKNOWN = "unknown"
DAY_MS = 86_400_000
# Position-based (U-shaped) credit: the first and last touchpoints' shares, the rest split
# evenly between the touchpoints in between.
_ENDS = 0.4


class Touched(NamedTuple):
    """A touchpoint as attribution reads it."""

    event_id: str
    occurred_at: int
    channel: str
    attributes: Mapping[str, str]


class Conversion(NamedTuple):
    """What is credited: a stage entry (`kind` "stage", `name` the stage entered) or a
    friction opening (`kind` "friction", `name` its kind, `stage` the stage it opened in)."""

    kind: str
    name: str
    stage: str | None
    at: int


class Credit(NamedTuple):
    """One model's share of one conversion given to one touchpoint."""

    conversion: Conversion
    model: str
    touch: Touched
    share: float


def in_order(touchpoints: Iterable[Touched]) -> list[Touched]:
    """Touchpoints in the order they happened; ties in event id order, not arrival order."""
    return sorted(touchpoints, key=lambda t: (t.occurred_at, t.event_id))


def shares(count: int, model: str) -> list[float]:
    """Each of `count` touchpoints' share of one conversion under a model, first first; they
    sum to 1 (none for no touchpoint)."""
    if count == 0:
        return []
    if model == "first_touch":
        return [1.0] + [0.0] * (count - 1)
    if model == "last_touch":
        return [0.0] * (count - 1) + [1.0]
    if model != "position_based":
        raise ValueError(f"attribution models are {', '.join(MODELS)}, not {model!r}")
    if count == 1:
        return [1.0]
    if count == 2:
        return [0.5, 0.5]
    middle = (1 - 2 * _ENDS) / (count - 2)
    return [_ENDS, *([middle] * (count - 2)), _ENDS]


def conversions(position: Position) -> list[Conversion]:
    """A customer's stage entries and friction openings, in the order they happened."""
    found = [Conversion("stage", e.stage, e.stage, e.entered_at) for e in position.history]
    found += [Conversion("friction", f.kind, f.stage, f.opened_at) for f in position.frictions]
    return sorted(found, key=lambda c: (c.at, c.kind, c.name))


def credits(position: Position, touchpoints: Iterable[Touched]) -> list[Credit]:
    """Every model's credit for each of the customer's conversions, over their touchpoints
    up to it (the one that made it included). A conversion no touchpoint came before (a
    stall at the very start, say) gets none."""
    ordered = in_order(touchpoints)
    times = [t.occurred_at for t in ordered]
    given = []
    for conversion in conversions(position):
        before = ordered[: bisect_right(times, conversion.at)]
        for model in MODELS:
            given += [
                Credit(conversion, model, touch, share)
                for touch, share in zip(before, shares(len(before), model), strict=True)
                if share
            ]
    return given


class CreditKey(NamedTuple):
    """What credit is summed by: the model, what was converted, and the attribute, its value
    and the channel of the touchpoints credited."""

    model: str
    kind: str
    name: str
    stage: str | None
    attribute: str
    value: str
    channel: str


@dataclass(slots=True)
class Attribution:
    """Credit summed over customers, per `CreditKey`; `conversions` counts what was credited
    (per kind and name), so a share of it can be shown."""

    attributes: Sequence[str] = DEFAULT_ATTRIBUTES
    credit: dict[CreditKey, float] = field(default_factory=lambda: defaultdict(float))
    conversions: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, position: Position, touchpoints: Iterable[Touched]) -> None:
        """Adds one customer's credits."""
        given = credits(position, touchpoints)
        for conversion in {c.conversion for c in given}:
            self.conversions[conversion.kind, conversion.name] += 1
        for c in given:
            for attribute in self.attributes:
                value = c.touch.attributes.get(attribute) or UNKNOWN
                key = CreditKey(
                    c.model,
                    c.conversion.kind,
                    c.conversion.name,
                    c.conversion.stage,
                    attribute,
                    value,
                    c.touch.channel or UNKNOWN,
                )
                self.credit[key] += c.share

    def rows(self) -> list[tuple[CreditKey, float]]:
        """The sums, the most credit first (then by key, so the order is the same each time)."""
        return sorted(
            ((key, round(total, 6)) for key, total in self.credit.items()),
            key=lambda row: (-row[1], tuple(v or "" for v in row[0])),
        )


def first_entries(position: Position) -> dict[str, int]:
    """When the customer first entered each stage they entered."""
    entered: dict[str, int] = {}
    for entry in position.history:
        entered.setdefault(entry.stage, entry.entered_at)
    return entered


def month_of(at: int) -> str:
    """The month (UTC) of a time in milliseconds: "2026-03"."""
    return datetime.fromtimestamp(at / 1000, UTC).strftime("%Y-%m")


class Velocity(NamedTuple):
    """Of the customers first seen in `month` who entered `stage`: how many, and the median
    days from their first touchpoint to their first entry into it."""

    month: str
    stage: str
    customers: int
    median_days: float


@dataclass(slots=True)
class SalesVelocity:
    """Days from first touchpoint to the first entry into each stage, gathered customer by
    customer, per month of first touch (UTC)."""

    days: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, position: Position) -> None:
        if position.first_at is None:
            return
        month = month_of(position.first_at)
        for stage, at in first_entries(position).items():
            self.days[month, stage].append(max(0, at - position.first_at) / DAY_MS)

    def rows(self, order: Sequence[str] = ()) -> list[Velocity]:
        """By month, then in `order` (stages not in it after, by name)."""
        return [
            Velocity(month, stage, len(found), round(statistics.median(found), 2))
            for (month, stage), found in sorted(
                self.days.items(), key=lambda item: _ranked(item[0], order)
            )
        ]


def velocity(positions: Iterable[Position], order: Sequence[str] = ()) -> list[Velocity]:
    """Sales velocity per month of first touch (UTC) and stage: by month, then in `order`
    (stages not in it after, by name)."""
    gathered = SalesVelocity()
    for position in positions:
        gathered.add(position)
    return gathered.rows(order)


def _ranked(key: tuple[str, str], order: Sequence[str]) -> tuple[str, int, str]:
    month, stage = key
    return month, order.index(stage) if stage in order else len(order), stage
