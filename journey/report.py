"""The analyst report (`journey report`): charts of the whole journey view in one
self-contained HTML file. The charts are Plotly's; its script is written into the file once,
so the report opens anywhere, offline."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from pathlib import Path

import click
import plotly.graph_objects as go

from journey import render
from journey.bootstrap import Engine
from journey.console import catch_up, engine_for, say

DAY_MS = 86_400_000
_OUTCOME_COLOURS = {"positive": "#1a7f37", "neutral": "#8c959f", "negative": "#cf222e"}


def build_report(engine: Engine) -> str:
    """The report's HTML."""
    definition = engine.definition
    view = engine.view
    clock = view.clock() or 0
    label = {stage: render.label(definition, stage) for stage in definition.stage_ids}
    flows: Counter[tuple[str, str]] = Counter()
    durations: dict[str, list[float]] = defaultdict(list)
    customers = 0
    for position in view.all_positions():
        customers += 1
        history = position.history
        for entry, following in zip(history, [*history[1:], None], strict=True):
            end = following.entered_at if following else clock
            durations[entry.stage].append(max(0, end - entry.entered_at) / DAY_MS)
            if following is not None:
                flows[entry.stage, following.stage] += 1
    figures = [
        ("Stage funnel", "Customers who reached each stage.", _funnel(engine, label)),
        ("Stage-to-stage flow", "How customers moved between stages.", _sankey(flows, label)),
        (
            "Time in stage",
            "Days spent in each stage (the current stage counts up to the journey clock).",
            _time_in_stage(durations, label, definition.stage_ids),
        ),
        (
            "Frictions by stage and channel",
            "Open and resolved frictions, where they happened.",
            _friction_heatmap(engine, label),
        ),
        (
            "Moments of truth by channel",
            "How the moments of truth went, per channel.",
            _moments(engine),
        ),
    ]
    sections = []
    for index, (title, caption, figure) in enumerate(figures):
        figure.update_layout(margin={"t": 30, "l": 40, "r": 20, "b": 40}, height=420)
        chart = figure.to_html(full_html=False, include_plotlyjs=index == 0)
        sections.append(
            f'<section data-chart="{index}"><h2>{html.escape(title)}</h2>'
            f"<p>{html.escape(caption)}</p>{chart}</section>"
        )
    heading = html.escape(definition.journey.name)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{heading}: journey report</title><style>{_STYLE}</style></head><body>"
        f"<h1>{heading}: journey report</h1>"
        f"<p class='meta'>{customers} customers, journey clock {render.iso(clock) or 'not set'}"
        "</p>" + "".join(sections) + "</body></html>"
    )


def _funnel(engine: Engine, label: dict[str, str]) -> go.Figure:
    counts = engine.view.funnel(engine.definition.ladder)
    on_ladder = [c for c in counts if c.stage in engine.definition.ladder]
    return go.Figure(
        go.Funnel(
            y=[label.get(c.stage, c.stage) for c in on_ladder],
            x=[c.reached for c in on_ladder],
            textinfo="value+percent initial",
            marker={"color": "#0969da"},
        )
    )


def _sankey(flows: Counter[tuple[str, str]], label: dict[str, str]) -> go.Figure:
    stages = sorted({stage for pair in flows for stage in pair}, key=list(label).index)
    index = {stage: i for i, stage in enumerate(stages)}
    pairs = sorted(flows.items())
    return go.Figure(
        go.Sankey(
            node={"label": [label.get(s, s) for s in stages], "pad": 18, "thickness": 16},
            link={
                "source": [index[a] for (a, _), _ in pairs],
                "target": [index[b] for (_, b), _ in pairs],
                "value": [n for _, n in pairs],
            },
        )
    )


def _time_in_stage(
    durations: dict[str, list[float]], label: dict[str, str], order: tuple[str, ...]
) -> go.Figure:
    figure = go.Figure()
    for stage in order:
        if durations.get(stage):
            figure.add_trace(
                go.Box(x=durations[stage], name=label.get(stage, stage), boxpoints=False)
            )
    figure.update_layout(showlegend=False, xaxis_title="days")
    return figure


def _friction_heatmap(engine: Engine, label: dict[str, str]) -> go.Figure:
    cells = engine.view.friction_matrix("stage", "channel", open_only=False)
    stages = [s for s in label if any(cell[0] == s for cell in cells)]
    channels = sorted({cell[1] or "none" for cell in cells})
    counts = {(stage, channel or "none"): n for stage, channel, n in cells}
    return go.Figure(
        go.Heatmap(
            z=[[counts.get((stage, channel), 0) for channel in channels] for stage in stages],
            x=channels,
            y=[label[s] for s in stages],
            colorscale="Reds",
            hovertemplate="%{y} · %{x}: %{z} frictions<extra></extra>",
        )
    )


def _moments(engine: Engine) -> go.Figure:
    tally: Counter[tuple[str, str]] = Counter()
    channels: set[str] = set()
    for _, channel, outcome, count in engine.view.moment_outcomes():
        tally[channel, outcome or "neutral"] += count
        channels.add(channel)
    ordered = sorted(channels)
    figure = go.Figure(
        [
            go.Bar(
                name=outcome,
                x=ordered,
                y=[tally[channel, outcome] for channel in ordered],
                marker={"color": colour},
            )
            for outcome, colour in _OUTCOME_COLOURS.items()
        ]
    )
    figure.update_layout(barmode="stack", yaxis_title="moments of truth")
    return figure


_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:68rem;color:#1f2328}"
    "h1{font-size:1.5rem}h2{font-size:1.1rem;margin:2rem 0 .2rem}"
    "p{color:#57606a;margin:.2rem 0 .6rem}.meta{font-size:.9rem}"
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
@click.pass_context
def report(ctx: click.Context, target: Path) -> None:
    """Write the analyst report: the stage funnel, stage-to-stage flow, time in stage,
    frictions by stage and channel, and moments of truth by channel, as charts in one
    self-contained HTML file."""
    with engine_for(ctx) as engine:
        catch_up(engine)
        written = write_report(engine, target)
    say(f"Wrote the report to {written}")


def write_report(engine: Engine, target: Path) -> Path:
    target.write_text(build_report(engine), encoding="utf-8")
    return target
