"""Touchpoints on Kafka framed for a schema registry, as producers using the common registry
serializers publish them: recorded with the writer schemas the registry holds, the ones no
schema of ours can read kept as dead letters with their reasons, and nothing lost or made a
dead letter while the registry is away."""

from __future__ import annotations

import json
from typing import Any

from engine.touchpoints import Touchpoint
from journey.demo import demo_touchpoints
from schemas.files import touchpoint_avro
from tests.integration.conftest import Pipeline, encoded
from tests.integration.test_observability import get, metrics_port
from tests.registry import Registry, current, framed, incompatible, older, register

UNKNOWN_ID = 987_654_321  # no registry the tests meet holds that many schemas


def older_record(tp: Touchpoint) -> dict[str, Any]:
    record = touchpoint_avro(tp)
    for name in ("rep_id", "outcome", "attributes"):
        del record[name]
    return record


def dead_letters(pipeline: Pipeline) -> list[dict[str, Any]]:
    listed = pipeline.journey("dead-letters", "--json")
    assert listed.returncode == 0, listed.stderr
    letters: list[dict[str, Any]] = json.loads(listed.stdout)
    return letters


def test_registry_framed_touchpoints_are_recorded_and_unreadable_ones_are_dead_letters(
    pipeline: Pipeline, schema_registry: Registry
) -> None:
    url = schema_registry.url
    current_id = register(url, f"{pipeline.topic}-value", current())
    older_id = register(url, f"{pipeline.topic}.older-value", older())
    incompatible_id = register(url, f"{pipeline.topic}.other-value", incompatible())
    good = list(demo_touchpoints(5, seed=41))[:30]
    messages = [framed(current_id, current(), touchpoint_avro(tp)) for tp in good[:15]]
    messages += [framed(older_id, older(), older_record(tp)) for tp in good[15:25]]
    messages += [encoded(tp) for tp in good[25:]]  # single-object messages, on the same topic
    messages += [
        framed(incompatible_id, incompatible(), {**touchpoint_avro(good[0]), "source": 7}),
        framed(UNKNOWN_ID, current(), touchpoint_avro(good[1])),
    ]
    pipeline.publish((None, message) for message in messages)

    consumer = pipeline.watch("consume", JOURNEY_SCHEMA_REGISTRY_URL=url)
    consumer.wait_for(f"dead letter {pipeline.topic}[0]@31", timeout=90)
    assert consumer.terminate() == 0

    assert sorted(pipeline.recorded_ids()) == sorted(tp.event_id for tp in good)
    assert pipeline.consumed_up_to() == len(messages)
    letters = [(ltr["offset"], ltr["reason"], ltr["detail"]) for ltr in dead_letters(pipeline)]
    assert letters == [
        (
            30,
            "undecodable",
            f"schema id {incompatible_id} cannot be read as journey.Touchpoint: "
            "Schema mismatch: int is not string",
        ),
        (31, "undecodable", f"schema id {UNKNOWN_ID} is not in the schema registry"),
    ]
    assert "unavailable" not in consumer.output


def test_without_the_setting_framed_records_are_dead_letters_that_name_it(
    pipeline: Pipeline, schema_registry: Registry
) -> None:
    schema_id = register(schema_registry.url, f"{pipeline.topic}-value", current())
    tp = next(iter(demo_touchpoints(1, seed=43)))
    pipeline.publish([(None, framed(schema_id, current(), touchpoint_avro(tp)))])

    consumer = pipeline.watch("consume")
    consumer.wait_for(f"dead letter {pipeline.topic}[0]@0", timeout=90)
    assert consumer.terminate() == 0

    [letter] = dead_letters(pipeline)
    assert letter["detail"] == (
        f"framed for a schema registry (schema id {schema_id}), but "
        "JOURNEY_SCHEMA_REGISTRY_URL is not set"
    )


def test_records_wait_while_the_registry_is_away_and_are_recorded_when_it_is_back(
    pipeline: Pipeline, schema_registry: Registry
) -> None:
    url = schema_registry.url
    first_id = register(url, f"{pipeline.topic}-value", current())
    # Registered now, first read while the registry is away: the consumer must ask for it.
    later_id = register(url, f"{pipeline.topic}.older-value", older())
    good = list(demo_touchpoints(5, seed=47))[:20]
    marker = framed(UNKNOWN_ID, current(), touchpoint_avro(good[0]))
    pipeline.publish(
        [
            *((None, framed(first_id, current(), touchpoint_avro(tp))) for tp in good[:5]),
            (None, marker),
        ]
    )
    consumer = pipeline.watch("consume", "--metrics-port", "0", JOURNEY_SCHEMA_REGISTRY_URL=url)
    port = metrics_port(consumer)
    consumer.wait_for("dead letter ", timeout=90)

    schema_registry.stop()
    try:
        pipeline.publish((None, framed(later_id, older(), older_record(tp))) for tp in good[5:])
        consumer.wait_for(f"the schema registry at {url} is unavailable")
        status, body = get(port, "/readyz")
        assert (status, json.loads(body)["waiting_for"]) == (
            503,
            [f"the schema registry at {url}"],
        )
    finally:
        schema_registry.start()
    consumer.wait_for(f"the schema registry at {url} is available again")
    pipeline.publish([(None, marker)])
    consumer.wait_for("dead letter ", times=2)
    assert get(port, "/readyz") == (200, '{"status": "ready"}')
    assert consumer.terminate() == 0

    assert sorted(pipeline.recorded_ids()) == sorted(tp.event_id for tp in good)
    assert [letter["offset"] for letter in dead_letters(pipeline)] == [5, 21]
    assert consumer.count("is unavailable") == 1
    assert consumer.count("is available again") == 1
