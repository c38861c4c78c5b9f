"""Kafka restarted under every process that talks to it: the relay (`journey decide
--follow`) and the outcomes consumer each say once that the broker went away and once that
it is back, come back within 30 s on their own, and lose or double nothing."""

from __future__ import annotations

import json
import time
import uuid

from kafka import KafkaProducer

from engine.touchpoints import touchpoint_from_record
from journey.console import now_ms
from schemas.codec import contract
from tests.integration.conftest import Pipeline, wait_until
from tests.integration.test_actions import ACTION_ID, actions_on_topic
from tests.services import Service
from tests.stories import STORIES

UNREACHABLE = "is unavailable"
BACK = "is available again"


def test_the_relay_and_the_outcomes_consumer_each_survive_a_kafka_restart(
    pipeline: Pipeline, kafka_service: Service
) -> None:
    now = now_ms()
    pipeline.publish_touchpoints(
        touchpoint_from_record(record, now_ms=now) for record in STORIES["S1-ANNA"]()
    )
    pipeline.start_member("ingest")
    wait_until(lambda: pipeline.recorded_count() == 6, "the first story recorded")
    assert pipeline.journey("tick", "--at", "2026-03-14T09:00:00Z").returncode == 0
    relay = pipeline.start("decide", "decide", "--follow")
    outcomes = pipeline.start("outcomes", "outcomes")
    first = {a["rule"]: a for a in actions_on_topic(pipeline, 2)}
    wait_until(lambda: "Recording outcomes" in outcomes.log(), "the outcomes consumer")

    kafka_service.stop()
    try:
        # Recorded without Kafka: the decider decides, and its relay cannot publish.
        story = pipeline.workdir / "ben.jsonl"
        story.write_text("\n".join(json.dumps(r) for r in STORIES["S2-BEN"]()) + "\n")
        assert pipeline.journey("ingest", str(story)).returncode == 0
        wait_until(lambda: UNREACHABLE in relay.log(), "the relay to see the outage")
        wait_until(lambda: UNREACHABLE in outcomes.log(), "the outcomes consumer to see it")
    finally:
        kafka_service.start()
    back_at = time.monotonic()
    wait_until(lambda: BACK in relay.log(), "the relay to see Kafka again")
    wait_until(lambda: BACK in outcomes.log(), "the outcomes consumer to see Kafka again")
    assert time.monotonic() - back_at < 30

    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap)
    producer.send(
        pipeline.outcomes_topic,
        key=b"S1-ANNA",
        value=contract("ActionOutcome").encode(
            {
                "event_id": str(uuid.uuid4()),
                "action_id": first["follow_up_visit"]["action_id"],
                "customer_id": "S1-ANNA",
                "status": "done",
                "occurred_at": now,
            }
        ),
    )
    producer.flush()
    producer.close()
    wait_until(
        lambda: pipeline.query(
            "SELECT 1 FROM journey_next_actions WHERE action_id = %s AND status = 'done'",
            first["follow_up_visit"]["action_id"],
        ),
        "the outcome recorded after the restart",
    )
    decided = pipeline.query("SELECT count(*) FROM journey_next_actions")[0][0]
    wait_until(
        lambda: pipeline.log_end(pipeline.actions_topic) >= decided, "every action published"
    )
    published = pipeline.read_topic(pipeline.actions_topic, decided)
    ids = [dict(record.headers)[ACTION_ID] for record in published]
    assert len(ids) == len(set(ids)) == decided == pipeline.log_end(pipeline.actions_topic)
    for process in (relay, outcomes):
        assert process.log().count(UNREACHABLE) == 1, process.log()
        assert process.log().count(BACK) == 1, process.log()
