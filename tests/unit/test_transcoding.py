"""Stored events: the fast encoding reads back exactly as the library's own would."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from eventsourcing.application import Application
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder

from engine.journeys import CustomerJourney
from engine.recording import Journeys
from engine.touchpoints import Touchpoint
from engine.transcoding import OrjsonTranscoder
from tests.conftest import T0

MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def transcoders() -> tuple[OrjsonTranscoder, JSONTranscoder]:
    fast, library = OrjsonTranscoder(), JSONTranscoder()
    for transcoder in (fast, library):
        transcoder.register(DatetimeAsISO())
        transcoder.register(DecimalAsStr())
    return fast, library


def test_each_transcoder_reads_what_the_other_wrote() -> None:
    fast, library = transcoders()
    state = {"at": MOMENT, "amount": Decimal("9.50"), "nested": {"list": [MOMENT, 1, None]}}

    assert library.decode(fast.encode(state)) == state
    assert fast.decode(library.encode(state)) == state


def test_a_recorded_touchpoint_reads_back_as_the_aggregate_event_would(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "events.db"),
        "APPLICATION_RECORDER_TOPIC": "stores.sqlite.events:SQLiteJourneyRecorder",
    }
    tp = Touchpoint(
        "e1",
        "C-1",
        "phone",
        "call_inbound",
        T0,
        "telephony",
        rep_id="li",
        outcome="negative",
        phone="+4520000000",
        attributes={"wait_seconds": "840"},
    )
    journeys = Journeys(env, clock=lambda: MOMENT)
    journeys.record([tp])

    # The textbook way, through the aggregate, in an application using the library's defaults.
    textbook = CustomerJourney("C-1")
    textbook.record(tp)
    expected = textbook.collect_events()[1]
    library = Application[object](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    stored = journeys.recorder.select_notifications(start=1, limit=10)[1]

    recorded = library.mapper.to_domain_event(stored)

    assert isinstance(recorded, CustomerJourney.TouchpointRecorded)
    assert {**fields_of(recorded), "timestamp": None} == {**fields_of(expected), "timestamp": None}
    assert recorded.timestamp == MOMENT
    assert recorded.identifiers == {"phone": "+4520000000"}
    journeys.close()


def fields_of(event: object) -> dict[str, object]:
    """An event's fields, as its readers see them (a field left at its default included)."""
    return {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}  # type: ignore[arg-type]
