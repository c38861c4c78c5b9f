"""The journey views in a SQLite file beside the embedded event store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from projections.position import Position
from projections.views import (
    CUSTOMER_TABLES,
    JourneyView,
    PageChanges,
    StageCount,
    ViewConflict,
    funnel_counts,
    position_row,
)
from stores.sqlite.database import SQLiteDatabase, connect
from stores.tables import open_part, views_dropped, views_emptied

_INSERT_POSITION = """
    INSERT INTO journey_positions (customer_id, stage, stage_since, peak_rank, first_at,
        last_at, touchpoints, rep, due_at, open_frictions, state)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPSERT_POSITION = f"""{_INSERT_POSITION}    ON CONFLICT (customer_id) DO UPDATE SET
        stage = excluded.stage, stage_since = excluded.stage_since,
        peak_rank = excluded.peak_rank, first_at = excluded.first_at,
        last_at = excluded.last_at, touchpoints = excluded.touchpoints, rep = excluded.rep,
        due_at = excluded.due_at, open_frictions = excluded.open_frictions, state = excluded.state
"""
_CHUNK = 900
_SHARED_WAIT_SECONDS = 600.0


class SQLiteJourneyView(JourneyView):
    def __init__(self, path: Path, *, wait_seconds: float = 10.0) -> None:
        """Waits up to `wait_seconds` for another writer of the file to finish."""
        self._path = path
        # Views can always be rebuilt from the log: the connection trades the last commit's
        # durability for speed.
        self._db = connect(path, wait_seconds=wait_seconds)
        self._tables = SQLiteDatabase(path, self._db)
        # Positions of a few hundred thousand customers stay in memory instead of being read
        # back from the file for every page (the default cache is 2 MB).
        self._db.execute("PRAGMA cache_size=-131072")
        open_part(self._tables, "views")

    def tracking(self, projection: str) -> tuple[int, str | None]:
        row = self._db.execute(
            "SELECT position, definition FROM journey_tracking WHERE projection = ?",
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
        # The rows are made before the write lock is taken: while one partition of a rebuild
        # encodes its share, another one writes. A copy of what orjson returns holds only the
        # state, not the several kilobytes of buffer orjson allocated for it.
        positions = [
            position_row(p, bytes(memoryview(encode(p.to_state())))) for p in changes.positions
        ]
        details = [
            (table, columns, customers, list(rows))
            for table, columns, customers, rows in changes.details.tables()
            if customers
        ]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = db.execute(
                "SELECT position FROM journey_tracking WHERE projection = ?", (projection,)
            ).fetchone()
            if stored is not None and stored[0] >= changes.position:
                raise ViewConflict(
                    f"view {projection!r} is at {stored[0]}, not behind {changes.position}"
                )
            if changes.aliases:
                db.executemany(
                    "INSERT INTO journey_people VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET person = excluded.person",
                    [(k, p) for k, p in changes.aliases.items() if p is not None],
                )
                db.executemany(
                    "DELETE FROM journey_people WHERE key = ?",
                    [(k,) for k, p in changes.aliases.items() if p is None],
                )
            for table in CUSTOMER_TABLES if changes.removed else ():
                db.executemany(
                    f"DELETE FROM {table} WHERE customer_id = ?", [(c,) for c in changes.removed]
                )
            db.executemany(_INSERT_POSITION if changes.first_write else _UPSERT_POSITION, positions)
            for table, columns, customers, rows in details:
                if not changes.first_write:
                    db.executemany(
                        f"DELETE FROM {table} WHERE customer_id = ?", [(c,) for c in customers]
                    )
                marks = ",".join("?" * columns)
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            if changes.clock is not None or changes.ticked is not None:
                db.execute(
                    "INSERT INTO journey_clock VALUES (1, ?, ?) ON CONFLICT (id) "
                    "DO UPDATE SET at = MAX(COALESCE(at, 0), COALESCE(excluded.at, 0)), "
                    "ticked = COALESCE(excluded.ticked, ticked)",
                    (changes.clock, changes.ticked),
                )
            db.execute(
                "INSERT INTO journey_tracking VALUES (?, ?, ?) ON CONFLICT (projection) "
                "DO UPDATE SET position = excluded.position, definition = excluded.definition",
                (projection, changes.position, definition_digest),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def opener(self) -> Callable[[], JourneyView]:
        # The partitions of a rebuild take turns at the file's one writer: each writes up to
        # a hundred thousand positions at a time, and may wait for several others to.
        return partial(SQLiteJourneyView, self._path, wait_seconds=_SHARED_WAIT_SECONDS)

    def reset(self) -> None:
        # Dropping is much faster than deleting every row of a large view.
        views_emptied(self._tables)

    def drop(self) -> None:
        views_dropped(self._tables)

    def position(self, customer_id: str) -> Position | None:
        return self.load_positions([customer_id]).get(customer_id)

    def person_of(self, key: str) -> str | None:
        rows = self._fetch("SELECT person FROM journey_people WHERE key = ?", (key,))
        if rows:
            return str(rows[0][0])
        return key if self.position(key) is not None else None

    def keys_of_many(self, people: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {person: [person] for person in people}
        for start in range(0, len(people), 500):
            chunk = list(people[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT person, key FROM journey_people WHERE person IN ({marks}) ORDER BY key",
                chunk,
            )
            for person, key in rows:
                found[person].append(key)
        return found

    def keys_of(self, person: str) -> list[str]:
        rows = self._fetch(
            "SELECT key FROM journey_people WHERE person = ? ORDER BY key", (person,)
        )
        return [person, *(str(row[0]) for row in rows)]

    def funnel(self, ladder: Sequence[str]) -> list[StageCount]:
        current = dict(
            self._db.execute("SELECT stage, COUNT(*) FROM journey_positions GROUP BY stage")
        )
        peaks = dict(
            self._db.execute("SELECT peak_rank, COUNT(*) FROM journey_positions GROUP BY peak_rank")
        )
        return funnel_counts(ladder, current, peaks)

    def clock(self) -> int | None:
        row = self._db.execute("SELECT at, ticked FROM journey_clock WHERE id = 1").fetchone()
        return max((t for t in row if t), default=None) if row else None

    def ticked(self) -> int | None:
        row = self._db.execute("SELECT ticked FROM journey_clock WHERE id = 1").fetchone()
        return row[0] if row else None

    def due_before(self, at: int) -> list[str]:
        rows = self._db.execute(
            "SELECT customer_id FROM journey_positions WHERE due_at < ?", (at,)
        ).fetchall()
        return [row[0] for row in rows]

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._db.execute(sql.replace("%s", "?"), params).fetchall()

    def close(self) -> None:
        self._db.close()
