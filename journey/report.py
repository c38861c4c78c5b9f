"""The analyst report (`journey report`): charts of the customers first seen in a date range,
in one self-contained HTML file. The charts are Plotly's; its script is written into the file
once, so the report opens anywhere, offline. A click on a funnel step, a flow between stages
or a cell of the frictions' heat map opens the sales page listing the customers behind it.

Each section is a function of what one pass over those customers gathered (`Gathered`),
listed in `SECTIONS` in the order shown: a new chart is one more function there."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlencode

import click
import orjson
import plotly.graph_objects as go

from engine.definition import JourneyDefinition
from journey import render
from journey.bootstrap import Engine
from journey.cohort import Range, positions, with_touchpoints
from journey.console import catch_up, engine_for, say
from projections.attribution import (
    DEFAULT_ATTRIBUTES,
    MODELS,
    UNKNOWN,
    Attribution,
    CreditKey,
    SalesVelocity,
    Velocity,
    in_order,
)

DAY_MS = 86_400_000
OUTCOMES = {"positive": "#1a7f37", "neutral": "#8c959f", "negative": "#cf222e", UNKNOWN: "#d0d7de"}
BREAKDOWNS = ("channel of first touchpoint", "rep", "team")
TOP_CREDITED = 25  # rows of an attribution chart: the values with the most credit
MODEL_WORDS = {
    "first_touch": "first touch",
    "last_touch": "last touch",
    "position_based": "position-based (40/20/40)",
}


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
    return found


class Shown:
    """A section of the report: its title (what exactly is counted), a caption, its chart,
    and any HTML under it."""

    def __init__(self, title: str, caption: str, figure: go.Figure, after: str = "") -> None:
        self.title, self.caption, self.figure, self.after = title, caption, figure, after


Section = Callable[[Gathered, str | None], Shown | None]


def funnel(found: Gathered, page: str | None) -> Shown:
    ladder = found.definition.ladder
    figure = go.Figure(
        go.Funnel(
            y=[found.label(s) for s in ladder],
            x=[found.reached[s] for s in ladder],
            customdata=[found.behind(reached=s) for s in ladder],
            textinfo="value+percent initial",
            marker={"color": "#0969da"},
            hovertemplate="%{y}: %{x} customers got at least this far<extra></extra>",
        )
    )
    return Shown(
        f"Stage funnel: {found.within.words()} who got at least as far as each stage",
        "A customer counts at every stage of the ladder up to the furthest they entered, "
        "whether they entered the ones below it or skipped them. " + _click(page, "a step"),
        figure,
    )


def funnel_breakdown(found: Gathered, page: str | None) -> Shown:
    ladder = found.definition.ladder
    labels = [found.label(s) for s in ladder]
    figure = go.Figure()
    visible_per_breakdown: list[list[bool]] = []
    traces = 0
    for by in BREAKDOWNS:
        groups = sorted(found.reached_by[by], key=lambda g: (g == UNKNOWN, g))
        for group in groups:
            counts = found.reached_by[by][group]
            figure.add_trace(
                go.Bar(
                    name=group,
                    x=labels,
                    y=[counts[s] for s in ladder],
                    text=[counts[s] for s in ladder],
                    textposition="outside",
                    visible=by == BREAKDOWNS[0],
                    hovertemplate=f"{html.escape(group)} · %{{x}}: %{{y}} customers<extra></extra>",
                )
            )
        visible_per_breakdown.append([False] * traces + [True] * len(groups))
        traces += len(groups)
    buttons = [
        {
            "label": f"by {by}",
            "method": "update",
            "args": [{"visible": shown + [False] * (traces - len(shown))}],
        }
        for by, shown in zip(BREAKDOWNS, visible_per_breakdown, strict=True)
    ]
    figure.update_layout(
        barmode="group",
        yaxis_title="customers",
        xaxis={"categoryorder": "array", "categoryarray": labels},
        updatemenus=[{"buttons": buttons, "x": 1, "y": 1.15, "xanchor": "right"}],
    )
    return Shown(
        f"Stage funnel by channel, rep and team: {found.within.words()} who got at least as "
        "far as each stage",
        "Each customer is in one group: the channel of their first touchpoint, their rep "
        '(the rep of their first contact with one), or that rep\'s team; "unknown" is '
        "customers without one. Choose the breakdown above the chart.",
        figure,
    )


def flow(found: Gathered, page: str | None) -> Shown:
    stages = [s for s in found.order if any(s in pair for pair in found.moves)]
    stages += sorted({s for pair in found.moves for s in pair} - set(stages))
    index = {stage: i for i, stage in enumerate(stages)}
    moves = sorted(found.moves.items(), key=lambda m: (index[m[0][0]], index[m[0][1]]))
    into = Counter[str]()
    out = Counter[str]()
    for (a, b), n in moves:
        out[a] += n
        into[b] += n
    figure = go.Figure(
        go.Sankey(
            node={
                "label": [f"{found.label(s)} ({into[s]} in, {out[s]} out)" for s in stages],
                "pad": 18,
                "thickness": 16,
            },
            link={
                "source": [index[a] for (a, _), _ in moves],
                "target": [index[b] for (_, b), _ in moves],
                "value": [n for _, n in moves],
                "label": [f"{n}" for _, n in moves],
                "customdata": [found.behind(moved_from=a, moved_to=b) for (a, b), _ in moves],
                "hovertemplate": "%{source.label} → %{target.label}: %{value} moves<extra></extra>",
            },
        )
    )
    rows = "".join(
        f"<tr><td>{html.escape(found.label(a))} → {html.escape(found.label(b))}</td>"
        f"<td class='num'>{_linked(page, found.behind(moved_from=a, moved_to=b), str(n))}</td>"
        "</tr>"
        for (a, b), n in moves
    )
    table = (
        "<table data-testid='moves'><tr><th>move</th><th>moves</th></tr>" + rows + "</table>"
        if moves
        else ""
    )
    return Shown(
        f"Stage-to-stage flow: moves between stages of {found.within.words()}",
        "Each link is the moves straight from one stage to another (a customer who moved "
        "twice counts twice); each stage says how many moves came in and went out. "
        + _click(page, "a link or a number in the table"),
        figure,
        table,
    )


def time_in_stage(found: Gathered, page: str | None) -> Shown:
    figure = go.Figure()
    stages = [s for s in found.order if found.days_in_stage.get(s)]
    for stage in stages:
        figure.add_trace(
            go.Box(x=found.days_in_stage[stage], name=found.label(stage), boxpoints=False)
        )
    figure.update_layout(
        showlegend=False,
        xaxis_title="days",
        yaxis={"categoryorder": "array", "categoryarray": [found.label(s) for s in stages]},
    )
    return Shown(
        f"Time in stage: days each stay in a stage lasted, {found.within.words()}",
        "One value per stay (a customer back in a stage stays twice); the current stay counts "
        f"up to the journey clock, {render.iso(found.clock) or 'not set'}.",
        figure,
    )


def friction_heatmap(found: Gathered, page: str | None) -> Shown:
    stages = [s for s in found.order if any(cell[0] == s for cell in found.frictions)]
    stages += sorted({s for s, _ in found.frictions if s is not None} - set(stages))
    rows: list[str | None] = [
        *stages,
        *([None] if (None in {s for s, _ in found.frictions}) else []),
    ]
    named = sorted({c for _, c in found.frictions if c is not None})
    columns: list[str | None] = [
        *named,
        *([None] if None in {c for _, c in found.frictions} else []),
    ]
    z = [[found.frictions[stage, channel] for channel in columns] for stage in rows]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[channel or UNKNOWN for channel in columns],
            y=[found.label(stage) for stage in rows],
            customdata=[
                [
                    found.behind(friction_stage=stage or "", friction_channel=channel or "")
                    if found.frictions[stage, channel]
                    else ""
                    for channel in columns
                ]
                for stage in rows
            ],
            texttemplate="%{z}",
            colorscale="Reds",
            hovertemplate="%{y} · %{x}: %{z} frictions<extra></extra>",
        )
    )
    figure.update_layout(yaxis={"autorange": "reversed"}, xaxis_title="channel")
    return Shown(
        f"Frictions by stage and channel: frictions (open and resolved) {found.within.words()} met",
        'Each cell counts the frictions that opened in that stage on that channel; "unknown" '
        "is frictions opened in no stage or on no channel (a stall, say). "
        + _click(page, "a cell"),
        figure,
    )


def moments(found: Gathered, page: str | None) -> Shown:
    channels = sorted({channel for channel, _ in found.moments})
    figure = go.Figure(
        [
            go.Bar(
                name=outcome,
                x=channels,
                y=[found.moments[channel, outcome] for channel in channels],
                text=[found.moments[channel, outcome] or "" for channel in channels],
                marker={"color": colour},
            )
            for outcome, colour in OUTCOMES.items()
        ]
    )
    figure.update_layout(barmode="stack", yaxis_title="moments of truth")
    return Shown(
        f"Moments of truth by channel and how they went, {found.within.words()}",
        'Every moment of truth of these customers, by its outcome; "unknown" is moments no '
        "outcome was recorded for.",
        figure,
    )


def _credited(found: Gathered, converted: str) -> tuple[list[CreditKey], dict[str, float]]:
    """The credits of one kind of conversion, and each row's total under position-based."""
    keys = [key for key in found.attribution.credit if key.kind == converted]
    totals: dict[str, float] = defaultdict(float)
    for key in keys:
        if key.model == "position_based":
            totals[_row(key)] += found.attribution.credit[key]
    return keys, totals


