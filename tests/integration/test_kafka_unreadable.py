"""Records the Kafka client itself cannot read (a header name that is not UTF-8, a record
batch whose bytes were damaged on the broker's disk) become dead letters by offset, every
record around them is recorded once, and SIGTERM ends a member whatever it is doing."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from journey.demo import demo_touchpoints
from tests.integration.conftest import Pipeline, encoded, wait_until
from tests.services import ROOT, Service

GRACE_S = 20  # what a member is given to stop after SIGTERM (journey.console.STOP_GRACE_S)


class RawName(str):
    """A header name sent as the bytes given, UTF-8 or not: kafka-python's producer writes a
    header name as `name.encode("utf-8")`, and this name answers with its own bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        made = super().__new__(cls, "?" * len(raw))
        made.raw = raw
        return made

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        del encoding, errors
        return self.raw


def dead_letters(pipeline: Pipeline) -> list[dict[str, object]]:
    listed = pipeline.journey("dead-letters", "--json")
    assert listed.returncode == 0, listed.stderr
    letters: list[dict[str, object]] = json.loads(listed.stdout)
    return letters


def test_a_header_name_that_is_not_utf8_is_a_dead_letter_by_offset(pipeline: Pipeline) -> None:
    good = list(demo_touchpoints(5, seed=31))[:20]
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, linger_ms=50)
    # One producer batch: the records after the poisoned one share its batch, which the
    # client cannot read past.
    for tp in good[:10]:
        producer.send(pipeline.topic, key=tp.customer_id.encode(), value=encoded(tp))
    producer.send(
        pipeline.topic,
        key=b"C-poison",
        value=encoded(good[0]),
        headers=[("trace", b"1"), (RawName(b"\xff\xfename"), b"x")],
    )
    for tp in good[10:]:
        producer.send(pipeline.topic, key=tp.customer_id.encode(), value=encoded(tp))
    producer.flush()
    producer.close()
    total = len(good) + 1

    member = pipeline.start_member("a", batch_size=3)
    wait_until(lambda: pipeline.consumed_up_to() == total, "every record to be consumed")
    wait_until(
        lambda: not pipeline.query("SELECT 1 FROM journey_dead_letters WHERE NOT published"),
        "the dead letter to be published",
    )
    assert member.terminate() == 0

    pipeline.assert_recorded_once(good)
    [letter] = dead_letters(pipeline)
    assert (letter["topic"], letter["partition"], letter["offset"]) == (pipeline.topic, 0, 10)
    assert letter["reason"] == "unreadable"
    assert "UnicodeDecodeError" in str(letter["detail"])
    assert "\n" not in str(letter["detail"])
    log = member.log()
    assert f"dead letter {pipeline.topic}[0]@10: unreadable: " in log
    assert "unavailable" not in log
    [published] = pipeline.read_topic(f"{pipeline.topic}.dlq", 1)
    headers = dict(published.headers)
    assert published.value == encoded(good[0])
    assert headers["\\xff\\xfename"] == b"x"  # the name's bytes, written out
    assert headers["journey.original_offset"] == b"10"


def segment(topic: str) -> Path:
    return ROOT / ".services" / "kafka" / "data" / f"{topic}-0" / "00000000000000000000.log"


def test_a_record_batch_damaged_on_disk_is_dead_letters_by_offset(
    pipeline: Pipeline, kafka_service: Service
) -> None:
    if kafka_service.script is None:
        pytest.skip("the broker's data directory is not this checkout's")
    good = list(demo_touchpoints(5, seed=37))[:12]
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap)
    for tp in good[:6]:
        producer.send(pipeline.topic, key=tp.customer_id.encode(), value=encoded(tp))
    producer.flush()
    batching = KafkaProducer(bootstrap_servers=pipeline.bootstrap, linger_ms=500)
    for number in range(3):  # one batch of three, damaged below
        batching.send(pipeline.topic, value=b"DAMAGE-ME-%d" % number)
    batching.flush()
    batching.close()
    for tp in good[6:]:
        producer.send(pipeline.topic, key=tp.customer_id.encode(), value=encoded(tp))
    producer.flush()
    producer.close()
    # Disk corruption: one byte of the middle batch's records, whose CRC no longer matches.
    path = segment(pipeline.topic)
    if not path.exists():
        pytest.skip(f"the broker keeps its data elsewhere than {path.parent.parent}")
    data = bytearray(path.read_bytes())
    at = data.index(b"DAMAGE-ME-1")
    data[at] ^= 0xFF
    with path.open("r+b") as file:
        file.seek(at)
        file.write(data[at : at + 1])

    member = pipeline.start_member("a", batch_size=4)
    wait_until(lambda: pipeline.consumed_up_to() == 15, "every record to be consumed")
    assert member.terminate() == 0

    pipeline.assert_recorded_once(good)
    letters = dead_letters(pipeline)
    assert [letter["offset"] for letter in letters] == [6, 7, 8]
    assert {letter["reason"] for letter in letters} == {"unreadable"}
    assert "failed crc check" in str(letters[0]["detail"])
    assert "failed its CRC check" in str(letters[1]["detail"])


