"""Recording touchpoints from Kafka, each exactly once, whatever crashes, outages or bad records
come along.

Each polled batch is recorded in one PostgreSQL transaction together with the offsets it was
consumed up to and the dead letters met in it. On being given a partition, the consumer seeks
to the offset stored there: Kafka's own committed offsets are kept up to date for monitoring
tools, but never trusted. A crash anywhere therefore leaves either the whole batch and its
offsets recorded, or neither; and should two members ever read the same records (a partition
moving while a batch is in flight), the touchpoint ledger records each `event_id` once and the
offsets only move forward.

Messages framed for a schema registry are read with the writer schema the registry holds.
While the registry does not answer, the batch in hand waits for it, as it waits for
PostgreSQL: a record is never made a dead letter because a service was away.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CorruptRecordError, KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.bookkeeping import Bookkeeping, DeadLetter, Partition, StoredDeadLetter
from consumers.broker import FIRST_BACKOFF_S, MAX_BACKOFF_S, any_answers, kafka_outage
from consumers.metrics import ConsumerMetrics
from consumers.settings import KafkaSettings
from consumers.unreadable import UnreadableReader
from engine.bulk import collector_paused, settle_young_objects
from engine.conflicts import Conflict
from engine.errors import DecodeError, InvalidTouchpoint, RegistryUnavailable, StoreUnavailable
from engine.ledger import BatchWrite
from engine.outage import Outage, one_line
from engine.recording import BatchRecorded, Journeys, OnConflicts
from engine.sealing import ERASED
from engine.touchpoints import Touchpoint, touchpoint_from_record
from schemas.codec import AvroContract, wire_contract
from schemas.registry import SchemaRegistry

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
POLL_MS = 500
SESSION_TIMEOUT_MS = 10_000
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024


@dataclass
class IngestTotals:
    batches: int = 0
    consumed: int = 0
    recorded: int = 0
    duplicates: int = 0
    dead: int = 0


class Stopped(Exception):
    """Asked to stop while a batch could not be recorded; it will be read again."""


class Sorted(NamedTuple):
    """A batch's records sorted: what to record (and the record each came in), the dead
    letters, and the offsets to go on from."""

    good: list[Any]
    consumed: list[Any]
    letters: list[DeadLetter]
    offsets: dict[Partition, int]


class Rejection(NamedTuple):
    reason: str  # unreadable, undecodable, invalid, oversized, conflict (or unknown_action)
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
    except RegistryUnavailable:
        raise  # no fault of the record: it waits for the registry
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
    """Pauses partitions as they are assigned, so that nothing is fetched from them until the
    polling thread has sought them to the offsets stored in the database (Kafka's committed
    offsets, which the client would start from, may lie before a record it cannot read). The
    callbacks run on the client's IO thread and must not block: pausing only marks them."""

    def __init__(self, metrics: ConsumerMetrics) -> None:
        self._lock = threading.Lock()
        self._unpositioned: set[TopicPartition] = set()
        self._metrics = metrics
        self.consumer: KafkaConsumer | None = None

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = set(assigned)
        if self.consumer is not None and assigned:
            self.consumer.pause(*assigned)
        with self._lock:
            self._unpositioned.update(assigned)

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = set(revoked)
        with self._lock:
            self._unpositioned.difference_update(revoked)
        for tp in revoked:
            self._metrics.forget_lag(tp.topic, tp.partition)

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.on_partitions_revoked(lost)

    def take(self) -> set[TopicPartition]:
        with self._lock:
            taken, self._unpositioned = self._unpositioned, set()
        return taken


