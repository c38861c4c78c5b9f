"""Marketing's side of the loop in the HTTP API: which campaigns and content came before stage
entries and frictions (/api/attribution), and sales velocity (/api/velocity). Included by
`journey.api.create_app`: aggregates, for admins and analysts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from journey import render
from journey.access import FIGURES, allow
from journey.api import Paging, _engine, _paged
from journey.cohort import attribution, sales_velocity
from journey.contract import CreditPage, VelocityPage
from journey.filters import Within
from projections.attribution import DEFAULT_ATTRIBUTES, MODELS

marketing = APIRouter(prefix="/api")


@marketing.get(
    "/attribution",
    tags=["marketing"],
    response_model=CreditPage,
    dependencies=[allow(*FIGURES)],
)
def credits(
    request: Request,
    paging: Paging,
    within: Within,
    *,
    model: Annotated[
        str | None, Query(description="One model only.", json_schema_extra={"enum": list(MODELS)})
    ] = None,
    converted: Annotated[
        str | None,
        Query(
            description="stage or friction only.", json_schema_extra={"enum": ["stage", "friction"]}
        ),
    ] = None,
    attribute: Annotated[
        list[str] | None,
        Query(
            description="The touchpoint attributes to credit (repeat for more); by default "
            f"{', '.join(DEFAULT_ATTRIBUTES)}."
        ),
    ] = None,
) -> dict[str, Any]:
    """Which campaigns and content came before stage entries and friction openings:
    first-touch, last-touch and position-based credit of the customers in range, per
    attribute value, stage and channel, the most credit first, a page at a time."""
    if model is not None and model not in MODELS:
        raise HTTPException(422, f"model: one of {', '.join(MODELS)}, not {model!r}")
    if converted not in (None, "stage", "friction"):
        raise HTTPException(422, f"converted: stage or friction, not {converted!r}")
    attributes = tuple(attribute or DEFAULT_ATTRIBUTES)
    with _engine(request) as engine:
        summed = attribution(engine, within, attributes)
    rows = [
        {
            "model": key.model,
            "converted": key.kind,
            "name": key.name,
            "stage": key.stage,
            "attribute": key.attribute,
            "value": key.value,
            "channel": key.channel,
            "credit": credit,
            "conversions": summed.conversions[key.kind, key.name],
        }
        for key, credit in summed.rows()
        if (model is None or key.model == model) and (converted is None or key.kind == converted)
    ]
    end = paging.offset + paging.limit
    return {
        **_paged(request, paging, len(rows), rows[paging.offset : end]),
        "range": within.words(),
        "attributes": list(attributes),
    }


@marketing.get(
    "/velocity",
    tags=["marketing"],
    response_model=VelocityPage,
    dependencies=[allow(*FIGURES)],
)
def velocity(request: Request, paging: Paging, within: Within) -> dict[str, Any]:
    """Sales velocity: the median days from a customer's first touchpoint to their first
    entry into each stage, by month of first touch (UTC), a page at a time."""
    with _engine(request) as engine:
        rows = [
            {
                "month": v.month,
                "stage": v.stage,
                "label": render.label(engine.definition, v.stage),
                "customers": v.customers,
                "median_days": v.median_days,
            }
            for v in sales_velocity(engine, within)
        ]
    end = paging.offset + paging.limit
    return {
        **_paged(request, paging, len(rows), rows[paging.offset : end]),
        "range": within.words(),
    }