def test_the_position_in_postgresql_is_applied_before_anything_is_fetched(
    pipeline: Pipeline,
) -> None:
    good = list(demo_touchpoints(5, seed=41))[:10]
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap)
    producer.send(pipeline.topic, value=b"x", headers=[(RawName(b"\xc3\x28"), b"")])
    producer.flush()
    for tp in good:
        producer.send(pipeline.topic, key=tp.customer_id.encode(), value=encoded(tp))
    producer.flush()
    producer.close()
    # Kafka's committed offset points at the unreadable record; PostgreSQL says it was
    # consumed already (as after a crash between the two commits).
    committer = KafkaConsumer(bootstrap_servers=pipeline.bootstrap, group_id=pipeline.group)
    committer.commit({TopicPartition(pipeline.topic, 0): OffsetAndMetadata(0, "", -1)})
    committer.close()
    assert pipeline.journey("status").returncode == 0  # makes the bookkeeping tables
    pipeline.query(
        "INSERT INTO journey_consumer_offsets (group_id, topic, partition, next_offset) "
        "VALUES (%s, %s, 0, 1) RETURNING 1",
        pipeline.group,
        pipeline.topic,
    )

    member = pipeline.start_member("a")
    wait_until(lambda: pipeline.recorded_count() == len(good), "the good records")
    assert member.terminate() == 0
    assert dead_letters(pipeline) == []
    assert f"partition {pipeline.topic}[0] starts at offset 1" in member.log()


def test_sigterm_ends_a_member_reading_past_unreadable_records_at_once(
    pipeline: Pipeline,
) -> None:
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap)
    for number in range(200):
        producer.send(pipeline.topic, value=b"%d" % number, headers=[(RawName(b"\xff"), b"")])
        producer.flush()  # a batch each
    producer.close()

    member = pipeline.start_member("a", batch_size=10)
    wait_until(lambda: "unreadable" in member.log(), "the member to meet them")
    started = time.monotonic()
    assert member.terminate() == 0
    assert time.monotonic() - started < GRACE_S
    assert "Traceback" not in member.log()


@pytest.mark.parametrize(
    ("variable", "nowhere", "said"),
    [
        ("JOURNEY_KAFKA_BOOTSTRAP", "127.0.0.1:9", "Kafka at 127.0.0.1:9 is unavailable"),
        (
            "JOURNEY_DATABASE_URL",
            "postgresql://journey:journey@127.0.0.1:9/journey",
            "PostgreSQL is unavailable",
        ),
    ],
)
def test_sigterm_ends_a_member_waiting_for_a_service_at_once(
    pipeline: Pipeline, variable: str, nowhere: str, said: str
) -> None:
    member = pipeline.start("consume", "consume", **{variable: nowhere})
    wait_until(lambda: said in member.log(), "the wait to be said")
    started = time.monotonic()
    assert member.terminate() == 0
    assert time.monotonic() - started < GRACE_S
    assert member.log().count(said) == 1 or variable == "JOURNEY_DATABASE_URL"


@pytest.mark.parametrize("limit", [None, "3000000"])
def test_a_dead_letter_too_large_for_its_topic_is_published_as_a_reference(
    pipeline: Pipeline, limit: str | None
) -> None:
    # A topic that takes records of 4 MiB; its dead-letter topic keeps the broker's 1 MiB.
    large = replace(pipeline, topic=f"{pipeline.topic}-large")
    admin = KafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    admin.create_topics(
        [NewTopic(large.topic, 1, 1, topic_configs={"max.message.bytes": str(4 << 20)})]
    )
    admin.close()
    good = list(demo_touchpoints(3, seed=43))[:4]
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, max_request_size=4 << 20)
    for number, tp in enumerate(good):
        producer.send(large.topic, key=tp.customer_id.encode(), value=encoded(tp))
        if number == 1:
            producer.send(large.topic, key=b"C-huge", value=b"\x01" * (2 << 20))
    producer.flush()
    producer.close()

    member = (
        large.start_member("a")
        if limit is None
        else large.start("consume", "consume", JOURNEY_DEAD_LETTER_MAX_BYTES=limit)
    )
    wait_until(lambda: large.consumed_up_to() == len(good) + 1, "every record to be consumed")
    wait_until(
        lambda: not large.query("SELECT 1 FROM journey_dead_letters WHERE NOT published"),
        "the dead letter to be published",
    )
    assert member.terminate() == 0

    large.assert_recorded_once(good)
    [published] = large.read_topic(f"{large.topic}.dlq", 1)
    reference = json.loads(published.value)
    [letter] = dead_letters(large)
    assert reference["dead_letter_id"] == letter["id"]
    assert (reference["topic"], reference["partition"], reference["offset"]) == (
        large.topic,
        0,
        2,
    )
    assert reference["bytes"] > 2 << 20
    assert reference["reason"] == letter["reason"] == "oversized"
    assert dict(published.headers)["journey.withheld_bytes"] == str(reference["bytes"]).encode()
    assert large.log_end(f"{large.topic}.dlq") == 1
    assert member.log().count("cannot be published whole") + member.log().count(
        "was not published whole"
    ) == (0 if limit is None else 1)
