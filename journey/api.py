"""The HTTP API and the pages served beside it (`journey serve`): a customer's journey, lists
of customers, the funnel and frictions, next actions and their outcomes, and touchpoint
ingest with the same validation as Kafka. Its OpenAPI document is at /openapi.json."""

from __future__ import annotations

import html
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import anyio.to_thread
import click
import orjson
import uvicorn
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consumers.effectiveness import Period
from consumers.metrics import CUSTOMER_ANSWERS, HTTP_REQUEST, READY
from consumers.outcomes import check_outcome, record_outcomes
from engine.actions import STATUSES, outcome_from_record
from engine.definition import load_definition
from engine.errors import (
    InvalidTouchpoint,
    JourneyError,
    StoreUnavailable,
    UnknownCustomer,
    UnknownOwner,
)
from engine.outage import LONGEST_WAIT_S
from engine.settings import Settings
from engine.touchpoints import millis, touchpoint_from_record
from journey import backtest_api, render, stages
from journey import worklist as work
from journey.access import (
    EVERYONE,
    FIGURES,
    SALES,
    UNAUTHORISED,
    Access,
    GuardedDocumentation,
    Principal,
    allow,
    pseudonymous_journey,
    roles_of,
)
from journey.bootstrap import Engine
from journey.console import log_to_stderr, now_ms, observed, say
from journey.contract import (
    PROBLEMS,
    ActionPage,
    Caller,
    CustomerPage,
    EffectivenessAnswer,
    ExplainedAction,
    FrictionCountPage,
    FrictionPage,
    Journey,
    OwnerPage,
    Problem,
    Recorded,
    RecordedOutcome,
    StageCount,
    TouchpointRecord,
    WorklistPage,
    problem_body,
)
from journey.effectiveness import read_effectiveness
from journey.filters import CustomersBehindFilter
from journey.health import Health, metrics_text
from journey.people import person_journey
from journey.serving import READERS, Answers, Follower, Readers, Stamp, ViewsBehind, wait_until_read
from journey.tokens import Tokens, load_tokens
from projections.views import FRICTION_GROUPS

log = logging.getLogger("journey.serve")
access_log = logging.getLogger("journey.access")

MAX_INGEST = 10_000  # touchpoints per request
MAX_BODY_BYTES = 16 * 1024 * 1024
PAGE, MAX_PAGE = 100, 1000  # items a page holds unless asked, and at most
PROBLEM_JSON = "application/problem+json"
OUTCOME_WAIT_S = 2.0
READ_WAIT_S = 5.0  # the longest a read given `after` waits for the views


class OutcomeIn(BaseModel):
    """What a sales person did with an action."""

    status: str = Field(description=f"One of {', '.join(STATUSES)}.")
    reason: str | None = Field(None, description="Why, in the rep's words.")
    snoozed_until: int | str | None = Field(
        None, description="With snoozed: when it comes back (ISO 8601 or milliseconds)."
    )
    rep_id: str | None = Field(None, description="Who reports it.")


# Health, readiness and metrics, for the orchestrator and Prometheus: outside /api and its
# OpenAPI document, and without a token. Probes carry none, and a scrape needs none: the
# metrics hold counts and route templates, no customer's data, and giving Prometheus the
# sales people's token would let it read every journey.
operating = APIRouter(include_in_schema=False)
# Probes and scrapes come every few seconds: counted, not logged.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})

# Who may call what: each endpoint names the roles it takes (journey.access); channel systems
# record touchpoints with a token of their own.
reading = APIRouter(prefix="/api")
acting = APIRouter(prefix="/api")
writing = APIRouter(prefix="/api")
pages = APIRouter(include_in_schema=False)


