"""Recording touchpoints in the event store: batched, idempotent, and readable the library's way."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.actions import CustomerActions
from engine.definition import load_definition
from engine.errors import UnknownCustomer
from engine.journeys import CustomerJourney, stream_id
from engine.ledger import BatchWrite, Partition
from engine.recording import Journeys, StreamEvent
from engine.sealing import SEALED
from engine.settings import Settings
from engine.touchpoints import Touchpoint
from engine.vault import MasterKeys
from journey.bootstrap import event_store_env, journeys_of
from projections.log import JourneyLog
from stores.postgres.events import PostgresJourneyRecorder
from tests.conftest import T0, touchpoint


@pytest.fixture
def store_env(settings: Settings) -> dict[str, str]:
    return event_store_env(settings)


@pytest.fixture
def journeys(store_env: dict[str, str]) -> Iterator[Journeys]:
    app = Journeys(store_env)
    yield app
    app.close()


def touchpoint_events(app: Journeys) -> list[CustomerJourney.TouchpointRecorded]:
    notifications = app.recorder.select_notifications(start=1, limit=1_000)
    events = [app.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if isinstance(e, CustomerJourney.TouchpointRecorded)]


def test_many_customers_are_recorded_in_one_batch(journeys: Journeys) -> None:
    batch = [touchpoint(f"e{i}", customer_id=f"C-{i % 3}", at=T0 + i) for i in range(9)]

    result = journeys.record(batch)

    assert (result.recorded, result.duplicates) == (9, 0)
    assert [e.event_id for e in touchpoint_events(journeys)] == [f"e{i}" for i in range(9)]
    assert result.last_position == journeys.recorder.max_notification_id()


def test_the_same_event_id_twice_in_a_batch_is_recorded_once(journeys: Journeys) -> None:
    result = journeys.record([touchpoint("e1"), touchpoint("e1"), touchpoint("e2")])

    assert (result.recorded, result.duplicates) == (2, 1)
    assert len(touchpoint_events(journeys)) == 2


def test_the_same_event_id_in_a_later_batch_is_recorded_once(journeys: Journeys) -> None:
    journeys.record([touchpoint("e1"), touchpoint("e2")])

    again = journeys.record([touchpoint("e2"), touchpoint("e3")])

    assert (again.recorded, again.duplicates) == (1, 1)
    assert [e.event_id for e in touchpoint_events(journeys)] == ["e1", "e2", "e3"]


def test_an_event_id_recorded_before_with_other_content_is_refused_naming_what_differs(
    store_env: dict[str, str],
) -> None:
    first = Journeys(store_env)
    first.record([touchpoint("e1", page="pricing", source="web"), touchpoint("e2")])
    first.close()
    journeys = Journeys(store_env)  # a new process, that has read no stream yet

    result = journeys.record(
        [
            touchpoint("e1", at=T0 + 60_000, page="pricing"),
            touchpoint("e2", customer_id="C-2"),
            touchpoint("e3"),
        ]
    )
    journeys.close()

    assert (result.recorded, result.duplicates) == (1, 0)
    assert [(c.index, c.event_id) for c in result.conflicts] == [(0, "e1"), (1, "e2")]
    assert result.conflicts[0].reason.startswith("conflicts with the touchpoint recorded on ")
    assert result.conflicts[0].reason.endswith(": its occurred_at and attributes differ")
    assert result.conflicts[1].reason == (
        "conflicts with a touchpoint recorded for another customer"
    )


def test_the_same_touchpoint_again_is_a_repeat_whatever_the_order_of_its_attributes(
    journeys: Journeys,
) -> None:
    journeys.record([touchpoint("e1", page="pricing", source="web")])

    again = journeys.record([touchpoint("e1", source="web", page="pricing")])
    once_more = journeys.record([touchpoint("e1", page="pricing", source="web")])

    assert (again.recorded, again.duplicates, again.conflicts) == (0, 1, ())
    assert (once_more.recorded, once_more.duplicates, once_more.conflicts) == (0, 1, ())


def test_an_event_id_given_twice_in_a_batch_with_other_content_is_refused_the_second_time(
    journeys: Journeys,
) -> None:
    result = journeys.record([touchpoint("e1"), touchpoint("e1", channel="phone")])

    assert (result.recorded, result.duplicates) == (1, 0)
    assert [(c.index, c.reason) for c in result.conflicts] == [
        (1, "conflicts with the touchpoint given earlier with this event_id: its channel differs")
    ]


def test_a_batch_recorded_all_or_none_records_nothing_when_one_conflicts(
    journeys: Journeys,
) -> None:
    journeys.record([touchpoint("e1")])

    result = journeys.record([touchpoint("e2"), touchpoint("e1", type="call")], all_or_none=True)

    assert (result.recorded, len(result.conflicts)) == (0, 1)
    assert [e.event_id for e in touchpoint_events(journeys)] == ["e1"]


def test_a_touchpoint_recorded_since_its_stream_was_read_is_still_told_apart(
    store_env: dict[str, str],
) -> None:
    reader, other = Journeys(store_env), Journeys(store_env)
    reader.record([touchpoint("e1")])
    reader.record([touchpoint("e1")])  # reads and keeps C-1's stream
    other.record([touchpoint("e2")])

    repeat = reader.record([touchpoint("e2")])
    conflict = reader.record([touchpoint("e2", outcome="negative")])
    reader.close()
    other.close()

    assert (repeat.duplicates, repeat.conflicts) == (1, ())
    assert [c.event_id for c in conflict.conflicts] == ["e2"]


def test_the_same_event_id_after_a_restart_is_recorded_once(store_env: dict[str, str]) -> None:
    first = Journeys(store_env)
    first.record([touchpoint("e1"), touchpoint("e2", customer_id="C-2")])
    first.close()

    restarted = Journeys(store_env)
    result = restarted.record([touchpoint("e1"), touchpoint("e3", at=T0 + 1)])

    assert (result.recorded, result.duplicates) == (1, 1)
    assert restarted.journey("C-1").version == 3  # started, e1, e3
    restarted.close()


def test_two_writers_on_one_store_neither_lose_nor_double_a_touchpoint(
    store_env: dict[str, str],
) -> None:
    one, two = Journeys(store_env), Journeys(store_env)
    one.record([touchpoint("e1")])
    two.record([touchpoint("e2", at=T0 + 1)])  # two now believes C-1 is at version 3

    one.record([touchpoint("e3", at=T0 + 2)])  # one's belief (version 2) is stale
    two.record([touchpoint("e4", at=T0 + 3), touchpoint("e3")])

    assert sorted(one.journey("C-1").recorded) == ["e1", "e2", "e3", "e4"]
    one.close()
    two.close()


def test_a_customer_another_writer_recorded_is_not_taken_for_a_new_one(
    store_env: dict[str, str],
) -> None:
    one, two = Journeys(store_env), Journeys(store_env)
    one.record([touchpoint("e1", customer_id="C-1")])
    # Two finds the customers it did not know new, until it meets one that is not.
    two.record([touchpoint("e2", customer_id="C-2")])
    two.record([touchpoint("e3", customer_id="C-3")])

    result = two.record([touchpoint("e4", customer_id="C-1", at=T0 + 1)])

    assert result.recorded == 1
    assert two.journey("C-1").version == 3  # started, e1, e4
    assert two.journey("C-1").recorded == {"e1", "e4"}
    one.close()
    two.close()


def decided(action_id: str, customer_id: str) -> StreamEvent:
    fields = {"action_id": action_id, "customer_id": customer_id, "action": {}, "explanation": {}}
    return StreamEvent(
        f"action:{action_id}", customer_id, CustomerActions, CustomerActions.Decided, fields
    )


def test_two_writers_appending_to_one_stream_neither_lose_nor_double_an_event(
    store_env: dict[str, str],
) -> None:
    one, two = Journeys(store_env), Journeys(store_env)
    one.append([decided("a1", "C-1")])
    two.append([decided("a2", "C-2")])  # two finds the streams it did not know new

    two.append([decided("a3", "C-1")])  # ... until it meets one that is not
    one.append([decided("a4", "C-1")])  # one's belief (version 2) is stale
    assert two.append([decided("a3", "C-1")]) is None  # appended once

    stream = one.recorder.select_events(CustomerActions.create_id("C-1"))
    events = [one.mapper.to_domain_event(stored) for stored in stream]
    assert [e.action_id for e in events if isinstance(e, CustomerActions.Decided)] == [
        "a1",
        "a3",
        "a4",
    ]
    one.close()
    two.close()


def test_a_journey_reads_back_the_library_way(journeys: Journeys) -> None:
    journeys.record([touchpoint("e1", page="pricing"), touchpoint("e2", "demo", at=T0 + 1)])

    journey = journeys.journey("C-1")

    assert journey.customer_id == "C-1"
    assert journey.recorded == {"e1", "e2"}
    events = touchpoint_events(journeys)
    assert events[0].attributes == {"page": "pricing"}
    assert events[1].type == "demo"


def test_an_unknown_customer_is_named(journeys: Journeys) -> None:
    with pytest.raises(UnknownCustomer, match="C-404"):
        journeys.journey("C-404")


def test_the_embedded_store_is_a_file_under_the_data_directory(tmp_path: Path) -> None:
    embedded = Settings.from_env({"JOURNEY_DATA_DIR": str(tmp_path / "data")})
    app = Journeys(event_store_env(embedded))
    app.record([touchpoint("e1")])
    app.close()

    assert embedded.events_path.is_file()
    assert embedded.events_path.parent == tmp_path / "data"


def test_a_large_batch_is_recorded_in_one_transaction(journeys: Journeys) -> None:
    # Tens of megabytes in one statement: more than any socket buffer holds.
    note = "x" * 400
    batch = [
        touchpoint(f"e{i}", customer_id=f"C-{i % 2_000}", at=T0 + i, page="pricing", note=note)
        for i in range(50_000)
    ]

    result = journeys.record(batch)

    assert result.recorded == 50_000
    assert result.last_position == journeys.recorder.max_notification_id()
    assert journeys.journey("C-7").version == 26  # started, then 25 touchpoints


def test_a_large_batch_skips_what_earlier_batches_recorded(journeys: Journeys) -> None:
    # Small and large batches ask the ledger in different ways; both must find every id.
    def batch(first: int, last: int) -> list[Touchpoint]:
        return [
            touchpoint(f"e{i}", customer_id=f"C-{i % 300}", at=T0 + i) for i in range(first, last)
        ]

    journeys.record(batch(0, 10))
    journeys.record(batch(10, 2_000))

    result = journeys.record(batch(0, 4_000))

    assert (result.recorded, result.duplicates) == (2_000, 2_000)
    assert journeys.journey("C-7").version == 15  # started, then e7, e307, ..., e3907


def mark_in_ledger(journeys: Journeys, marker: str) -> BatchWrite:
    """A companion write whose effect can be read back: one more id in the ledger."""
    recorder = journeys.recorder
    if isinstance(recorder, PostgresJourneyRecorder):
        table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}_touchpoints"'
        sql = f"INSERT INTO {table} (event_id) VALUES (%s)"
    else:
        sql = "INSERT INTO recorded_touchpoints (event_id) VALUES (?)"
    return lambda cursor: cursor.execute(sql, (marker,))


class _Refused(Exception):
    pass


def test_a_batch_whose_companion_write_fails_leaves_nothing_behind(journeys: Journeys) -> None:
    def fail(_cursor: object) -> None:
        raise _Refused

    with pytest.raises(_Refused):
        journeys.record([touchpoint("e1"), touchpoint("e2", customer_id="C-2")], also=[fail])

    assert touchpoint_events(journeys) == []
    # Neither the events nor the ledger kept the ids: the same batch records in full.
    result = journeys.record(
        [touchpoint("e1"), touchpoint("e2", customer_id="C-2")],
        also=[mark_in_ledger(journeys, "marker")],
    )
    assert (result.recorded, result.duplicates) == (2, 0)
    assert journeys.recorder.recorded_event_ids(["marker"]) == {"marker"}


def test_companion_writes_commit_even_when_every_touchpoint_is_a_duplicate(
    journeys: Journeys,
) -> None:
    journeys.record([touchpoint("e1")])

    result = journeys.record([touchpoint("e1")], also=[mark_in_ledger(journeys, "marker")])

    assert (result.recorded, result.duplicates) == (0, 1)
    assert journeys.recorder.recorded_event_ids(["marker"]) == {"marker"}


def test_each_touchpoint_is_in_the_partition_its_stream_is_held_by(journeys: Journeys) -> None:
    """A partition of the log takes its customers' touchpoints, chosen in SQL, and every clock
    event; together the partitions take the whole log once."""
    journeys.record([touchpoint(f"e{i}", customer_id=f"C-{i % 40}", at=T0 + i) for i in range(200)])
    journeys.tick(T0 + 1_000)
    log = JourneyLog(journeys)
    everything = log.folded(0, 10_000)

    shares = [log.folded(0, 10_000, partition=Partition(n, 3)) for n in range(3)]

    touchpoints = [[e for _, e in share if e.event_id is not None] for share in shares]
    for n, share in enumerate(touchpoints):
        assert share, "forty customers spread over three partitions"
        assert {Partition(n, 3).holds(stream_id(e.customer_id)) for e in share} == {True}
    assert sorted(e.event_id for share in touchpoints for e in share) == sorted(
        e.event_id for _, e in everything if e.event_id is not None
    )
    for share in shares:
        assert [e.at for _, e in share if e.event_id is None] == [T0 + 1_000]
        assert [position for position, _ in share] == sorted(position for position, _ in share)


@pytest.fixture
def sealed_journeys(settings: Settings) -> Iterator[Journeys]:
    keyed = dataclasses.replace(settings, master_key=MasterKeys.new_line("k1"))
    with journeys_of(keyed, load_definition()) as journeys:
        yield journeys


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
sealable = st.builds(
    Touchpoint,
    event_id=st.uuids().map(str),
    customer_id=st.sampled_from(["C-1", "C-2"]),
    channel=st.just("web"),
    type=st.just("page_view"),
    occurred_at=st.just(T0),
    source=st.just("web"),
    rep_id=st.none(),
    outcome=st.none(),
    email=st.none() | st.sampled_from(["anna@example.com", "Berit@Example.org"]),
    phone=st.none() | st.sampled_from(["+45 20 11 22 33", "not a number"]),
    cookie_id=st.none() | texts,
    # Attribute names the stored state also has, and the personal ones, among others.
    attributes=st.dictionaries(
        st.sampled_from(["timestamp", "sealed", "personal_data", "name", "note", "page"]) | texts,
        texts,
        max_size=4,
    ),
    anonymous=st.booleans(),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(sealable, min_size=1, max_size=6))
def test_personal_data_sealed_as_a_batch_is_recorded_is_stored_as_if_sealed_when_encoded(
    sealed_journeys: Journeys, batch: list[Touchpoint]
) -> None:
    encoder = sealed_journeys.encoder()
    assert encoder.sealing is not None
    whole = encoder.encode(batch)
    later = encoder.encode(batch, seal_later=True)  # in the process that reads a file, say
    encoder.seal(later)  # in the one that records it
    sealing = encoder.sealing
    assert later.customer_ids == whole.customer_ids
    for tp, sealed_later, sealed_whole in zip(batch, later.states, whole.states, strict=True):
        fields = encoder.decode(sealed_later)
        assert encoder.encode_state(fields) == sealed_later  # the stored form, field order kept
        expected = encoder.decode(sealed_whole)
        for state in (fields, expected):
            del state["timestamp"]
        # Sealed with another nonce, perhaps: the same data, and the same check of it.
        opened = sealing.opened(fields)
        assert opened == sealing.opened(expected)
        assert opened["identifiers"] == tp.identifiers
        fields.pop(SEALED, None)
        expected.pop(SEALED, None)
        assert fields == expected