def _row(key: CreditKey) -> str:
    return f"{key.attribute}: {key.value} · {key.channel}"


def _attribution(found: Gathered, converted: str, columns_named: str) -> go.Figure | None:
    keys, totals = _credited(found, converted)
    if not keys:
        return None
    top = sorted(totals, key=lambda row: (-totals[row], row))[:TOP_CREDITED]
    seen = {key.stage for key in keys}
    columns: list[str | None] = [s for s in found.order if s in seen]
    columns += sorted(s for s in seen if s is not None and s not in columns)
    columns += [None] if None in seen else []
    figure = go.Figure()
    for model in MODELS:
        cells: dict[tuple[str, str | None], float] = defaultdict(float)
        for key in keys:
            if key.model == model:
                cells[_row(key), key.stage] += found.attribution.credit[key]
        z = [[round(cells[row, column], 2) for column in columns] for row in top]
        figure.add_trace(
            go.Heatmap(
                z=z,
                x=[found.label(c) for c in columns],
                y=top,
                texttemplate="%{z}",
                colorscale="Blues",
                visible=model == "position_based",
                name=MODEL_WORDS[model],
                hovertemplate=f"%{{y}} → %{{x}}: %{{z}} {columns_named} ({MODEL_WORDS[model]})"
                "<extra></extra>",
            )
        )
    figure.update_layout(
        height=max(420, 24 * len(top) + 120),
        yaxis={"autorange": "reversed"},
        updatemenus=[
            {
                "buttons": [
                    {
                        "label": MODEL_WORDS[model],
                        "method": "update",
                        "args": [{"visible": [m == model for m in MODELS]}],
                    }
                    for model in MODELS
                ],
                "active": MODELS.index("position_based"),
                "x": 1,
                "y": 1.12,
                "xanchor": "right",
            }
        ],
    )
    return figure