def create_app(
    settings: Settings,
    *,
    token: str | None = None,
    ingest_token: str | None = None,
    tokens: Tokens | None = None,
    health: Health | None = None,
) -> FastAPI:
    """The API; with `token` (an admin's) or `tokens`, every endpoint asks for
    `Authorization: Bearer <token>` of a role it takes (POST /api/touchpoints for
    `ingest_token` instead of `token`, if given). Its health is kept in `health`, if given
    (served on a port of its own as well, say)."""
    app = FastAPIOffline(
        title="journey engine",
        summary="Customer journeys, frictions, moments of truth and next-best-actions.",
        version="1",
    )
    app.state.access = Access(
        load_definition(settings.definition_path),
        token=token,
        ingest_token=ingest_token,
        tokens=tokens,
    )
    app.state.readers = Readers(settings)
    app.state.answers = Answers()
    app.state.health = health or Health()
    app.state.health.watch(app.state.readers.store)
    app.state.follower = Follower(
        settings, app.state.health, app.state.answers, app.state.readers.store
    )
    app.router.on_startup.extend([_limit_threads, app.state.follower.start])
    app.router.on_shutdown.extend([app.state.follower.stop, app.state.readers.close])
    text_only = Depends(_no_nul_characters)
    # Any token known first (401), then the endpoint's own roles (403).
    known = allow(*EVERYONE)
    errors = _errors(401, 403, 422, 500, 503)
    app.include_router(reading, dependencies=[known, text_only, Depends(_after)], responses=errors)
    app.include_router(acting, dependencies=[known, text_only], responses=errors)
    app.include_router(backtest_api.router, dependencies=[known, text_only], responses=errors)
    ingest = allow(*EVERYONE, ingest=True)
    app.include_router(writing, dependencies=[ingest, text_only], responses=errors)
    from journey.identity_api import identities  # its routes use this module's helpers
    from journey.marketing_api import marketing

    app.include_router(
        marketing, dependencies=[known, text_only, Depends(_after)], responses=errors
    )
    app.include_router(identities, dependencies=[known, text_only], responses=errors)
    from journey.privacy_api import people  # its routes use this module's helpers

    app.include_router(people, dependencies=[known, text_only], responses=errors)
    app.include_router(pages)
    # What the document names roles of: the routes as their routers hold them.
    app.state.routers = [
        *(reading, acting, writing, backtest_api.router, marketing, identities, people),
    ]
    app.include_router(operating)
    app.add_middleware(
        GuardedDocumentation,
        access=app.state.access,
        refused=lambda path: _problem(401, UNAUTHORISED, path, headers=_CHALLENGE),
    )
    app.add_middleware(_BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(_Observed)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(JourneyError, _journey_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, _store_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(ViewsBehind, _views_behind)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    app.openapi = partial(_document, app)  # type: ignore[method-assign]
    return app


def _document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with what FastAPI does not write itself: errors as problem
    details, the touchpoint record's schema, and the roles each endpoint takes."""
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)
        _name_roles(app, document)
        document["components"]["schemas"]["Touchpoint"] = TouchpointRecord.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for operations in document["paths"].values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status[0] in "45" and "application/json" in response.get("content", {}):
                        content = response["content"]
                        content[PROBLEM_JSON] = content.pop("application/json")
    return app.openapi_schema or {}


def _name_roles(app: FastAPI, document: dict[str, Any]) -> None:
    """Each operation's roles, as `x-roles` and in words at the end of its description."""
    routes = [route for router in app.state.routers for route in router.routes]
    for route in routes:
        if not isinstance(route, APIRoute) or route.path not in document["paths"]:
            continue
        found = [roles_of(d.call) for d in route.dependant.dependencies]
        roles = [r for r in found if r is not None][-1:]
        for method in route.methods or ():
            operation = document["paths"][route.path].get(method.lower())
            if operation is None or not roles:
                continue
            operation["x-roles"] = list(roles[0])
            said = operation.get("description", "").rstrip()
            operation["description"] = f"{said}\n\nRoles: {', '.join(roles[0])}.".lstrip()


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_ERROR_DOCS: dict[int, dict[str, Any]] = {
    401: {
        "description": "No token, or not one this endpoint takes.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    403: {
        "description": "The token's role does not take this endpoint, or what is asked is "
        "not the token's to read (another rep's customer, say): `detail` says which."
    },
    404: {"description": "Not found: `detail` says what."},
    409: {"description": "An event_id was recorded before with other content."},
    413: {"description": "The body is too large."},
    422: {"description": "A field or parameter is not valid: `detail` names it."},
    500: {"description": "A fault of the server, logged with `instance`."},
    503: {
        "description": "The store is unavailable, or the views did not reach `after` in time.",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        },
    },
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The errors an endpoint may answer, as its OpenAPI responses."""
    return {status: {"model": Problem, **_ERROR_DOCS[status]} for status in statuses}


async def _no_nul_characters(request: Request) -> None:
    """A NUL character fits no id or text the engine keeps: named, not passed to a store."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in str(value) or "\x00" in name:
            raise HTTPException(422, f"{_shown_name(name)}: contains a NUL character")


def _shown_name(name: str) -> str:
    return name if name.isidentifier() else repr(name.replace("\x00", "\\x00")[:40])


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Observed:
    """Times every request and logs it (method, route, status, duration), labelled by the
    route's template (`/api/customers/{customer_id}`), never by the path: ids would make a
    series each. Paths that match no route share one label."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, noted)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            HTTP_REQUEST.labels(method, route, str(status)).observe(seconds)
            if route not in _QUIET:
                access_log.info(
                    "%s %s %d %.1f ms",
                    method,
                    route,
                    status,
                    seconds * 1000,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )


class _BodyLimit:
    """Refuses a request body larger than `max_bytes` with 413, before reading it whole (a
    declared length is checked at once; a streamed body as it arrives)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            await self._refuse(scope, receive, send)
            return
        received, refused = 0, False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self._max_bytes:
                refused = True
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}  # the application reads no further
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        with suppress(ClientDisconnect):
            await self._app(scope, counted, unless_refused)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than the {self._max_bytes:,} bytes allowed"
        await _problem(413, detail, scope["path"])(scope, receive, send)


