"""One small interface over the two databases views live in, so that a view written once
serves SQLite and PostgreSQL alike. Statements use `%s` parameters and name tables as
`{t}name`, which becomes the schema-qualified name in PostgreSQL. The stores implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


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

    @abstractmethod
    def close(self) -> None: ...
