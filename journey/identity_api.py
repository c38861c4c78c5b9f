"""Who is who in the HTTP API: a person by any identifier, the conflicts for a person to
review, and people's merges and their undoing. Included by `journey.api.create_app`: a rep
or a manager reads who their own customers are; conflicts and merges are for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from engine.errors import JourneyError
from journey.access import SALES, Principal, allow
from journey.api import _engine
from journey.contract import IdentityConflict, IdentityDecided, MergeIn, PersonIdentity, UnmergeIn
from journey.identity import (
    conflict_json,
    identifier_in,
    identifiers_shown,
    merge,
    person_json,
    person_named,
    unmerge,
)
from projections.identities import read_identities

identities = APIRouter(prefix="/api/identity", tags=["identity"])


@identities.get("/conflicts", response_model=list[IdentityConflict], dependencies=[allow("admin")])
def conflicts(request: Request) -> list[dict[str, Any]]:
    """Identifiers two known customers' touchpoints carried, in log order: the engine never
    joins two known customers by itself; a person may, with a merge."""
    with _engine(request) as engine:
        graph = read_identities(engine.log, engine.definition.identity)
    return [conflict_json(conflict) for conflict in graph.conflicts()]


@identities.get("/{who}", response_model=PersonIdentity)
def person(
    who: str, request: Request, caller: Annotated[Principal, allow(*SALES)]
) -> dict[str, Any]:
    """A person, by customer id or any identifier (`email:anna@example.com`, in any form a
    channel writes it); a rep or a manager reads only their customers'."""
    with _engine(request) as engine:
        graph = read_identities(engine.log, engine.definition.identity)
        try:
            found = person_named(graph, identifier_in(graph, who, engine.sealing))
        except JourneyError:
            if caller.scoped:  # not theirs, whether known or not
                raise caller.not_theirs(f"customer {who!r}") from None
            raise
        if caller.scoped:
            position = engine.view.position(found)
            if position is None or not caller.may_read(position.rep):
                raise caller.not_theirs(f"customer {who!r}")
        shown = identifiers_shown(engine, found)
    return person_json(graph, found, [c for c in graph.conflicts() if found in c.people], shown)


@identities.post("/merge", response_model=IdentityDecided, dependencies=[allow("admin")])
def merged(joined: MergeIn, request: Request) -> dict[str, Any]:
    """Joins the people `a` and `b` name into one journey, who keeps the first customer id
    either had; the other id, and every identifier, finds them too."""
    with _engine(request) as engine:
        done = merge(engine, joined.a, joined.b, by=joined.by, reason=joined.reason)
    request.app.state.follower.wake()
    return done._asdict()


@identities.post("/unmerge", response_model=IdentityDecided, dependencies=[allow("admin")])
def unmerged(undone: UnmergeIn, request: Request) -> dict[str, Any]:
    """Undoes a merge (`what`: its id), or takes an identifier out of every link touchpoints
    made (`what`: kind:value): the journeys read as if it had never been made."""
    with _engine(request) as engine:
        done = unmerge(engine, undone.what, by=undone.by, reason=undone.reason)
    request.app.state.follower.wake()
    return {**done._asdict(), "merge_id": done.merge_id or None}