def _problem(
    status: int,
    detail: str,
    instance: str | None,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error as problem details (RFC 9457): the one shape every error of the API has."""
    return JSONResponse(
        problem_body(status, detail, instance, kind),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _problem(exc.status_code, str(exc.detail), request.url.path, headers=exc.headers)


def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request that does not fit its endpoint, in the one shape every error has: the first
    thing wrong, in one line, without echoing what was sent."""
    first = exc.errors()[0]
    where, *inside = first.get("loc") or ("request",)
    # A body that may be one of several types has those types in its location: not a field.
    named = [str(part) for part in inside if not any(mark in str(part) for mark in "[]")]
    field = ".".join(named) if named else str(where)
    message = str(first.get("msg", "is not valid")).splitlines()[0][:160]
    return _problem(422, f"{field}: {message}", request.url.path)


def _journey_error(request: Request, exc: JourneyError) -> JSONResponse:
    status = 404 if isinstance(exc, UnknownCustomer | UnknownOwner) else 422
    return _problem(status, str(exc), request.url.path)


def _store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
    """503, not a traceback: the client may try again shortly, as the server itself does."""
    return _problem(
        503,
        f"{exc}; try again shortly",
        request.url.path,
        kind="store-unavailable",
        headers={"Retry-After": str(round(LONGEST_WAIT_S))},
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A fault of ours, in the shape of every other error; the log names it by the instance
    the client is given."""
    instance = f"urn:uuid:{uuid.uuid4()}"
    log.error(
        "unexpected error %s answering %s %s",
        instance,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return _problem(500, f"an unexpected error, logged as {instance}", instance)


async def _limit_threads() -> None:
    """As many request threads as engines to borrow: more would only queue on the
    interpreter's lock, and make the slowest request slower."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = READERS


def _views_behind(request: Request, exc: ViewsBehind) -> JSONResponse:
    return _problem(
        503,
        f"{exc}; try again shortly",
        request.url.path,
        kind="views-behind",
        headers={"Retry-After": "1"},
    )


async def _after(
    request: Request,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            description="A log position a write returned (POST /api/touchpoints or an "
            "outcome): the answer waits until the views include that write (and for "
            "/api/actions, until the decisions do), and is 503 if they do not get there "
            f"within {READ_WAIT_S:g} s.",
        ),
    ] = None,
) -> None:
    request.state.after = after


@contextmanager
def _engine(request: Request, *, decided: bool = False) -> Iterator[Engine]:
    """An engine for this request, and with `after`, once the views (and with `decided`, the
    next actions) include that position."""
    readers: Readers = request.app.state.readers
    with readers.borrowed() as engine:
        after = getattr(request.state, "after", None)
        if after is not None:
            wait_until_read(engine, after, READ_WAIT_S, decided=decided)
        yield engine


@reading.get(
    "/customers/{customer_id}",
    tags=["customers"],
    response_model=Journey,
    responses=_errors(404),
)
async def customer(
    customer_id: str, request: Request, who: Annotated[Principal, allow(*SALES, "analyst")]
) -> Response:
    """A customer's journey: stage and stage history, timeline, frictions, moments of
    truth, and next actions with their reasons. A rep or a manager reads only their
    customers' (any other, known or not, is a 403); an analyst names the customer by
    pseudonym, and reads the journey without the reasons of actions, nor the touchpoints'
    attributes."""
    if who.role == "analyst":
        return await _pseudonymous(request, customer_id)
    return await _answer(request, customer_id, who)


async def _pseudonymous(request: Request, pseudonym: str) -> Response:
    access: Access = request.app.state.access

    def work() -> bytes:
        with _engine(request) as engine:
            found = access.pseudonyms.find(pseudonym, partial(_customer_ids, engine))
            if found is None:
                raise HTTPException(404, f"no customer has the pseudonym {pseudonym!r}")
            journey = _customer(engine, found)
        return orjson.dumps(pseudonymous_journey(journey, access.pseudonym))

    return Response(await run_in_threadpool(work), media_type="application/json")


