"""The port the event store offers for batched, idempotent recording."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

HEX_DIGITS = "0123456789abcdef"

BatchWrite = Callable[[Any], None]
"""A write that commits or fails together with a batch of events (the offsets it was consumed
up to, the dead letters met on the way): called with the store's cursor inside the batch's
transaction."""


class TouchpointLedger(ABC):
    """Answers what batched recording must know without loading any customer's history.

    A recorder that implements it also takes `touchpoint_ids=[...]` in `insert_events` and
    stores them in the same transaction as the events, so an id is known exactly when its
    event is recorded. It also takes `also=[BatchWrite, ...]`, run in that transaction, even
    when there are no events to insert.
    """

    def stream_key(self, stream_id: UUID) -> UUID | str:
        """The form of a stream id this store takes in a StoredEvent."""
        return stream_id

    @abstractmethod
    def recorded_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Those of `event_ids` that are already recorded."""

    @abstractmethod
    def recorded_count(self) -> int:
        """How many touchpoints are recorded (the log's positions count other events too,
        and PostgreSQL's skip numbers)."""

    @abstractmethod
    def stream_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The last version of each stream that exists; absent streams are left out."""

    @abstractmethod
    def select_stream_states(
        self, stream_ids: Sequence[UUID], topic: str
    ) -> dict[UUID, list[bytes]]:
        """The stored states of these streams' events of one topic, each stream's in order;
        streams with none are left out."""

    @abstractmethod
    def select_stream_entries(
        self, stream_ids: Sequence[UUID], topic: str
    ) -> dict[UUID, list[tuple[int, bytes]]]:
        """`select_stream_states`, each state with its position in the log."""

    @abstractmethod
    def select_states(
        self,
        after: int,
        limit: int,
        topics: Sequence[str],
        stop: int | None = None,
        partition: Partition | None = None,
    ) -> list[tuple[int, bytes]]:
        """Positions and stored states of the events of some topics after a position, in log
        order: a lean `select_notifications` for replaying the log by the million. With a
        partition, only the events of its streams and those of its `everywhere` topics."""

    @abstractmethod
    def rewrite_states(self, states: Sequence[tuple[int, bytes]]) -> None:
        """Replaces the stored states of the events at these log positions, leaving the old
        ones nowhere a reader of the database's files could find them once `scrub` has run.
        Only sealing what was recorded in the clear does this: events never change."""

    @abstractmethod
    def scrub(self) -> None:
        """Removes what rewritten states left behind in the store's files."""


@dataclass(frozen=True, slots=True)
class Partition:
    """One of `count` shares of the log's streams, chosen by the last hex digit of the stream
    id, so that a store can select a share in SQL. The events of `everywhere` topics (the
    journey clock's, say) belong to every share."""

    index: int
    count: int
    everywhere: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count <= len(HEX_DIGITS):
            raise ValueError(f"no partition {self.index} of {self.count}")

    def holds(self, stream_id: UUID) -> bool:
        return (stream_id.int & 15) % self.count == self.index

    @property
    def digits(self) -> str:
        """The last hex digits of the stream ids this share holds."""
        return HEX_DIGITS[self.index :: self.count]
