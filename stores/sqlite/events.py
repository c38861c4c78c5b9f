"""The embedded event store: eventsourcing's SQLite recorder plus the touchpoint ledger."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from engine.ledger import BatchWrite, Partition, TouchpointLedger

# SQLite allows 32,766 host parameters per statement; stay well below.
_CHUNK = 900
_WRITER_CACHE_KIB = 128 * 1024
# A transaction rewrites every index page its touchpoints land on; with SQLite's default of
# 4 KiB, a large batch of new touchpoints rewrites nearly every page of both indexes. Larger
# pages record such batches about a sixth faster.
_PAGE_SIZE = 16 * 1024


class SQLiteJourneyRecorder(SQLiteApplicationRecorder, TouchpointLedger):
    """Records events and the ids of the touchpoints they carry in one transaction."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        if not datastore.pool.is_sqlite_memory_mode:
            _choose_page_size(datastore.pool.db_name)
        super().__init__(datastore, **kwargs)

    def stream_key(self, stream_id: UUID) -> UUID | str:
        return stream_id.hex  # as the library stores it, without converting per event

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS recorded_touchpoints "
            "(event_id TEXT PRIMARY KEY) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # One executemany instead of the library's statement per event. Without AUTOINCREMENT
        # each new row takes the largest rowid plus one, and the transaction holds the write
        # lock from its first insert, so the batch's notification ids are the last rowids.
        # The indexes of a few million events fit in this page cache; with the default 2 MB,
        # every batch would read back most of the pages it writes to.
        also: Sequence[BatchWrite] = kwargs.get("also", ())
        if not stored_events:
            for write in also:
                write(c)
            return []
        c.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
        c.executemany(
            self.insert_events_statement,
            [
                (
                    s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        touchpoint_ids: Sequence[str] = kwargs.get("touchpoint_ids", ())
        if touchpoint_ids:
            c.executemany(
                "INSERT INTO recorded_touchpoints (event_id) VALUES (?)",
                [(event_id,) for event_id in sorted(touchpoint_ids)],
            )
        last = self._max_rowid(c)
        for write in also:
            write(c)
        return list(range(last - len(stored_events) + 1, last + 1))

    def select_states(
        self,
        after: int,
        limit: int,
        topics: Sequence[str],
        stop: int | None = None,
        partition: Partition | None = None,
    ) -> list[tuple[int, bytes]]:
        shared: Sequence[str] = ()
        share = ""
        if partition is not None:
            shared = partition.everywhere
            # Stream ids are stored as hex: their last character picks the share.
            digits = ",".join(f"'{digit}'" for digit in partition.digits)
            share = (
                f"AND (substr(originator_id, -1) IN ({digits}) OR "
                f"topic IN ({','.join('?' * len(shared))})) "
            )
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None  # plain tuples: no Row object per event
            cursor.execute(
                f"SELECT rowid, state FROM {self.events_table_name} "
                f"WHERE rowid > ? AND rowid <= ? AND topic IN ({','.join('?' * len(topics))}) "
                f"{share}ORDER BY rowid LIMIT ?",
                (after, stop if stop is not None else 2**63 - 1, *topics, *shared, limit),
            )
            rows: list[tuple[int, bytes]] = cursor.fetchall()
            return rows

    def select_stream_states(
        self, stream_ids: Sequence[UUID], topic: str
    ) -> dict[UUID, list[bytes]]:
        entries = self.select_stream_entries(stream_ids, topic)
        return {stream: [state for _, state in found] for stream, found in entries.items()}

    def select_stream_entries(
        self, stream_ids: Sequence[UUID], topic: str
    ) -> dict[UUID, list[tuple[int, bytes]]]:
        entries: dict[UUID, list[tuple[int, bytes]]] = {}
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None
            for chunk in _chunks([stream_id.hex for stream_id in stream_ids]):
                cursor.execute(
                    f"SELECT originator_id, rowid, state FROM {self.events_table_name} "
                    f"WHERE originator_id IN ({','.join('?' * len(chunk))}) AND topic = ? "
                    "ORDER BY originator_id, originator_version",
                    (*chunk, topic),
                )
                for originator_id, position, state in cursor.fetchall():
                    entries.setdefault(UUID(originator_id), []).append((position, state))
        return entries

    def rewrite_states(self, states: Sequence[tuple[int, bytes]]) -> None:
        with self.datastore.get_connection(commit=True) as conn:
            # The rows' old content is overwritten with zeros, not left in free pages.
            conn.cursor().execute("PRAGMA secure_delete = ON")
            with conn.transaction(commit=True) as c:
                c.executemany(
                    f"UPDATE {self.events_table_name} SET state = ? WHERE rowid = ?",
                    [(state, position) for position, state in states],
                )

    def scrub(self) -> None:
        with self.datastore.get_connection(commit=True) as conn:
            conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _max_rowid(self, c: SQLiteCursor) -> int:
        c.execute(self.select_max_notification_id_statement)
        return int(c.fetchone()[0] or 0)

    def recorded_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks(event_ids):
                c.execute(
                    "SELECT event_id FROM recorded_touchpoints "
                    f"WHERE event_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update(row[0] for row in c.fetchall())
        return found

    def recorded_count(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT count(*) FROM recorded_touchpoints")
            return int(c.fetchone()[0])

    def stream_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]:
        versions: dict[UUID, int] = {}
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks([stream_id.hex for stream_id in stream_ids]):
                c.execute(
                    f"SELECT originator_id, MAX(originator_version) FROM {self.events_table_name} "
                    f"WHERE originator_id IN ({','.join('?' * len(chunk))}) GROUP BY originator_id",
                    chunk,
                )
                versions.update((UUID(row[0]), row[1]) for row in c.fetchall())
        return versions


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _choose_page_size(db_name: str) -> None:
    """Gives a new store file larger pages. The size can be chosen only before the first table
    is made and before the library turns on write-ahead logging, so an existing store keeps
    the size it has."""
    db = sqlite3.connect(db_name, uri=True, isolation_level=None)
    try:
        if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
