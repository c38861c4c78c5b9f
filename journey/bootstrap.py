"""The composition root: builds the stores, the engine and the runner from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from consumers.bookkeeping import PostgresBookkeeping
from engine.definition import JourneyDefinition, load_definition
from engine.errors import ConfigurationError, StoreUnavailable
from engine.recording import Journeys
from engine.settings import Settings
from projections.custom import ProjectionViews
from projections.log import JourneyLog
from projections.postgres_view import PostgresJourneyView
from projections.runner import ProjectionRunner
from projections.sql import PostgresDatabase, SQLiteDatabase
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

    def close(self) -> None:
        self.view.close()
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
    runner = ProjectionRunner(
        journeys,
        view,
        definition,
        page_size=settings.page_size,
        store_env=event_store_env(settings),
    )
    return Engine(settings, definition, journeys, view, runner, JourneyLog(journeys))


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
    if settings.store == "sqlite":
        return SQLiteJourneyView(settings.views_path)
    try:
        return PostgresJourneyView(
            postgres_conninfo(settings), schema=settings.postgres.get("POSTGRES_SCHEMA", "public")
        )
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None


def build_projection_views(settings: Settings) -> ProjectionViews:
    """The views of analysts' own projections, beside the journey views."""
    if settings.store == "sqlite":
        return ProjectionViews(SQLiteDatabase(settings.views_path))
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
