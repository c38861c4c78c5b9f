"""The composition root: builds the stores, the engine and the runner from settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from consumers.bookkeeping import PostgresBookkeeping
from engine.definition import JourneyDefinition, load_definition
from engine.errors import ConfigurationError
from engine.recording import Journeys
from engine.settings import Settings
from projections.log import JourneyLog
from projections.postgres_view import PostgresJourneyView
from projections.runner import ProjectionRunner
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
    if settings.store == "postgres":
        _ensure_schema(settings)
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


def _ensure_schema(settings: Settings) -> None:
    """The store's tables go into POSTGRES_SCHEMA, made here if it does not exist yet."""
    schema = settings.postgres.get("POSTGRES_SCHEMA")
    if not schema:
        return
    try:
        with psycopg.connect(postgres_conninfo(settings), autocommit=True) as conn:
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
    except psycopg.OperationalError as exc:
        raise ConfigurationError(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None


def _view(settings: Settings) -> JourneyView:
    if settings.store == "sqlite":
        return SQLiteJourneyView(settings.views_path)
    try:
        return PostgresJourneyView(
            postgres_conninfo(settings), schema=settings.postgres.get("POSTGRES_SCHEMA", "public")
        )
    except psycopg.OperationalError as exc:
        raise ConfigurationError(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None


def build_bookkeeping(settings: Settings, command: str) -> PostgresBookkeeping:
    """The consumers' offsets and dead letters; they live beside the events in PostgreSQL."""
    if settings.store != "postgres":
        raise ConfigurationError(
            f"journey {command} works with the PostgreSQL store: set JOURNEY_DATABASE_URL"
        )
    try:
        return PostgresBookkeeping(
            postgres_conninfo(settings), schema=settings.postgres.get("POSTGRES_SCHEMA", "public")
        )
    except psycopg.OperationalError as exc:
        raise ConfigurationError(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None
