"""The production event store: eventsourcing's PostgreSQL recorder plus the touchpoint ledger."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment
from psycopg import Connection, Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal

from engine.ledger import HEX_DIGITS, BatchWrite, Partition, TouchpointLedger
from stores.postgres.database import dropped, lost, unavailable

# Up to this many ids, the ledger is asked with an array in one statement.
_ASKED_AS_ARRAY = 1000
# Up to this many events, a batch is inserted in one pipeline; larger ones by binary COPY.
_PIPELINED_UP_TO = 1000


class JourneyDatastore(PostgresDatastore):
    """The library's datastore, raising StoreUnavailable when the server is out of reach.

    Once it has, it looks for the server with a connection of its own before it asks its pool
    again, and answers StoreUnavailable at once while there is none: the pool would wait its
    whole timeout each time, while it makes connections on a backoff that grows as long as the
    outage (up to minutes). When the server answers, the connections it dropped are replaced
    at once, so the first statements after an outage do not fail on them one by one; so is a
    connection the server closed while it sat in the pool, found before it is used."""

    _away = False

    @contextmanager
    def get_connection(self) -> Iterator[Connection[DictRow]]:
        for attempt in range(2):
            if self._away:
                self._look()
            try:
                with super().get_connection() as conn:
                    if attempt == 0 and dropped(conn):
                        # The server closed it while it was idle in the pool: it went away,
                        # or restarted unseen. The pool replaces a connection it gets back
                        # closed; look for the server, then take another.
                        conn.close()
                        self._away = True
                        continue
                    yield conn
                    return
            except OperationalError as exc:
                if lost(exc.__cause__ or exc):
                    self._away = True
                    raise unavailable(exc) from exc
                raise

    def _look(self) -> None:
        pool = self.pool
        kwargs = dict(pool.kwargs) if isinstance(pool.kwargs, dict) else {}
        kwargs.pop("row_factory", None)
        kwargs.setdefault("connect_timeout", 10)  # a host that drops packets is away too
        conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        try:
            psycopg.connect(conninfo, **kwargs).close()
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc
        self.pool.check()
        self._away = False


class JourneyPostgresFactory(PostgresFactory):
    """The library's PostgreSQL infrastructure, on a datastore that tells an outage apart."""

    def __init__(self, env: Environment | dict[str, str] | None) -> None:
        super().__init__(env)
        # The library makes its datastore inline; ours differs only in how a connection is
        # got, and holds nothing more.
        self.datastore.__class__ = JourneyDatastore


