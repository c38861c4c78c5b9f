"""Sorting consumed records into touchpoints and dead letters, and the Kafka settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.ingest import triage
from consumers.settings import KafkaSettings
from engine.errors import ConfigurationError
from engine.touchpoints import Touchpoint, millis
from schemas.codec import contract, wire_contract
from schemas.files import touchpoint_avro
from tests.conftest import T0, touchpoint

NOW = T0 + 1_000
DECODER = wire_contract("Touchpoint")


def message(tp: Touchpoint, **changes: object) -> bytes:
    return contract("Touchpoint").encode({**touchpoint_avro(tp), **changes})


def test_a_good_message_becomes_the_touchpoint_it_carries() -> None:
    tp = touchpoint("e-1", "form_submitted", outcome="negative", form="contact")

    assert triage(message(tp), DECODER, now_ms=NOW, max_bytes=65_536) == tp


def test_the_wire_contract_reads_times_as_milliseconds_and_shares_the_fingerprint() -> None:
    assert wire_contract("Touchpoint").fingerprint == contract("Touchpoint").fingerprint
    assert DECODER.decode(message(touchpoint("e-1")))["occurred_at"] == T0


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (None, "undecodable", "the record has no value"),
        (b"hello, world", "undecodable", "not an Avro single-object message (starts with 6865)"),
        (message(touchpoint("e-1"))[:-3], "undecodable", "corrupt journey.Touchpoint message"),
        (
            message(touchpoint("e-1"), customer_id=""),
            "invalid",
            "customer_id: is missing, and no email, phone or cookie_id",
        ),
        (
            message(touchpoint("e-1"), occurred_at=millis(datetime(2100, 1, 1, tzinfo=UTC))),
            "invalid",
            "occurred_at: 2100-01-01T00:00:00+00:00 is in the future",
        ),
        (message(touchpoint("e-1")) + b"\x00", "undecodable", "1 unexpected bytes after"),
        (
            message(touchpoint("e-1"), occurred_at=T0 * 1000),  # microseconds, by mistake
            "invalid",
            f"occurred_at: {T0 * 1000} ms after 1970 (milliseconds expected) is in the future",
        ),
        (message(touchpoint("e\x001")), "invalid", "event_id: contains a NUL character"),
    ],
)
def test_a_bad_message_is_rejected_with_its_reason(
    value: bytes | None, reason: str, detail: str
) -> None:
    rejected = triage(value, DECODER, now_ms=NOW, max_bytes=65_536)

    assert isinstance(rejected, tuple)
    assert rejected[0] == reason
    assert rejected[1].startswith(detail)


def test_an_oversized_message_is_rejected_before_it_is_decoded() -> None:
    value = message(touchpoint("e-1", note="x" * 3_000))

    assert triage(value, DECODER, now_ms=NOW, max_bytes=1_000) == (
        "oversized",
        f"{len(value)} bytes is more than the 1000 allowed",
    )


def test_kafka_settings_come_from_the_environment() -> None:
    assert KafkaSettings.from_env({}) == KafkaSettings()
    settings = KafkaSettings.from_env(
        {
            "JOURNEY_KAFKA_BOOTSTRAP": "kafka:19092",
            "JOURNEY_TOUCHPOINTS_TOPIC": "shop.touchpoints",
            "JOURNEY_CONSUMER_GROUP": "shop",
            "JOURNEY_CONSUMER_INSTANCE": "shop-1",
            "JOURNEY_MAX_RECORD_BYTES": "1000",
        }
    )

    assert settings == KafkaSettings("kafka:19092", "shop.touchpoints", "shop", 1000, "shop-1")
    assert settings.dead_letter_topic == "shop.touchpoints.dlq"


def test_a_record_size_that_is_not_a_positive_number_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="JOURNEY_MAX_RECORD_BYTES: '64k'"):
        KafkaSettings.from_env({"JOURNEY_MAX_RECORD_BYTES": "64k"})


def test_the_dead_letter_topic_takes_letters_up_to_a_setting() -> None:
    assert KafkaSettings.from_env({}).dead_letter_max_bytes == 1_000_000
    settings = KafkaSettings.from_env({"JOURNEY_DEAD_LETTER_MAX_BYTES": "2000000"})
    assert settings.dead_letter_max_bytes == 2_000_000
    with pytest.raises(ConfigurationError, match="JOURNEY_DEAD_LETTER_MAX_BYTES: '0'"):
        KafkaSettings.from_env({"JOURNEY_DEAD_LETTER_MAX_BYTES": "0"})
