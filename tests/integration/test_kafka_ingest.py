"""Exactly-once ingest from a real Kafka topic into a real PostgreSQL: bad records to dead
letters, crashes, partitions moving between members, and SIGTERM."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from engine.touchpoints import millis, touchpoint_from_record
from journey.demo import demo_touchpoints
from schemas.codec import contract
from schemas.files import touchpoint_avro
from tests.conftest import touchpoint
from tests.integration.conftest import Pipeline, encoded, wait_until
from tests.services import Service
from tests.stories import anonymous_reader_turns_caller


def test_bad_records_become_dead_letters_and_their_neighbours_are_recorded(
    pipeline: Pipeline,
) -> None:
    good = list(demo_touchpoints(10, seed=3))[:60]
    # Within every field's limits, but larger in all than the 64 KiB a record may be.
    notes = {f"note{i}": "x" * 3_900 for i in range(20)}
    too_big = touchpoint("big-1", customer_id="C-big", **notes)
    future = touchpoint("future-1", at=millis(datetime(2100, 1, 1, tzinfo=UTC)))
    nameless = touchpoint_avro(touchpoint("nameless-1"))
    nameless["customer_id"] = ""
    bad = [
        (b"C-x", b"not avro at all"),
        (b"C-big", encoded(too_big)),
        (b"C-1", encoded(future)),
        (b"", contract("Touchpoint").encode(nameless)),
    ]
    values = [(tp.customer_id.encode(), encoded(tp)) for tp in good]
    for at, letter in zip((5, 20, 35, 50), bad, strict=True):
        values.insert(at, letter)
    total = pipeline.publish(values)

    member = pipeline.start_member("a")
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert member.terminate() == 0

    assert sorted(pipeline.recorded_ids()) == sorted(tp.event_id for tp in good)
    log = member.log()
    assert f"dead letter {pipeline.topic}[0]@5: undecodable: not an Avro single-object" in log
    assert f"dead letter {pipeline.topic}[0]@20: oversized:" in log
    assert f"dead letter {pipeline.topic}[0]@35: invalid: occurred_at:" in log
    assert f"dead letter {pipeline.topic}[0]@50: invalid: customer_id:" in log

    published = pipeline.read_topic(f"{pipeline.topic}.dlq", 4)
    assert [record.value for record in published] == [value for _, value in bad]
    headers = [dict(record.headers) for record in published]
    assert [h["journey.reason"] for h in headers] == [
        b"undecodable",
        b"oversized",
        b"invalid",
        b"invalid",
    ]
    assert [h["journey.original_offset"] for h in headers] == [b"5", b"20", b"35", b"50"]
    assert {h["journey.original_topic"] for h in headers} == {pipeline.topic.encode()}
    assert {h["journey.original_partition"] for h in headers} == {b"0"}

    status = pipeline.journey("status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["kafka"] == "reachable"
    assert report["touchpoints"] == len(good)  # touchpoints, not the log's last position
    assert report["log_position"] > len(good)
    assert report["partitions"] == [
        {"partition": 0, "recorded_up_to": total, "end": total, "lag": 0}
    ]
    assert report["dead_letters"] == {"total": 4, "waiting": 4, "unpublished": 0}
    # What Kafka keeps of a person the engine forgets, and for how long.
    assert set(report["retention"]) == {pipeline.topic, f"{pipeline.topic}.dlq"}
    assert all(kept["ms"] is None or kept["ms"] > 0 for kept in report["retention"].values())

    listed = pipeline.journey("dead-letters", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert [letter["offset"] for letter in letters] == [5, 20, 35, 50]

    # After a fix (a larger size allowed), a redrive records the oversized touchpoint once.
    fixed = {"JOURNEY_MAX_RECORD_BYTES": "1000000"}
    first = pipeline.journey("dead-letters", "redrive", **fixed)
    assert first.returncode == 1  # three still fail, and say why
    assert "4 dead letters: 1 recorded, 0 already recorded, 3 still failing" in first.stderr
    assert "still fails: invalid: customer_id" in first.stderr
    again = pipeline.journey("dead-letters", "redrive", **fixed)
    assert "3 dead letters: 0 recorded, 0 already recorded, 3 still failing" in again.stderr
    assert Counter(pipeline.recorded_ids())["big-1"] == 1
    assert pipeline.touchpoint_events() == len(good) + 1


def test_a_touchpoint_whose_event_id_names_another_becomes_a_dead_letter_and_stays_one(
    pipeline: Pipeline,
) -> None:
    first = touchpoint("k-1", page="pricing")
    values = [
        (b"C-1", encoded(first)),
        (b"C-1", encoded(touchpoint("k-1", channel="phone", page="pricing"))),
        (b"C-1", encoded(first)),  # the same again: a repeat, not a conflict
        (b"C-1", encoded(touchpoint("k-2"))),
    ]
    total = pipeline.publish(values)

    member = pipeline.start_member("a")
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert member.terminate() == 0

    assert sorted(pipeline.recorded_ids()) == ["k-1", "k-2"]
    assert (
        f"dead letter {pipeline.topic}[0]@1: conflict: event_id: conflicts with the touchpoint "
        "given earlier with this event_id: its channel differs"
    ) in member.log()
    letters = json.loads(pipeline.journey("dead-letters", "--json").stdout)
    assert [(letter["offset"], letter["reason"]) for letter in letters] == [(1, "conflict")]
    redriven = pipeline.journey("dead-letters", "redrive")
    assert redriven.returncode == 1
    assert "still fails: conflict: event_id: conflicts with the touchpoint recorded on" in (
        redriven.stderr
    )
    assert pipeline.touchpoint_events() == 2


@pytest.mark.parametrize("pipeline", [3], indirect=True)
def test_every_touchpoint_is_recorded_exactly_once_however_often_the_consumer_is_killed(
    pipeline: Pipeline,
) -> None:
    produced = list(demo_touchpoints(300, seed=11))
    early, late = produced[:-500], produced[-500:]
    total = pipeline.publish_touchpoints(early)

    for _ in range(5):
        member = pipeline.start_member("a", batch_size=150)
        before = pipeline.recorded_count()
        wait_until(
            lambda b=before: pipeline.recorded_count() >= min(b + 400, len(early)), "progress"
        )
        member.kill()  # SIGKILL: no chance to finish anything
    # Work that only the last run can do, however far the killed ones got: it is stopped
    # while at work, not while it starts.
    total += pipeline.publish_touchpoints(late)
    last = pipeline.start_member("a", batch_size=150)
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert last.terminate() == 0

    pipeline.assert_recorded_once(produced)
    # The last run started where the database said: it met nothing already recorded.
    assert "0 already recorded, 0 dead letters" in last.log()


@pytest.mark.parametrize("pipeline", [4], indirect=True)
def test_partitions_move_between_members_without_loss_or_duplication(
    pipeline: Pipeline,
) -> None:
    produced = list(demo_touchpoints(400, seed=5))
    total = pipeline.publish_touchpoints(produced)

    first = pipeline.start_member("a", batch_size=100)
    wait_until(lambda: pipeline.recorded_count() >= 1000, "the first member's progress")
    second = pipeline.start_member("b", batch_size=100)
    wait_until(lambda: "starts at" in second.log(), "the second member to be given partitions")
    assert first.terminate() == 0  # its partitions move to the second member
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert second.terminate() == 0

    pipeline.assert_recorded_once(produced)


@pytest.mark.parametrize("pipeline", [3], indirect=True)
def test_a_postgresql_outage_is_waited_out_with_nothing_lost_or_doubled(
    pipeline: Pipeline, postgres_service: Service
) -> None:
    produced = list(demo_touchpoints(300, seed=13))
    total = pipeline.publish_touchpoints(produced)

    member = pipeline.start_member("a", batch_size=100)
    wait_until(lambda: pipeline.recorded_count() >= 500, "progress before the outage")
    postgres_service.stop()
    try:
        wait_until(lambda: "PostgreSQL is unavailable" in member.log(), "the outage to be seen")
    finally:
        postgres_service.start()
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert member.terminate() == 0

    pipeline.assert_recorded_once(produced)


@pytest.mark.parametrize("pipeline", [3], indirect=True)
def test_a_kafka_outage_is_waited_out_with_nothing_lost_or_doubled(
    pipeline: Pipeline, kafka_service: Service
) -> None:
    produced = list(demo_touchpoints(300, seed=17))
    first, rest = produced[:3000], produced[3000:]
    pipeline.publish_touchpoints(first)

    member = pipeline.start_member("a", batch_size=100)
    wait_until(lambda: pipeline.recorded_count() >= 500, "progress before the outage")
    kafka_service.stop()
    try:
        wait_until(
            lambda: "Kafka at" in member.log() and "unavailable" in member.log(),
            "the outage to be seen",
        )
    finally:
        kafka_service.start()
    back_at = time.monotonic()
    wait_until(lambda: "available again" in member.log(), "the broker to be seen again")
    assert time.monotonic() - back_at < 30
    total = len(first) + pipeline.publish_touchpoints(rest)
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert member.terminate() == 0

    pipeline.assert_recorded_once(produced)
    assert member.log().count("is unavailable") == 1  # the outage said once,
    assert member.log().count("available again") == 1  # and its end once


def test_a_consumer_started_while_postgresql_is_down_waits_for_it(
    pipeline: Pipeline, postgres_service: Service
) -> None:
    produced = list(demo_touchpoints(50, seed=19))
    total = pipeline.publish_touchpoints(produced)

    postgres_service.stop()
    try:
        member = pipeline.start_member("a")
        wait_until(lambda: "PostgreSQL is unavailable" in member.log(), "the wait to be said")
        assert member.process.poll() is None  # waiting, not gone
    finally:
        postgres_service.start()
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert member.terminate() == 0
    assert sorted(pipeline.recorded_ids()) == sorted(tp.event_id for tp in produced)


@pytest.mark.parametrize("pipeline", [4], indirect=True)
def test_members_of_one_process_publish_each_dead_letter_once(pipeline: Pipeline) -> None:
    good = list(demo_touchpoints(40, seed=23))
    bad = [(f"C-{n}".encode(), f"garbage {n}".encode()) for n in range(12)]
    total = pipeline.publish([*((tp.customer_id.encode(), encoded(tp)) for tp in good), *bad])

    member = pipeline.start_member("a", batch_size=50, workers=2)
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    wait_until(
        lambda: not pipeline.query("SELECT 1 FROM journey_dead_letters WHERE NOT published"),
        "every dead letter to be published",
    )
    assert member.terminate() == 0

    assert pipeline.log_end(f"{pipeline.topic}.dlq") == len(bad)
    assert sorted(pipeline.recorded_ids()) == sorted(tp.event_id for tp in good)


def test_touchpoints_without_a_customer_id_join_the_known_customers_journey(
    pipeline: Pipeline,
) -> None:
    """The story "anonymous reader turns caller" through the broker: the web analytics and
    telephony systems publish records with a null customer id, keyed by what they know."""
    story = [
        touchpoint_from_record(record, now_ms=millis(datetime.now(UTC)))
        for record in anonymous_reader_turns_caller()
    ]
    assert [tp.anonymous for tp in story] == [False, True, True, True, True]
    total = pipeline.publish([(tp.customer_id.encode(), encoded(tp)) for tp in story])

    member = pipeline.start_member("a")
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    assert member.terminate() == 0

    shown = pipeline.journey("customer", "--json", "phone:+4531415926")
    assert shown.returncode == 0, shown.stderr
    greta = json.loads(shown.stdout)
    assert greta["customer_id"] == "S7-GRETA"
    assert [t["event_id"] for t in greta["timeline"]] == ["s7-0", "s7-1", "s7-2", "s7-3", "s7-4"]
    assert {f["kind"]: f["events"] for f in greta["frictions"] if f["open"]} == {
        "channel_jump": ["s7-3", "s7-4"],
        "negative": ["s7-3"],
    }
