"""The journey views in PostgreSQL, beside the event store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson
import psycopg
from psycopg.sql import SQL, Identifier

from projections.position import Position
from projections.views import (
    JourneyView,
    PageChanges,
    StageCount,
    ViewConflict,
    funnel_counts,
    position_row,
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {schema}.journey_tracking (
        projection text PRIMARY KEY, position bigint NOT NULL, definition text)""",
    """CREATE TABLE IF NOT EXISTS {schema}.journey_positions (
        customer_id text PRIMARY KEY, stage text, stage_since bigint, peak_rank integer,
        first_at bigint, last_at bigint, touchpoints integer, state jsonb NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS journey_positions_stage ON {schema}.journey_positions (stage)",
    """CREATE TABLE IF NOT EXISTS {schema}.journey_clock (
        id integer PRIMARY KEY CHECK (id = 1), at bigint)""",
)
_TABLES = ("journey_tracking", "journey_positions", "journey_clock")


class PostgresJourneyView(JourneyView):
    def __init__(self, conninfo: str, schema: str = "public") -> None:
        self._db = psycopg.connect(conninfo, autocommit=True)
        self._schema = Identifier(schema)
        self._create()

    def _sql(self, text: str) -> psycopg.sql.Composed:
        return SQL(text).format(schema=self._schema)

    def _create(self) -> None:
        with self._db.transaction():
            for statement in _SCHEMA:
                self._db.execute(self._sql(statement))

    def tracking(self, projection: str) -> tuple[int, str | None]:
        row = self._db.execute(
            self._sql(
                "SELECT position, definition FROM {schema}.journey_tracking WHERE projection = %s"
            ),
            (projection,),
        ).fetchone()
        return (row[0], row[1]) if row else (0, None)

    def load_positions(self, customer_ids: Iterable[str]) -> dict[str, Position]:
        rows = self._db.execute(
            self._sql(
                "SELECT customer_id, state::text FROM {schema}.journey_positions "
                "WHERE customer_id = ANY(%s)"
            ),
            (list(customer_ids),),
        ).fetchall()
        return {cid: Position.from_state(cid, orjson.loads(state)) for cid, state in rows}

    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        with self._db.transaction(), self._db.cursor() as cursor:
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
            cursor.executemany(
                self._sql(
                    "INSERT INTO {schema}.journey_positions VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (customer_id) DO UPDATE "
                    "SET stage = excluded.stage, stage_since = excluded.stage_since, "
                    "peak_rank = excluded.peak_rank, first_at = excluded.first_at, "
                    "last_at = excluded.last_at, touchpoints = excluded.touchpoints, "
                    "state = excluded.state"
                ),
                [position_row(p, orjson.dumps(p.to_state()).decode()) for p in changes.positions],
            )
            if changes.clock is not None:
                cursor.execute(
                    self._sql(
                        "INSERT INTO {schema}.journey_clock VALUES (1, %s) ON CONFLICT (id) "
                        "DO UPDATE SET at = GREATEST({schema}.journey_clock.at, excluded.at)"
                    ),
                    (changes.clock,),
                )

    def reset(self) -> None:
        with self._db.transaction():
            for table in _TABLES:
                self._db.execute(
                    SQL("DROP TABLE IF EXISTS {}.{}").format(self._schema, Identifier(table))
                )
        self._create()

    def position(self, customer_id: str) -> Position | None:
        return self.load_positions([customer_id]).get(customer_id)

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

    def clock(self) -> int | None:
        row = self._db.execute(
            self._sql("SELECT at FROM {schema}.journey_clock WHERE id = 1")
        ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._db.close()
