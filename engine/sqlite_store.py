"""The embedded event store: eventsourcing's SQLite recorder plus the touchpoint ledger."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from engine.ledger import TouchpointLedger

# SQLite allows 32,766 host parameters per statement; stay well below.
_CHUNK = 900


class SQLiteJourneyRecorder(SQLiteApplicationRecorder, TouchpointLedger):
    """Records events and the ids of the touchpoints they carry in one transaction."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS recorded_touchpoints "
            "(event_id TEXT PRIMARY KEY) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        touchpoint_ids: Sequence[str] = kwargs.get("touchpoint_ids", ())
        if touchpoint_ids:
            c.executemany(
                "INSERT INTO recorded_touchpoints (event_id) VALUES (?)",
                [(event_id,) for event_id in sorted(touchpoint_ids)],
            )
        return notification_ids

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
