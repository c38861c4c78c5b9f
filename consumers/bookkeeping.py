"""What the Kafka consumers keep in the store beside the events: how far each partition has
been recorded, and the dead letters met on the way. Both are written in the same transaction
as the events they go with, so the database, not Kafka, says what has been consumed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from engine.ledger import BatchWrite

Partition = tuple[str, int]  # topic, partition


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A consumed record the engine could not record, kept with its original bytes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    reason: str  # unreadable, undecodable, invalid, oversized or conflict
    detail: str

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    letter: DeadLetter
    recorded_at: datetime
    published: bool
    redriven_at: datetime | None


class Bookkeeping(ABC):
    """Consumed offsets per group and partition, and dead letters, beside the events."""

    @abstractmethod
    def offsets_write(self, group: str, next_offsets: Mapping[Partition, int]) -> BatchWrite:
        """Moves the group's positions forward (never back) with the batch."""

    @abstractmethod
    def next_offsets(self, group: str, topic: str | None = None) -> dict[Partition, int]:
        """Where the group goes on reading each partition it has recorded from."""

    @abstractmethod
    def dead_letters_write(self, letters: Sequence[DeadLetter]) -> BatchWrite:
        """Keeps dead letters with the batch they were met in; meeting one again adds nothing."""

    @abstractmethod
    def redriven_write(self, ids: Sequence[int]) -> BatchWrite:
        """Marks dead letters as recorded after all, with the batch that records them."""

    @abstractmethod
    def dead_letters(
        self, *, ids: Iterable[int] = (), waiting: bool = False, limit: int | None = None
    ) -> list[StoredDeadLetter]:
        """Dead letters, oldest first: those with `ids`, or all, or only those not redriven."""

    @abstractmethod
    def claim_unpublished(
        self, limit: int = 1000, *, topic: str
    ) -> AbstractContextManager[tuple[list[StoredDeadLetter], Callable[[Sequence[int]], None]]]:
        """Dead letters consumed from `topic` not yet on its dead-letter topic, locked for
        this caller until the block ends (other callers skip them), and a function marking
        some as published."""

    @abstractmethod
    def erase_dead_letters(self, ids: Sequence[int]) -> None:
        """Empties these dead letters of what they held (their key, value, headers and
        detail), keeping that they were met, where and why: a person's erasure."""

    @abstractmethod
    def dead_letter_counts(self) -> dict[str, int]:
        """How many dead letters there are: in all, still waiting, and not yet published."""
