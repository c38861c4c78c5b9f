"""Recording touchpoints: many customers, one transaction, each touchpoint once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from engine.errors import ConfigurationError, UnknownCustomer
from engine.journeys import CustomerJourney, stream_id, touchpoint_fields
from engine.ledger import TouchpointLedger
from engine.touchpoints import Touchpoint

Clock = Callable[[], datetime]

# How many streams' last versions are remembered between batches (about 100 bytes each).
_MAX_KNOWN_STREAMS = 500_000


@dataclass(frozen=True, slots=True)
class BatchRecorded:
    """What one call to `Journeys.record` did."""

    recorded: int
    duplicates: int
    last_position: int | None


class Journeys(Application[UUID]):
    """The event store of customer journeys."""

    name = "Journeys"

    def __init__(
        self, env: Mapping[str, str] | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(env)
        if not isinstance(self.recorder, TouchpointLedger):
            raise ConfigurationError(
                f"the event store's recorder {type(self.recorder).__name__} "
                "cannot record touchpoints idempotently"
            )
        self._ledger: TouchpointLedger = self.recorder
        self._clock = clock or (lambda: datetime.now(UTC))
        self._versions: dict[UUID, int] = {}

    def record(self, touchpoints: Iterable[Touchpoint]) -> BatchRecorded:
        """Records a batch in one transaction. A touchpoint whose `event_id` is already recorded,
        or repeated within the batch, is skipped. Safe to retry: a conflicting writer only
        makes it look again."""
        batch = list(touchpoints)
        unique: dict[str, Touchpoint] = {}
        for tp in batch:
            unique.setdefault(tp.event_id, tp)
        offered = len(batch)
        for attempt in (1, 2):
            try:
                return self._record_new(unique, offered)
            except IntegrityError:
                # Another writer appended to one of these streams: forget what we believed.
                self._versions.clear()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _record_new(self, unique: dict[str, Touchpoint], offered: int) -> BatchRecorded:
        known = self._ledger.recorded_event_ids(list(unique))
        fresh = [tp for event_id, tp in unique.items() if event_id not in known]
        duplicates = offered - len(fresh)
        if not fresh:
            return BatchRecorded(0, duplicates, None)
        streams = {tp.customer_id: stream_id(tp.customer_id) for tp in fresh}
        self._learn_versions(streams.values())
        now = self._clock()
        versions = self._versions
        events: list[Any] = []
        next_versions: dict[UUID, int] = {}
        for tp in fresh:
            sid = streams[tp.customer_id]
            version = next_versions.get(sid) or versions.get(sid, 0)
            if version == 0:
                events.append(_started(sid, tp.customer_id, now))
                version = 1
            version += 1
            events.append(_touchpoint_recorded(sid, version, now, tp))
            next_versions[sid] = version
        recordings = self.save(*events, touchpoint_ids=[tp.event_id for tp in fresh])
        versions.update(next_versions)
        return BatchRecorded(len(fresh), duplicates, recordings[-1].notification.id)

    def _learn_versions(self, stream_ids: Iterable[UUID]) -> None:
        unknown = [sid for sid in stream_ids if sid not in self._versions]
        if not unknown:
            return
        if len(self._versions) + len(unknown) > _MAX_KNOWN_STREAMS:
            self._versions.clear()
        found = self._ledger.stream_versions(unknown)
        for sid in unknown:
            self._versions[sid] = found.get(sid, 0)

    def journey(self, customer_id: str) -> CustomerJourney:
        """A customer's journey stream, rebuilt from the store."""
        sid = stream_id(customer_id)
        if not self._ledger.stream_versions([sid]):
            raise UnknownCustomer(customer_id)
        journey: CustomerJourney = self.repository.get(sid)
        return journey


# Events are built without running the dataclass constructor, as the library's own mapper
# does when it reads them back: the fields are already validated, and the constructor's
# checks cost more than the rest of recording a touchpoint.
def _started(sid: UUID, customer_id: str, now: datetime) -> CustomerJourney.Started:
    event = object.__new__(CustomerJourney.Started)
    event.__dict__.update(
        originator_id=sid,
        originator_version=1,
        timestamp=now,
        originator_topic=_AGGREGATE_TOPIC,
        customer_id=customer_id,
    )
    return event


def _touchpoint_recorded(
    sid: UUID, version: int, now: datetime, tp: Touchpoint
) -> CustomerJourney.TouchpointRecorded:
    event = object.__new__(CustomerJourney.TouchpointRecorded)
    event.__dict__.update(
        touchpoint_fields(tp), originator_id=sid, originator_version=version, timestamp=now
    )
    return event


_AGGREGATE_TOPIC = f"{CustomerJourney.__module__}:{CustomerJourney.__qualname__}"
