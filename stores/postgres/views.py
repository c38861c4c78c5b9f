"""The journey views in PostgreSQL, beside the event store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import orjson
import psycopg
from psycopg.sql import SQL, Identifier

from projections.position import Position
from projections.views import (
    CUSTOMER_TABLES,
    JOURNEY_PROJECTION,
    JourneyView,
    PageChanges,
    StageCount,
    ViewConflict,
    funnel_counts,
    position_row,
)
from stores.postgres.database import (
    PostgresDatabase,
    notice_channel,
    translated,
    wait_for_notice,
)
from stores.tables import open_part, views_dropped, views_emptied


class PostgresJourneyView(JourneyView):
    def __init__(self, conninfo: str, schema: str = "public", *, create: bool = True) -> None:
        """With `create`, brings the views' tables up to this release first."""
        self._tables = PostgresDatabase(conninfo, schema)
        self._opened_with = (conninfo, schema)
        self._schema = Identifier(schema)
        self.table_prefix = self._schema.as_string() + "."
        if create:
            try:
                open_part(self._tables, "views")
            except BaseException:
                self._tables.close()
                raise

    @property
    def _db(self) -> psycopg.Connection[Any]:
        """The tables' connection, opened again if the server dropped it."""
        return self._tables.connection()

    def _sql(self, text: str) -> psycopg.sql.Composed:
        return SQL(text).format(schema=self._schema)

    @translated()
    def tracking(self, projection: str) -> tuple[int, str | None]:
        row = self._db.execute(
            self._sql(
                "SELECT position, definition FROM {schema}.journey_tracking WHERE projection = %s"
            ),
            (projection,),
        ).fetchone()
        return (row[0], row[1]) if row else (0, None)

    @translated()
    def load_positions(self, customer_ids: Iterable[str]) -> dict[str, Position]:
        rows = self._db.execute(
            self._sql(
                "SELECT customer_id, state::text FROM {schema}.journey_positions "
                "WHERE customer_id = ANY(%s)"
            ),
            (list(customer_ids),),
            prepare=False,  # a plan kept from when the table was small would scan it whole
        ).fetchall()
        return {cid: Position.from_state(cid, orjson.loads(state)) for cid, state in rows}

    @translated()
    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        db = self._db
        with db.transaction(), db.cursor() as cursor:
            # Moves the position first: a concurrent runner's commit waits here for ours (or
            # ours for theirs), and a position that would not move forward rolls it all back.
            cursor.execute(
                self._sql(
                    "INSERT INTO {schema}.journey_tracking VALUES (%s, %s, %s) "
                    "ON CONFLICT (projection) DO UPDATE "
                    "SET position = excluded.position, definition = excluded.definition "
                    "WHERE {schema}.journey_tracking.position < excluded.position "
                    "RETURNING position"
                ),
                (projection, changes.position, definition_digest),
            )
            if cursor.fetchone() is None:
                raise ViewConflict(f"view {projection!r} is not behind {changes.position}")
            if projection == JOURNEY_PROJECTION:
                # Delivered at commit to those waiting for a position (not for a rebuild's
                # partitions: commits that notify take turns across the server).
                cursor.execute("SELECT pg_notify(%s, '')", (self._channel(projection),))
            if changes.aliases:
                cursor.executemany(
                    self._sql(
                        "INSERT INTO {schema}.journey_people VALUES (%s, %s) "
                        "ON CONFLICT (key) DO UPDATE SET person = excluded.person"
                    ),
                    [(k, p) for k, p in changes.aliases.items() if p is not None],
                )
                cursor.executemany(
                    self._sql("DELETE FROM {schema}.journey_people WHERE key = %s"),
                    [(k,) for k, p in changes.aliases.items() if p is None],
                )
            if changes.removed:
                for table in CUSTOMER_TABLES:
                    target = SQL("{}.{}").format(self._schema, Identifier(table))
                    cursor.execute(
                        SQL("DELETE FROM {} WHERE customer_id = ANY(%s)").format(target),
                        (list(changes.removed),),
                    )
            if changes.positions and changes.first_write:
                positions = self._sql("COPY {schema}.journey_positions FROM STDIN")
                with cursor.copy(positions) as copy:
                    for p in changes.positions:
                        copy.write_row(position_row(p, orjson.dumps(p.to_state()).decode()))
            elif changes.positions:
                # The page's positions go in by COPY to a temporary table and are upserted from
                # there in one statement: a statement per position costs several times more.
                cursor.execute(
                    self._sql(
                        "CREATE TEMPORARY TABLE IF NOT EXISTS journey_positions_page "
                        "(LIKE {schema}.journey_positions) ON COMMIT DELETE ROWS"
                    )
                )
                with cursor.copy("COPY journey_positions_page FROM STDIN") as copy:
                    for p in changes.positions:
                        copy.write_row(position_row(p, orjson.dumps(p.to_state()).decode()))
                cursor.execute(
                    self._sql(
                        "INSERT INTO {schema}.journey_positions "
                        "SELECT * FROM journey_positions_page "
                        "ON CONFLICT (customer_id) DO UPDATE "
                        "SET stage = excluded.stage, stage_since = excluded.stage_since, "
                        "peak_rank = excluded.peak_rank, first_at = excluded.first_at, "
                        "last_at = excluded.last_at, touchpoints = excluded.touchpoints, "
                        "rep = excluded.rep, due_at = excluded.due_at, "
                        "open_frictions = excluded.open_frictions, state = excluded.state"
                    )
                )
            for table, _, customers, rows in changes.details.tables():
                target = SQL("{}.{}").format(self._schema, Identifier(table))
                if customers:
                    if not changes.first_write:
                        cursor.execute(
                            SQL("DELETE FROM {} WHERE customer_id = ANY(%s)").format(target),
                            (customers,),
                        )
                    with cursor.copy(SQL("COPY {} FROM STDIN").format(target)) as copy:
                        for row in rows:
                            copy.write_row(row)
            if changes.clock is not None or changes.ticked is not None:
                cursor.execute(
                    self._sql(
                        "INSERT INTO {schema}.journey_clock VALUES (1, %s, %s) ON CONFLICT (id) "
                        "DO UPDATE SET at = GREATEST({schema}.journey_clock.at, excluded.at), "
                        "ticked = COALESCE(excluded.ticked, {schema}.journey_clock.ticked)"
                    ),
                    (changes.clock, changes.ticked),
                )

    @translated()
    def wait_for(self, projection: str, position: int, timeout: float) -> bool:
        return wait_for_notice(
            self._opened_with[0],
            self._channel(projection),
            lambda: self.tracking(projection)[0] >= position,
            timeout,
        )

    def _channel(self, projection: str) -> str:
        return notice_channel(self._opened_with[1], projection)

    def opener(self) -> Callable[[], JourneyView]:
        # The tables are as this release makes them: the processes that help build them need
        # not look again.
        return partial(PostgresJourneyView, *self._opened_with, create=False)

    def reset(self) -> None:
        views_emptied(self._tables)

    def drop(self) -> None:
        views_dropped(self._tables)

    def position(self, customer_id: str) -> Position | None:
        return self.load_positions([customer_id]).get(customer_id)

    @translated()
    def person_of(self, key: str) -> str | None:
        row = self._db.execute(
            self._sql("SELECT person FROM {schema}.journey_people WHERE key = %s"), (key,)
        ).fetchone()
        if row is not None:
            return str(row[0])
        return key if self.position(key) is not None else None

    @translated()
    def keys_of_many(self, people: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {person: [person] for person in people}
        rows = self._db.execute(
            self._sql(
                "SELECT person, key FROM {schema}.journey_people WHERE person = ANY(%s) "
                "ORDER BY key"
            ),
            (list(people),),
            prepare=False,
        ).fetchall()
        for person, key in rows:
            found[person].append(key)
        return found

    @translated()
    def keys_of(self, person: str) -> list[str]:
        rows = self._db.execute(
            self._sql("SELECT key FROM {schema}.journey_people WHERE person = %s ORDER BY key"),
            (person,),
        ).fetchall()
        return [person, *(str(row[0]) for row in rows)]

    @translated()
    def funnel(self, ladder: Sequence[str]) -> list[StageCount]:
        current: dict[str | None, int] = dict(
            self._db.execute(
                self._sql("SELECT stage, COUNT(*) FROM {schema}.journey_positions GROUP BY stage")
            ).fetchall()
        )
        peaks: dict[int, int] = dict(
            self._db.execute(
                self._sql(
                    "SELECT peak_rank, COUNT(*) FROM {schema}.journey_positions GROUP BY peak_rank"
                )
            ).fetchall()
        )
        return funnel_counts(ladder, current, peaks)

    @translated()
    def clock(self) -> int | None:
        row = self._db.execute(
            self._sql("SELECT GREATEST(at, ticked) FROM {schema}.journey_clock WHERE id = 1")
        ).fetchone()
        return row[0] if row else None

    @translated()
    def ticked(self) -> int | None:
        row = self._db.execute(
            self._sql("SELECT ticked FROM {schema}.journey_clock WHERE id = 1")
        ).fetchone()
        return row[0] if row else None

    @translated()
    def due_before(self, at: int) -> list[str]:
        rows = self._db.execute(
            self._sql("SELECT customer_id FROM {schema}.journey_positions WHERE due_at < %s"),
            (at,),
        ).fetchall()
        return [row[0] for row in rows]

    @translated()
    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._db.execute(SQL(sql), params).fetchall()

    def close(self) -> None:
        self._tables.close()
