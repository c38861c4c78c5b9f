"""Next-best-actions through the real broker and PostgreSQL: the stories' actions arrive on the
actions topic exactly as expected, and again, ended, once they no longer make sense; killing
the decider or its relay anywhere loses nothing and changes nothing, and bad outcomes go to
their dead-letter topic."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.touchpoints import touchpoint_from_record
from journey.console import now_ms
from schemas.codec import contract, wire_contract
from tests import services
from tests.integration.conftest import Pipeline, wait_until
from tests.stories import STORIES

ACTION_ID = "journey.action_id"
STORY_ACTIONS = {
    ("S1-ANNA", "follow_up", "kathrine"),
    ("S1-ANNA", "introduction", "kathrine"),
    ("S2-BEN", "call_back", "inside_sales"),
    ("S3-CARLA", "recovery_call", "branch_manager"),
    ("S3-CARLA", "thank_you", "inside_sales"),
    ("S4-DAN", "consultation_offer", "inside_sales"),
    ("S5-EVA", "follow_up", "amira"),
    ("S6-FIN", "thank_you", "jonas"),
}


def actions_on_topic(pipeline: Pipeline, count: int) -> list[dict[str, Any]]:
    """The first `count` actions on the actions topic, decoded, with key and action id header."""
    decode = wire_contract("NextAction").decode
    records = pipeline.read_topic(pipeline.actions_topic, count)
    return [
        {
            **decode(record.value),
            "key": record.key.decode(),
            "header": dict(record.headers)[ACTION_ID].decode(),
            "bytes": record.value,
        }
        for record in records
    ]


def table_count(pipeline: Pipeline, sql: str) -> int:
    rows = pipeline.query(sql)
    return int(rows[0][0]) if rows else 0


def test_the_stories_actions_arrive_on_the_topic_exactly_as_expected(pipeline: Pipeline) -> None:
    now = now_ms()
    touchpoints = [
        touchpoint_from_record(record, now_ms=now)
        for story in STORIES.values()
        for record in story()
    ]
    pipeline.publish_touchpoints(touchpoints)
    pipeline.start_member("ingest")
    wait_until(lambda: pipeline.recorded_count() == len(touchpoints), "the stories recorded")
    assert pipeline.journey("tick", "--at", "2026-03-14T09:00:00Z").returncode == 0

    kathrines_tool = pipeline.start(
        "follow", "actions", "--follow", "--from-beginning", "--owner", "kathrine", "--json"
    )
    pipeline.start("decide", "decide", "--follow")
    # Decided as their touchpoints happened: Carla's thank-you for her referral, two hundred
    # days before the rest of her story, expired with nothing done long before it.
    published = actions_on_topic(pipeline, len(STORY_ACTIONS) + 1)
    actions = [a for a in published if a["status"] == "open"]
    (long_ago,) = [a for a in published if a["status"] != "open"]

    assert {(a["customer_id"], a["action_type"], a["owner"]) for a in actions} == STORY_ACTIONS
    assert (long_ago["customer_id"], long_ago["action_type"], long_ago["status"]) == (
        "S3-CARLA",
        "thank_you",
        "expired",
    )
    for action in actions:
        assert action["key"] == action["owner"]  # one rep's tool sees their actions in order
        assert action["header"] == action["action_id"]
    follow_up = next(
        a for a in actions if a["customer_id"] == "S1-ANNA" and a["rule"] == "follow_up_visit"
    )
    assert follow_up["triggering_event_ids"] == ["s1-6"]
    assert "5 days" in follow_up["reason"]

    # The relay marked them sent, and nothing more is published.
    wait_until(
        lambda: (
            table_count(
                pipeline, "SELECT count(*) FROM journey_action_outbox WHERE sent_at IS NOT NULL"
            )
            == len(published)
        ),
        "the outbox marked sent",
    )
    assert pipeline.log_end(pipeline.actions_topic) == len(published)

    # Kathrine's tool showed her two actions, and nobody else's.
    def shown() -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in kathrines_tool.log().splitlines() if line.startswith("{")
        ]

    wait_until(lambda: len(shown()) == 2, "Kathrine's actions shown as they arrive")
    assert kathrines_tool.terminate() == 0
    assert {(a["action_type"], a["owner"]) for a in shown()} == {
        ("follow_up", "kathrine"),
        ("introduction", "kathrine"),
    }

    # Months pass and nobody acts: each action is published again, ended, saying why, so
    # that the sales tools drop it.
    assert pipeline.journey("tick", "--at", "2026-08-14T09:00:00Z").returncode == 0
    still_open = len(actions) - 1  # all but Carla's thank-you
    ended = actions_on_topic(pipeline, len(published) + still_open)[len(published) :]
    dormant, expired = "the customer went dormant", "nobody did it in time"
    assert sorted(
        (a["customer_id"], a["action_type"], a["status"], a["status_reason"]) for a in ended
    ) == [
        ("S1-ANNA", "follow_up", "cancelled", dormant),
        ("S1-ANNA", "introduction", "cancelled", dormant),
        ("S2-BEN", "call_back", "cancelled", dormant),
        ("S3-CARLA", "recovery_call", "expired", expired),
        ("S4-DAN", "consultation_offer", "cancelled", dormant),
        ("S5-EVA", "follow_up", "cancelled", dormant),
        ("S6-FIN", "thank_you", "expired", expired),
    ]
    by_id = {a["action_id"]: a for a in actions}
    for action in ended:
        decided = by_id[action["action_id"]]
        assert action["key"] == decided["owner"]  # the same rep's tool, in order
        assert action["header"] == decided["action_id"]
        assert action["reason"] == decided["reason"]
        assert action["status_at"] >= decided["due_at"]
    # A rep following their actions in the terminal sees both end, and why.
    kathrines_day = pipeline.start(
        "follow-text", "actions", "--follow", "--from-beginning", "--owner", "kathrine"
    )
    wait_until(
        lambda: kathrines_day.log().count(f"cancelled: {dormant}") == 2,
        "Kathrine's ended actions shown",
    )
    assert kathrines_day.terminate() == 0


def test_bad_outcomes_go_to_the_dead_letter_topic_and_good_ones_close_their_action(
    pipeline: Pipeline,
) -> None:
    now = now_ms()
    pipeline.publish_touchpoints(
        touchpoint_from_record(record, now_ms=now)
        for name in ("S1-ANNA", "S2-BEN")
        for record in STORIES[name]()
    )
    pipeline.start_member("ingest")
    wait_until(lambda: pipeline.recorded_count() == 11, "two stories recorded")
    assert pipeline.journey("tick", "--at", "2026-03-14T09:00:00Z").returncode == 0
    pipeline.start("decide", "decide", "--follow")
    actions = {(a["customer_id"], a["rule"]): a for a in actions_on_topic(pipeline, 3)}
    follow_up = actions["S1-ANNA", "follow_up_visit"]
    call_back = actions["S2-BEN", "call_back_channel_jump"]

    encode = contract("ActionOutcome").encode

    def outcome(action_id: str, customer_id: str, **extra: Any) -> bytes:
        return encode(
            {
                "event_id": str(uuid.uuid4()),
                "action_id": action_id,
                "customer_id": customer_id,
                "status": "dismissed",
                "reason": "met her at the fair",
                "rep_id": "kathrine",
                "occurred_at": now,
                **extra,
            }
        )

    good = outcome(follow_up["action_id"], "S1-ANNA")
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap)
    for value in (
        good,
        outcome("no-such-action", "S1-ANNA"),
        outcome(call_back["action_id"], "S1-ANNA"),  # Ben's action, reported for Anna
        b"\xc3\x01not an outcome",
        good,  # delivered twice
    ):
        producer.send(pipeline.outcomes_topic, key=b"S1-ANNA", value=value)
    producer.flush()
    producer.close()
    pipeline.start("outcomes", "outcomes")

    letters = pipeline.read_topic(f"{pipeline.outcomes_topic}.dlq", 3)
    reasons = sorted(dict(letter.headers)["journey.reason"].decode() for letter in letters)
    assert reasons == ["undecodable", "unknown_action", "wrong_customer"]
    wrong = next(
        letter for letter in letters if dict(letter.headers)["journey.reason"] == b"wrong_customer"
    )
    assert b"is for customer 'S2-BEN', not 'S1-ANNA'" in dict(wrong.headers)["journey.error"]

    def status(action_id: str) -> tuple[Any, ...] | None:
        rows = pipeline.query(
            "SELECT status, status_reason FROM journey_next_actions WHERE action_id = %s",
            action_id,
        )
        return rows[0] if rows else None

    wait_until(
        lambda: status(follow_up["action_id"]) == ("dismissed", "met her at the fair"),
        "the dismissal recorded and applied",
    )
    assert status(call_back["action_id"]) == ("open", None)
    outcomes = pipeline.query(
        "SELECT count(*) FROM journeys_events WHERE topic LIKE %s", "%Outcomes.Reported"
    )
    assert outcomes == [(1,)]


def test_killing_the_decider_or_its_relay_anywhere_loses_no_action_and_changes_none(
    pipeline: Pipeline, postgres_url: str, tmp_path: Path
) -> None:
    history = tmp_path / "history.jsonl"
    assert (
        pipeline.journey(
            "generate", "--customers", "300", "--seed", "5", "--out", str(history)
        ).returncode
        == 0
    )
    clock = str(now_ms() - 60_000)
    small_pages = {"JOURNEY_DECIDER_PAGE_SIZE": "100"}
    for command in (("ingest", str(history)), ("tick", "--at", clock)):
        result = pipeline.journey(*command)
        assert result.returncode == 0, result.stderr

    # The same history decided once without interruption, in another schema, publishing nothing.
    with services.fresh_schema(postgres_url) as reference:
        for command in (
            ("ingest", str(history)),
            ("tick", "--at", clock),
            ("decide", "--no-publish"),
        ):
            result = pipeline.journey(*command, POSTGRES_SCHEMA=reference, **small_pages)
            assert result.returncode == 0, result.stderr
        expected = {
            row[0]: row[1]
            for row in pipeline.query(
                f"SELECT action_id, record FROM {reference}.journey_next_actions"
            )
        }
        # Each action as decided, and again as the journey ended it.
        expected_versions = {
            (row[0], row[1])
            for row in pipeline.query(
                f"SELECT action_id, status FROM {reference}.journey_action_outbox"
            )
        }
    assert len(expected) > 100
    assert len(expected_versions) > len(expected)

    rng = random.Random(20261123)
    decided = "SELECT count(*) FROM journey_next_actions"
    sent = "SELECT count(*) FROM journey_action_outbox WHERE sent_at IS NOT NULL"
    kills = 0
    while kills < 5:
        started = time.monotonic()
        # The decider and its relay run in one process.
        member = pipeline.start("decide", "decide", "--follow", **small_pages)
        # Kill it once it has decided or published a random number more.
        query = rng.choice((decided, sent))
        target = table_count(pipeline, query) + rng.randint(1, len(expected) // 8)
        if target >= len(expected):
            member.kill()
            break
        wait_until(
            lambda q=query, t=target: table_count(pipeline, q) >= t,  # type: ignore[misc]
            "the decider at work",
        )
        member.kill()  # SIGKILL: no chance to finish anything
        kills += 1
        assert time.monotonic() - started < 60
    finish = pipeline.journey("decide", **small_pages)
    assert finish.returncode == 0, finish.stderr

    assert kills >= 3
    assert table_count(pipeline, sent) == len(expected_versions)
    published = actions_on_topic(pipeline, pipeline.log_end(pipeline.actions_topic))
    versions: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    for action in published:
        assert action["header"] == action["action_id"]
        versions[action["action_id"], action["status"]].add(action["bytes"])
    assert set(versions) == expected_versions  # every decision and every ending is on the topic
    assert all(len(values) == 1 for values in versions.values())  # never two contents for one
    decided_rows = {
        row[0]: row[1]
        for row in pipeline.query("SELECT action_id, record FROM journey_next_actions")
    }
    assert decided_rows == expected  # and the same decisions as a run never interrupted
