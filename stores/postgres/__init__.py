"""The production store: one PostgreSQL schema (`POSTGRES_SCHEMA`, by default `public`) holds
the event store, the decider's tables, the consumers' bookkeeping, the first generation of the
journey views and the views of analysts' projections; later generations of the journey views
are schemas of their own (`<schema>_views_2`, ...), the live one named in
`journey_view_generation`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from psycopg.sql import SQL, Identifier

from consumers.bookkeeping import Bookkeeping
from engine.recording import Journeys
from engine.settings import Settings
from projections.sql import Database
from projections.views import JourneyView
from stores.postgres.bookkeeping import PostgresBookkeeping
from stores.postgres.database import Listening, PostgresDatabase, connect, conninfo
from stores.postgres.views import PostgresJourneyView
from stores.store import LogWatch, Part, Store
from stores.tables import opened

# Any fixed number: the advisory lock that processes take while they make the tables.
_SETUP_LOCK = 0x6A6F75726E6579


class PostgresStore(Store):
    kind = "postgres"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.schema = settings.postgres.get("POSTGRES_SCHEMA", "public")
        self.conninfo = conninfo(settings)

    def event_store_env(self) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "stores.postgres.events:JourneyPostgresFactory",
            "APPLICATION_RECORDER_TOPIC": "stores.postgres.events:PostgresJourneyRecorder",
            # Waiting for the events table's lock is given up after this many seconds (the
            # library waits for ever), so a stuck session elsewhere cannot hang a writer.
            "POSTGRES_LOCK_TIMEOUT": "60",
            **self.settings.postgres,
        }

    @contextmanager
    def setup(self) -> Iterator[None]:
        """PostgreSQL's CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE of the
        same name: processes starting together (consumer workers, replicas) make the schema
        and the event library's tables one after another."""
        with connect(self.conninfo) as conn:
            conn.execute("SET lock_timeout = '60s'")
            conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
            try:
                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(self.schema)))
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))

    def database(self) -> Database:
        return self._opened(self.schema, "store")

    def projection_database(self) -> Database:
        with self.setup():
            return self._opened(self.schema, "projections")

    def bookkeeping(self, command: str) -> Bookkeeping:
        with self.setup():
            return PostgresBookkeeping(self.conninfo, schema=self.schema)

    def live_generation(self) -> int:
        database = PostgresDatabase(self.conninfo, self.schema)
        try:
            if not database.has_table("journey_view_generation"):
                return 1
            rows = database.fetch("SELECT generation FROM {t}journey_view_generation")
        finally:
            database.close()
        return int(rows[0][0]) if rows else 1

    def open_views(self, generation: int) -> JourneyView:
        schema = self._schema_of(generation)
        with connect(self.conninfo) as conn:
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
        return PostgresJourneyView(self.conninfo, schema=schema)

    def discard_views(self, generation: int) -> None:
        if generation == 1:
            # The store's own schema: only the views' tables go.
            view = self.open_views(1)
            try:
                view.drop()
            finally:
                view.close()
            return
        with connect(self.conninfo) as conn:
            conn.execute(
                SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    Identifier(self._schema_of(generation))
                )
            )

    def point_readers_at(self, generation: int) -> None:
        database = self._opened(self.schema, "store")
        try:
            database.execute(
                "INSERT INTO {t}journey_view_generation VALUES (1, %s) "
                "ON CONFLICT (id) DO UPDATE SET generation = excluded.generation",
                (generation,),
            )
        finally:
            database.close()

    def log_watch(self) -> LogWatch:
        # The library's recorder notifies a channel named after its events table (made from
        # the application's name) in every transaction that appends, as it commits.
        return Listening(self.conninfo, f"{Journeys.name.lower()}_events")

    def parts(self) -> list[Part]:
        with connect(self.conninfo) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            ).fetchone()
        if found is None:
            return []  # nothing was ever stored here
        views = self._schema_of(self.live_generation())
        return [
            Part(f"schema {schema}", part, partial(PostgresDatabase, self.conninfo, schema))
            for schema, part in [
                (self.schema, "store"),
                (self.schema, "bookkeeping"),
                (views, "views"),
                (self.schema, "projections"),
            ]
        ]

    def _schema_of(self, generation: int) -> str:
        return self.schema if generation == 1 else f"{self.schema}_views_{generation}"

    def _opened(self, schema: str, part: str) -> Database:
        return opened(PostgresDatabase(self.conninfo, schema), part)