def _attribution_caption(found: Gathered) -> str:
    return (
        f"Credit for each conversion is split over the customer's touchpoints up to it: all to "
        "the first (first touch), all to the last (last touch), or 40% to each end and 20% "
        "between (position-based; choose above the chart). Rows are the values of "
        f"{', '.join(found.attributes)} with the channel of the touchpoints credited "
        f'("unknown": touchpoints without that attribute), the {TOP_CREDITED} with the most '
        "position-based credit; /api/attribution lists all."
    )


def stage_attribution(found: Gathered, page: str | None) -> Shown | None:
    figure = _attribution(found, "stage", "stage entries")
    if figure is None:
        return None
    return Shown(
        f"Campaigns and content before stage entries: credit for the stage entries of "
        f"{found.within.words()}",
        _attribution_caption(found),
        figure,
    )


def friction_attribution(found: Gathered, page: str | None) -> Shown | None:
    figure = _attribution(found, "friction", "frictions")
    if figure is None:
        return None
    return Shown(
        "Campaigns and content before frictions: credit for the frictions (open and resolved) "
        f"{found.within.words()} met, by the stage they opened in",
        _attribution_caption(found),
        figure,
    )


def velocity(found: Gathered, page: str | None) -> Shown:
    rows = found.velocity.rows(found.order)
    months = sorted({v.month for v in rows})
    stages = [s for s in found.order if any(v.stage == s for v in rows)]
    stages += sorted({v.stage for v in rows} - set(stages))
    cells = {(v.month, v.stage): v for v in rows}
    figure = go.Figure(
        go.Heatmap(
            z=[[_days(cells.get((m, s))) for s in stages] for m in months],
            x=[found.label(s) for s in stages],
            y=months,
            text=[[_velocity_text(cells.get((m, s))) for s in stages] for m in months],
            texttemplate="%{text}",
            colorscale="Purples",
            hovertemplate="first seen %{y}, %{x}: %{text}<extra></extra>",
        )
    )
    figure.update_layout(
        yaxis={"type": "category", "autorange": "reversed", "title": "month of first touchpoint"},
        height=max(300, 40 * len(months) + 140),
    )
    return Shown(
        "Sales velocity: median days from first touchpoint to first entering each stage, "
        f"{found.within.words()}, by month of first touch (UTC)",
        "Each cell: the median days, and of how many customers (only those who entered the "
        "stage count towards it).",
        figure,
    )


def _days(cell: Velocity | None) -> float | None:
    return None if cell is None else cell.median_days


def _velocity_text(cell: Velocity | None) -> str:
    return "" if cell is None else f"{cell.median_days:g} d ({cell.customers})"