class TouchpointIngest:
    """A member of the ingest consumer group."""

    metrics_name = "touchpoints"  # the `consumer` label of its metrics

    def __init__(
        self,
        journeys: Journeys,
        bookkeeping: Bookkeeping,
        settings: KafkaSettings,
        *,
        batch_size: int,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        client_id: str = "journey-ingest",
        registry: SchemaRegistry | None = None,
    ) -> None:
        self._journeys = journeys
        self._bookkeeping = bookkeeping
        self._settings = settings
        self._batch_size = batch_size
        self._clock_ms = clock_ms
        self._client_id = client_id
        self._registry = registry
        self._decoder = wire_contract("Touchpoint").reading_registry(registry)
        self._topic = settings.touchpoints_topic
        self._dead_letter_topic = settings.dead_letter_topic
        self._group = settings.group
        self._metrics = ConsumerMetrics.of(self.metrics_name)
        self._positions = _Positions(self._metrics)
        self._outage = kafka_outage(
            settings.bootstrap,
            log,
            "waiting for it (positions are kept in PostgreSQL, so nothing is lost or read twice)",
        )
        self._producer: KafkaProducer | None = None
        self._dead_letters_pending = True  # left unpublished by an earlier run, perhaps
        self._next_publish = 0.0
        self._postgres = Outage(log, "PostgreSQL", "the batch in hand waits for it")
        self._registry_outage = Outage(
            log,
            registry.name if registry else "the schema registry",
            "the batch in hand waits for it (no record is made a dead letter meanwhile)",
        )
        self.totals = IngestTotals()

    @property
    def outages(self) -> tuple[Outage, ...]:
        """What the member knows of Kafka, PostgreSQL and the schema registry (if it reads
        through one), for its health and readiness."""
        if self._registry is None:
            return self._outage, self._postgres
        return self._outage, self._postgres, self._registry_outage

    def run(
        self, stop: threading.Event, on_batch: Callable[[IngestTotals], None] | None = None
    ) -> IngestTotals:
        """Consumes until `stop` is set, then finishes the batch in hand and returns."""
        reader = UnreadableReader(
            self._settings.bootstrap, self._client_id, max_bytes=MAX_PARTITION_FETCH_BYTES
        )
        try:
            while not stop.is_set():
                consumer = self._connect(stop)
                if consumer is None:
                    break
                try:
                    self._consume(consumer, reader, stop, on_batch)
                finally:
                    consumer.close(autocommit=False)
        except Stopped:
            log.warning("stopped before the batch in hand was recorded; it will be read again")
        finally:
            reader.close()
            if self._producer is not None:
                self._producer.close(timeout=5)
        return self.totals

    def _consume(
        self,
        consumer: KafkaConsumer,
        reader: UnreadableReader,
        stop: threading.Event,
        on_batch: Callable[[IngestTotals], None] | None,
    ) -> None:
        """Polls and records until `stop` is set; returns early if the client must be built
        again (it failed in a way that leaves it unable to go on)."""
        watch = _BrokerWatch(consumer, self._outage)
        while not stop.is_set():
            with collector_paused():
                try:
                    polled = consumer.poll(timeout_ms=POLL_MS, max_records=self._batch_size)
                except Exception as exc:  # whatever the client raises, the member goes on
                    if isinstance(exc, KafkaError) and not isinstance(exc, CorruptRecordError):
                        stop.wait(self._outage.failed(exc))
                        continue
                    if not self._read_past(consumer, reader, exc, stop):
                        return
                    if on_batch:
                        on_batch(self.totals)
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

    def _read_past(
        self,
        consumer: KafkaConsumer,
        reader: UnreadableReader,
        error: Exception,
        stop: threading.Event,
    ) -> bool:
        """After the client failed to read what it fetched: reads the partitions' bytes at
        their positions itself, records what reads and keeps what does not as dead letters by
        offset, and seeks past them. False if the client must be built again (the failure
        was not in the records, or the broker could not be asked)."""
        what = one_line(error)
        paused = consumer.paused()
        positions = {}
        try:
            for tp in consumer.assignment() - paused:
                position = consumer.position(tp, timeout_ms=5000)
                if position is not None:
                    positions[tp] = position
            reads = reader.read(positions)
        except KafkaError as exc:
            stop.wait(self._outage.failed(exc))
            return False
        if not reads:
            log.warning(
                "the Kafka client failed (%s), yet every partition reads at its position; "
                "connecting again",
                what,
            )
            stop.wait(self._outage.next_wait())
            return False
        self._record(
            consumer,
            {tp: read.records for tp, read in reads.items()},
            stop,
            next_offsets={(tp.topic, tp.partition): read.next_offset for tp, read in reads.items()},
            client_error=what if len(reads) == 1 else None,
        )
        for tp, read in reads.items():
            consumer.seek(tp, read.next_offset)
        return True

    def _connect(self, stop: threading.Event) -> KafkaConsumer | None:
        while not stop.is_set():
            # A consumer that fails to bootstrap leaves its network thread and sockets behind;
            # try a plain connection first, so that a long outage leaks nothing.
            if not any_answers(self._settings.bootstrap):
                stop.wait(self._outage.failed())
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
                    max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
                    bootstrap_timeout_ms=5000,
                    group_instance_id=self._settings.instance,
                    # A member that dies is noticed after this long; one restarted under the
                    # same instance name comes back at once.
                    session_timeout_ms=SESSION_TIMEOUT_MS,
                    heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
                )
            except KafkaError as exc:
                stop.wait(self._outage.failed(exc))
                continue
            self._positions.consumer = consumer
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
        if fresh & assigned:
            consumer.resume(*(fresh & assigned))
        return {tp: records for tp, records in polled.items() if tp not in fresh}

    def _record(
        self,
        consumer: KafkaConsumer,
        batch: Mapping[TopicPartition, list[Any]],
        stop: threading.Event,
        *,
        next_offsets: Mapping[Partition, int] | None = None,
        client_error: str | None = None,
    ) -> None:
        """Records a batch with the offsets it goes on from (after its last record unless
        told) and its dead letters, in one transaction. Records the client could not read
        carry why (`unreadable`); the first of them gets the client's own error if given."""
        good, consumed, letters, next_offsets = self._sorted(
            batch, stop, next_offsets=next_offsets, client_error=client_error
        )
        also: list[BatchWrite] = [self._bookkeeping.offsets_write(self._group, next_offsets)]
        if letters:
            also.append(self._bookkeeping.dead_letters_write(letters))
        conflicting: list[DeadLetter] = []

        def conflicts_kept(conflicts: Sequence[Conflict]) -> list[BatchWrite]:
            conflicting[:] = [
                dead_letter(consumed[c.index], Rejection("conflict", f"event_id: {c.reason}"))
                for c in conflicts
            ]
            return [self._bookkeeping.dead_letters_write(conflicting)]

        metrics = self._metrics

        def write() -> BatchRecorded:
            started = time.perf_counter()
            written = self._write(good, also, conflicts_kept)
            metrics.commit.observe(time.perf_counter() - started)
            return written

        result: BatchRecorded = self._retrying(write, stop, "record a batch")
        letters += conflicting
        for letter in letters:
            log.warning("dead letter %s: %s: %s", letter.where, letter.reason, letter.detail)
        totals = self.totals
        totals.batches += 1
        totals.consumed += len(good) + len(letters) - len(conflicting)
        totals.recorded += result.recorded
        totals.duplicates += result.duplicates
        totals.dead += len(letters)
        self._count(len(good) + len(letters) - len(conflicting), result, letters)
        self._count_lag(consumer, next_offsets)
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

    def _sorted(
        self,
        batch: Mapping[TopicPartition, list[Any]],
        stop: threading.Event,
        *,
        next_offsets: Mapping[Partition, int] | None,
        client_error: str | None,
    ) -> Sorted:
        """Triages every record of a batch; while the schema registry does not answer, waits
        for it and triages the batch again (what it did answer is kept)."""
        while True:
            try:
                triaged = self._sort(batch, next_offsets, client_error)
            except RegistryUnavailable as exc:
                if stop.is_set():
                    raise Stopped from exc
                stop.wait(self._registry_outage.failed(exc))
                continue
            self._registry_outage.succeeded()
            return triaged

    def _sort(
        self,
        batch: Mapping[TopicPartition, list[Any]],
        next_offsets: Mapping[Partition, int] | None,
        client_error: str | None,
    ) -> Sorted:
        now_ms = self._clock_ms()
        good: list[Any] = []
        consumed: list[Any] = []  # the record each of `good` came in
        letters: list[DeadLetter] = []
        offsets: dict[Partition, int] = dict(next_offsets or {})
        for tp, records in batch.items():
            for record in records:
                unreadable = getattr(record, "unreadable", None)
                if unreadable:
                    detail, client_error = client_error or unreadable, None
                    outcome = Rejection("unreadable", detail)
                else:
                    outcome = self._triage(record.value, now_ms)
                if isinstance(outcome, Rejection):
                    letters.append(dead_letter(record, outcome))
                else:
                    good.append(outcome)
                    consumed.append(record)
            if records:
                offsets.setdefault((tp.topic, tp.partition), records[-1].offset + 1)
        return Sorted(good, consumed, letters, offsets)

    def _count(self, consumed: int, result: BatchRecorded, letters: Sequence[DeadLetter]) -> None:
        """A batch's metrics: a few increments, not one per record."""
        metrics = self._metrics
        metrics.consumed.inc(consumed)
        metrics.recorded.inc(result.recorded)
        metrics.duplicate.inc(result.duplicates)
        for letter in letters:
            metrics.dead_letter(letter.reason)

    def _count_lag(self, consumer: KafkaConsumer, next_offsets: Mapping[Partition, int]) -> None:
        for (topic, partition), offset in next_offsets.items():
            # The end of the log as the last fetch from the partition saw it: no request.
            end = consumer.highwater(TopicPartition(topic, partition))
            if end is not None:
                self._metrics.lag(topic, partition, end - offset)

    def _triage(self, value: bytes | None, now_ms: int) -> Any:
        """A consumed value as what this consumer records, or a Rejection."""
        max_bytes = self._settings.max_record_bytes
        return triage(value, self._decoder, now_ms=now_ms, max_bytes=max_bytes)

    def _write(
        self, good: list[Any], also: Sequence[BatchWrite], on_conflicts: OnConflicts
    ) -> BatchRecorded:
        """Records a batch's good records with the writes in `also`, and those `on_conflicts`
        makes of the records refused as conflicts, in one transaction."""
        return self._journeys.record(good, also, on_conflicts=on_conflicts)

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
        """Copies dead letters to the dead-letter topic, original bytes untouched; one larger
        than the setting allows (or than the broker takes) goes as a reference to the row the
        database keeps of it. The database keeps them first, so none is lost while Kafka is
        away. Each member claims the letters it publishes (the others skip them), and marks
        each one as it is acknowledged; one sent just before a crash may be sent again, with
        the same `journey.dead_letter_id`."""
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
                limit = self._settings.dead_letter_max_bytes
                refused = self._send_letters(producer, pending, limit, mark_published)
                if refused:
                    # What the broker would not take whole goes as a reference, never retried
                    # whole; from a new producer, as the one refused fails all that follows
                    # to the partition with the same error.
                    producer.close(timeout=5)
                    self._producer = None
                    producer = self._dead_letter_producer()
                    failed = len(self._send_letters(producer, refused, 0, mark_published))
        except KafkaError as exc:
            failed += 1
            if exc.retriable:
                self._outage.failed(exc)  # said once; the letters are kept meanwhile
            else:
                log.warning("could not publish dead letters yet (%s); they are kept", exc)
        except UNAVAILABLE as exc:
            failed += 1
            log.warning("could not publish dead letters yet (%s); they are kept", exc)
        # Letters that failed are tried again later, not on every poll.
        self._next_publish = time.monotonic() + (30.0 if failed else 0.0)

    def _send_letters(
        self,
        producer: KafkaProducer,
        letters: Sequence[StoredDeadLetter],
        max_bytes: int,
        mark_published: Callable[[Sequence[int]], None],
    ) -> list[StoredDeadLetter]:
        """Sends letters (as references above `max_bytes`) and marks those acknowledged;
        returns those the broker or the client refused for what they are."""
        refused: list[StoredDeadLetter] = []
        sent = []
        for stored in letters:
            key, value, headers = dead_letter_message(stored, max_bytes)
            try:
                future = producer.send(
                    self._dead_letter_topic,
                    key=key,
                    value=value,
                    headers=headers,
                    timestamp_ms=stored.letter.timestamp_ms,
                )
            except (KafkaError, ValueError, TypeError) as exc:
                if isinstance(exc, KafkaError) and exc.retriable:
                    raise
                log.warning("dead letter %d cannot be published whole: %s", stored.id, exc)
                refused.append(stored)
                continue
            sent.append((stored, future))
        if not sent:
            return refused
        producer.flush(timeout=10)
        published = []
        away: KafkaError | None = None
        for stored, future in sent:
            try:
                future.get(timeout=1)
            except KafkaError as exc:
                if exc.retriable:
                    away = away or exc
                    continue
                log.warning("dead letter %d was not published whole: %s", stored.id, exc)
                refused.append(stored)
            else:
                published.append(stored.id)
        mark_published(published)
        if away is not None:
            raise away
        return refused

    def _dead_letter_producer(self) -> KafkaProducer:
        self._producer = KafkaProducer(
            bootstrap_servers=self._settings.bootstrap,
            client_id=f"{self._client_id}-dlq",
            max_block_ms=5000,
            bootstrap_timeout_ms=5000,
            # Room for the largest letter published whole, with its headers.
            max_request_size=self._settings.dead_letter_max_bytes + 64 * 1024,
        )
        return self._producer


