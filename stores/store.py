"""The port the composition root builds everything from: every table the engine keeps in one
storage technology, behind one object chosen once from the settings."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from consumers.bookkeeping import Bookkeeping
from engine.settings import Settings
from projections.sql import LOOK_AGAIN_S, Database
from projections.views import JourneyView


class LogWatch(ABC):
    """What a follower of the log waits on between looks: it returns when a writer, in any
    process, may have appended to the event store since the last wait."""

    @abstractmethod
    def wait(self, timeout: float) -> None:
        """Returns once something may have been appended since the last call, or after
        `timeout` seconds, or when `interrupt` is called; raises StoreUnavailable if the
        store cannot be watched."""

    @abstractmethod
    def interrupt(self) -> None:
        """Ends the wait in progress, or the next one (safe in a signal handler)."""

    @abstractmethod
    def close(self) -> None:
        """Releases what the watch holds."""


class LookingAgain(LogWatch):
    """For a store that tells nobody of its commits: every few milliseconds, look again."""

    def wait(self, timeout: float) -> None:
        time.sleep(max(0.0, min(timeout, LOOK_AGAIN_S)))

    def interrupt(self) -> None:
        return None  # a wait lasts a few milliseconds

    def close(self) -> None:
        return None  # it holds nothing


@dataclass(frozen=True, slots=True)
class Part:
    """A versioned part of the store, where it lives, and how to open its database."""

    where: str
    part: str
    open: Callable[[], Database]


class Store(ABC):
    """The event store's configuration, the decider's tables, the consumers' bookkeeping, the
    journey views in generations, and the views of analysts' projections.

    The journey views are built in generations: `journey rebuild` builds the next one beside
    the live one, and readers switch to it only once it has caught up, so no reader ever sees
    a half-built view. The generation before the live one is kept for readers still on it;
    older ones are dropped."""

    kind = ""  # "sqlite" or "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def event_store_env(self) -> dict[str, str]:
        """The eventsourcing configuration of the Journeys application."""

    @contextmanager
    def setup(self) -> Iterator[None]:
        """Processes starting together make the store's tables one after another."""
        yield

    @abstractmethod
    def database(self) -> Database:
        """The event store's database, with the decider's tables, for what commits with the
        events."""

    @abstractmethod
    def projection_database(self) -> Database:
        """The database of analysts' own projections."""

    @abstractmethod
    def bookkeeping(self, command: str) -> Bookkeeping:
        """The Kafka consumers' offsets and dead letters; `command` names who asks, for the
        error of a store that keeps none."""

    @abstractmethod
    def live_generation(self) -> int: ...

    @abstractmethod
    def open_views(self, generation: int) -> JourneyView: ...

    @abstractmethod
    def discard_views(self, generation: int) -> None:
        """Removes a generation's views."""

    @abstractmethod
    def point_readers_at(self, generation: int) -> None: ...

    def switch_views(self, generation: int) -> None:
        """Makes `generation` the live one, keeps the one before it, and drops older ones."""
        self.point_readers_at(generation)
        for older in range(1, generation - 1):
            self.discard_views(older)

    def log_watch(self) -> LogWatch:
        """What a follower of the log (the decider) waits on for new entries."""
        return LookingAgain()

    @abstractmethod
    def parts(self) -> list[Part]:
        """Every versioned part this store holds, for `journey migrate`."""
