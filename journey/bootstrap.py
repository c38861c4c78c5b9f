"""The composition root: builds the stores, the engine and the runner from settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from consumers.action_store import ActionStore
from consumers.bookkeeping import PostgresBookkeeping
from consumers.decider import Decider
from engine.definition import JourneyDefinition, load_definition
from engine.errors import ConfigurationError, StoreUnavailable
from engine.recording import Journeys
from engine.settings import Settings
from projections.custom import ProjectionViews
from projections.log import JourneyLog
from projections.postgres_view import PostgresJourneyView
from projections.runner import CatchUp, Progress, ProjectionRunner
from projections.sql import Database, PostgresDatabase, SQLiteDatabase
from projections.sqlite_view import SQLiteJourneyView
from projections.views import JourneyView


@dataclass
class Engine:
    """Everything one command needs, wired; close it when done."""

    settings: Settings
    definition: JourneyDefinition
    journeys: Journeys
    view: JourneyView
    runner: ProjectionRunner
    log: JourneyLog
    actions: ActionStore
    decider: Decider

    def close(self) -> None:
        self.view.close()
        self.actions.close()
        self.journeys.close()


def event_store_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing configuration of the Journeys application for these settings."""
    if settings.store == "postgres":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "journey.postgres_store:PostgresJourneyRecorder",
            # Waiting for the events table's lock is given up after this many seconds (the
            # library waits for ever), so a stuck session elsewhere cannot hang a writer.
            "POSTGRES_LOCK_TIMEOUT": "60",
            **settings.postgres,
        }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(settings.events_path),
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "engine.sqlite_store:SQLiteJourneyRecorder",
    }


def build_engine(settings: Settings, clock: Callable[[], datetime] | None = None) -> Engine:
    definition = load_definition(settings.definition_path)
    with tables_made_one_at_a_time(settings):
        journeys = Journeys(event_store_env(settings), clock=clock)
        view = _view(settings)
        actions = ActionStore(_event_store_database(settings))
    runner = ProjectionRunner(
        journeys,
        view,
        definition,
        page_size=settings.page_size,
        store_env=event_store_env(settings),
    )
    decider = Decider(journeys, actions, definition, page_size=settings.decider_page_size)
    return Engine(
        settings, definition, journeys, view, runner, JourneyLog(journeys), actions, decider
    )


def _event_store_database(settings: Settings) -> Database:
    """The event store's database, for what commits with its events (the decider's tables)."""
    if settings.store == "sqlite":
        return SQLiteDatabase(settings.events_path)
    try:
        return PostgresDatabase(
            postgres_conninfo(settings), settings.postgres.get("POSTGRES_SCHEMA", "public")
        )
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None


def postgres_conninfo(settings: Settings) -> str:
    pg = settings.postgres
    return make_conninfo(
        dbname=pg["POSTGRES_DBNAME"],
        host=pg.get("POSTGRES_HOST", "127.0.0.1"),
        port=pg.get("POSTGRES_PORT", "5432"),
        user=pg.get("POSTGRES_USER"),
        password=pg.get("POSTGRES_PASSWORD"),
    )


# Any fixed number: the advisory lock that processes take while they make the tables.
_SETUP_LOCK = 0x6A6F75726E6579


@contextmanager
def tables_made_one_at_a_time(settings: Settings) -> Iterator[None]:
    """Processes starting together (consumer workers, replicas) make the PostgreSQL schema and
    tables one after another: PostgreSQL's CREATE ... IF NOT EXISTS is not safe against a
    concurrent CREATE of the same name."""
    if settings.store != "postgres":
        yield
        return
    schema = settings.postgres.get("POSTGRES_SCHEMA")
    try:
        conn = psycopg.connect(postgres_conninfo(settings), autocommit=True)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None
    with conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
        try:
            if schema:
                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))


def _view(settings: Settings) -> JourneyView:
    generations = ViewGenerations(settings)
    return generations.open(generations.live())


