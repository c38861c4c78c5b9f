"""The ingest consumer against a real Kafka broker and a real PostgreSQL: a topic, a group and
a database schema of its own per test, and the `journey` command run as users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from engine.touchpoints import Touchpoint
from schemas.codec import contract
from schemas.files import touchpoint_avro
from tests import services

JOURNEY = str(Path(sys.executable).with_name("journey"))
TOUCHPOINT_IDS = "event_id NOT LIKE 'action:%%' AND event_id NOT LIKE 'outcome:%%'"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Polls `condition` until it returns something truthy; fails naming `what` at the
    deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def encoded(tp: Touchpoint) -> bytes:
    return contract("Touchpoint").encode(touchpoint_avro(tp))


@dataclass
class Member:
    """One `journey consume` process; its log goes to a file the test can read."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


class Watched:
    """A process whose output (stdout and stderr) is read line by line as it comes, so that a
    test waits for a line with a deadline instead of looking again and again."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._lines: list[tuple[float, str]] = []  # (when it came, the line)
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        # Until every process holding the pipe has ended: the command and its children.
        for line in self.process.stdout:
            with self._changed:
                self._lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, text: str, *, times: int = 1, timeout: float = 60.0) -> float:
        """When the line holding `text` for the `times`th time came (time.monotonic())."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                seen = [at for at, line in self._lines if text in line]
                if len(seen) >= times:
                    return seen[times - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self._ended:
                    pytest.fail(
                        f"{'ended' if self._ended else f'no {text!r} after {timeout:.0f} s'}; "
                        f"it said:\n{self.output}"
                    )
                self._changed.wait(left)

    def count(self, text: str) -> int:
        with self._changed:
            return sum(text in line for _, line in self._lines)

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(line for _, line in self._lines)

    def terminate(self) -> int:
        """SIGTERM, then its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Pipeline:
    """A topic, a consumer group and a store, all fresh."""

    bootstrap: str
    database_url: str
    schema: str
    topic: str
    group: str
    workdir: Path
    members: list[Member] = field(default_factory=list)
    watched: list[Watched] = field(default_factory=list)
    # More of every command's environment (a master key, say).
    more_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "JOURNEY_DATABASE_URL": self.database_url,
            "POSTGRES_SCHEMA": self.schema,
            "JOURNEY_KAFKA_BOOTSTRAP": self.bootstrap,
            "JOURNEY_TOUCHPOINTS_TOPIC": self.topic,
            "JOURNEY_CONSUMER_GROUP": self.group,
            "JOURNEY_ACTIONS_TOPIC": self.actions_topic,
            "JOURNEY_OUTCOMES_TOPIC": self.outcomes_topic,
            "JOURNEY_DATA_DIR": str(self.workdir / "data"),
            **self.more_env,
        }

    @property
    def actions_topic(self) -> str:
        return f"{self.topic}.actions"

    @property
    def outcomes_topic(self) -> str:
        return f"{self.topic}.outcomes"

    def start(self, name: str, *args: str, **env: str) -> Member:
        """Starts a `journey` command that runs until stopped, such as `decide --follow`."""
        log_path = self.workdir / f"{name}-{len(self.members)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [JOURNEY, *args], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT
            )
        member = Member(process, log_path)
        self.members.append(member)
        return member

    def watch(self, *args: str, **env: str) -> Watched:
        """Starts a `journey` command that runs until stopped, reading what it says as it
        says it."""
        watched = Watched([JOURNEY, *args], {**self.env, "PYTHONUNBUFFERED": "1", **env})
        self.watched.append(watched)
        return watched

    def journey(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [JOURNEY, *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start_member(self, instance: str, *, batch_size: int = 200, workers: int = 1) -> Member:
        log_path = self.workdir / f"{instance}-{len(self.members)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    *(JOURNEY, "consume", "--batch-size", str(batch_size)),
                    *("--instance", instance, "--workers", str(workers)),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        member = Member(process, log_path)
        self.members.append(member)
        return member

    def publish(self, values: Iterable[tuple[bytes | None, bytes]]) -> int:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=10)
        count = 0
        for key, value in values:
            producer.send(self.topic, key=key, value=value)
            count += 1
        producer.flush()
        producer.close()
        return count

    def publish_touchpoints(self, touchpoints: Iterable[Touchpoint]) -> int:
        return self.publish((tp.customer_id.encode(), encoded(tp)) for tp in touchpoints)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute(f"SET search_path TO {self.schema}")
                return conn.execute(sql, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []

    def recorded_ids(self) -> list[str]:
        """The touchpoints recorded (the ledger also holds decisions' and outcomes' ids)."""
        rows = self.query(
            f"SELECT event_id FROM journeys_events_touchpoints WHERE {TOUCHPOINT_IDS}"
        )
        return [row[0] for row in rows]

    def recorded_count(self) -> int:
        rows = self.query(
            f"SELECT count(*) FROM journeys_events_touchpoints WHERE {TOUCHPOINT_IDS}"
        )
        return int(rows[0][0]) if rows else 0

    def touchpoint_events(self) -> int:
        rows = self.query(
            "SELECT count(*) FROM journeys_events WHERE topic LIKE %s", "%TouchpointRecorded"
        )
        return int(rows[0][0]) if rows else 0

    def assert_recorded_once(self, produced: list[Touchpoint]) -> None:
        """Every produced touchpoint is recorded, none twice, as ledger ids and as events."""
        ids = self.recorded_ids()
        assert len(ids) == len(set(ids)) == len(produced)
        assert set(ids) == {tp.event_id for tp in produced}
        assert self.touchpoint_events() == len(produced)

    def consumed_up_to(self) -> int:
        rows = self.query(
            "SELECT coalesce(sum(next_offset), 0) FROM journey_consumer_offsets "
            "WHERE group_id = %s AND topic = %s",
            self.group,
            self.topic,
        )
        return int(rows[0][0]) if rows else 0

    def log_end(self, topic: str) -> int:
        """How many records a topic holds, over all its partitions."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions) if partitions else {}
        consumer.close()
        return sum(ends.values())

    def read_topic(self, topic: str, count: int) -> list[Any]:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        consumer.close()
        return records


@contextmanager
def fresh_pipeline(
    kafka_service: services.Service, postgres_url: str, workdir: Path, partitions: int = 1
) -> Iterator[Pipeline]:
    """Topics, a group and a schema of their own; the commands started on them are killed
    at the end."""
    name = f"t{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_service.address)
    admin.create_topics(
        [
            NewTopic(name, partitions, 1),
            *(NewTopic(f"{name}.{kind}", 1, 1) for kind in ("actions", "outcomes", "outcomes.dlq")),
        ]
    )
    admin.close()
    with services.fresh_schema(postgres_url) as schema:
        made = Pipeline(kafka_service.address, postgres_url, schema, name, f"{name}-group", workdir)
        try:
            yield made
        finally:
            for member in made.members:
                if member.process.poll() is None:
                    member.kill()
            for watched in made.watched:
                watched.kill()


@pytest.fixture
def pipeline(
    kafka_service: services.Service, postgres_url: str, tmp_path: Path, request: Any
) -> Iterator[Pipeline]:
    with fresh_pipeline(
        kafka_service, postgres_url, tmp_path, getattr(request, "param", 1)
    ) as made:
        yield made
