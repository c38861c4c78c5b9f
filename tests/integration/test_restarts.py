"""Every process that runs until stopped waits out a restart of PostgreSQL on its own, saying
so once when the server goes and once when it is back, and loses or doubles nothing meanwhile;
the members of `journey consume --workers N` end with the process that started them.

One restart serves every process: the consumer, the decider and its relay, the outcomes
consumer, the clock and the HTTP API all run through it together, and each test looks at
one of them."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from engine.touchpoints import Touchpoint
from journey.console import now_ms
from journey.demo import demo_touchpoints, recent_start
from projections.log import DECIDER_TOPICS
from schemas.codec import contract, wire_contract
from stores.postgres.database import notice_channel, wait_for_notice
from tests import services
from tests.integration.conftest import Pipeline, Watched, fresh_pipeline

RECOVERY_S = 30.0  # the longest any process may take to notice that PostgreSQL is back
GONE = "PostgreSQL is unavailable"
BACK = "PostgreSQL is available again"
EVENTS = "journeys_events"  # the event store's notification channel


@dataclass
class Restart:
    """What the processes did before, during and after one restart of PostgreSQL."""

    pipeline: Pipeline
    processes: dict[str, Watched]
    produced: list[Touchpoint]
    outage_customers: set[str]  # whose touchpoints were published while it was down
    outcome: dict[str, Any]  # reported while it was down
    answered_during: list[httpx.Response]
    started_at: float  # when PostgreSQL was started again
    answered_after: list[httpx.Response] = field(default_factory=list)
    exits: dict[str, int] = field(default_factory=dict)


def until(pipeline: Pipeline, channel: str, condition: Any, what: str) -> None:
    """Waits for `condition()`, looking again at each notice on `channel`."""
    if not wait_for_notice(pipeline.database_url, channel, condition, 90):
        pytest.fail(f"timed out waiting for {what}")


def scalar(pipeline: Pipeline, sql: str, *params: Any) -> Any:
    rows = pipeline.query(sql, *params)
    return rows[0][0] if rows else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def decider_at(pipeline: Pipeline) -> int:
    at = scalar(pipeline, "SELECT position FROM journey_decider_tracking")
    return int(at or 0)


def decider_head(pipeline: Pipeline) -> int:
    """The last position of what the decider reads (not the decisions it appends itself)."""
    return int(
        scalar(
            pipeline,
            "SELECT coalesce(max(notification_id), 0) FROM journeys_events WHERE topic = ANY(%s)",
            list(DECIDER_TOPICS),
        )
    )


def published_actions(pipeline: Pipeline) -> list[tuple[str, bytes]]:
    """(action id, bytes) of every action on the actions topic."""
    count = pipeline.log_end(pipeline.actions_topic)
    return [
        (dict(record.headers)["journey.action_id"].decode(), record.value)
        for record in pipeline.read_topic(pipeline.actions_topic, count)
    ]


def decided(pipeline: Pipeline) -> set[str]:
    return {row[0] for row in pipeline.query("SELECT action_id FROM journey_next_actions")}


@pytest.fixture(scope="module")
def restart(
    kafka_service: services.Service,
    postgres_service: services.Service,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Restart]:
    workdir = tmp_path_factory.mktemp("restart")
    with fresh_pipeline(kafka_service, postgres_service.address, workdir, 2) as pipeline:
        yield _restart(pipeline, postgres_service)


def _restart(pipeline: Pipeline, postgres: services.Service) -> Restart:
    now = now_ms()
    # Journeys under way now, so that the clock's ticks and the touchpoints both decide.
    produced = list(demo_touchpoints(24, seed=29, start=recent_start(now), until=now))
    customers = sorted({tp.customer_id for tp in produced})
    later = set(customers[len(customers) * 2 // 3 :])  # customers first seen in the outage
    before = [tp for tp in produced if tp.customer_id not in later]
    during = [tp for tp in produced if tp.customer_id in later]
    pipeline.publish_touchpoints(before)

    port = free_port()
    api = f"http://127.0.0.1:{port}"
    processes = {
        "consume": pipeline.watch("consume", "--batch-size", "100", "--instance", "a"),
        "decide": pipeline.watch("decide", "--follow"),
        "outcomes": pipeline.watch("outcomes"),
        "clock": pipeline.watch("clock", "--every", "1"),
        "serve": pipeline.watch("serve", "--port", str(port)),
    }
    until(pipeline, EVENTS, lambda: pipeline.recorded_count() == len(before), "what came before")
    channel = notice_channel(pipeline.schema, "decider")
    until(
        pipeline, channel, lambda: decider_at(pipeline) >= decider_head(pipeline) > 0, "the decider"
    )
    processes["serve"].wait_for("Serving the journeys")
    client = httpx.Client(base_url=api, timeout=30, transport=httpx.HTTPTransport(retries=3))
    assert client.get("/api/funnel").status_code == 200
    action = wire_contract("NextAction").decode(
        pipeline.read_topic(pipeline.actions_topic, 1)[0].value
    )

    postgres.stop()
    try:
        outcome = {
            "event_id": f"o-{uuid.uuid4().hex[:8]}",
            "action_id": action["action_id"],
            "customer_id": action["customer_id"],
            "status": "done",
            "reason": None,
            "snoozed_until": None,
            "rep_id": None,
            "occurred_at": now_ms(),
        }
        pipeline.publish_touchpoints(during)
        producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap)
        producer.send(
            pipeline.outcomes_topic,
            key=action["customer_id"].encode(),
            value=contract("ActionOutcome").encode(outcome),
        )
        producer.flush()
        producer.close()
        answered = [client.get("/api/funnel"), client.get("/api/customers/C-404")]
        for process in processes.values():
            process.wait_for(GONE, timeout=RECOVERY_S)
    finally:
        started_at = time.monotonic()
        postgres.start()
    restart = Restart(pipeline, processes, produced, later, outcome, answered, started_at)
    restart.answered_after = [client.get("/api/funnel"), client.get("/api/actions")]
    client.close()
    for process in processes.values():
        process.wait_for(BACK, timeout=RECOVERY_S)

    until(pipeline, EVENTS, lambda: pipeline.recorded_count() == len(produced), "what came during")
    until(
        pipeline,
        channel,
        lambda: (
            scalar(
                pipeline,
                "SELECT status FROM journey_next_actions WHERE action_id = %s",
                action["action_id"],
            )
            == "done"
        ),
        "the outcome to be recorded and applied",
    )
    # Nothing more is written to the log; the decider decides what is left, and its relay
    # publishes it.
    for name in ("clock", "outcomes", "consume"):
        restart.exits[name] = processes[name].terminate()
    last = decider_head(pipeline)
    until(pipeline, channel, lambda: decider_at(pipeline) >= last, "the decider to catch up")
    expected = decided(pipeline)
    pipeline.read_topic(pipeline.actions_topic, len(expected))
    for name in ("decide", "serve"):
        restart.exits[name] = processes[name].terminate()
    return restart


def test_each_process_says_once_that_postgresql_is_gone_and_once_that_it_is_back(
    restart: Restart,
) -> None:
    for name, process in restart.processes.items():
        assert (process.count(GONE), process.count(BACK)) == (1, 1), f"{name}:\n{process.output}"
        assert "Traceback" not in process.output, f"{name}:\n{process.output}"
        # The web server, once shut down, ends by the signal it was given, as uvicorn does.
        stopped = (0, -signal.SIGTERM) if name == "serve" else (0,)
        assert restart.exits[name] in stopped, f"{name}:\n{process.output}"


def test_each_process_notices_within_seconds_that_postgresql_is_back(restart: Restart) -> None:
    took = {
        name: process.wait_for(BACK) - restart.started_at
        for name, process in restart.processes.items()
    }
    print("recovered after PostgreSQL answered again (s):", json.dumps(took))
    assert max(took.values()) < RECOVERY_S, took


def test_the_consumer_records_every_touchpoint_once_however_it_arrived(restart: Restart) -> None:
    restart.pipeline.assert_recorded_once(restart.produced)


def test_the_decider_decides_every_touchpoint_once_and_its_relay_publishes_each_action(
    restart: Restart,
) -> None:
    pipeline = restart.pipeline
    events = pipeline.query("SELECT count(*) FROM journeys_events WHERE topic LIKE %s", "%Decided")
    actions = decided(pipeline)
    assert events[0][0] == len(actions) > 0
    customers = {row[0] for row in pipeline.query("SELECT customer_id FROM journey_next_actions")}
    assert customers & restart.outage_customers, "nothing decided for the outage's customers"
    published = published_actions(pipeline)
    assert {action_id for action_id, _ in published} == actions
    contents: dict[str, set[bytes]] = {}
    for action_id, value in published:
        contents.setdefault(action_id, set()).add(value)
    # One content per id and status: the decision, and its ending if the journey ended it.
    statuses = dict(
        pipeline.query("SELECT action_id, count(*) FROM journey_action_outbox GROUP BY action_id")
    )
    assert {action_id: len(values) for action_id, values in contents.items()} == statuses
    assert not pipeline.query("SELECT 1 FROM journey_action_outbox WHERE sent_at IS NULL")


def test_an_outcome_reported_during_the_outage_is_recorded_once(restart: Restart) -> None:
    ids = restart.pipeline.query(
        "SELECT event_id FROM journeys_events_touchpoints WHERE event_id = %s",
        f"outcome:{restart.outcome['event_id']}",
    )
    assert len(ids) == 1


def test_the_clock_ticks_again_once_postgresql_is_back(restart: Restart) -> None:
    process = restart.processes["clock"]
    assert process.wait_for(BACK) >= restart.started_at
    ticks = restart.pipeline.query(
        "SELECT count(*) FROM journeys_events WHERE topic LIKE %s", "%Ticked"
    )
    assert ticks[0][0] >= 2


def test_the_api_answers_503_while_postgresql_is_gone_and_200_once_it_is_back(
    restart: Restart,
) -> None:
    for answer in restart.answered_during:
        assert answer.status_code == 503
        assert answer.headers["retry-after"].isdigit()
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "/problems/store-unavailable"
        assert answer.json()["detail"].startswith(GONE)
        assert "\n" not in answer.json()["detail"]
    assert [answer.status_code for answer in restart.answered_after] == [200, 200]


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process ends; None if it has ended."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def _ended(fd: int | None, timeout: float) -> bool:
    if fd is None:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def test_the_members_of_a_consumer_end_when_it_is_killed(pipeline: Pipeline) -> None:
    if not hasattr(os, "pidfd_open"):
        pytest.skip("waiting on another process's end needs pidfd_open (Linux)")
    pipeline.publish_touchpoints(list(demo_touchpoints(5, seed=31)))
    consume = pipeline.watch("consume", "--workers", "2", "--instance", "k")
    consume.wait_for("consuming", times=2)
    members = children(consume.process.pid)
    assert len(members) == 2
    descriptors = [_pidfd(member) for member in members]

    consume.process.kill()  # SIGKILL: the parent has no chance to stop them
    consume.process.wait(timeout=30)

    assert all([_ended(fd, 30) for fd in descriptors])
    consume.wait_for("SIGTERM: finishing the batch in hand", times=2)
