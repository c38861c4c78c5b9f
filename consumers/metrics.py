"""Every metric the engine's processes export, defined once, in Prometheus' default registry.

They are counted at the edges (the consumer loop, the decider loop, the relay, the HTTP API),
once per batch or request, never per touchpoint: the domain and the folds know nothing of
them. Each process exports its own; a scrape tells them apart by its target."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The `_created` series only double every counter and histogram on the page.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

# From a few milliseconds (a small batch, a page) to the lock timeout's order of magnitude.
_COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECORDS_CONSUMED = Counter(
    "journey_records_consumed_total",
    "Records read from Kafka, good or bad.",
    ["consumer"],
)
RECORDS_RECORDED = Counter(
    "journey_records_recorded_total",
    "Records recorded as new events.",
    ["consumer"],
)
RECORDS_DUPLICATE = Counter(
    "journey_records_duplicate_total",
    "Records that were recorded before (delivered again), and skipped.",
    ["consumer"],
)
DEAD_LETTERS = Counter(
    "journey_dead_letters_total",
    "Records kept as dead letters instead of being recorded, by reason.",
    ["consumer", "reason"],
)
BATCH_COMMIT = Histogram(
    "journey_batch_commit_duration_seconds",
    "How long recording one batch with its offsets took, in one transaction.",
    ["consumer"],
    buckets=_COMMIT_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "journey_consumer_lag_records",
    "Records on the partition beyond those recorded, as of the last batch read from it.",
    ["consumer", "topic", "partition"],
)
DECISIONS = Counter("journey_decisions_total", "Next actions decided.")
DECIDER_LAG = Gauge(
    "journey_decider_lag_positions",
    "Log positions recorded beyond those the decider has decided on.",
)
PROJECTION_LAG = Gauge(
    "journey_projection_lag_positions",
    "Log positions recorded beyond those a projection's views reflect.",
    ["projection"],
)
OUTBOX_BACKLOG = Gauge(
    "journey_outbox_backlog_actions",
    "Actions decided and not yet acknowledged by Kafka.",
)
ACTIONS_PUBLISHED = Counter(
    "journey_actions_published_total",
    "Actions published to the next-actions topic and acknowledged.",
)
RELAY_PUBLISH = Histogram(
    "journey_relay_publish_duration_seconds",
    "How long publishing one round of the outbox took, until the broker acknowledged it.",
    buckets=_COMMIT_BUCKETS,
)
HTTP_REQUEST = Histogram(
    "journey_http_request_duration_seconds",
    "HTTP requests served, by method, route template and status.",
    ["method", "route", "status"],
)
CUSTOMER_ANSWERS = Counter(
    "journey_customer_answers_total",
    "Customer journeys served: kept from an earlier read (nothing of theirs changed since), "
    "or read from the views.",
    ["answer"],
)
READY = Gauge(
    "journey_ready",
    "1 when the process can do its work (the services it needs answer), else 0.",
)


@dataclass(frozen=True, slots=True)
class ConsumerMetrics:
    """One consumer's metrics, their labels bound once: a batch costs a few increments."""

    name: str
    consumed: Counter
    recorded: Counter
    duplicate: Counter
    commit: Histogram

    @classmethod
    def of(cls, name: str) -> ConsumerMetrics:
        return cls(
            name,
            RECORDS_CONSUMED.labels(name),
            RECORDS_RECORDED.labels(name),
            RECORDS_DUPLICATE.labels(name),
            BATCH_COMMIT.labels(name),
        )

    def dead_letter(self, reason: str) -> None:
        DEAD_LETTERS.labels(self.name, reason).inc()

    def lag(self, topic: str, partition: int, records: int) -> None:
        CONSUMER_LAG.labels(self.name, topic, str(partition)).set(max(records, 0))

    def forget_lag(self, topic: str, partition: int) -> None:
        """A partition this member no longer holds: its lag is another member's to tell."""
        with suppress(KeyError):
            CONSUMER_LAG.remove(self.name, topic, str(partition))


class Every:
    """True at most once per `seconds`, for measurements that cost a query."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._next = float("-inf")

    def due(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._seconds
        return True


def metric_names() -> set[str]:
    """The names a scrape shows for the engine's metrics (a histogram's series included)."""
    names: set[str] = set()
    for metric in (
        RECORDS_CONSUMED,
        RECORDS_RECORDED,
        RECORDS_DUPLICATE,
        DEAD_LETTERS,
        BATCH_COMMIT,
        CONSUMER_LAG,
        DECISIONS,
        DECIDER_LAG,
        PROJECTION_LAG,
        OUTBOX_BACKLOG,
        ACTIONS_PUBLISHED,
        RELAY_PUBLISH,
        HTTP_REQUEST,
        CUSTOMER_ANSWERS,
        READY,
    ):
        for family in metric.describe():
            names.add(family.name + ("_total" if family.type == "counter" else ""))
            if family.type == "histogram":
                names.update(f"{family.name}_{part}" for part in ("bucket", "count", "sum"))
    return names
