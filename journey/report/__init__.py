"""The analyst report (`journey report`): charts of the customers first seen in a date range,
in one self-contained HTML file. The charts are Plotly's; its script is written into the file
once, so the report opens anywhere, offline. A click on a funnel step, a flow between stages
or a cell of the frictions' heat map opens the sales page listing the customers behind it.

Each section is a function of what one pass over those customers gathered (`Gathered`),
listed in `SECTIONS` in the order shown: a new chart is one more function there."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import click
import orjson

from consumers.backtest import Window
from engine.definition import load_definition
from journey import render
from journey.backtest import run_backtest
from journey.bootstrap import Engine
from journey.cohort import Range
from journey.console import catch_up, engine_for, say
from journey.report.action_charts import acted_against_not, action_outcomes
from journey.report.backtest_charts import backtest_owners, backtest_rules
from journey.report.gathered import Backtested, Section, gather
from journey.report.journey_charts import (
    flow,
    friction_heatmap,
    funnel,
    funnel_breakdown,
    moments,
    time_in_stage,
)
from journey.report.marketing_charts import friction_attribution, stage_attribution, velocity
from projections.attribution import DEFAULT_ATTRIBUTES

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
    action_outcomes,
    acted_against_not,
    backtest_rules,
    backtest_owners,
]


def build_report(
    engine: Engine,
    within: Range = Range(),  # noqa: B008 (immutable)
    *,
    attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
    page: str | None = None,
    candidate: Path | None = None,
) -> str:
    """The report's HTML; with `page` (the sales page's address), chart clicks open the
    customers behind them there; with `candidate` (a journey definition), its action rules
    are backtested against the actions decided in the range's days."""
    found = gather(engine, within, attributes)
    if candidate is not None:
        tried = run_backtest(
            engine, load_definition(candidate), window=Window(within.start, within.end)
        )
        found.backtest = Backtested(candidate.name, tried)
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
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The address of `journey serve`, where a click on a chart lists the customers behind "
    'it ("" for no click-through).',
)
@click.option(
    "--backtest",
    "candidate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A candidate journey definition: its action rules tried on history beside the "
    "actions decided in the range's days (see journey backtest).",
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
    candidate: Path | None,
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
            engine,
            target,
            within,
            attributes=attributes or DEFAULT_ATTRIBUTES,
            page=page or None,
            candidate=candidate,
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
    candidate: Path | None = None,
) -> Path:
    target.write_text(
        build_report(engine, within, attributes=attributes, page=page, candidate=candidate),
        encoding="utf-8",
    )
    return target
