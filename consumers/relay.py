"""The outbox relay: publishes decided actions to `journey.next-actions` and marks them sent
once the broker has acknowledged them.

The outbox row was written in the decision's own transaction, so nothing decided is ever
lost; a crash between publishing and marking publishes the same bytes under the same action
id again, which a sales tool recognises by the `journey.action_id` header. Each owner's
actions share a key, so one rep's tool sees them in the order they were decided."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.action_store import ActionStore
from consumers.ingest import UNAVAILABLE
from consumers.metrics import ACTIONS_PUBLISHED, RELAY_PUBLISH
from consumers.settings import KafkaSettings
from engine.errors import ServiceUnavailable
from engine.outage import Outage

ACTION_ID_HEADER = "journey.action_id"


def action_producer(settings: KafkaSettings) -> KafkaProducer:
    """The idempotent producer (acks from all replicas), sending at once: an action is
    waited for."""
    try:
        return KafkaProducer(
            bootstrap_servers=settings.bootstrap,
            client_id="journey-relay",
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            bootstrap_timeout_ms=10_000,
        )
    except KafkaError as exc:
        raise ServiceUnavailable(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from None


class Relay:
    def __init__(
        self, store: ActionStore, producer: KafkaProducer, topic: str, *, batch: int = 1000
    ) -> None:
        self._store = store
        self._producer = producer
        self._topic = topic
        self._batch = batch
        # Sent and neither acknowledged nor failed yet, by outbox row: while Kafka is away the
        # producer keeps trying them, and sending them again would publish them twice.
        self._in_flight: dict[int, Any] = {}

    def publish_pending(self, timeout_s: float = 30.0) -> int:
        """Publishes what the outbox holds unsent, oldest first; returns how many. Raises
        KafkaError if the broker did not acknowledge them (they stay unsent)."""
        published = 0
        while rows := self._store.unsent(self._batch):
            started = time.perf_counter()
            futures = []
            for seq, action_id, owner, value in rows:
                future = self._in_flight.get(seq)
                if future is None or future.failed():
                    future = self._producer.send(
                        self._topic,
                        key=owner.encode(),
                        value=value,
                        headers=[(ACTION_ID_HEADER, action_id.encode())],
                    )
                    self._in_flight[seq] = future
                futures.append(future)
            self._producer.flush(timeout=timeout_s)
            for future in futures:
                future.get(timeout=timeout_s)
            RELAY_PUBLISH.observe(time.perf_counter() - started)
            ACTIONS_PUBLISHED.inc(len(rows))
            self._store.mark_sent([seq for seq, *_ in rows], int(time.time() * 1000))
            for seq, *_ in rows:
                del self._in_flight[seq]
            published += len(rows)
            if len(rows) < self._batch:
                break
        return published


class Relaying:
    """The relay in a thread of its own, beside the decider: it publishes whenever the
    decider says it committed something to the outbox (`due`), so that the decider goes on
    with the next page while the broker acknowledges the last. It waits out outages of
    PostgreSQL and Kafka, each said once, and publishes what is due once more when stopped,
    unless a service is away (what is left waits in the outbox for the next start). Should
    it fail otherwise, `check` raises its error in the thread that runs the decider."""

    def __init__(
        self,
        open_store: Callable[[], ActionStore],
        producer: KafkaProducer,
        topic: str,
        *,
        postgres: Outage,
        kafka: Outage,
        failed: Callable[[], None] = lambda: None,
    ) -> None:
        """`open_store` opens the relay's own connection to the outbox (in its thread);
        `failed` is called if the thread ends on an error, to wake whoever should `check`."""
        self._open_store = open_store
        self._failed = failed
        self.error: BaseException | None = None
        self._producer = producer
        self._topic = topic
        self._postgres = postgres
        self._kafka = kafka
        self._due = threading.Event()
        self._due.set()  # the outbox may hold actions from before a restart
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def due(self) -> None:
        """Something was committed to the outbox: publish it."""
        self._due.set()

    def stop(self) -> None:
        """Publishes what is due once more (unless a service is away), then ends the thread."""
        self._stopping.set()
        self._due.set()
        self._thread.join()

    def check(self) -> None:
        """Raises the error the thread ended on, if it did."""
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        store: ActionStore | None = None
        relay: Relay | None = None  # one for good: it knows what it sent and awaits
        away = False
        try:
            while True:
                self._due.wait()
                if self._stopping.is_set() and away:
                    return
                self._due.clear()
                try:
                    if relay is None:
                        store = self._open_store()
                        relay = Relay(store, self._producer, self._topic)
                    relay.publish_pending()
                except UNAVAILABLE as exc:
                    away = self._again(self._postgres.failed(exc))
                    continue
                except KafkaError as exc:
                    away = self._again(self._kafka.failed(exc))
                    continue
                away = False
                self._postgres.succeeded()
                self._kafka.succeeded()
                if self._stopping.is_set() and not self._due.is_set():
                    return
        except BaseException as exc:
            self.error = exc
            self._failed()
        finally:
            if store is not None:
                store.close()

    def _again(self, after_s: float) -> bool:
        """Tries again after a wait (cut short by a stop)."""
        self._due.set()
        self._stopping.wait(after_s)
        return True
