"""The embedded store: SQLite files under the data directory. `events.db` holds the event
store and the decider's tables; each generation of the journey views is a file of its own
(`views.db`, then `views-2.db`, ...) named in `views.current`; `projections.db` holds the
views of analysts' projections."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from consumers.bookkeeping import Bookkeeping
from engine.errors import ConfigurationError
from projections.sql import Database
from projections.views import JourneyView
from stores.sqlite.database import SQLiteDatabase
from stores.sqlite.views import SQLiteJourneyView
from stores.store import Part, Store
from stores.tables import opened


class SQLiteStore(Store):
    kind = "sqlite"

    def event_store_env(self) -> dict[str, str]:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(self.settings.events_path),
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "stores.sqlite.events:SQLiteJourneyRecorder",
        }

    def database(self) -> Database:
        return opened(SQLiteDatabase(self.settings.events_path), "store")

    def projection_database(self) -> Database:
        return opened(SQLiteDatabase(self.settings.projections_path), "projections")

    def bookkeeping(self, command: str) -> Bookkeeping:
        raise ConfigurationError(
            f"journey {command} works with the PostgreSQL store: set JOURNEY_DATABASE_URL"
        )

    def live_generation(self) -> int:
        try:
            return int(self._pointer.read_text().strip() or 1)
        except FileNotFoundError:
            return 1
        except ValueError:
            raise ConfigurationError(f"{self._pointer}: not a generation number") from None

    def open_views(self, generation: int) -> JourneyView:
        return SQLiteJourneyView(self._path(generation))

    def discard_views(self, generation: int) -> None:
        path = self._path(generation)
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)

    def point_readers_at(self, generation: int) -> None:
        written = self._pointer.with_suffix(".next")
        written.write_text(f"{generation}\n")
        os.replace(written, self._pointer)

    def parts(self) -> list[Part]:
        # Only files that exist: a new file made here would miss the event store's page size.
        files = [
            (self.settings.events_path, "store"),
            (self._path(self.live_generation()), "views"),
            (self.settings.projections_path, "projections"),
        ]
        return [
            Part(str(path), part, partial(SQLiteDatabase, path))
            for path, part in files
            if path.exists()
        ]

    @property
    def _pointer(self) -> Path:
        return self.settings.data_dir / "views.current"

    def _path(self, generation: int) -> Path:
        data_dir = self.settings.data_dir
        return data_dir / ("views.db" if generation == 1 else f"views-{generation}.db")
