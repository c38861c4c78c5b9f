"""The report's backtest: a candidate definition's action rules tried on history beside the
decisions logged (computed in consumers.backtest), when the report is asked for one."""

from __future__ import annotations

import html
from collections import Counter

import plotly.graph_objects as go

from journey.report.gathered import Gathered, Shown, stacked_bars

# How a rule's proposals compare, in the order the bars stack, with their colours.
_KINDS = (
    ("same", "the same as logged", "#8c959f"),
    ("changed", "changed (owner, priority, due time, channel or reason)", "#bf8700"),
    ("added", "added: the candidate only (what follows is unknown)", "#0969da"),
    ("dropped", "dropped: logged, not proposed", "#cf222e"),
)


def backtest_rules(found: Gathered, page: str | None) -> Shown | None:
    """Per rule, the candidate's proposals against the logged decisions."""
    tried = found.backtest
    if tried is None:
        return None
    rules = [r for r in tried.result.rules if r.proposed or r.logged]
    labels = [found.effect_label(r.rule) for r in rules]
    figure = stacked_bars(
        labels,
        [(words, [getattr(r, kind) for r in rules], colour) for kind, words, colour in _KINDS],
    )
    totals = tried.result.totals
    return Shown(
        f"Backtest of {tried.name}: its proposals per rule against the {totals.logged:,} "
        f"actions logged {found.action_days()}",
        "The candidate's action rules and policy replayed over the whole log "
        f"({tried.result.events:,} entries), nothing written or sent. A bar is a rule's "
        "proposals and logged actions: the same on both sides, changed, added by the "
        "candidate, or dropped by it.",
        figure,
        _followed(found),
    )


def backtest_owners(found: Gathered, page: str | None) -> Shown | None:
    """Each owner's busiest day under the candidate and as logged, against the limit."""
    tried = found.backtest
    if tried is None or not tried.result.owners:
        return None
    owners = sorted(tried.result.owners, key=lambda o: (-sum(o.proposed.values()), o.owner))
    limit = owners[0].limit
    busiest_logged = [max(o.logged.values(), default=0) for o in owners]
    figure = go.Figure(
        [
            go.Bar(
                name="candidate",
                x=[o.owner for o in owners],
                y=[o.busiest for o in owners],
                text=[o.busiest for o in owners],
                textposition="outside",
                marker_color="#0969da",
            ),
            go.Bar(
                name="logged",
                x=[o.owner for o in owners],
                y=busiest_logged,
                text=busiest_logged,
                textposition="outside",
                marker_color="#8c959f",
            ),
        ]
    )
    figure.add_hline(y=limit, line_dash="dash", annotation_text=f"limit: {limit} a day")
    figure.update_layout(barmode="group", yaxis={"title": "new actions on the busiest day"})
    return Shown(
        f"Backtest of {tried.name}: each owner's busiest day (new actions, UTC days of journey "
        "time), candidate against logged",
        "Above the dashed line, the candidate's daily limit, what comes after waits for a "
        "later day.",
        figure,
    )


def _followed(found: Gathered) -> str:
    tried = found.backtest
    assert tried is not None
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(found.effect_label(r.rule))}</td>"
        f"<td>{html.escape(_counted(r.outcomes))}</td>"
        f"<td>{html.escape(_counted(r.dropped_outcomes))}</td>"
        "</tr>"
        for r in tried.result.rules
        if r.outcomes or r.dropped_outcomes
    )
    return (
        "<table><tr><th>rule</th><th>what followed the proposals that match logged ones</th>"
        "<th>what became of the logged actions it drops</th></tr>"
        f"{rows}</table>"
    )


def _counted(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counts.most_common()) or "-"
