"""Whatever reaches the touchpoints topic, the consumer raises nothing, keeps each bad record
as a dead letter naming its topic, partition, offset and why, and records every good record
around it exactly once.

The examples are generated and go through the real broker, each to a topic of its own:
arbitrary bytes, good touchpoints with one field changed, and arbitrary keys and headers, the
header names UTF-8 or not. `make fuzz` runs many more of them than the tests do."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from consumers.ingest import Rejection, TouchpointIngest, triage
from consumers.settings import KafkaSettings
from engine.settings import Settings
from journey.bootstrap import Engine, build_bookkeeping, build_engine
from schemas.codec import contract, wire_contract
from schemas.files import touchpoint_avro
from tests import services
from tests.conftest import touchpoint
from tests.integration.test_kafka_unreadable import RawName

DECODER = wire_contract("Touchpoint")
EXAMPLES = int(os.environ.get("JOURNEY_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ("event_id", "customer_id", "channel", "type", "occurred_at", "source", "rep_id",
          "outcome", "attributes")  # fmt: skip
avro_values = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=20)
)
names = st.text(max_size=8).map(str.encode) | st.binary(max_size=8)
headers = st.lists(st.tuples(names, st.binary(max_size=8)), max_size=3)
# A record: ("good", n), arbitrary bytes, or a good touchpoint with one field changed; each
# with an arbitrary key and headers.
records = st.tuples(
    st.one_of(
        st.integers(0, 10**6).map(lambda n: ("good", n)),
        st.binary(max_size=64).map(lambda b: ("bytes", b)),
        st.tuples(st.sampled_from(FIELDS), avro_values).map(lambda fv: ("mutated", fv)),
    ),
    st.none() | st.binary(max_size=16),
    headers,
)


def now() -> int:
    return int(time.time() * 1000)


def good(number: int, topic: str) -> Any:
    return touchpoint(f"{topic}-good-{number}", customer_id=f"C-{number % 7}")


def value_of(kind: str, payload: Any, topic: str, index: int) -> bytes:
    codec = contract("Touchpoint")
    if kind == "good":
        return codec.encode(touchpoint_avro(good(payload, topic)))
    if kind == "bytes":
        return bytes(payload)
    field, changed = payload
    record = {**touchpoint_avro(good(index, topic)), field: changed}
    try:
        return codec.encode(record)
    except Exception:  # the change does not fit the contract: send it as JSON text instead
        return repr(record).encode()


@pytest.fixture(scope="module")
def store(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with services.fresh_schema(postgres_url) as schema:
        settings_ = Settings.from_env(
            {
                "JOURNEY_DATABASE_URL": postgres_url,
                "POSTGRES_SCHEMA": schema,
                "JOURNEY_DATA_DIR": str(tmp_path_factory.mktemp("fuzz")),
            }
        )
        engine = build_engine(settings_)
        yield engine
        engine.close()


@FUZZ
@given(content=st.lists(records, min_size=1, max_size=6))
@example(content=[(("good", 1), None, [(b"\xff\xfe", b"x")]), (("good", 2), b"k", [])])
@example(content=[(("bytes", b""), None, []), (("good", 3), None, [(b"ok", b"")])])
@example(content=[(("mutated", ("customer_id", "")), b"\xc3\x28", [(b"\xc3\x28", b"")])])
def test_whatever_reaches_the_topic_becomes_touchpoints_and_located_dead_letters(
    kafka_service: services.Service,
    postgres_url: str,
    store: Engine,
    content: list[tuple[tuple[str, Any], bytes | None, list[tuple[bytes, bytes]]]],
) -> None:
    topic = f"fz{uuid.uuid4().hex[:10]}"
    kafka = replace(
        KafkaSettings.from_env({}),
        bootstrap=kafka_service.address,
        touchpoints_topic=topic,
        group=f"{topic}-group",
    )
    producer = KafkaProducer(bootstrap_servers=kafka_service.address, linger_ms=20)
    goods: set[str] = set()
    for index, ((kind, payload), key, sent_headers) in enumerate(content):
        value = value_of(kind, payload, topic, index)
        if kind == "good":
            goods.add(good(payload, topic).event_id)
        producer.send(
            topic,
            key=key,
            value=value,
            headers=[(RawName(name), data) for name, data in sent_headers],
        )
    producer.flush()
    producer.close()

    bookkeeping = build_bookkeeping(store.settings, "consume")
    ingest = TouchpointIngest(store.journeys, bookkeeping, kafka, batch_size=3)
    stop = threading.Event()
    give_up = threading.Timer(60, stop.set)
    give_up.start()
    try:
        ingest.run(stop, on_batch=lambda t: t.consumed >= len(content) and stop.set())
    finally:
        give_up.cancel()

    # Which values the engine takes is the triage's business (tested on its own); here, that
    # the consumer locates every record the broker hands it, good or bad.
    expected_letters: list[int] = []
    expected_ids: set[str] = set()
    for offset, (kind_payload, _, sent_headers) in enumerate(content):
        outcome = triage(
            value_of(*kind_payload, topic, offset), DECODER, now_ms=now(), max_bytes=65_536
        )
        if not all(_utf8(name) for name, _ in sent_headers) or isinstance(outcome, Rejection):
            expected_letters.append(offset)
        else:
            expected_ids.add(outcome.event_id)
    assert ingest.totals.consumed == len(content)
    letters = [s.letter for s in bookkeeping.dead_letters() if s.letter.topic == topic]
    assert sorted(letter.offset for letter in letters) == expected_letters
    for letter in letters:
        assert (letter.topic, letter.partition) == (topic, 0)
        assert letter.reason
        assert letter.detail
        assert "\n" not in letter.detail
    assert ingest.totals.recorded + ingest.totals.duplicates == len(content) - len(letters)
    assert store.journeys.recorded_ids(sorted(expected_ids)) == expected_ids


def _utf8(name: bytes) -> bool:
    try:
        name.decode()
    except UnicodeDecodeError:
        return False
    return True
