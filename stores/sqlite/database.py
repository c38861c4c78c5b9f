"""A SQLite file behind the database port."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from projections.sql import Database


def connect(path: Path, *, wait_seconds: float = 10.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are begun by hand) that waits up to
    `wait_seconds` for another writer of the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={int(wait_seconds * 1000)}")
    return db


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path, connection: sqlite3.Connection | None = None) -> None:
        self._db = connection if connection is not None else connect(path)
        self.where = str(path)

    @staticmethod
    def statement(sql: str) -> str:
        return sql.replace("{t}", "").replace("%s", "?")

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(self.statement(sql), params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(self.statement(sql), params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(self.statement(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the file's write lock at once: a deferred transaction that reads
        # and then writes after another process committed fails without waiting.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    exclusive = transaction  # the file has one writer at a time

    def has_table(self, name: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return found is not None

    def close(self) -> None:
        self._db.close()
