"""The journey views in a SQLite file beside the embedded event store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson

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
    """CREATE TABLE IF NOT EXISTS projection_tracking (
        projection TEXT PRIMARY KEY, position INTEGER NOT NULL, definition TEXT)""",
    """CREATE TABLE IF NOT EXISTS journey_positions (
        customer_id TEXT PRIMARY KEY, stage TEXT, stage_since INTEGER, peak_rank INTEGER,
        first_at INTEGER, last_at INTEGER, touchpoints INTEGER, state BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS journey_positions_stage ON journey_positions (stage)",
    "CREATE TABLE IF NOT EXISTS journey_clock (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER)",
)
_TABLES = ("projection_tracking", "journey_positions", "journey_clock")
_UPSERT_POSITION = """
    INSERT INTO journey_positions
        (customer_id, stage, stage_since, peak_rank, first_at, last_at, touchpoints, state)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (customer_id) DO UPDATE SET
        stage = excluded.stage, stage_since = excluded.stage_since,
        peak_rank = excluded.peak_rank, first_at = excluded.first_at,
        last_at = excluded.last_at, touchpoints = excluded.touchpoints, state = excluded.state
"""
_CHUNK = 900


class SQLiteJourneyView(JourneyView):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Views can always be rebuilt from the log: trade the last commit's durability for speed.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        # Positions of a few hundred thousand customers stay in memory instead of being read
        # back from the file for every page (the default cache is 2 MB).
        self._db.execute("PRAGMA cache_size=-131072")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def tracking(self, projection: str) -> tuple[int, str | None]:
        row = self._db.execute(
            "SELECT position, definition FROM projection_tracking WHERE projection = ?",
            (projection,),
        ).fetchone()
        return (row[0], row[1]) if row else (0, None)

    def load_positions(self, customer_ids: Iterable[str]) -> dict[str, Position]:
        ids = list(customer_ids)
        loaded: dict[str, Position] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = self._db.execute(
                "SELECT customer_id, state FROM journey_positions "
                f"WHERE customer_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for customer_id, state in rows:
                loaded[customer_id] = Position.from_state(customer_id, orjson.loads(state))
        return loaded

    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        encode = orjson.dumps
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = db.execute(
                "SELECT position FROM projection_tracking WHERE projection = ?", (projection,)
            ).fetchone()
            if stored is not None and stored[0] >= changes.position:
                raise ViewConflict(
                    f"view {projection!r} is at {stored[0]}, not behind {changes.position}"
                )
            db.executemany(
                _UPSERT_POSITION,
                [position_row(p, encode(p.to_state())) for p in changes.positions],
            )
            if changes.clock is not None:
                db.execute(
                    "INSERT INTO journey_clock VALUES (1, ?) ON CONFLICT (id) "
                    "DO UPDATE SET at = MAX(at, excluded.at)",
                    (changes.clock,),
                )
            db.execute(
                "INSERT INTO projection_tracking VALUES (?, ?, ?) ON CONFLICT (projection) "
                "DO UPDATE SET position = excluded.position, definition = excluded.definition",
                (projection, changes.position, definition_digest),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def reset(self) -> None:
        # Dropping is much faster than deleting every row of a large view.
        self._db.execute("BEGIN IMMEDIATE")
        for table in _TABLES:
            self._db.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._db.execute("COMMIT")

    def position(self, customer_id: str) -> Position | None:
        return self.load_positions([customer_id]).get(customer_id)

    def funnel(self, ladder: Sequence[str]) -> list[StageCount]:
        current = dict(
            self._db.execute("SELECT stage, COUNT(*) FROM journey_positions GROUP BY stage")
        )
        peaks = dict(
            self._db.execute("SELECT peak_rank, COUNT(*) FROM journey_positions GROUP BY peak_rank")
        )
        return funnel_counts(ladder, current, peaks)

    def clock(self) -> int | None:
        row = self._db.execute("SELECT at FROM journey_clock WHERE id = 1").fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._db.close()