class ViewGenerations:
    """The journey views are built in generations: `journey rebuild` builds the next one
    beside the live one, and readers switch to it only once it has caught up, so no reader
    ever sees a half-built view. On SQLite a generation is a file (`views.db`, then
    `views-2.db`, ...) named in `views.current`; on PostgreSQL a schema (the store's own, then
    `<schema>_views_2`, ...) named in the table `journey_view_generation`. The generation
    before the live one is kept for readers still on it; older ones are dropped."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._schema = settings.postgres.get("POSTGRES_SCHEMA", "public")

    def live(self) -> int:
        if self._settings.store == "sqlite":
            pointer = self._settings.data_dir / "views.current"
            try:
                return int(pointer.read_text().strip() or 1)
            except FileNotFoundError:
                return 1
            except ValueError:
                raise ConfigurationError(f"{pointer}: not a generation number") from None
        with self._connection() as conn:
            row = conn.execute(
                SQL("SELECT generation FROM {}.journey_view_generation").format(
                    Identifier(self._schema)
                )
            ).fetchone()
        return int(row[0]) if row else 1

    def open(self, generation: int) -> JourneyView:
        if self._settings.store == "sqlite":
            return SQLiteJourneyView(self._path(generation))
        try:
            with self._connection() as conn:
                conn.execute(
                    SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        Identifier(self._schema_of(generation))
                    )
                )
            return PostgresJourneyView(
                postgres_conninfo(self._settings), schema=self._schema_of(generation)
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None

    def discard(self, generation: int) -> None:
        """Removes a generation's views."""
        if generation == 1 and self._settings.store == "postgres":
            # The store's own schema: only the views' tables go.
            view = self.open(1)
            try:
                view.drop()
            finally:
                view.close()
            return
        if self._settings.store == "sqlite":
            path = self._path(generation)
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            return
        with self._connection() as conn:
            conn.execute(
                SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    Identifier(self._schema_of(generation))
                )
            )

    def switch(self, generation: int) -> None:
        """Makes `generation` the live one, keeps the one before it, and drops older ones."""
        if self._settings.store == "sqlite":
            pointer = self._settings.data_dir / "views.current"
            written = pointer.with_suffix(".next")
            written.write_text(f"{generation}\n")
            os.replace(written, pointer)
        else:
            with self._connection() as conn:
                table = SQL("{}.journey_view_generation").format(Identifier(self._schema))
                conn.execute(
                    SQL(
                        "INSERT INTO {} VALUES (1, %s) "
                        "ON CONFLICT (id) DO UPDATE SET generation = excluded.generation"
                    ).format(table),
                    (generation,),
                )
        for older in range(1, generation - 1):
            self.discard(older)

    def _path(self, generation: int) -> Path:
        data_dir = self._settings.data_dir
        return data_dir / ("views.db" if generation == 1 else f"views-{generation}.db")

    def _schema_of(self, generation: int) -> str:
        return self._schema if generation == 1 else f"{self._schema}_views_{generation}"

    def _connection(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(postgres_conninfo(self._settings), autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None
        try:
            conn.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {}.journey_view_generation "
                    "(id integer PRIMARY KEY CHECK (id = 1), generation integer NOT NULL)"
                ).format(Identifier(self._schema))
            )
        except BaseException:
            conn.close()
            raise
        return conn


def rebuild_beside(engine: Engine, progress: Progress | None = None) -> tuple[int, CatchUp]:
    """Builds the journey views again from the start of the log as a new generation beside
    the live one, then switches readers to it. Returns the new generation and the build."""
    generations = ViewGenerations(engine.settings)
    generation = generations.live() + 1
    generations.discard(generation)  # what a build that was stopped may have left
    view = generations.open(generation)
    try:
        runner = ProjectionRunner(
            engine.journeys,
            view,
            engine.definition,
            page_size=engine.settings.page_size,
            store_env=event_store_env(engine.settings),
        )
        built = runner.catch_up(progress, unseen=True)
        runner.catch_up(unseen=True)  # what was recorded meanwhile
        generations.switch(generation)
    finally:
        view.close()
    return generation, built


def build_projection_views(settings: Settings) -> ProjectionViews:
    """The views of analysts' own projections, beside the journey views."""
    if settings.store == "sqlite":
        return ProjectionViews(SQLiteDatabase(settings.projections_path))
    try:
        with tables_made_one_at_a_time(settings):
            return ProjectionViews(
                PostgresDatabase(
                    postgres_conninfo(settings), settings.postgres.get("POSTGRES_SCHEMA", "public")
                )
            )
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None


def require_postgres(settings: Settings, command: str) -> None:
    if settings.store != "postgres":
        raise ConfigurationError(
            f"journey {command} works with the PostgreSQL store: set JOURNEY_DATABASE_URL"
        )


def build_bookkeeping(settings: Settings, command: str) -> PostgresBookkeeping:
    """The consumers' offsets and dead letters; they live beside the events in PostgreSQL."""
    require_postgres(settings, command)
    try:
        with tables_made_one_at_a_time(settings):
            return PostgresBookkeeping(
                postgres_conninfo(settings),
                schema=settings.postgres.get("POSTGRES_SCHEMA", "public"),
            )
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None