class PostgresJourneyRecorder(PostgresApplicationRecorder, TouchpointLedger):
    """Records events and the ids of the touchpoints they carry in one transaction (inside the
    library's own: the events table is locked, so the log's order is the commit order)."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)
        ids = Identifier(f"{self.events_table_name}_touchpoints")
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {}.{} (event_id text PRIMARY KEY)").format(schema, ids)
        )
        self._copy_ids = SQL("COPY {}.{} (event_id) FROM STDIN (FORMAT BINARY)").format(schema, ids)
        self._copy_events = SQL(
            "COPY {}.{} (originator_id, originator_version, topic, state) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(schema, events)
        self._last_position = SQL("SELECT currval(pg_get_serial_sequence(%s, 'notification_id'))")
        # Arrays in binary: nothing is quoted value by value.
        self._insert_ids = SQL("INSERT INTO {}.{} (event_id) SELECT unnest(%b::text[])").format(
            schema, ids
        )
        self._insert_unnested = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{}[], %b::int8[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema, events, Identifier(self.datastore.originator_id_type))
        self._events_table = f"{Identifier(self.datastore.schema).as_string()}.{events.as_string()}"
        self._event_types = [self.datastore.originator_id_type, "int8", "text", "bytea"]
        self._create_asked = SQL(
            "CREATE TEMPORARY TABLE IF NOT EXISTS journey_asked_ids (event_id text) "
            "ON COMMIT DELETE ROWS"
        )
        self._copy_asked = SQL("COPY journey_asked_ids (event_id) FROM STDIN (FORMAT BINARY)")
        self._select_asked = SQL(
            "SELECT event_id FROM {}.{} JOIN journey_asked_ids USING (event_id)"
        ).format(schema, ids)
        self._select_listed = SQL("SELECT event_id FROM {}.{} WHERE event_id = ANY(%s)").format(
            schema, ids
        )
        self._count_ids = SQL("SELECT count(*) AS recorded FROM {}.{}").format(schema, ids)
        self._select_versions = SQL(
            "SELECT originator_id, MAX(originator_version) AS version FROM {}.{} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(schema, events)
        self._select_states = SQL(
            "SELECT notification_id, state FROM {}.{} WHERE notification_id > %s "
            "AND notification_id <= %s AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
        ).format(schema, events)
        self._select_streams = SQL(
            "SELECT originator_id, state FROM {}.{} WHERE originator_id = ANY(%s) "
            "AND topic = %s ORDER BY originator_id, originator_version"
        ).format(schema, events)
        self._select_stream_entries = SQL(
            "SELECT originator_id, notification_id, state FROM {}.{} "
            "WHERE originator_id = ANY(%s) AND topic = %s "
            "ORDER BY originator_id, originator_version"
        ).format(schema, events)
        # The last hex digit of a stream id picks a partition's share: the low half of the
        # last byte of a uuid, or the last character of the id as text.
        digit = (
            "get_byte(uuid_send(originator_id), 15) & 15"
            if self.datastore.originator_id_type == "uuid"
            else f"position(right(originator_id, 1) in '{HEX_DIGITS}') - 1"
        )
        self._select_share = SQL(
            "SELECT notification_id, state FROM {}.{} WHERE notification_id > %s "
            "AND notification_id <= %s AND topic = ANY(%s) AND (topic = ANY(%s) OR "
            f"({digit}) %% {{}} = {{}}) ORDER BY notification_id LIMIT %s"
        )
        self._events = (schema, events)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        also: Sequence[BatchWrite] = kwargs.get("also", ())
        if not stored_events and not also:
            return []
        if len(stored_events) <= _PIPELINED_UP_TO:
            return self._insert_pipelined(stored_events, also, kwargs.get("touchpoint_ids", ()))
        # A large batch goes by binary COPY, a round trip or two per statement: in one
        # pipeline, tens of thousands of events stall it, the server waiting for the rest
        # of the insert while the client waits for results.
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            # The companion writes go first: inserting the events takes the events table's
            # lock, which every other writer waits for until this transaction ends.
            for write in also:
                write(curs)
            positions: Sequence[int] | None = []
            if stored_events:
                self._insert_events(curs, stored_events, **kwargs)
                self._insert_stored_events(curs, stored_events, **kwargs)
                positions = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            return positions

    def _insert_pipelined(
        self,
        stored_events: Sequence[StoredEvent],
        also: Sequence[BatchWrite],
        touchpoint_ids: Sequence[str],
    ) -> list[int]:
        """A batch of the size that arrives live, in one pipeline: every statement, the
        commit included, is sent at once, and the events table's lock is held for no round
        trip at all."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            with conn.pipeline(), conn.transaction():
                for write in also:
                    write(curs)
                if not stored_events:
                    return []
                if touchpoint_ids:
                    curs.execute(self._insert_ids, (sorted(touchpoint_ids),))
                for lock_statement in self.lock_table_statements:
                    curs.execute(lock_statement, prepare=True)
                self._notify_channel(curs)
                curs.execute(
                    self._insert_unnested,
                    (
                        [e.originator_id for e in stored_events],
                        [e.originator_version for e in stored_events],
                        [e.topic for e in stored_events],
                        [e.state for e in stored_events],
                    ),
                )
            # The pipeline ended with the commit: the positions came with its answer.
            return [row["notification_id"] for row in curs.fetchall()]

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        touchpoint_ids: Sequence[str] = kwargs.get("touchpoint_ids", ())
        if touchpoint_ids:
            with curs.copy(self._copy_ids) as copy:
                copy.set_types(["text"])
                for event_id in sorted(touchpoint_ids):
                    copy.write_row((event_id,))
        super()._insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # The library's lock and notification, then a binary COPY rather than its INSERT of
        # composite values, which psycopg quotes value by value: a few times faster in all.
        self._lock_table(curs)
        self._notify_channel(curs)
        with curs.copy(self._copy_events) as copy:
            copy.set_types(self._event_types)
            for stored in stored_events:
                copy.write_row(
                    (stored.originator_id, stored.originator_version, stored.topic, stored.state)
                )

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # The table lock keeps every other writer out until this transaction ends, so this
        # COPY took consecutive values from the sequence and the last is this session's.
        curs.execute(self._last_position, (self._events_table,))
        row = curs.fetchone()
        assert row is not None
        last = int(row["currval"])
        return list(range(last - len(stored_events) + 1, last + 1))

    def rewrite_states(self, states: Sequence[tuple[int, bytes]]) -> None:
        update = SQL("UPDATE {}.{} SET state = %s WHERE notification_id = %s").format(*self._events)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.executemany(update, [(state, position) for position, state in states])

    def scrub(self) -> None:
        # The library's events table is never vacuumed by itself (its rows never change).
        with self.datastore.get_connection() as conn:  # in autocommit, as VACUUM must be
            conn.execute(SQL("VACUUM {}.{}").format(*self._events))

    def recorded_count(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._count_ids)
            row = curs.fetchone()
            assert row is not None
            return int(row["recorded"])

    def recorded_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        if len(event_ids) <= _ASKED_AS_ARRAY:
            # One round trip; the index answers each id. Planned afresh each time, as the
            # versions below: a plan kept from when the table was small would scan it whole
            # once it is not.
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(self._select_listed, (list(event_ids),), prepare=False)
                return {row["event_id"] for row in curs.fetchall()}
        # Many ids go in by binary COPY to a temporary table and are joined there: twice as
        # fast as passing them as an array, which psycopg quotes one by one. The table is
        # analysed (a small sample is enough to count it), or the planner would guess its
        # size and scan the whole ledger, however few the ids.
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            curs.execute(self._create_asked)
            with curs.copy(self._copy_asked) as copy:
                copy.set_types(["text"])
                for event_id in event_ids:
                    copy.write_row((event_id,))
            curs.execute("SET LOCAL default_statistics_target = 1")
            curs.execute("ANALYZE journey_asked_ids")
            curs.execute(self._select_asked)
            return {row["event_id"] for row in curs.fetchall()}

    def stream_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_versions, (list(stream_ids),), prepare=False)
            return {row["originator_id"]: row["version"] for row in curs.fetchall()}

    def select_stream_states(
        self, stream_ids: Sequence[UUID], topic: str
    ) -> dict[UUID, list[bytes]]:
        states: dict[UUID, list[bytes]] = {}
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            # Planned for these streams: a plan cached while the table was small scans it.
            curs.execute(self._select_streams, (list(stream_ids), topic), prepare=False)
            for originator_id, state in curs.fetchall():
                stream = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
                states.setdefault(stream, []).append(state)
        return states

    def select_stream_entries(
        self, stream_ids: Sequence[UUID], topic: str
    ) -> dict[UUID, list[tuple[int, bytes]]]:
        entries: dict[UUID, list[tuple[int, bytes]]] = {}
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self._select_stream_entries, (list(stream_ids), topic), prepare=False)
            for originator_id, position, state in curs.fetchall():
                stream = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
                entries.setdefault(stream, []).append((position, state))
        return entries

    def select_states(
        self,
        after: int,
        limit: int,
        topics: Sequence[str],
        stop: int | None = None,
        partition: Partition | None = None,
    ) -> list[tuple[int, bytes]]:
        last = stop if stop is not None else 2**62
        statement: Composed = self._select_states
        params: tuple[Any, ...] = (after, last, list(topics), limit)
        if partition is not None:
            statement = self._select_share.format(
                *self._events, Literal(partition.count), Literal(partition.index)
            )
            params = (after, last, list(topics), list(partition.everywhere), limit)
        # Binary: states arrive as they are stored, not as hex text to decode.
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            if partition is not None:
                # The planner cannot tell how many events a share holds. Guessing few, it would
                # scan and sort the whole table for a page instead of walking the log's index,
                # with parallel workers that compete with the other shares' processes.
                curs.execute("SET LOCAL enable_seqscan = off")
                curs.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            curs.execute(statement, params)
            rows: list[tuple[int, bytes]] = curs.fetchall()
            return rows
