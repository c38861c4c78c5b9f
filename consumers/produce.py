"""Publishing touchpoint files to Kafka, as a channel system would: one Avro single-object
message per touchpoint, keyed by customer id so that each customer's touchpoints keep their
order in one partition."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.settings import KafkaSettings
from engine.errors import InvalidTouchpoint, ServiceUnavailable
from engine.touchpoints import touchpoint_from_record
from schemas.codec import contract
from schemas.files import read_records, touchpoint_avro

BadRecord = Callable[[str, str], None]  # where, reason


@dataclass
class ProduceSummary:
    published: int = 0
    bad: int = 0


def touchpoint_producer(settings: KafkaSettings, **overrides: object) -> KafkaProducer:
    """An idempotent producer (acks from all replicas), batching generously."""
    config: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": "journey-produce",
        "linger_ms": 20,
        "batch_size": 512 * 1024,
        "bootstrap_timeout_ms": 10_000,
        **overrides,
    }
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise ServiceUnavailable(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from None


def publish_files(
    producer: KafkaProducer,
    topic: str,
    paths: Iterable[Path],
    *,
    on_bad: BadRecord,
    on_progress: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Publishes every good record of the files; a bad one is reported and left out."""
    encode = contract("Touchpoint").encode
    summary = ProduceSummary()
    now_ms = int(time.time() * 1000)
    for path in paths:
        for item in read_records(path):
            if item.record is None:
                summary.bad += 1
                on_bad(item.where, str(item.error))
                continue
            try:
                tp = touchpoint_from_record(item.record, now_ms=now_ms)
            except InvalidTouchpoint as exc:
                summary.bad += 1
                on_bad(item.where, str(exc))
                continue
            producer.send(topic, key=tp.customer_id.encode(), value=encode(touchpoint_avro(tp)))
            summary.published += 1
            if on_progress and summary.published % 10_000 == 0:
                on_progress(summary.published)
    producer.flush()
    return summary
