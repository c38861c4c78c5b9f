"""Recording touchpoints from Kafka, each exactly once, whatever crashes, outages or bad records
come along.

Each polled batch is recorded in one PostgreSQL transaction together with the offsets it was
consumed up to and the dead letters met in it. On being given a partition, the consumer seeks
to the offset stored there: Kafka's own committed offsets are kept up to date for monitoring
tools, but never trusted. A crash anywhere therefore leaves either the whole batch and its
offsets recorded, or neither; and should two members ever read the same records (a partition
moving while a batch is in flight), the touchpoint ledger records each `event_id` once and the
offsets only move forward.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.bookkeeping import Bookkeeping, DeadLetter, Partition, StoredDeadLetter
from consumers.settings import KafkaSettings
from engine.bulk import collector_paused, settle_young_objects
from engine.errors import DecodeError, InvalidTouchpoint, StoreUnavailable
from engine.ledger import BatchWrite
from engine.outage import Outage
from engine.recording import BatchRecorded, Journeys
from engine.touchpoints import Touchpoint, touchpoint_from_record
from schemas.codec import AvroContract, wire_contract

log = logging.getLogger("journey.consume")

# Errors that mean "the database is away", worth waiting out; anything else is a fault.
UNAVAILABLE = (
    StoreUnavailable,
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
# Recording a batch again is safe (each event_id is recorded once): worth retrying when other
# writers keep moving the same customers' streams on.
RETRYABLE = (*UNAVAILABLE, IntegrityError)
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
POLL_MS = 500
SESSION_TIMEOUT_MS = 10_000


@dataclass
class IngestTotals:
    batches: int = 0
    consumed: int = 0
    recorded: int = 0
    duplicates: int = 0
    dead: int = 0


class Stopped(Exception):
    """Asked to stop while a batch could not be recorded; it will be read again."""


class Rejection(NamedTuple):
    reason: str  # undecodable, invalid, oversized (or, for outcomes, unknown_action)
    detail: str


def triage(
    value: bytes | None, decoder: AvroContract, *, now_ms: int, max_bytes: int
) -> Touchpoint | Rejection:
    """A consumed value as a touchpoint, or the reason it cannot be one."""
    if value is None:
        return Rejection("undecodable", "the record has no value")
    if len(value) > max_bytes:
        return Rejection("oversized", f"{len(value)} bytes is more than the {max_bytes} allowed")
    try:
        return touchpoint_from_record(decoder.decode(value), now_ms=now_ms)
    except DecodeError as exc:
        return Rejection("undecodable", str(exc))
    except InvalidTouchpoint as exc:
        return Rejection("invalid", str(exc))
    except Exception as exc:  # a record must never stop the consumer, whatever it holds
        return Rejection("invalid", f"{type(exc).__name__}: {exc}")


def dead_letter(record: Any, rejection: Rejection) -> DeadLetter:
    """A consumed record kept as it came, with the reason it was rejected."""
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=tuple((name, bytes(data or b"")) for name, data in record.headers or ()),
        reason=rejection[0],
        detail=rejection[1].replace("\x00", "\\x00"),  # PostgreSQL text holds no NUL
    )


class _Positions(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers which partitions were just assigned, so that the consumer seeks them to the
    offsets stored in the database before it records anything from them. The callbacks run on
    the client's IO thread and must not block, so the seeking happens in the polling thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unpositioned: set[TopicPartition] = set()

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        with self._lock:
            self._unpositioned.update(assigned)

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        with self._lock:
            self._unpositioned.difference_update(revoked)

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.on_partitions_revoked(lost)

    def take(self) -> set[TopicPartition]:
        with self._lock:
            taken, self._unpositioned = self._unpositioned, set()
        return taken


class TouchpointIngest:
    """A member of the ingest consumer group."""

    def __init__(
        self,
        journeys: Journeys,
        bookkeeping: Bookkeeping,
        settings: KafkaSettings,
        *,
        batch_size: int,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        client_id: str = "journey-ingest",
    ) -> None:
        self._journeys = journeys
        self._bookkeeping = bookkeeping
        self._settings = settings
        self._batch_size = batch_size
        self._clock_ms = clock_ms
        self._client_id = client_id
        self._decoder = wire_contract("Touchpoint")
        self._topic = settings.touchpoints_topic
        self._dead_letter_topic = settings.dead_letter_topic
        self._group = settings.group
        self._positions = _Positions()
        self._producer: KafkaProducer | None = None
        self._dead_letters_pending = True  # left unpublished by an earlier run, perhaps
        self._next_publish = 0.0
        self._postgres = Outage(log, "PostgreSQL", "the batch in hand waits for it")
        self.totals = IngestTotals()

    def run(
        self, stop: threading.Event, on_batch: Callable[[IngestTotals], None] | None = None
    ) -> IngestTotals:
        """Consumes until `stop` is set, then finishes the batch in hand and returns."""
        consumer = self._connect(stop)
        if consumer is None:
            return self.totals
        watch = _BrokerWatch(consumer, self._settings.bootstrap)
        try:
            while not stop.is_set():
                with collector_paused():
                    try:
                        polled = consumer.poll(timeout_ms=POLL_MS, max_records=self._batch_size)
                    except KafkaError as exc:
                        watch.unreachable(exc)
                        stop.wait(watch.backoff())
                        continue
                    batch = self._positioned(consumer, polled, stop)
                    watch.check(heard=bool(polled))
                    if batch:
                        self._record(consumer, batch, stop)
                if batch and on_batch:
                    on_batch(self.totals)
                del polled, batch
                settle_young_objects()
                if self._dead_letters_pending:
                    self._publish_dead_letters()
        except Stopped:
            log.warning("stopped before the batch in hand was recorded; it will be read again")
        finally:
            consumer.close(autocommit=False)
            if self._producer is not None:
                self._producer.close(timeout=5)
        return self.totals

    def _connect(self, stop: threading.Event) -> KafkaConsumer | None:
        delay = FIRST_BACKOFF_S
        while not stop.is_set():
            # A consumer that fails to bootstrap leaves its network thread and sockets behind;
            # try a plain connection first, so that a long outage leaks nothing.
            if not _any_answers(self._settings.bootstrap):
                log.warning(
                    "Kafka at %s is unavailable; retrying in %.1f s",
                    self._settings.bootstrap,
                    delay,
                )
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            try:
                consumer = KafkaConsumer(
                    bootstrap_servers=self._settings.bootstrap,
                    group_id=self._group,
                    client_id=self._client_id,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    isolation_level="read_committed",
                    max_poll_records=self._batch_size,
                    # What the client may hold fetched ahead of the batch in hand: enough to
                    # keep it busy, bounded so that memory stays flat when recording lags.
                    fetch_max_bytes=16 * 1024 * 1024,
                    max_partition_fetch_bytes=4 * 1024 * 1024,
                    bootstrap_timeout_ms=5000,
                    group_instance_id=self._settings.instance,
                    # A member that dies is noticed after this long; one restarted under the
                    # same instance name comes back at once.
                    session_timeout_ms=SESSION_TIMEOUT_MS,
                    heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
                )
            except KafkaError as exc:
                log.warning(
                    "Kafka at %s is unavailable (%s); retrying in %.1f s",
                    self._settings.bootstrap,
                    exc,
                    delay,
                )
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            consumer.subscribe([self._topic], listener=self._positions)
            log.info(
                "consuming %s as group %s from %s",
                self._topic,
                self._group,
                self._settings.bootstrap,
            )
            return consumer
        return None

    def _positioned(
        self,
        consumer: KafkaConsumer,
        polled: Mapping[TopicPartition, list[Any]],
        stop: threading.Event,
    ) -> dict[TopicPartition, list[Any]]:
        """Seeks newly assigned partitions to the offsets the database holds, and drops what
        was fetched from them before that (it is fetched again from the right place)."""
        fresh = self._positions.take()
        if not fresh:
            return dict(polled)
        stored = self._retrying(
            lambda: self._bookkeeping.next_offsets(self._group), stop, "read offsets"
        )
        assigned = consumer.assignment()
        for tp in fresh & assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
            log.info(
                "partition %s[%d] starts at %s",
                tp.topic,
                tp.partition,
                "the beginning" if offset is None else f"offset {offset}",
            )
        return {tp: records for tp, records in polled.items() if tp not in fresh}

    def _record(
        self,
        consumer: KafkaConsumer,
        batch: Mapping[TopicPartition, list[Any]],
        stop: threading.Event,
    ) -> None:
        now_ms = self._clock_ms()
        good: list[Any] = []
        letters: list[DeadLetter] = []
        next_offsets: dict[Partition, int] = {}
        for tp, records in batch.items():
            for record in records:
                outcome = self._triage(record.value, now_ms)
                if isinstance(outcome, Rejection):
                    letters.append(dead_letter(record, outcome))
                else:
                    good.append(outcome)
            next_offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
        also: list[BatchWrite] = [self._bookkeeping.offsets_write(self._group, next_offsets)]
        if letters:
            also.append(self._bookkeeping.dead_letters_write(letters))
        result: BatchRecorded = self._retrying(
            lambda: self._write(good, also), stop, "record a batch"
        )
        for letter in letters:
            log.warning("dead letter %s: %s: %s", letter.where, letter.reason, letter.detail)
        totals = self.totals
        totals.batches += 1
        totals.consumed += len(good) + len(letters)
        totals.recorded += result.recorded
        totals.duplicates += result.duplicates
        totals.dead += len(letters)
        if letters:
            self._dead_letters_pending = True
        # Kafka's committed offsets only inform monitoring tools: the database is the truth.
        consumer.commit_async(
            {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in next_offsets.items()
            },
            callback=lambda _offsets, _result: None,
        )

    def _triage(self, value: bytes | None, now_ms: int) -> Any:
        """A consumed value as what this consumer records, or a Rejection."""
        max_bytes = self._settings.max_record_bytes
        return triage(value, self._decoder, now_ms=now_ms, max_bytes=max_bytes)

    def _write(self, good: list[Any], also: Sequence[BatchWrite]) -> BatchRecorded:
        """Records a batch's good records with the writes in `also`, in one transaction."""
        return self._journeys.record(good, also)

    def _retrying(self, action: Callable[[], Any], stop: threading.Event, what: str) -> Any:
        delay = FIRST_BACKOFF_S
        while True:
            try:
                result = action()
            except RETRYABLE as exc:
                if stop.is_set():
                    raise Stopped from exc
                if not isinstance(exc, IntegrityError):
                    # An outage is said once, however long it lasts, and its end once.
                    stop.wait(self._postgres.failed(exc))
                    continue
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                log.warning(
                    "another writer moved the same streams on (%s); will %s again in %.1f s",
                    reason,
                    what,
                    delay,
                )
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            self._postgres.succeeded()
            return result

    def _publish_dead_letters(self) -> None:
        """Copies dead letters to the dead-letter topic, original bytes untouched. The database
        keeps them first, so none is lost while Kafka is away. Each member claims the letters
        it publishes (the others skip them), and marks each one as it is acknowledged; one
        sent just before a crash may be sent again, with the same `journey.dead_letter_id`."""
        if time.monotonic() < self._next_publish:
            return
        failed = 0
        try:
            with self._bookkeeping.claim_unpublished(topic=self._topic) as (
                pending,
                mark_published,
            ):
                if not pending:
                    self._dead_letters_pending = False
                    return
                producer = self._producer or self._dead_letter_producer()
                sent = []
                for stored in pending:
                    letter = stored.letter
                    try:
                        future = producer.send(
                            self._dead_letter_topic,
                            key=letter.key,
                            # Kafka takes no record without both key and value.
                            value=letter.value if letter.value or letter.key else b"",
                            headers=dead_letter_headers(stored),
                            timestamp_ms=letter.timestamp_ms,
                        )
                    except (KafkaError, ValueError, TypeError) as exc:
                        failed += 1
                        log.warning("dead letter %d cannot be published: %s", stored.id, exc)
                        continue
                    sent.append((stored.id, future))
                producer.flush(timeout=10)
                published = []
                for letter_id, future in sent:
                    try:
                        future.get(timeout=1)
                    except KafkaError as exc:
                        failed += 1
                        log.warning("dead letter %d was not published: %s", letter_id, exc)
                    else:
                        published.append(letter_id)
                mark_published(published)
        except (KafkaError, *UNAVAILABLE) as exc:
            failed += 1
            log.warning("could not publish dead letters yet (%s); they are kept", exc)
        # Letters that failed are tried again later, not on every poll.
        self._next_publish = time.monotonic() + (30.0 if failed else 0.0)

    def _dead_letter_producer(self) -> KafkaProducer:
        self._producer = KafkaProducer(
            bootstrap_servers=self._settings.bootstrap,
            client_id=f"{self._client_id}-dlq",
            max_block_ms=5000,
            bootstrap_timeout_ms=5000,
        )
        return self._producer


