"""The composition root: builds the store, the engine and the runner from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from consumers.action_store import ActionStore
from consumers.bookkeeping import Bookkeeping
from consumers.decider import Decider
from consumers.settings import KafkaSettings
from engine.definition import JourneyDefinition, load_definition
from engine.errors import ConfigurationError
from engine.recording import Journeys
from engine.sealing import Sealing
from engine.settings import Settings
from engine.vault import MasterKeys, Vault
from projections.custom import ProjectionViews
from projections.log import JourneyLog
from projections.runner import CatchUp, Progress, ProjectionRunner
from projections.sql import Database
from projections.views import JourneyView
from schemas.registry import HttpSchemaRegistry, SchemaRegistry
from stores import Store, open_store
from stores.keys import DatabaseKeyStore
from stores.migrations import Migration, pending, stored_version
from stores.store import LogWatch
from stores.tables import PARTS, open_part


@dataclass
class Engine:
    """Everything one command needs, wired; close it when done."""

    settings: Settings
    store: Store
    definition: JourneyDefinition
    journeys: Journeys
    view: JourneyView
    runner: ProjectionRunner
    log: JourneyLog
    actions: ActionStore
    decider: Decider
    sealing: Sealing | None = None
    keys_db: Database | None = None

    def on_this_log(self, definition: JourneyDefinition) -> JourneyDefinition:
        """A definition to replay this store's log with (a candidate's, say): where the
        store seals personal data, its shared identifiers are also known by their digests."""
        return definition if self.sealing is None else self.sealing.sealed_definition(definition)

    def close(self) -> None:
        self.view.close()
        self.actions.close()
        self.journeys.close()
        if self.keys_db is not None:
            self.keys_db.close()


def event_store_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing configuration of the Journeys application for these settings."""
    return open_store(settings).event_store_env()


def build_engine(
    settings: Settings,
    clock: Callable[[], datetime] | None = None,
    *,
    sealing_existing: bool = False,
) -> Engine:
    """Everything a command needs; `sealing_existing` is for the one command that seals what
    a store recorded in the clear before it had a master key (others are refused)."""
    definition = load_definition(settings.definition_path)
    store = open_store(settings)
    with store.setup():
        journeys = Journeys(store.event_store_env(), clock=clock)
        actions = ActionStore(store.database())
        view = store.open_views(store.live_generation())
        keys_db = store.database()
    sealing = build_sealing(
        settings, keys_db, definition, recorded=None if sealing_existing else journeys
    )
    if sealing is None:
        keys_db.close()
    else:
        journeys.seal_with(sealing)
        definition = sealing.sealed_definition(definition)
    runner = ProjectionRunner(
        journeys,
        view,
        definition,
        page_size=settings.page_size,
        store_env=store.event_store_env(),
    )
    decider = Decider(journeys, actions, definition, page_size=settings.decider_page_size)
    return Engine(
        settings,
        store,
        definition,
        journeys,
        view,
        runner,
        JourneyLog(journeys),
        actions,
        decider,
        sealing,
        keys_db if sealing is not None else None,
    )


@contextmanager
def journeys_of(settings: Settings, definition: JourneyDefinition) -> Iterator[Journeys]:
    """The store's journeys, sealing what `definition` calls personal as `build_engine`'s
    do: for a second process that records, or encodes for the first."""
    store = open_store(settings)
    journeys = Journeys(store.event_store_env())
    keys_db = store.database()
    try:
        sealing = build_sealing(settings, keys_db, definition, recorded=journeys)
        if sealing is not None:
            journeys.seal_with(sealing)
        yield journeys
    finally:
        keys_db.close()
        journeys.close()


def build_sealing(
    settings: Settings,
    db: Database,
    definition: JourneyDefinition,
    *,
    recorded: Journeys | None,
) -> Sealing | None:
    """What seals personal data, with the master keys the settings name; None when they name
    none, unless the store holds sealed data, which it then refuses to open without. With
    `recorded`, a store that recorded touchpoints in the clear before it had a master key is
    refused until `journey keys seal` has sealed them."""
    master = MasterKeys.load(settings.master_key_file, settings.master_key)
    keys = DatabaseKeyStore(db)
    sealed = keys.has_keys()
    if master is None:
        if sealed:
            raise ConfigurationError(
                "the store holds sealed personal data: set JOURNEY_MASTER_KEY_FILE "
                "(or JOURNEY_MASTER_KEY) to its master keys"
            )
        return None
    if not sealed and recorded is not None and (count := recorded.recorded_count()):
        raise ConfigurationError(
            f"the store recorded {count:,} touchpoints before it had a master key: run "
            "`journey keys seal` once to seal their personal data"
        )
    return Sealing(Vault(master, keys), definition.identity, definition.privacy)


def rebuild_beside(engine: Engine, progress: Progress | None = None) -> tuple[int, CatchUp]:
    """Builds the journey views again from the start of the log as a new generation beside
    the live one, then switches readers to it. Returns the new generation and the build."""
    store = engine.store
    generation = store.live_generation() + 1
    store.discard_views(generation)  # what a build that was stopped may have left
    view = store.open_views(generation)
    try:
        runner = ProjectionRunner(
            engine.journeys,
            view,
            engine.definition,
            page_size=engine.settings.page_size,
            store_env=store.event_store_env(),
        )
        built = runner.catch_up(progress, unseen=True)
        runner.catch_up(unseen=True)  # what was recorded meanwhile
        store.switch_views(generation)
    finally:
        view.close()
    return generation, built


def build_log_watch(settings: Settings) -> LogWatch:
    """What a follower of the log waits on for the log to move on."""
    return open_store(settings).log_watch()


def build_projection_views(settings: Settings) -> ProjectionViews:
    """The views of analysts' own projections, beside the journey views."""
    return ProjectionViews(open_store(settings).projection_database())


def require_postgres(settings: Settings, command: str) -> None:
    if settings.store != "postgres":
        raise ConfigurationError(
            f"journey {command} works with the PostgreSQL store: set JOURNEY_DATABASE_URL"
        )


def build_bookkeeping(settings: Settings, command: str) -> Bookkeeping:
    """The consumers' offsets and dead letters; they live beside the events."""
    return open_store(settings).bookkeeping(command)


def build_schema_registry(kafka: KafkaSettings) -> SchemaRegistry | None:
    """The schema registry registry-framed messages are read through, if one is set."""
    if kafka.schema_registry_url is None:
        return None
    return HttpSchemaRegistry(kafka.schema_registry_url)


@dataclass(frozen=True, slots=True)
class PartStatus:
    """A versioned part of the store: where it is, its version, and what it lacks."""

    where: str
    part: str
    version: int
    pending: list[Migration]


def migrate_store(settings: Settings, *, apply: bool) -> list[PartStatus]:
    """Every versioned part of the store with the migrations it lacks, applied if `apply`."""
    statuses = []
    for part in open_store(settings).parts():
        database = part.open()
        try:
            version = stored_version(database, part.part)
            todo = pending(database, part.part, PARTS[part.part])
            if apply and todo:
                todo = open_part(database, part.part)  # what was left once the lock was held
        finally:
            database.close()
        statuses.append(PartStatus(part.where, part.part, version, todo))
    return statuses
