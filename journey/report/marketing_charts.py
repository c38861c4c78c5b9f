"""The report's charts of marketing's side of the loop: the campaigns and content before stage
entries and before frictions, and sales velocity (computed in projections.attribution)."""

from __future__ import annotations

from collections import defaultdict

import plotly.graph_objects as go

from journey.report.gathered import Gathered, Shown
from projections.attribution import MODELS, CreditKey, Velocity

TOP_CREDITED = 25  # rows of an attribution chart: the values with the most credit
MODEL_WORDS = {
    "first_touch": "first touch",
    "last_touch": "last touch",
    "position_based": "position-based (40/20/40)",
}


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
