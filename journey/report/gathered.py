"""What the analyst report's sections draw: one pass over the customers in its date range,
their positions and their touchpoints, and the shape of a section."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

import plotly.graph_objects as go

from consumers.backtest import Backtest
from consumers.effectiveness import Effect, Period
from engine.definition import JourneyDefinition
from journey import render
from journey.bootstrap import Engine
from journey.cohort import Range, positions, with_touchpoints
from journey.effectiveness import read_effectiveness
from projections.attribution import UNKNOWN, Attribution, SalesVelocity, in_order

DAY_MS = 86_400_000
BREAKDOWNS = ("channel of first touchpoint", "rep", "team")


@dataclass(slots=True)
class Gathered:
    """What the sections draw: one pass over the customers in range, their positions and
    touchpoints. Stages are in one order everywhere: the definition's."""

    definition: JourneyDefinition
    within: Range
    clock: int
    attributes: Sequence[str]
    customers: int = 0
    # Customers who got at least this far on the ladder: in all, and per breakdown and group.
    reached: Counter[str] = field(default_factory=Counter)
    reached_by: dict[str, dict[str, Counter[str]]] = field(
        default_factory=lambda: {by: defaultdict(Counter) for by in BREAKDOWNS}
    )
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    days_in_stage: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # Frictions, open and resolved, by the stage and channel they opened in.
    frictions: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    moments: Counter[tuple[str, str]] = field(default_factory=Counter)
    attribution: Attribution = field(default_factory=Attribution)
    velocity: SalesVelocity = field(default_factory=SalesVelocity)
    # What the next actions decided on the range's days achieved, by rule.
    effects: list[Effect] = field(default_factory=list)
    effect_labels: dict[str, str] = field(default_factory=dict)
    within_days: int = 14
    backtest: Backtested | None = None  # a candidate definition tried, if asked for

    def effect_label(self, rule: str) -> str:
        return self.effect_labels.get(rule, rule)

    def action_days(self) -> str:
        """Which actions the action charts count, in words."""
        first, last = self.within.first, self.within.last
        if first is None and last is None:
            return "on any day"
        if last is None:
            return f"on or after {first} (UTC)"
        if first is None:
            return f"on or before {last} (UTC)"
        return f"from {first} to {last} (UTC)"

    @property
    def order(self) -> tuple[str, ...]:
        return self.definition.stage_ids

    def label(self, stage: str | None) -> str:
        return UNKNOWN if stage is None else render.label(self.definition, stage)

    def behind(self, **filters: str) -> str:
        """The query of the sales page that lists the customers behind a figure."""
        return urlencode({**filters, **self.within.query()})


def gather(engine: Engine, within: Range, attributes: Sequence[str]) -> Gathered:
    definition = engine.definition
    found = Gathered(definition, within, engine.view.clock() or 0, attributes)
    found.attribution = Attribution(tuple(attributes))
    ladder = definition.ladder
    for position, touchpoints in with_touchpoints(engine, positions(engine, within)):
        found.customers += 1
        ordered = in_order(touchpoints)
        groups = {
            "channel of first touchpoint": ordered[0].channel if ordered else UNKNOWN,
            "rep": position.rep or UNKNOWN,
            "team": definition.team_of(position.rep) or UNKNOWN,
        }
        for rank, stage in enumerate(ladder):
            if position.peak_rank >= rank:
                found.reached[stage] += 1
                for by, group in groups.items():
                    found.reached_by[by][group][stage] += 1
        history = position.history
        for entry, following in zip(history, [*history[1:], None], strict=True):
            end = following.entered_at if following else found.clock
            found.days_in_stage[entry.stage].append(max(0, end - entry.entered_at) / DAY_MS)
            if following is not None:
                found.moves[entry.stage, following.stage] += 1
        for friction in position.frictions:
            found.frictions[friction.stage, friction.channel] += 1
        for moment in position.moments:
            found.moments[moment.channel, moment.outcome or UNKNOWN] += 1
        found.attribution.add(position, touchpoints)
        found.velocity.add(position)
    period = Period(within.start, within.end)
    effects = read_effectiveness(engine, by="rule", period=period, within_days=found.within_days)
    found.effects, found.effect_labels = effects.groups, effects.labels
    return found


@dataclass(frozen=True, slots=True)
class Backtested:
    """A candidate definition, by name, and its backtest."""

    name: str
    result: Backtest


@dataclass(frozen=True, slots=True)
class Shown:
    """A section of the report: its title (what exactly is counted), a caption, its chart,
    and any HTML under it."""

    title: str
    caption: str
    figure: go.Figure
    after: str = ""


Section = Callable[[Gathered, str | None], Shown | None]


def click_words(page: str | None, what: str) -> str:
    return f"Click {what} to list the customers behind it." if page else ""


def linked(page: str | None, query: str, text: str) -> str:
    if not page:
        return html.escape(text)
    return f"<a href='{html.escape(f'{page}/?{query}')}'>{html.escape(text)}</a>"


def stacked_bars(labels: list[str], parts: list[tuple[str, list[int], str]]) -> go.Figure:
    """Horizontal bars, one per label, each split into `parts` (what, counts, colour), with
    the counts written in them."""
    figure = go.Figure(
        [
            go.Bar(
                name=words,
                y=labels,
                x=counts,
                orientation="h",
                marker_color=colour,
                text=[count or "" for count in counts],
                textposition="inside",
                hovertemplate=f"%{{y}}: %{{x}} {words}<extra></extra>",
            )
            for words, counts, colour in parts
        ]
    )
    figure.update_layout(
        barmode="stack",
        height=140 + 40 * len(labels),
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure
