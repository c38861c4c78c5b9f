"""The report's charts of the next actions: what each rule achieved (computed in
consumers.effectiveness), for the actions decided in the report's days."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from consumers.effectiveness import Effect
from journey.report.gathered import Gathered, Shown, stacked_bars

# What became of the actions, in the order the bars stack, with their colours.
_FATES = (
    ("done", "done", "#1a7f37"),
    ("open", "still open (accepted, snoozed or not yet)", "#8c959f"),
    ("dismissed", "dismissed by their owner", "#cf222e"),
    ("expired", "expired: nobody did it in time", "#bf8700"),
    ("cancelled", "cancelled: it no longer made sense", "#d4a72c"),
    ("superseded", "superseded by a more important one", "#0969da"),
)


def action_outcomes(found: Gathered, page: str | None) -> Shown | None:
    """Per rule, what became of its actions: a bar each, its parts stacked."""
    effects = found.effects
    if not effects:
        return None
    counts = {
        "done": [e.done for e in effects],
        "open": [e.still_open for e in effects],
        "dismissed": [e.dismissed for e in effects],
        "expired": [e.expired for e in effects],
        "cancelled": [e.cancelled for e in effects],
        "superseded": [e.superseded for e in effects],
    }
    figure = stacked_bars(
        [found.effect_label(e.key) for e in effects],
        [(words, counts[fate], colour) for fate, words, colour in _FATES],
    )
    return Shown(
        f"Next actions by rule: what became of the actions decided {found.action_days()}",
        "Each bar is a rule's actions, split by where they stand now. The journey ends an "
        "action by itself when nobody does it in time, when it no longer makes sense, or when "
        "a more important one needs its slot.",
        figure,
        _table(found),
    )


def acted_against_not(found: Gathered, page: str | None) -> Shown | None:
    """Per rule, the share of customers who moved on to a later stage within the window, for
    the actions acted on against the rest."""
    effects = [e for e in found.effects if e.acted.actions or e.not_acted.actions]
    if not effects:
        return None
    days = found.within_days
    figure = go.Figure(
        [
            _moved_on(found, effects, "acted on (accepted or done)", "#1a7f37", acted=True),
            _moved_on(found, effects, "not acted on", "#8c959f", acted=False),
        ]
    )
    figure.update_layout(barmode="group", yaxis={"title": "% moved on", "range": [0, 110]})
    return Shown(
        f"Customers who reached a later stage within {days} days of an action decided "
        f"{found.action_days()}, acted on against not",
        "Only actions whose window had passed by the journey's clock count. Reps choose what "
        "they act on, so this compares, it does not prove.",
        figure,
    )


def _moved_on(
    found: Gathered, effects: list[Effect], words: str, colour: str, *, acted: bool
) -> go.Bar:
    """Per rule, the share of one group's customers who moved on."""
    steps = [e.acted if acted else e.not_acted for e in effects]
    return go.Bar(
        name=f"{words}, {sum(s.actions for s in steps)} actions",
        x=[found.effect_label(e.key) for e in effects],
        y=[round(100 * s.moved_on / s.actions, 1) if s.actions else None for s in steps],
        customdata=[s.actions for s in steps],
        text=[_label(s.moved_on, s.actions) for s in steps],
        textposition="outside",
        marker_color=colour,
        hovertemplate=f"%{{x}}: %{{y}}% of %{{customdata}} {words}<extra></extra>",
    )


def _label(moved: int, total: int) -> str:
    return f"{moved} of {total}" if total else "none"


def _table(found: Gathered) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(found.effect_label(e.key))}</td><td class='num'>{e.proposed}</td>"
        f"<td class='num'>{e.taken_up}</td><td class='num'>{e.done}</td>"
        f"<td class='num'>{e.dismissed}</td>"
        f"<td class='num'>{'-' if e.median_hours_to_act is None else e.median_hours_to_act}</td>"
        f"<td>{html.escape(_reasons(e.dismissed_because))}</td>"
        "</tr>"
        for e in found.effects
    )
    return (
        "<table><tr><th>rule</th><th class='num'>proposed</th><th class='num'>taken up</th>"
        "<th class='num'>done</th><th class='num'>dismissed</th>"
        "<th class='num'>median hours to act</th><th>dismissed because</th></tr>"
        f"{rows}</table>"
    )


def _reasons(counted: dict[str, int]) -> str:
    top = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:3]
    return "; ".join(f"{reason} ({count})" for reason, count in top)
