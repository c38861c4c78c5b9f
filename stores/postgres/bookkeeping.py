"""The Kafka consumers' bookkeeping in PostgreSQL: written in the same transaction as the
events it goes with, so the database, not Kafka, says what has been consumed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg.types.json import Jsonb

from consumers.bookkeeping import Bookkeeping, DeadLetter, Partition, StoredDeadLetter
from engine.ledger import BatchWrite
from engine.sealing import ERASED
from stores.postgres.database import PostgresDatabase, connect, translated
from stores.tables import open_part


class PostgresBookkeeping(Bookkeeping):
    """Consumed offsets per group and partition, and dead letters, in PostgreSQL."""

    def __init__(self, info: str, schema: str = "public") -> None:
        self._conninfo = info
        self._offsets = Identifier(schema, "journey_consumer_offsets")
        self._letters = Identifier(schema, "journey_dead_letters")
        self._sql_upsert_offsets = self._sql(
            "INSERT INTO {offsets} (group_id, topic, partition, next_offset) "
            "SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[]) "
            "ON CONFLICT (group_id, topic, partition) DO UPDATE "
            "SET next_offset = GREATEST({offsets}.next_offset, EXCLUDED.next_offset)"
        )
        self._sql_insert_letter = self._sql(
            "INSERT INTO {letters} (topic, partition, record_offset, timestamp_ms, key, value, "
            "headers, reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (topic, partition, record_offset) DO NOTHING"
        )
        self._sql_redriven = self._sql(
            "UPDATE {letters} SET redriven_at = now() WHERE id = ANY(%s) AND redriven_at IS NULL"
        )
        database = PostgresDatabase(info, schema)
        try:
            open_part(database, "bookkeeping")
        finally:
            database.close()

    def _sql(self, template: str) -> Composed:
        return SQL(template).format(offsets=self._offsets, letters=self._letters)

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        # A connection per call: nothing is left broken when the server goes away.
        conn = connect(self._conninfo)
        conn.row_factory = dict_row
        return conn

    # Offsets

    def offsets_write(self, group: str, next_offsets: Mapping[Partition, int]) -> BatchWrite:
        """Moves the group's positions forward (never back) with the batch."""
        topics = [topic for topic, _ in next_offsets]
        partitions = [partition for _, partition in next_offsets]
        offsets = list(next_offsets.values())

        def write(cursor: psycopg.Cursor[Any]) -> None:
            cursor.execute(self._sql_upsert_offsets, (group, topics, partitions, offsets))

        return write

    @translated()
    def next_offsets(self, group: str, topic: str | None = None) -> dict[Partition, int]:
        """Where the group goes on reading each partition it has recorded from."""
        query = self._sql(
            "SELECT topic, partition, next_offset FROM {offsets} WHERE group_id = %s"
            + (" AND topic = %s" if topic else "")
        )
        with self._connect() as conn:
            rows = conn.execute(query, (group, topic) if topic else (group,)).fetchall()
        return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    # Dead letters

    def dead_letters_write(self, letters: Sequence[DeadLetter]) -> BatchWrite:
        """Keeps dead letters with the batch they were met in; meeting one again adds nothing."""
        rows = [
            (
                letter.topic,
                letter.partition,
                letter.offset,
                letter.timestamp_ms,
                letter.key,
                letter.value,
                Jsonb([[name.encode().hex(), value.hex()] for name, value in letter.headers]),
                letter.reason,
                letter.detail,
            )
            for letter in letters
        ]

        def write(cursor: psycopg.Cursor[Any]) -> None:
            cursor.executemany(self._sql_insert_letter, rows)

        return write

    def redriven_write(self, ids: Sequence[int]) -> BatchWrite:
        """Marks dead letters as recorded after all, with the batch that records them."""

        def write(cursor: psycopg.Cursor[Any]) -> None:
            cursor.execute(self._sql_redriven, (list(ids),))

        return write

    @translated()
    def dead_letters(
        self, *, ids: Iterable[int] = (), waiting: bool = False, limit: int | None = None
    ) -> list[StoredDeadLetter]:
        """Dead letters, oldest first: those with `ids`, or all, or only those not redriven."""
        chosen = list(ids)
        conditions = []
        if chosen:
            conditions.append("id = ANY(%(ids)s)")
        if waiting:
            conditions.append("redriven_at IS NULL")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        query = self._sql(
            f"SELECT * FROM {{letters}}{where} ORDER BY id"
            + (" LIMIT %(limit)s" if limit is not None else "")
        )
        with self._connect() as conn:
            rows = conn.execute(query, {"ids": chosen, "limit": limit}).fetchall()
        return [_stored(row) for row in rows]

    @translated()
    def erase_dead_letters(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        query = self._sql(
            "UPDATE {letters} SET key = NULL, value = NULL, headers = '[]'::jsonb, "
            "detail = %(erased)s WHERE id = ANY(%(ids)s)"
        )
        with self._connect() as conn:
            conn.execute(query, {"ids": list(ids), "erased": ERASED})
            conn.execute(self._sql("VACUUM {letters}"))

    @contextmanager
    def claim_unpublished(
        self, limit: int = 1000, *, topic: str
    ) -> Iterator[tuple[list[StoredDeadLetter], Callable[[Sequence[int]], None]]]:
        """Dead letters consumed from `topic` not yet on its dead-letter topic, locked for
        this caller until the block ends (other callers skip them), and a function marking
        some as published."""
        query = self._sql(
            "SELECT * FROM {letters} WHERE NOT published AND topic = %s ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED"
        )
        mark = self._sql("UPDATE {letters} SET published = true WHERE id = ANY(%s)")
        with translated(), self._connect() as conn, conn.transaction():
            letters = [_stored(row) for row in conn.execute(query, (topic, limit)).fetchall()]

            def mark_published(ids: Sequence[int]) -> None:
                if ids:
                    conn.execute(mark, (list(ids),))

            yield letters, mark_published

    @translated()
    def dead_letter_counts(self) -> dict[str, int]:
        """How many dead letters there are: in all, still waiting, and not yet published."""
        query = self._sql(
            "SELECT count(*) AS total, count(*) FILTER (WHERE redriven_at IS NULL) AS waiting, "
            "count(*) FILTER (WHERE NOT published) AS unpublished FROM {letters}"
        )
        with self._connect() as conn:
            row = conn.execute(query).fetchone()
        return dict(row) if row else {"total": 0, "waiting": 0, "unpublished": 0}


def _stored(row: dict[str, Any]) -> StoredDeadLetter:
    letter = DeadLetter(
        topic=row["topic"],
        partition=row["partition"],
        offset=row["record_offset"],
        timestamp_ms=row["timestamp_ms"],
        key=bytes(row["key"]) if row["key"] is not None else None,
        value=bytes(row["value"]) if row["value"] is not None else None,
        headers=tuple(
            (bytes.fromhex(name).decode(), bytes.fromhex(value)) for name, value in row["headers"]
        ),
        reason=row["reason"],
        detail=row["detail"],
    )
    return StoredDeadLetter(
        row["id"], letter, row["recorded_at"], row["published"], row["redriven_at"]
    )