def _customer_ids(engine: Engine) -> Iterator[str]:
    """Every customer's id, a page at a time."""
    offset = 0
    while True:
        _, rows = engine.view.customers(limit=MAX_PAGE, offset=offset)
        yield from (row.customer_id for row in rows)
        if len(rows) < MAX_PAGE:
            return
        offset += len(rows)


def _customer(engine: Engine, customer_id: str) -> dict[str, Any]:
    person, position, timeline = person_journey(engine, customer_id)
    shown = render.customer_json(
        engine.definition,
        position,
        timeline,
        engine.view.time_of(position),
        engine.actions.actions(customer_id=person, open_only=False),
        times=render.instant,
    )
    shown["stages"] = stages.stages_json(engine.definition, position)
    shown["next_stage"] = stages.next_stage(engine.definition, position)
    return shown


async def _answer(request: Request, customer_id: str, who: Principal) -> Response:
    """A customer's journey: kept from an earlier read while nothing of theirs has been
    recorded since the follower last looked, else read in a request thread (and kept). Its
    ETag names where the views and the decisions stood when it was read, so a page that
    asks again with If-None-Match gets 304 while it holds. Refused if not `who`'s."""
    follower: Follower = request.app.state.follower
    if follower.refused is not None:
        raise follower.refused
    answers: Answers = request.app.state.answers
    after = request.state.after
    kept = answers.get(customer_id)
    if kept is not None and (after is None or kept[0].includes(after, decided=False)):
        stamp, body = kept
        _KEPT.inc()
        _theirs(who, customer_id, body)
        if _unchanged(request, stamp):
            return Response(status_code=304, headers={"ETag": stamp.tag})
        return Response(body, media_type="application/json", headers={"ETag": stamp.tag})

    def work() -> tuple[Stamp, bytes]:
        with _engine(request) as engine:
            # Where they stand before the read: the answer is at least as new.
            now = Stamp(engine.runner.position(), engine.decider.position())
            return now, orjson.dumps(_customer(engine, customer_id))

    try:
        stamp, body = await run_in_threadpool(work)
    except UnknownCustomer:
        if who.scoped:  # a customer who is not theirs, whether known or not
            raise who.not_theirs(f"customer {customer_id!r}") from None
        raise
    _READ.inc()
    answers.put(customer_id, stamp, body)
    _theirs(who, customer_id, body)
    if _unchanged(request, stamp):
        return Response(status_code=304, headers={"ETag": stamp.tag})
    return Response(body, media_type="application/json", headers={"ETag": stamp.tag})


_KEPT, _READ = CUSTOMER_ANSWERS.labels("kept"), CUSTOMER_ANSWERS.labels("read")


def _theirs(who: Principal, customer_id: str, body: bytes) -> None:
    if who.scoped and not who.may_read(orjson.loads(body)["rep"]):
        raise who.not_theirs(f"customer {customer_id!r}")


def _unchanged(request: Request, stamp: Stamp) -> bool:
    return request.headers.get("if-none-match") == stamp.tag


class _Paging(NamedTuple):
    limit: int
    offset: int


async def _paging(
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_PAGE, description=f"The most items a page holds (up to {MAX_PAGE})."),
    ] = PAGE,
    offset: Annotated[
        int, Query(ge=0, description="How many items to skip: `next` gives the next page's.")
    ] = 0,
) -> _Paging:
    return _Paging(limit, offset)


Paging = Annotated[_Paging, Depends(_paging)]


def _paged(request: Request, paging: _Paging, total: int, items: list[Any]) -> dict[str, Any]:
    """A page of a list, in the one shape every list has, with the path of the next page."""
    following = None
    if paging.offset + len(items) < total:
        url = request.url.include_query_params(
            limit=paging.limit, offset=paging.offset + len(items)
        )
        following = f"{url.path}?{url.query}"
    return {
        "total": total,
        "limit": paging.limit,
        "offset": paging.offset,
        "next": following,
        "items": items,
    }


