"""Each customer's journey is an append-only stream of touchpoints with a deterministic id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from engine.touchpoints import Touchpoint

_STREAM_NAMESPACE = uuid5(NAMESPACE_URL, "urn:journey-engine:customer")
CLOCK_ID = uuid5(NAMESPACE_URL, "urn:journey-engine:clock")


def stream_id(customer_id: str) -> UUID:
    """The id of a customer's journey stream: the same customer always maps to the same stream."""
    return uuid5(_STREAM_NAMESPACE, customer_id)


class TouchpointState(TypedDict):
    """The stored state of a TouchpointRecorded event, as replays read it without building
    the event object (the originator id and version are stored beside it, and the recording
    timestamp is left in its stored form)."""

    event_id: str
    customer_id: str
    channel: str
    type: str
    occurred_at: int
    source: str
    rep_id: str | None
    outcome: str | None
    attributes: dict[str, str]
    identifiers: dict[str, str]
    # Recorded without a customer id: `customer_id` is the key made from its identifiers.
    anonymous: NotRequired[bool]


class CustomerJourney(Aggregate):
    """One customer's journey. Its only rule: a touchpoint (by `event_id`) is recorded once."""

    class Started(Aggregate.Created):
        customer_id: str

    class TouchpointRecorded(Aggregate.Event):
        """A touchpoint as it happened. `identifiers` holds the personal data (email, phone,
        cookie id) apart from everything else, so that it can be encrypted and erased."""

        event_id: str
        customer_id: str
        channel: str
        type: str
        occurred_at: int
        source: str
        rep_id: str | None
        outcome: str | None
        attributes: dict[str, str]
        identifiers: dict[str, str]
        anonymous: bool = False
        # Where personal data is sealed (engine/sealing.py): a check of it, and it, sealed.
        personal_data: str | None = None
        sealed: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.recorded.add(self.event_id)

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return stream_id(customer_id)

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.recorded: set[str] = set()

    def record(self, touchpoint: Touchpoint) -> None:
        if touchpoint.event_id in self.recorded:
            return
        self.trigger_event(self.TouchpointRecorded, **touchpoint_fields(touchpoint))


def touchpoint_fields(touchpoint: Touchpoint, timestamp: datetime | None = None) -> dict[str, Any]:
    """The fields of a TouchpointRecorded event for a touchpoint (with its recording time, for
    encoding the event without building it)."""
    fields: dict[str, Any] = {
        "event_id": touchpoint.event_id,
        "customer_id": touchpoint.customer_id,
        "channel": touchpoint.channel,
        "type": touchpoint.type,
        "occurred_at": touchpoint.occurred_at,
        "source": touchpoint.source,
        "rep_id": touchpoint.rep_id,
        "outcome": touchpoint.outcome,
        "attributes": dict(touchpoint.attributes),
        "identifiers": touchpoint.identifiers,
    }
    if touchpoint.anonymous:
        fields["anonymous"] = True
    if timestamp is not None:
        fields["timestamp"] = timestamp
    return fields


class JourneyClock(Aggregate):
    """The engine's own clock, as events in the log. Projections never read the wall clock:
    a window such as "no follow-up within 48 hours" closes for a silent customer when a tick
    passes it, live and on replay alike."""

    class Started(Aggregate.Created):
        pass

    class Ticked(Aggregate.Event):
        at: int  # milliseconds since the epoch, UTC

        def apply(self, aggregate: Any) -> None:
            aggregate.at = self.at

    @staticmethod
    def create_id() -> UUID:
        return CLOCK_ID

    def __init__(self) -> None:
        self.at: int | None = None


_PEOPLE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:journey-engine:people")


class IdentityDecisions(Aggregate):
    """What people decided about who is who: a merge of two people the engine would not
    join by itself, the undoing of one, or an identifier taken out of every link touchpoints
    made (a shared cookie, a wrong number). Identifiers are written `kind:value`."""

    class Started(Aggregate.Created):
        customer_id: str

    class Decided(Aggregate.Event):
        decision: str  # merged, unmerged or detached
        merge_id: str  # the merge made or undone; for a detach, empty
        a: str  # merged: who absorbs...; detached: the identifier
        b: str  # ...whom; otherwise empty
        by: str
        reason: str
        occurred_at: int

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return uuid5(_PEOPLE_NAMESPACE, customer_id)

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id


# Every decision goes to one stream: they are few, and their order is the log's.
PEOPLE_STREAM = "people"
MERGED, UNMERGED, DETACHED = "merged", "unmerged", "detached"


_ERASURES_NAMESPACE = uuid5(NAMESPACE_URL, "urn:journey-engine:erasures")


class Erasures(Aggregate):
    """Receipts of people forgotten: who asked for it and why, when, and what was erased.
    A receipt holds no personal data: the keys are the journeys' own (customer ids, and the
    digest-made keys of anonymous journeys)."""

    class Started(Aggregate.Created):
        customer_id: str

    class Forgotten(Aggregate.Event):
        person: str
        keys: list[str]  # every key the person's touchpoints were recorded under
        data_keys: int  # how many data keys were destroyed
        dead_letters: int  # how many dead letters were emptied
        by: str
        reason: str
        occurred_at: int

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return uuid5(_ERASURES_NAMESPACE, customer_id)

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id


# Every receipt goes to one stream: they are few, and a person's are found by reading it.
ERASURES_STREAM = "erasures"