class _BrokerWatch:
    """Tells the outage when the consumer hears from the broker, or has not for a while. The
    client reconnects by itself; the consumer only waits, its positions safe in the database."""

    def __init__(self, consumer: KafkaConsumer, outage: Outage, every_s: float = 2.0) -> None:
        self._consumer = consumer
        self._outage = outage
        self._every_s = every_s
        self._next_check = time.monotonic() + every_s

    def check(self, *, heard: bool) -> None:
        now = time.monotonic()
        if not heard and now < self._next_check:
            return
        self._next_check = now + self._every_s
        if heard or self._any_broker_connected():
            self._outage.succeeded()
        else:
            self._outage.failed()

    def _any_broker_connected(self) -> bool:
        # The consumer's network client is internal to kafka-python, which offers no public
        # connection state; ask it for each broker of the cluster it last knew.
        client = self._consumer._client
        brokers = client.cluster.brokers()
        return not brokers or any(client.connected(broker.node_id) for broker in brokers)


def dead_letter_message(
    stored: StoredDeadLetter, max_bytes: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The key, value and headers a dead letter is published with: the record as it came
    with the reason in headers; or, when that is larger than `max_bytes`, a reference to the
    row the database keeps (its id, where the record came from, its size, the reason)."""
    letter = stored.letter
    headers = dead_letter_headers(stored)
    size = (
        len(letter.key or b"")
        + len(letter.value or b"")
        + sum(len(name.encode()) + len(value) for name, value in headers)
    )
    if size <= max_bytes:
        # Kafka takes no record without both key and value.
        return letter.key, letter.value if letter.value or letter.key else b"", headers
    detail = letter.detail if len(letter.detail) <= 500 else f"{letter.detail[:500]}..."
    reference = {
        "dead_letter_id": stored.id,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "bytes": size,
        "reason": letter.reason,
        "detail": detail,
    }
    return (
        None,
        json.dumps(reference).encode(),
        [
            ("journey.reason", letter.reason.encode()),
            ("journey.error", detail.encode()),
            ("journey.original_topic", letter.topic.encode()),
            ("journey.original_partition", str(letter.partition).encode()),
            ("journey.original_offset", str(letter.offset).encode()),
            ("journey.dead_letter_id", str(stored.id).encode()),
            ("journey.withheld_bytes", str(size).encode()),
        ],
    )


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
    registry: SchemaRegistry | None = None,
) -> RedriveReport:
    """Offers dead letters to the engine again (after a fix in the rules or the settings,
    such as a schema registry to read registry-framed records with). Those that now pass are
    recorded, and marked as redriven in the same transaction, so a second redrive records
    nothing twice; those that still fail stay, with today's reason. Raises
    RegistryUnavailable, recording nothing, if the registry does not answer."""
    decoder = wire_contract("Touchpoint").reading_registry(registry)
    report = RedriveReport()
    good: list[Touchpoint] = []
    passed: list[int] = []
    letters_by_id = {stored.id: stored for stored in letters}
    for stored in letters:
        if stored.redriven_at is not None:
            continue
        if stored.letter.value is None and stored.letter.detail == ERASED:
            report.still_dead.append((stored, "erased: its person was forgotten"))
            continue
        outcome = triage(stored.letter.value, decoder, now_ms=now_ms, max_bytes=max_bytes)
        if isinstance(outcome, Touchpoint):
            good.append(outcome)
            passed.append(stored.id)
        else:
            report.still_dead.append((stored, f"{outcome[0]}: {outcome[1]}"))
    while passed:  # a touchpoint refused as a conflict stays dead; the others go on
        result = journeys.record(good, [bookkeeping.redriven_write(passed)], all_or_none=True)
        report.recorded, report.duplicates = result.recorded, result.duplicates
        refused = {conflict.index: conflict.reason for conflict in result.conflicts}
        if not refused:
            break
        for index, reason in refused.items():
            stored = letters_by_id[passed[index]]
            report.still_dead.append((stored, f"conflict: event_id: {reason}"))
        good = [tp for index, tp in enumerate(good) if index not in refused]
        passed = [letter for index, letter in enumerate(passed) if index not in refused]
    return report