@reading.get("/customers", tags=["customers"], response_model=CustomerPage)
def customers(
    request: Request,
    paging: Paging,
    who: Annotated[Principal, allow(*SALES, "analyst")],
    *,
    stage: str | None = None,
    rep: str | None = None,
    friction: Annotated[str | None, Query(description="An open friction's kind.")] = None,
    q: Annotated[str | None, Query(description="The start of a customer id.")] = None,
    behind: CustomersBehindFilter,
) -> dict[str, Any]:
    """Customers by stage, rep or open friction (or id), and those behind a figure of the
    analyst report (first seen in a range, got this far, moved from one stage to another,
    met a friction in a stage or on a channel), the longest in stage first, a page at a
    time. A rep or a manager lists only their customers; an analyst sees pseudonyms, and
    cannot look for the start of an id."""
    _scoped_filter(who, "rep", rep)
    if who.role == "analyst" and q is not None:
        raise who.refuse("q: analysts find customers by pseudonym, not by their id")
    with _engine(request) as engine:
        total, rows = engine.view.customers(
            stage=stage,
            rep=rep,
            friction=friction,
            prefix=q,
            limit=paging.limit,
            offset=paging.offset,
            behind=behind.resolved(engine.definition),
            reps=_reps(who),
        )
    shown = _shown_id(request, who)
    return _paged(
        request,
        paging,
        total,
        [
            {
                "customer_id": shown(row.customer_id),
                "stage": row.stage,
                "stage_since": render.instant(row.stage_since),
                "rep": row.rep,
                "touchpoints": row.touchpoints,
                "last_seen": render.instant(row.last_at),
                "open_frictions": row.open_frictions,
            }
            for row in rows
        ],
    )


def _scoped_filter(who: Principal, name: str, value: str | None) -> None:
    """A rep or an owner asked for by name is one whose customers `who` reads."""
    if value is not None and not who.may_read(value):
        raise who.not_theirs(f"{name}: {value!r}")


def _reps(who: Principal) -> list[str] | None:
    return None if who.reps is None else sorted(who.reps)


def _shown_id(request: Request, who: Principal) -> Callable[[str], str]:
    """How a customer id is shown to `who`: by pseudonym to an analyst."""
    if who.role == "analyst":
        access: Access = request.app.state.access
        return access.pseudonym
    return str


@reading.get("/me", tags=["access"], response_model=Caller)
def me(who: Annotated[Principal, allow(*EVERYONE)]) -> dict[str, Any]:
    """Who the token given is: its name and role, and whose customers it reads (`reps`:
    null for everyone's)."""
    return who.json()


@reading.get(
    "/funnel",
    tags=["aggregates"],
    response_model=list[StageCount],
    dependencies=[allow(*FIGURES)],
)
def funnel(request: Request) -> list[dict[str, Any]]:
    """Per stage: customers who got at least this far, and who are there now. The ladder's
    stages in order, then any other stage a customer is in: one whole answer, not paged."""
    with _engine(request) as engine:
        counts = engine.view.funnel(engine.definition.ladder)
        return [
            {
                "stage": c.stage,
                "label": render.label(engine.definition, c.stage),
                "reached": c.reached,
                "current": c.current,
            }
            for c in counts
        ]


@reading.get("/frictions", tags=["aggregates"], response_model=FrictionPage)
def frictions(
    request: Request,
    paging: Paging,
    who: Annotated[Principal, allow(*SALES, "analyst")],
    *,
    rep: str | None = None,
    kind: Annotated[str | None, Query(alias="type")] = None,
    include_resolved: bool = False,
) -> dict[str, Any]:
    """Open frictions, worst first, by rep and type, a page at a time. A rep or a manager
    lists only those of their customers; an analyst sees customers by pseudonym."""
    _scoped_filter(who, "rep", rep)
    shown = _shown_id(request, who)
    with _engine(request) as engine:
        total, rows = engine.view.friction_page(
            open_only=not include_resolved,
            owner=rep,
            kind=kind,
            limit=paging.limit,
            offset=paging.offset,
            owners=_reps(who),
        )
        listed = [
            render.friction_json(engine.definition, row, times=render.instant) for row in rows
        ]
    for friction in listed:
        friction["customer_id"] = shown(friction["customer_id"])
    return _paged(request, paging, total, listed)


# The groupings, listed in the document but checked here, in the API's own words.
_GROUPS = {"enum": list(FRICTION_GROUPS)}


@reading.get(
    "/frictions/counts",
    tags=["aggregates"],
    response_model=FrictionCountPage,
    response_model_exclude_unset=True,
    dependencies=[allow(*FIGURES)],
)
def friction_counts(
    request: Request,
    paging: Paging,
    by: Annotated[str, Query(description="What to count by.", json_schema_extra=_GROUPS)] = "kind",
    then: Annotated[
        str | None, Query(description="A second grouping.", json_schema_extra=_GROUPS)
    ] = None,
) -> dict[str, Any]:
    """Open frictions counted by kind, stage, channel or owner (and a second of them), the
    most frictions first, a page at a time."""
    for group in (by, then):
        if group is not None and group not in FRICTION_GROUPS:
            raise HTTPException(422, f"by: one of {', '.join(FRICTION_GROUPS)}, not {group!r}")
    with _engine(request) as engine:
        if then is None:
            counts = [{by: key, "frictions": n} for key, n in engine.view.friction_counts(by)]
        else:
            counts = [
                {by: row, then: column, "frictions": n}
                for row, column, n in engine.view.friction_matrix(by, then)
            ]
    end = paging.offset + paging.limit
    return _paged(request, paging, len(counts), counts[paging.offset : end])


