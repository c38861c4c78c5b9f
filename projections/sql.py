"""One small interface over the two databases views live in, so that a view written once
serves SQLite and PostgreSQL alike. Statements use `%s` parameters and name tables as
`{t}name`, which becomes the schema-qualified name in PostgreSQL. The stores implement it."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# How often a database that tells nobody of its commits is looked at again while waiting.
LOOK_AGAIN_S = 0.02


class Database(ABC):
    dialect = ""  # "sqlite" or "postgres"
    where = ""  # the file or schema, as messages name it

    @abstractmethod
    def statement(self, sql: str) -> Any:
        """`sql` as this database's driver takes it, for running on a cursor of its own (such
        as the event store's, inside its transaction)."""

    @abstractmethod
    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together, or not at all."""

    @abstractmethod
    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """A transaction that no other process runs at the same time on this database."""

    @abstractmethod
    def has_table(self, name: str) -> bool: ...

    def notice(self, channel: str) -> tuple[Any, tuple[Any, ...]] | None:
        """A statement (and its parameters) that a writer runs in its transaction to tell
        those waiting on `channel` that it committed; None where the database cannot."""
        return None

    def wait(self, channel: str, reached: Callable[[], bool], timeout: float) -> bool:
        """Waits until `reached()` holds, looking again whenever a writer's notice on `channel`
        arrives (or, where the database sends none, every few milliseconds); False if it
        still does not hold after `timeout` seconds."""
        return look_until(reached, timeout)

    @abstractmethod
    def close(self) -> None: ...


def one_of(values: Sequence[Any]) -> str:
    """`IN (%s, ...)` for these values, as a condition's end; none at all matches nothing."""
    return f"IN ({', '.join(['%s'] * len(values))})" if values else "IN (NULL)"


def look_until(reached: Callable[[], bool], timeout: float) -> bool:
    """Looks at `reached()` every few milliseconds until it holds (True) or `timeout` seconds
    have passed (False): for databases that tell nobody of their commits."""
    deadline = time.monotonic() + timeout
    while not reached():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(LOOK_AGAIN_S, left))
    return True