# The report's sections, in order. A new one is a function of `Gathered` (and the sales
# page's address, for click-through) added here.
SECTIONS: list[Section] = [
    funnel,
    funnel_breakdown,
    flow,
    time_in_stage,
    friction_heatmap,
    moments,
    stage_attribution,
    friction_attribution,
    velocity,
]


def _click(page: str | None, what: str) -> str:
    return f"Click {what} to list the customers behind it." if page else ""


def _linked(page: str | None, query: str, text: str) -> str:
    if not page:
        return html.escape(text)
    return f"<a href='{html.escape(f'{page}/?{query}')}'>{html.escape(text)}</a>"


def build_report(
    engine: Engine,
    within: Range = Range(),  # noqa: B008 (immutable)
    *,
    attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
    page: str | None = None,
) -> str:
    """The report's HTML; with `page` (the sales page's address), chart clicks open the
    customers behind them there."""
    found = gather(engine, within, attributes)
    sections = []
    shown = [s for s in (section(found, page) for section in SECTIONS) if s is not None]
    for index, section in enumerate(shown):
        section.figure.update_layout(margin={"t": 40, "l": 40, "r": 20, "b": 40})
        if section.figure.layout.height is None:
            section.figure.update_layout(height=420)
        chart = section.figure.to_html(full_html=False, include_plotlyjs=index == 0)
        sections.append(
            f'<section data-chart="{index}"><h2>{html.escape(section.title)}</h2>'
            f"<p>{html.escape(section.caption)}</p>{chart}{section.after}</section>"
        )
    heading = html.escape(engine.definition.journey.name)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{heading}: journey report</title><style>{_STYLE}</style></head><body>"
        f"<h1>{heading}: journey report</h1>"
        f"<p class='meta'>{found.customers} customers in this report: "
        f"{html.escape(found.within.words())}; journey clock "
        f"{render.iso(found.clock) or 'not set'}</p>"
        + "".join(sections)
        + _CLICK_THROUGH.replace("PAGE", orjson.dumps(page).decode())
        + "</body></html>"
    )


# A click on a point that names the customers behind it opens them on the sales page.
_CLICK_THROUGH = """<script>
const page = PAGE;
for (const plot of document.querySelectorAll(".js-plotly-plot")) {
  plot.on("plotly_click", (event) => {
    const query = event.points.length ? event.points[0].customdata : null;
    if (page && typeof query === "string" && query) window.location.assign(`${page}/?${query}`);
  });
}
</script>"""

_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:68rem;color:#1f2328}"
    "h1{font-size:1.5rem}h2{font-size:1.1rem;margin:2rem 0 .2rem}"
    "p{color:#57606a;margin:.2rem 0 .6rem}.meta{font-size:.9rem}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.4rem 0}"
    "th,td{padding:.2rem .6rem;border-bottom:1px solid #eaeef2;text-align:left}"
    ".num{text-align:right}"
)


@click.command()
@click.option(
    "--out",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option(
    "--from",
    "first",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Only customers first seen on or after this day (UTC).",
)
@click.option(
    "--to",
    "last",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Only customers first seen on or before this day (UTC).",
)
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    help=f"A touchpoint attribute to credit (repeat for more) [default: "
    f"{', '.join(DEFAULT_ATTRIBUTES)}]",
)
@click.option(
    "--page",
    default="http://localhost:8000",
    show_default=True,
    help="The address of `journey serve`, where a click on a chart lists the customers behind "
    'it ("" for no click-through).',
)
@click.pass_context
def report(
    ctx: click.Context,
    *,
    target: Path,
    first: datetime | None,
    last: datetime | None,
    attributes: tuple[str, ...],
    page: str,
) -> None:
    """Write the analyst report of the customers first seen in a date range (all, unless
    given): the stage funnel (in all, and by channel, rep and team), stage-to-stage flow,
    time in stage, frictions by stage and channel, moments of truth by channel, the
    campaigns and content before stage entries and frictions, and sales velocity, as charts
    in one self-contained HTML file."""
    within = Range(_day(first), _day(last))
    if within.first and within.last and within.last < within.first:
        raise click.BadParameter(
            f"{within.last} is before --from, {within.first}", param_hint="--to"
        )
    with engine_for(ctx) as engine:
        catch_up(engine)
        written = write_report(
            engine, target, within, attributes=attributes or DEFAULT_ATTRIBUTES, page=page or None
        )
    say(f"Wrote the report to {written}")


def _day(given: datetime | None) -> date | None:
    return given.date() if given else None


def write_report(
    engine: Engine,
    target: Path,
    within: Range = Range(),  # noqa: B008 (immutable)
    *,
    attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
    page: str | None = None,
) -> Path:
    target.write_text(
        build_report(engine, within, attributes=attributes, page=page), encoding="utf-8"
    )
    return target