def _any_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """Whether any of the bootstrap servers accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection(
                (host.strip("[]") or "127.0.0.1", int(port)), timeout_s
            ).close()
        except (OSError, ValueError):
            continue
        return True
    return False


class _BrokerWatch:
    """Says, once, when the broker stops answering and when it is back. The client reconnects
    by itself; the consumer only waits, since its positions are safe in the database."""

    def __init__(self, consumer: KafkaConsumer, bootstrap: str, every_s: float = 2.0) -> None:
        self._consumer = consumer
        self._bootstrap = bootstrap
        self._every_s = every_s
        self._next_check = time.monotonic() + every_s
        self._reachable = True
        self._delay = FIRST_BACKOFF_S

    def check(self, *, heard: bool) -> None:
        now = time.monotonic()
        if not heard and now < self._next_check:
            return
        self._next_check = now + self._every_s
        if heard or self._any_broker_connected():
            self._delay = FIRST_BACKOFF_S
            if not self._reachable:
                self._reachable = True
                log.info("Kafka at %s is reachable again", self._bootstrap)
        else:
            self.unreachable()

    def unreachable(self, error: Exception | None = None) -> None:
        if self._reachable:
            self._reachable = False
            log.warning(
                "Kafka at %s is unreachable%s; waiting for it (positions are kept in "
                "PostgreSQL, so nothing is lost or read twice)",
                self._bootstrap,
                f" ({error})" if error else "",
            )

    def backoff(self) -> float:
        delay, self._delay = self._delay, min(self._delay * 2, MAX_BACKOFF_S)
        return delay

    def _any_broker_connected(self) -> bool:
        # The consumer's network client is internal to kafka-python, which offers no public
        # connection state; ask it for each broker of the cluster it last knew.
        client = self._consumer._client
        brokers = client.cluster.brokers()
        return not brokers or any(client.connected(broker.node_id) for broker in brokers)


def dead_letter_headers(stored: StoredDeadLetter) -> list[tuple[str, bytes]]:
    letter = stored.letter
    return [
        *letter.headers,
        ("journey.reason", letter.reason.encode()),
        ("journey.error", letter.detail.encode()),
        ("journey.original_topic", letter.topic.encode()),
        ("journey.original_partition", str(letter.partition).encode()),
        ("journey.original_offset", str(letter.offset).encode()),
        ("journey.dead_letter_id", str(stored.id).encode()),
    ]


@dataclass
class RedriveReport:
    recorded: int = 0
    duplicates: int = 0
    still_dead: list[tuple[StoredDeadLetter, str]] = field(default_factory=list)


def redrive(
    journeys: Journeys,
    bookkeeping: Bookkeeping,
    letters: Sequence[StoredDeadLetter],
    *,
    max_bytes: int,
    now_ms: int,
) -> RedriveReport:
    """Offers dead letters to the engine again (after a fix in the rules or the settings).
    Those that now pass are recorded, and marked as redriven in the same transaction, so a
    second redrive records nothing twice; those that still fail stay, with today's reason."""
    decoder = wire_contract("Touchpoint")
    report = RedriveReport()
    good: list[Touchpoint] = []
    passed: list[int] = []
    for stored in letters:
        if stored.redriven_at is not None:
            continue
        outcome = triage(stored.letter.value, decoder, now_ms=now_ms, max_bytes=max_bytes)
        if isinstance(outcome, Touchpoint):
            good.append(outcome)
            passed.append(stored.id)
        else:
            report.still_dead.append((stored, f"{outcome[0]}: {outcome[1]}"))
    if passed:
        result = journeys.record(good, [bookkeeping.redriven_write(passed)])
        report.recorded, report.duplicates = result.recorded, result.duplicates
    return report
