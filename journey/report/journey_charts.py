"""The report's charts of the journey: the stage funnel and its breakdowns, the flow between
stages, time in stage, frictions by stage and channel, and moments of truth."""

from __future__ import annotations

import html
from collections import Counter

import plotly.graph_objects as go

from journey import render
from journey.report.gathered import BREAKDOWNS, Gathered, Shown, click_words, linked
from projections.attribution import UNKNOWN

OUTCOMES = {"positive": "#1a7f37", "neutral": "#8c959f", "negative": "#cf222e", UNKNOWN: "#d0d7de"}


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
        "whether they entered the ones below it or skipped them. " + click_words(page, "a step"),
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
        f"<td class='num'>{linked(page, found.behind(moved_from=a, moved_to=b), str(n))}</td>"
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
        + click_words(page, "a link or a number in the table"),
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
        + click_words(page, "a cell"),
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
