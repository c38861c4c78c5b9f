"""The outbox relay: publishes decided actions to `journey.next-actions` and marks them sent
once the broker has acknowledged them.

The outbox row was written in the decision's own transaction, so nothing decided is ever
lost; a crash between publishing and marking publishes the same bytes under the same action
id again, which a sales tool recognises by the `journey.action_id` header. Each owner's
actions share a key, so one rep's tool sees them in the order they were decided."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.action_store import ActionStore
from consumers.metrics import ACTIONS_PUBLISHED, RELAY_PUBLISH
from consumers.settings import KafkaSettings
from engine.errors import ServiceUnavailable

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