@reading.get("/actions", tags=["actions"], response_model=ActionPage)
def actions(
    request: Request,
    paging: Paging,
    who: Annotated[Principal, allow(*SALES)],
    *,
    owner: str | None = None,
    customer: str | None = None,
    include_closed: bool = False,
) -> dict[str, Any]:
    """Next actions, the most important first, a page at a time. A rep or a manager lists
    only the actions they (or their team's reps) own."""
    _scoped_filter(who, "owner", owner)
    with _engine(request, decided=True) as engine:
        total, rows = engine.actions.action_page(
            owner=owner,
            customer_id=customer,
            open_only=not include_closed,
            limit=paging.limit,
            offset=paging.offset,
            owners=_reps(who),
        )
    return _paged(
        request, paging, total, [render.action_json(row, times=render.instant) for row in rows]
    )


@reading.get("/owners", tags=["actions"], response_model=OwnerPage)
def owners(
    request: Request, paging: Paging, who: Annotated[Principal, allow(*SALES, "analyst")]
) -> dict[str, Any]:
    """Everyone actions were decided for, by id, with how many actions they have to do and
    how many of those are overdue, as of the journey's clock (see /api/worklist). A rep
    sees only themselves, a manager their team."""
    with _engine(request, decided=True) as engine:
        now = engine.view.clock() or now_ms()
        rows = [row for row in engine.actions.owners(now) if who.may_read(row[0])]
    end = paging.offset + paging.limit
    listed = [
        {"owner": owner, "to_do": to_do, "overdue": overdue}
        for owner, to_do, overdue in rows[paging.offset : end]
    ]
    return {**_paged(request, paging, len(rows), listed), "as_of": render.instant(now)}


@reading.get(
    "/effectiveness",
    tags=["actions"],
    response_model=EffectivenessAnswer,
    dependencies=[allow(*FIGURES)],
)
def effectiveness(
    request: Request,
    by: Annotated[
        Literal["rule", "owner", "team"], Query(description="Group the actions by this.")
    ] = "rule",
    since: Annotated[
        datetime | None,
        Query(alias="from", description="Only actions decided from this time (ISO 8601)."),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(alias="to", description="Only actions decided before this time (ISO 8601)."),
    ] = None,
    within_days: Annotated[
        int, Query(ge=1, le=365, description="Look this many days after each decision.")
    ] = 14,
) -> dict[str, Any]:
    """What each action rule (or owner, or team) achieved over a period: how many actions it
    proposed, how many were taken up, done, dismissed (and why), snoozed or ended by the
    journey, how long their owners took to act, and what the customers did in the days
    after, for the actions acted on against the rest. One whole answer, not paged."""
    period = Period(_ms(since), _ms(until))
    if period.since is not None and period.until is not None and period.until <= period.since:
        raise HTTPException(422, "to: must be after from")
    with _engine(request, decided=True) as engine:
        found = read_effectiveness(engine, by=by, period=period, within_days=within_days)
    return found.to_json(render.instant)


