"""The composition root: builds the stores, the engine and the runner from settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from engine.definition import JourneyDefinition, load_definition
from engine.errors import ConfigurationError
from engine.recording import Journeys
from engine.settings import Settings
from projections.log import JourneyLog
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
        raise ConfigurationError("the PostgreSQL store is not available in this build")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(settings.events_path),
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "engine.sqlite_store:SQLiteJourneyRecorder",
    }


def build_engine(settings: Settings, clock: Callable[[], datetime] | None = None) -> Engine:
    definition = load_definition(settings.definition_path)
    journeys = Journeys(event_store_env(settings), clock=clock)
    view = SQLiteJourneyView(settings.views_path)
    runner = ProjectionRunner(journeys, view, definition, page_size=settings.page_size)
    return Engine(settings, definition, journeys, view, runner, JourneyLog(journeys))
