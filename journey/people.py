"""A person's journey as the views and the log hold it, found by any key their touchpoints
were recorded under: their customer id, an id their journey was joined into, or the key of
their anonymous touchpoints."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from operator import itemgetter
from typing import NamedTuple

from engine.errors import UnknownCustomer
from engine.identifiers import CUSTOMER_ID, parse_identifier
from journey.bootstrap import Engine
from projections.identities import read_identities
from projections.log import Folded
from projections.position import Position
from projections.timeline import TimelineEntry, timeline


class PersonJourney(NamedTuple):
    person: str
    position: Position
    timeline: list[TimelineEntry]


def person_journey(engine: Engine, customer_id: str) -> PersonJourney:
    """The journey of the person `customer_id` names now (a customer id, or any identifier
    their touchpoints carried: `email:anna@example.com`); UnknownCustomer if no one."""
    identifier = parse_identifier(customer_id, engine.definition.identity.all_kinds)
    if identifier.kind != CUSTOMER_ID:
        from journey.identity import identifier_in, person_named  # reads the whole log

        graph = read_identities(engine.log, engine.definition.identity)
        customer_id = person_named(graph, identifier_in(graph, customer_id, engine.sealing))
    person = engine.view.person_of(customer_id)
    position = engine.view.position(person) if person is not None else None
    if person is None or position is None:
        raise UnknownCustomer(customer_id)
    touchpoints = engine.log.touchpoints_of(engine.view.keys_of(person))
    return PersonJourney(person, position, timeline(touchpoints))


def people_touchpoints(engine: Engine, people: Sequence[str]) -> dict[str, list[Folded]]:
    """Each person's touchpoints, under every key they were recorded under, in log order,
    reduced to what a fold reads; people with none are left out."""
    keys = engine.view.keys_of_many(people)
    entries = engine.log.folded_entries(sorted({key for ks in keys.values() for key in ks}))
    found: dict[str, list[Folded]] = {}
    for person, person_keys in keys.items():
        streams = [entries[key] for key in person_keys if key in entries]
        if len(streams) == 1:
            found[person] = [e for _, e in streams[0]]
        elif streams:
            merged = heapq.merge(*streams, key=itemgetter(0))
            found[person] = [e for _, e in merged]
    return found