def _ms(moment: datetime | None) -> int | None:
    """Milliseconds since the epoch; a time without a zone is UTC."""
    if moment is None:
        return None
    return millis(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@reading.get(
    "/worklist",
    tags=["actions"],
    response_model=WorklistPage,
    responses=_errors(404),
)
def worklist(
    request: Request,
    paging: Paging,
    who: Annotated[Principal, allow(*SALES)],
    owner: Annotated[str, Query(description="A rep's id, or a role such as branch_manager.")],
    zone: Annotated[
        str,
        Query(description="The time zone days begin in, an IANA name (Europe/Paris)."),
    ] = "UTC",
) -> dict[str, Any]:
    """A sales person's day: their actions to do (open, accepted, or back from a snooze),
    overdue first, then due today, then later, with how many fall due each day.

    "Now" is the journey's clock, `as_of`: the latest time a touchpoint or a clock event
    names, not the server's wall clock, so that history recorded at past times has a day of
    its own. An owner no action was ever decided for is a 404. A rep reads only their own,
    a manager their team's."""
    _scoped_filter(who, "owner", owner)
    shown_zone = work.zone_named(zone)
    with _engine(request, decided=True) as engine:
        day = work.read_worklist(engine, owner, shown_zone, now_ms())
        every = [
            work.item_json(engine.definition, group, action, render.instant)
            for group, action in day.items
        ]
    end = paging.offset + paging.limit
    return {
        **_paged(request, paging, len(every), every[paging.offset : end]),
        "owner": owner,
        "as_of": render.instant(day.now),
        "zone": zone,
        "counts": work.counts_json(day),
        "days": work.days_json(day),
    }


@reading.get(
    "/actions/{action_id}",
    tags=["actions"],
    response_model=ExplainedAction,
    responses=_errors(404),
)
def action(
    action_id: str, request: Request, who: Annotated[Principal, allow(*SALES)]
) -> dict[str, Any]:
    """An action with its explanation; a rep or a manager reads only their own (or their
    team's)."""
    with _engine(request, decided=True) as engine:
        row = engine.actions.action(action_id)
    if row is None:
        raise HTTPException(404, f"no action {action_id!r} was decided")
    if not who.may_read(row.owner):
        raise who.not_theirs(f"action {action_id!r}")
    return render.action_json(row, explained=True, times=render.instant)


@acting.post(
    "/actions/{action_id}/outcome",
    status_code=201,
    tags=["actions"],
    response_model=RecordedOutcome,
    responses=_errors(404, 413),
)
def outcome(
    action_id: str,
    reported: OutcomeIn,
    request: Request,
    who: Annotated[Principal, allow("admin", "rep")],
) -> dict[str, Any]:
    """Records what a sales person did with an action (accepted, done, dismissed,
    snoozed), as a sales tool does on journey.action-outcomes. A rep reports only on the
    actions they own, as themselves (`rep_id` is theirs if not given)."""
    rep_id = reported.rep_id
    if who.role == "rep":
        if rep_id is not None and rep_id != who.rep:
            raise who.refuse(f"rep_id: reports as {who.rep!r}, not {rep_id!r}")
        rep_id = who.rep
    with _engine(request) as engine:
        row = engine.actions.action(action_id)
        if row is None:
            raise HTTPException(404, f"no action {action_id!r} was decided")
        if not who.may_read(row.owner):
            raise who.not_theirs(f"action {action_id!r}")
        recorded = outcome_from_record(
            {
                "event_id": str(uuid.uuid4()),
                "action_id": action_id,
                "customer_id": row.customer_id,
                "status": reported.status,
                "reason": reported.reason,
                "snoozed_until": reported.snoozed_until,
                "rep_id": rep_id,
                "occurred_at": now_ms(),
            },
            now_ms=now_ms(),
        )
        check_outcome(engine.actions, recorded)
        at = record_outcomes(engine.journeys, [recorded]).last_position
        if at:
            request.app.state.answers.seen([(at, row.customer_id)])
        request.app.state.follower.wake()
        # The decider (the follower on the embedded store, a service of its own on PostgreSQL)
        # is given a moment to apply the outcome, so that the answer (and the page) shows the
        # action as it now stands.
        if at:
            with suppress(TimeoutError):
                engine.decider.wait_for(at, OUTCOME_WAIT_S)
        changed = engine.actions.action(action_id)
    assert changed is not None
    # Where the outcome stands in the log: a read given it as `after` includes it.
    return {**render.action_json(changed, times=render.instant), "position": at}


# The body as the document gives it: a touchpoint record, or a list of them. Taken as plain
# JSON objects all the same, for the engine's own validation to decide, as it does on Kafka:
# a model would coerce and refuse otherwise (a channel in capitals, a number as an
# attribute's value, milliseconds or ISO text) and in other words.
_TOUCHPOINTS = WithJsonSchema(
    {
        "description": "A touchpoint record, or a list of them, as on Kafka.",
        "anyOf": [
            {"$ref": "#/components/schemas/Touchpoint"},
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Touchpoint"},
                "maxItems": MAX_INGEST,
            },
        ],
    }
)


