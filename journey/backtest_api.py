"""POST /api/backtest: a candidate definition, sent as TOML text or as JSON, tried on history
beside the logged decisions, as `journey backtest --json` does. Nothing is written or sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from consumers.backtest import Window
from engine.definition import JourneyDefinition, definition_from_mapping, parse_definition
from engine.errors import DefinitionError
from engine.touchpoints import millis
from journey import render
from journey.access import FIGURES, Principal, allow
from journey.backtest import backtest_json, run_backtest
from journey.contract import Backtest, Problem
from journey.serving import Readers

ORIGIN = "the request body"
_BODY = {
    "description": "The candidate journey definition: TOML text (any content type but JSON), "
    "or the same as a JSON object (`application/json`).",
    "required": True,
    "content": {
        "application/toml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    },
}

router = APIRouter(prefix="/api")


@router.post(
    "/backtest",
    tags=["actions"],
    response_model=Backtest,
    responses={
        404: {"model": Problem, "description": "No such customer: `detail` says which."},
        413: {"model": Problem, "description": "The body is too large."},
    },
    openapi_extra={"requestBody": _BODY},
)
async def backtest(
    request: Request,
    who: Annotated[Principal, allow(*FIGURES)],
    start: Annotated[
        datetime | None,
        Query(alias="from", description="Compare decisions from this time on (ISO 8601)."),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(alias="to", description="Compare decisions before this time (ISO 8601)."),
    ] = None,
    customer: Annotated[
        str | None, Query(description="One customer's actions, side by side (`customer`).")
    ] = None,
) -> dict[str, Any]:
    """Replays history with the candidate's action rules and policy beside the decisions
    logged, up to where the decider has decided, and reports per rule what would be
    proposed, added, dropped or changed, how proposals spread over owners' days against
    their limit, and what followed the proposals that match logged ones. An analyst
    compares no single customer's actions (their reasons name people)."""
    if customer is not None and who.role == "analyst":
        raise who.refuse("customer: analysts compare rules, not one customer's actions")
    candidate = _candidate(await request.body(), request.headers.get("content-type", ""))
    window = Window(_ms(start), _ms(end))
    readers: Readers = request.app.state.readers

    def run() -> dict[str, Any]:
        with readers.borrowed() as engine:
            result = run_backtest(engine, candidate, window=window, customer_id=customer)
        return backtest_json(result, ORIGIN, render.instant)

    return await run_in_threadpool(run)


def _candidate(body: bytes, content_type: str) -> JourneyDefinition:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{ORIGIN}: not UTF-8 text ({exc.reason})") from None
    if content_type.split(";", maxsplit=1)[0].strip().lower() != "application/json":
        return parse_definition(text, origin=ORIGIN)
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DefinitionError(f"{ORIGIN}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DefinitionError(f"{ORIGIN}: a journey definition is a JSON object")
    return definition_from_mapping(document, origin=ORIGIN)


def _ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return millis(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