@writing.post(
    "/touchpoints",
    status_code=202,
    tags=["ingest"],
    response_model=Recorded,
    responses=_errors(409, 413),
    dependencies=[allow("admin", "ingest", ingest=True)],
)
def ingest(
    request: Request,
    body: Annotated[
        dict[str, Any] | list[dict[str, Any]],
        Body(),
        _TOUCHPOINTS,
    ],
) -> dict[str, int | None]:
    """Records touchpoints, validated as on Kafka; a bad record (422), or one whose event_id
    was recorded with other content (409), refuses the request with the field and the
    problem, and nothing of it is recorded."""
    records = body if isinstance(body, list) else [body]
    if len(records) > MAX_INGEST:
        raise HTTPException(413, f"at most {MAX_INGEST} touchpoints per request")
    now = now_ms()
    touchpoints = []
    for index, record in enumerate(records):
        try:
            touchpoints.append(touchpoint_from_record(record, now_ms=now))
        except InvalidTouchpoint as exc:
            where = f"[{index}]." if isinstance(body, list) else ""
            raise HTTPException(422, f"{where}{exc}") from None
    with _engine(request) as engine:
        result = engine.journeys.record(touchpoints, all_or_none=True)
    if result.last_position is not None:
        at = result.last_position
        # One that carries identifiers may join people: anyone's answer may change.
        request.app.state.answers.seen(
            (at, None if tp.anonymous or tp.identifiers else tp.customer_id) for tp in touchpoints
        )
        request.app.state.follower.wake()
    if result.conflicts:
        conflict = result.conflicts[0]
        where = f"[{conflict.index}]." if isinstance(body, list) else ""
        raise HTTPException(409, f"{where}event_id: {conflict.reason}")
    # Where the last one recorded stands in the log: a read given it as `after` includes it.
    return {
        "recorded": result.recorded,
        "duplicates": result.duplicates,
        "position": result.last_position,
    }


@operating.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """The server answers, and the follower that keeps its views current is not stuck."""
    health: Health = request.app.state.health
    if health.alive():
        return JSONResponse({"status": "alive"})
    return JSONResponse({"status": "stuck"}, status_code=503)


@operating.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    waiting = _waiting_for(request)
    if not waiting:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"status": "not ready", "waiting_for": waiting},
        status_code=503,
        headers={"Retry-After": str(int(LONGEST_WAIT_S))},
    )


@operating.get("/metrics")
def metrics(request: Request) -> Response:
    READY.set(0 if _waiting_for(request) else 1)
    return Response(metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _waiting_for(request: Request) -> list[str]:
    """What the server waits for before it can answer: the store, as requests or the follower
    last saw it, and the follower's start."""
    health: Health = request.app.state.health
    return health.waiting_for()


@pages.get("/", response_class=HTMLResponse)
def sales_page() -> str:
    return _page("customer.html")


@pages.get("/pipeline", response_class=HTMLResponse)
def pipeline_page() -> str:
    return _page("pipeline.html")


@pages.get("/problems/{name}", response_class=HTMLResponse)
def problem_page(name: str) -> str:
    """What a problem's `type` means, for whoever follows it."""
    found = PROBLEMS.get(name)
    if found is None:
        raise HTTPException(404, f"no problem type {name!r}")
    title, meaning = html.escape(found.title), html.escape(found.meaning)
    return (
        f"<!doctype html><meta charset=utf-8><title>{title}</title>"
        f"<h1>{title}</h1><p>HTTP {found.status}: {meaning}.</p>"
    )


@pages.get("/web/api.js")
def page_script() -> Response:
    return Response(_page("api.js"), media_type="text/javascript")


def _page(name: str) -> str:
    return resources.files("journey").joinpath("web", name).read_text("utf-8")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the sales page (/), the pipeline (/pipeline) and the HTTP API (/docs) until
    stopped. With JOURNEY_API_TOKEN set, every request needs it (an admin's token) as a
    bearer token; JOURNEY_INGEST_TOKEN, if set, is the one POST /api/touchpoints takes
    instead. JOURNEY_TOKENS_FILE names a file of tokens with roles (journey tokens new)."""
    settings = ctx.find_object(Settings) or Settings()
    named = os.environ.get("JOURNEY_TOKENS_FILE")
    log_to_stderr(settings, "serve")
    # With JOURNEY_METRICS_PORT set, /healthz, /readyz and /metrics are also served there, as
    # by every other process that runs until stopped (the image's health check asks it).
    with observed(settings) as health:
        app = create_app(
            settings,
            token=os.environ.get("JOURNEY_API_TOKEN") or None,
            ingest_token=os.environ.get("JOURNEY_INGEST_TOKEN") or None,
            tokens=load_tokens(Path(named)) if named else None,
            health=health,
        )
        # Said once started: the store opened, the follower following.
        app.router.on_startup.append(
            lambda: say(
                f"Serving the journeys on http://{host}:{port}/ (API docs at /docs, metrics "
                "at /metrics); Ctrl-C stops"
            )
        )
        # Our logging, not uvicorn's: its records go out in the process's format, and the
        # access log is the application's own (by route template).
        uvicorn.run(
            app, host=host, port=port, log_level="warning", log_config=None, access_log=False
        )
