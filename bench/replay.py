"""Replay the whole event log into fresh journey views, every detector on, on SQLite and PostgreSQL.

Writes the demo dataset for --customers customers (`journey generate`, arrival order) and keeps
each customer's first N / customers touchpoints; records them once per store (`journey ingest
--no-project`, cached under bench/out/ and in the PostgreSQL schema bench_replay) and appends
one clock event (`journey tick`), so that the time-based detectors close their windows. Then
times `journey rebuild` (what users run: stages, frictions, moments of truth) and reports the
median rate and peak RSS.

In the same run, the baseline: eventsourcing's own ProjectionRunner (one transaction per event:
the view row and the tracking record) folding with the engine's own StageMachine, over the log's
first --sample touchpoints and clock events. On SQLite, where the library cannot subscribe, its
Projection and tracking recorder are driven the way its subscription pulls:
select_notifications, 500 at a time.

Every rate counts the entries the fold reads, touchpoints and clock events, so that both stores
and the baseline are measured over the same log: the log also holds one journey-start event
per customer and, on SQLite, the events of the decider that `journey tick` runs, which a
rebuild reads past without folding.

With --identities the log is recorded from identity data (bench/identities.py): touchpoints
without a customer id, some with two identifiers. With --baseline-journey, another `journey`
(an older release, say) records the usual data in a store of its own and rebuilds it in the
same run, alternating with this one run by run; the ratio of the two rates is reported. With
--sealed, the data is also recorded sealed, in a store of its own, under the master key kept in
bench/out/replay-master.key (made the first time), and that store is rebuilt after the store in
the clear in each run; the ratio of the two rates is reported.

A master key that the shell exports is left out: only the sealed store is opened with one.

    python bench/replay.py [--touchpoints 1000000] [--runs 3] [--sample 20000]
                           [--customers 100000] [--no-postgres]
                           [--identities] [--journey PATH]
                           [--baseline-journey PATH | --sealed]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import psycopg
from eventsourcing.persistence import (
    InfrastructureFactory,
    Tracking,
)
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from engine.definition import load_definition
from engine.errors import ConfigurationError
from engine.journeys import CustomerJourney, JourneyClock, TouchpointState
from engine.recording import Journeys
from engine.settings import Settings
from engine.vault import INDEX_SUBJECT, MasterKeys
from journey.bootstrap import event_store_env
from projections.log import TICK_TOPIC, TOUCHPOINT_TOPIC
from projections.machine import StageMachine
from projections.position import Mark, Position
from stores import open_store
from stores.keys import DatabaseKeyStore
from stores.postgres.database import conninfo as postgres_conninfo

sys.path.insert(0, str(Path(__file__).parent))
from identities import HELP_LABEL, LABEL, identity_dataset
from ingest_file import OUT
from measuring import (
    NotMeasured,
    data_keys,
    folded_entries,
    per_second,
    reporting,
    without_store,
)
from processes import TreeRSS
from rebuild import JOURNEY

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "bench_replay"
# The sealed stores' master key: kept, so that a store recorded sealed is rebuilt again by
# later runs; a new key means the stores are recorded again.
MASTER_KEY_FILE = OUT / "replay-master.key"
TARGET_RATE = 100_000  # events/s
TARGET_RSS_MB = 1024
PULL = 500  # what eventsourcing's subscription selects at a time


# ---------------------------------------------------------------------------------------------
# The dataset and the stores


def replay_dataset(touchpoints: int, customers: int) -> tuple[Path, int, int]:
    """(file, touchpoints, distinct customers): what `journey generate --customers N` writes,
    keeping each customer's first touchpoints (in arrival order) up to `touchpoints / N`, so
    that the history spreads over every customer as the benchmark asks."""
    OUT.mkdir(exist_ok=True)
    generated = OUT / f"replay-generated-{customers}.jsonl"
    if not generated.exists():
        print(f"generating {generated} ({customers:,} customers) ...", flush=True)
        partial = generated.with_suffix(".partial.jsonl")
        cli(["generate", "--customers", str(customers), "--out", str(partial)], clean_env())
        partial.rename(generated)
    each = max(1, touchpoints // customers)
    path = OUT / f"replay-{customers}x{each}.jsonl"
    if not path.exists():
        partial = path.with_suffix(".partial")
        kept: dict[bytes, int] = {}
        with generated.open("rb") as full, partial.open("wb") as part:
            for line in full:
                customer = orjson.loads(line)["customer_id"]
                if kept.get(customer, 0) < each:
                    kept[customer] = kept.get(customer, 0) + 1
                    part.write(line)
        partial.rename(path)
    count, seen = 0, set()
    with path.open("rb") as handle:
        for line in handle:
            count += 1
            seen.add(orjson.loads(line)["customer_id"])
    return path, count, len(seen)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This shell's environment without what would point the CLI at another store."""
    return without_store(os.environ, extra)


def cli(args: list[str], env: Mapping[str, str], journey: str = JOURNEY) -> str:
    """Runs the journey CLI; its stderr, or the exact error if it fails."""
    done = subprocess.run(
        [journey, *args],
        check=False,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"journey {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stderr


@dataclass
class Store:
    name: str
    cli_env: dict[str, str]  # the environment `journey` runs with
    app_env: dict[str, str]  # the Journeys application's eventsourcing environment
    settings: Settings
    data_dir: Path
    journey: str = JOURNEY  # the `journey` that records and rebuilds it
    schema: str = SCHEMA  # on PostgreSQL
    notes: list[str] = field(default_factory=list)
    folded: int = 0  # touchpoints and clock events in the log: what every rate counts
    sealed: bool = False  # recorded and rebuilt under the master key of MASTER_KEY_FILE

    @property
    def label(self) -> str:
        if self.journey != JOURNEY:
            return f"{self.name}, baseline journey"
        return f"{self.name}, sealed" if self.sealed else self.name


@dataclass(frozen=True)
class Variant:
    """Which data a store holds and which `journey` records it: each has a store of its own."""

    identities: bool = False
    journey: str = JOURNEY
    sealed: bool = False

    @property
    def suffix(self) -> str:
        data = "-identities" if self.identities else ""
        data = f"{data}-sealed" if self.sealed else data
        return f"{data}-baseline" if self.journey != JOURNEY else data

    def sealing_env(self) -> dict[str, str]:
        """What `journey` runs with, besides the store, to seal this variant's data."""
        return {"JOURNEY_MASTER_KEY_FILE": str(master_key_file())} if self.sealed else {}


def master_key_file() -> Path:
    """The sealed stores' master key file, made the first time."""
    if not MASTER_KEY_FILE.exists():
        OUT.mkdir(exist_ok=True)
        partial = MASTER_KEY_FILE.with_suffix(".partial")
        partial.write_text(f"{MasterKeys.new_line('bench')}\n")
        partial.chmod(0o600)
        partial.rename(MASTER_KEY_FILE)
    return MASTER_KEY_FILE


def sqlite_store(touchpoints: int, customers: int, variant: Variant = Variant()) -> Store:
    each = max(1, touchpoints // customers)
    data_dir = OUT / f"replay-store-{customers}x{each}{variant.suffix}"
    env = clean_env({"JOURNEY_DATA_DIR": str(data_dir), **variant.sealing_env()})
    settings = Settings.from_env(env)
    return Store(
        "sqlite", env, event_store_env(settings), settings, data_dir, variant.journey,
        sealed=variant.sealed,
    )  # fmt: skip


def postgres_store(url: str, data_dir: Path, variant: Variant = Variant()) -> Store:
    schema = SCHEMA + variant.suffix.replace("-", "_")
    env = clean_env(
        {"JOURNEY_DATABASE_URL": url, "POSTGRES_SCHEMA": schema, **variant.sealing_env()}
    )
    settings = Settings.from_env(env)
    return Store(
        "postgres", env, event_store_env(settings), settings, data_dir, variant.journey, schema,
        sealed=variant.sealed,
    )  # fmt: skip


def record(store: Store, path: Path, count: int) -> None:
    """Records the dataset and one clock event in the store, unless done before."""
    if recorded(store, count):
        return
    print(f"recording {path.name} into {store.name} ...", flush=True)
    if store.name == "sqlite":
        shutil.rmtree(store.data_dir, ignore_errors=True)
    else:
        drop_schema(store)
    started = time.perf_counter()
    cli(["ingest", "--no-project", str(path)], store.cli_env, store.journey)
    ingested = time.perf_counter()
    said = cli(["tick"], store.cli_env, store.journey)
    keys = data_keys(store.settings)
    if store.sealed != bool(keys):
        how = "sealed" if store.sealed else "in the clear"
        raise RuntimeError(f"{store.label}: recorded {how}, the store keeps {keys:,} data keys")
    print(
        f"  ingest {ingested - started:.0f} s; tick (and views caught up) "
        f"{time.perf_counter() - ingested:.0f} s: {said.strip().splitlines()[-1]}; "
        f"{keys:,} data keys",
        flush=True,
    )
    if store.name == "sqlite":
        (store.data_dir / "recorded").write_text(f"{marker(store, count)}\n")


def marker(store: Store, count: int) -> str:
    """What an embedded store recorded in full says it holds: the touchpoints, and which
    `journey` recorded them unless it was this checkout's, and whether they are sealed."""
    said = f"{count}\n{store.journey}" if store.journey != JOURNEY else str(count)
    return f"{said}\nsealed" if store.sealed else said


def recorded(store: Store, count: int) -> bool:
    """Whether the store holds the dataset and a clock event, sealed under the master key of
    MASTER_KEY_FILE if it is a sealed one."""
    return holds(store, count) and (not store.sealed or opens(store))


def holds(store: Store, count: int) -> bool:
    if store.name == "sqlite":
        done = store.data_dir / "recorded"
        return done.exists() and done.read_text().strip() == marker(store, count)
    with psycopg.connect(postgres_conninfo(store.settings), autocommit=True) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (store.schema,),
            )
        }
        if not {"journeys_events", "journeys_events_touchpoints"} <= tables:
            return False
        events = Identifier(store.schema, "journeys_events")
        ids = Identifier(store.schema, "journeys_events_touchpoints")
        (touchpoints,) = conn.execute(SQL("SELECT count(*) FROM {}").format(ids)).fetchone() or (0,)
        (ticks,) = conn.execute(
            SQL("SELECT count(*) FROM {} WHERE topic = %s").format(events), (TICK_TOPIC,)
        ).fetchone() or (0,)
        return bool(touchpoints == count and ticks)


def opens(store: Store) -> bool:
    """Whether the store was sealed under the master key of MASTER_KEY_FILE: its index key
    unwraps with it. (A store sealed under a key since lost is recorded again.)"""
    master = MasterKeys.load(master_key_file(), None)
    db = open_store(store.settings).database()
    try:
        index = DatabaseKeyStore(db).wrapped_keys([INDEX_SUBJECT]).get(INDEX_SUBJECT)
    except Exception:  # no table of keys: recorded in the clear
        return False
    finally:
        db.close()
    if index is None or master is None:
        return False
    try:
        master.unwrap(index)
    except ConfigurationError:
        return False
    return True


def drop_schema(store: Store) -> None:
    with psycopg.connect(postgres_conninfo(store.settings), autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(store.schema)))


def head(store: Store) -> int:
    app = Journeys(store.app_env)
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


# ---------------------------------------------------------------------------------------------
# The engine: `journey rebuild`


@dataclass(frozen=True)
class Rebuilt:
    events: int  # log entries, as the CLI counts them: journey starts and the decider's too
    seconds: float
    reported_seconds: float  # what the CLI itself printed
    max_rss_mb: float  # ru_maxrss: the largest single process
    tree_rss_mb: float  # sampled: all of its processes together
    cpu_seconds: float  # user and system, all of its processes


def journey_rebuild(store: Store) -> Rebuilt:
    """One `journey rebuild`, timed from outside."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [store.journey, "rebuild"],
        env=store.cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = TreeRSS(child.pid)
    sampler.start()
    output = child.stderr.read() if child.stderr else ""  # drained while it runs
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    found = re.search(r"Rebuilt from (\d+) events in ([\d.]+) s", output)
    if child.returncode or found is None:
        raise RuntimeError(
            f"journey rebuild on {store.name} failed ({child.returncode}):\n{output}"
        )
    return Rebuilt(
        int(found.group(1)),
        seconds,
        float(found.group(2)),
        usage.ru_maxrss / 1024,
        sampler.peak,
        usage.ru_utime + usage.ru_stime,
    )


# ---------------------------------------------------------------------------------------------
# The baseline: eventsourcing's Projection, tracking recorder and ProjectionRunner


class JourneyBaseline(Projection[Any]):
    """The engine's fold (StageMachine: stages, frictions, moments of truth) as an
    eventsourcing projection: each event's changed positions and its tracking record are
    written in one transaction. Positions stay in memory, as the engine keeps them."""

    name = "JourneyBaseline"
    topics = (TOUCHPOINT_TOPIC, TICK_TOPIC)  # what the engine's fold reads, filtered in the DB
    stop_at = 0  # the notification id whose processing ends the timed part
    reached: float | None = None
    counted = 0  # events processed by then
    first: float | None = None  # when the first event was processed

    def __init__(self, view: Any) -> None:
        super().__init__(view)
        self.machine = StageMachine(load_definition())
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, list[Mark]] = {}  # for touchpoints that arrive late
        self.ticked: int | None = None
        self.processed = 0

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        changed: list[Position] = []
        if isinstance(domain_event, CustomerJourney.TouchpointRecorded):
            state = cast(TouchpointState, vars(domain_event))
            customer_id = state["customer_id"]
            mark = self.machine.mark(state)
            position = self.positions.get(customer_id) or Position(customer_id)
            marks = self.marks.setdefault(customer_id, [])
            position = self.machine.evolve(position, mark, lambda _: marks, now=self.ticked)
            marks.append(mark)
            self.positions[customer_id] = position
            changed.append(position)
        elif isinstance(domain_event, JourneyClock.Ticked):
            at: int = domain_event.at
            if self.ticked is None or at > self.ticked:
                self.ticked = at
                advance = self.machine.advance
                changed.extend(p for p in self.positions.values() if advance(p, at))
        self.view.save(changed, tracking)
        self.processed += 1
        if self.reached is None and tracking.notification_id >= self.stop_at:
            self.reached = time.perf_counter()
            type(self).counted = self.processed


def _state(position: Position) -> bytes:
    return orjson.dumps(position.to_state())


class SQLiteBaselineView(SQLiteTrackingRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS baseline_positions "
            "(customer_id TEXT PRIMARY KEY, stage TEXT, state BLOB NOT NULL)",
        ]

    def save(self, positions: list[Position], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            self._insert_tracking(c, tracking)
            for p in positions:
                c.execute(
                    "INSERT INTO baseline_positions (customer_id, stage, state) VALUES (?, ?, ?) "
                    "ON CONFLICT (customer_id) DO UPDATE SET "
                    "stage = excluded.stage, state = excluded.state",
                    (p.customer_id, p.stage, _state(p)),
                )


class PostgresBaselineView(PostgresTrackingRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        table = Identifier(self.datastore.schema, baseline_table(self.tracking_table_name))
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} "
                "(customer_id text PRIMARY KEY, stage text, state jsonb NOT NULL)"
            ).format(table)
        )
        self._upsert = SQL(
            "INSERT INTO {} (customer_id, stage, state) VALUES (%s, %s, %s::jsonb) "
            "ON CONFLICT (customer_id) DO UPDATE SET stage = excluded.stage, state = excluded.state"
        ).format(table)

    def save(self, positions: list[Position], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            for p in positions:
                curs.execute(
                    self._upsert, (p.customer_id, p.stage, _state(p).decode()), prepare=True
                )


def baseline_table(tracking_table: str) -> str:
    return tracking_table.removesuffix("_tracking") + "_positions"


def sample_target(store: Store, sample: int) -> int:
    """The position of the log's `sample`th touchpoint or clock event (or of its last)."""
    app = Journeys(store.app_env)
    try:
        folded = app.recorder.select_notifications(
            start=1, limit=sample, topics=JourneyBaseline.topics
        )
    finally:
        app.close()
    if not folded:
        raise NotMeasured(f"the {store.name} log holds no touchpoints for the baseline")
    return folded[-1].id


@dataclass(frozen=True)
class Baseline:
    rate: float  # touchpoints and clock events folded per second
    events: int  # log positions covered (as `journey rebuild` counts)
    processed: int  # events handed to process_event (touchpoints and clock events)
    first: float  # seconds from the start to the first event processed
    how: str


def baseline_postgres(store: Store, sample: int) -> Baseline:
    """eventsourcing's ProjectionRunner, as it is: its own Journeys app and subscription."""
    target = sample_target(store, sample)
    with psycopg.connect(postgres_conninfo(store.settings), autocommit=True) as conn:
        name = JourneyBaseline.name.lower()
        for table in (f"{name}_tracking", baseline_table(f"{name}_tracking")):
            conn.execute(SQL("DROP TABLE IF EXISTS {}").format(Identifier(store.schema, table)))
    JourneyBaseline.stop_at, JourneyBaseline.reached, JourneyBaseline.first = target, None, None
    JourneyBaseline.counted = 0
    started = time.perf_counter()
    runner: ProjectionRunner[Journeys, PostgresBaselineView] = ProjectionRunner(
        application_class=Journeys,
        projection_class=JourneyBaseline,
        view_class=PostgresBaselineView,
        env=store.app_env,
    )
    with runner:
        runner.wait(target, timeout=3600)
        projection = cast(JourneyBaseline, runner.projection)
        reached = projection.reached or time.perf_counter()
        processed = projection.counted
        first = (projection.first or reached) - started
    rate = per_second(processed, reached - started, "events folded by the baseline")
    return Baseline(rate, target, processed, first, "ProjectionRunner")


def baseline_sqlite(store: Store, sample: int, *, try_runner: bool) -> Baseline:
    """eventsourcing's Projection and SQLite tracking recorder. Its ProjectionRunner needs a
    subscription, which SQLite recorders do not offer: the events are pulled as the library's
    subscription pulls them (select_notifications after the last, 500 at a time, filtered by
    the projection's topics) and handed to process_event one by one."""
    view_db = OUT / "replay-baseline-view.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{view_db}{suffix}").unlink(missing_ok=True)
    env = {**store.app_env, f"{JourneyBaseline.name.upper()}_SQLITE_DBNAME": str(view_db)}
    if try_runner:
        try:
            ProjectionRunner(
                application_class=Journeys,
                projection_class=JourneyBaseline,
                view_class=SQLiteBaselineView,
                env=env,
            ).stop()
        except NotImplementedError as exc:
            store.notes.append(f"eventsourcing ProjectionRunner on SQLite: {exc!r}")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{view_db}{suffix}").unlink(missing_ok=True)
    target = sample_target(store, sample)
    JourneyBaseline.stop_at, JourneyBaseline.reached, JourneyBaseline.first = target, None, None
    JourneyBaseline.counted = 0
    started = time.perf_counter()
    app = Journeys(env)
    view_env = Environment(JourneyBaseline.name, {**os.environ, **env})
    factory = InfrastructureFactory[SQLiteTrackingRecorder].construct(env=view_env)
    view = factory.tracking_recorder(SQLiteBaselineView)
    projection = JourneyBaseline(view)
    try:
        last = view.max_tracking_id(app.name) or 0
        while last < target:
            notifications = app.recorder.select_notifications(
                start=last,
                limit=PULL,
                topics=JourneyBaseline.topics,
                inclusive_of_start=False,
            )
            if not notifications:
                break
            for notification in notifications:
                if notification.id > target:
                    break
                domain_event = app.mapper.to_domain_event(notification)
                projection.process_event(domain_event, Tracking(app.name, notification.id))
                last = notification.id
        reached = projection.reached or time.perf_counter()
    finally:
        app.close()
        factory.close()
    return Baseline(
        per_second(projection.counted, reached - started, "events folded by the baseline"),
        target,
        projection.counted,
        (projection.first or reached) - started,
        "Projection + SQLiteTrackingRecorder, pulled by select_notifications",
    )


# ---------------------------------------------------------------------------------------------
# PostgreSQL, through the project's script


def postgres(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres.sh"), command],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )


class PostgresServer:
    """The project's server (scripts/postgres.sh). Other sessions may share it, and tests
    stop and start it: it is started again when found stopped, and stopped at the end only
    if this run started it and nobody else is connected."""

    def __init__(self) -> None:
        self.started = False
        self.was_running = postgres("status").returncode == 0

    def ensure(self) -> str:
        """The URL of the running server, started if need be; raises if it cannot start."""
        if postgres("status").returncode != 0:
            started = postgres("start")
            if started.returncode:
                raise RuntimeError((started.stderr or started.stdout).strip())
            self.started = True
        return postgres("url").stdout.strip()

    def finish(self, url: str) -> str:
        if not self.started or postgres("status").returncode != 0:
            return "PostgreSQL left as it was (this run did not start it)"
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                ).fetchone()
            others = row[0] if row else 0
        except psycopg.Error:
            others = 0
        if others:
            return (
                f"PostgreSQL left running: this run started it, but {others} other clients use it"
            )
        stopped = postgres("stop")
        failed = f": {stopped.stderr.strip()}" if stopped.returncode else ""
        return f"PostgreSQL stopped (this run started it){failed}"


# ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    store: Store
    variant: Variant = Variant()
    events: int = 0
    runs: list[Rebuilt] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    error: str = ""


def reconnect(result: Result, url: str) -> Store:
    """The PostgreSQL store at this URL, keeping what was noted."""
    store = postgres_store(url, result.store.data_dir, result.variant)
    store.notes, store.folded = result.store.notes, result.store.folded
    result.store = store
    return store


def prepare(result: Result, path: Path, count: int, server: PostgresServer | None) -> None:
    """Records the dataset in the store; on PostgreSQL, again if the server went away."""
    for attempt in (1, 2, 3):
        try:
            if server is not None:
                reconnect(result, server.ensure())
            record(result.store, path, count)
            return
        except Exception as exc:
            if server is None or attempt == 3:
                raise
            note = f"recording failed and was done again: {type(exc).__name__}: {exc}"
            result.store.notes.append(" ".join(note.split())[:300])
            print(note, file=sys.stderr, flush=True)


def measure(results: list[Result], runs: int, sample: int, server: PostgresServer | None) -> None:
    """`runs` rounds, each rebuilding every store of `results` in turn (the baseline
    journey's first), so that a slower spell of the machine falls on both."""
    for run in range(1, runs + 1):
        for result in results:
            if result.error:
                continue
            for attempt in (1, 2):
                try:
                    one_run(result, run, sample, server)
                    break
                except Exception as exc:
                    if server is None or attempt == 2:
                        raise
                    # Another session may have stopped the shared server under us.
                    note = f"run {run} failed and was run again: {type(exc).__name__}: {exc}"
                    result.store.notes.append(" ".join(note.split())[:300])
                    print(note, file=sys.stderr, flush=True)
                    reconnect(result, server.ensure())


def one_run(result: Result, run: int, sample: int, server: PostgresServer | None) -> None:
    store = result.store
    if server is not None:
        url = server.ensure()
        if store.cli_env["JOURNEY_DATABASE_URL"] != url:
            store = reconnect(result, url)
    load = os.getloadavg()[0]
    rebuilt = journey_rebuild(store)
    base: Baseline | None = None
    if store.journey != JOURNEY or store.sealed:
        pass  # the other store's rebuild is the comparison: eventsourcing's is not run for it
    elif store.name == "sqlite":
        base = baseline_sqlite(store, sample, try_runner=run == 1)
    else:
        base = baseline_postgres(store, sample)
    if rebuilt.events < store.folded:
        raise NotMeasured(
            f"journey rebuild read {rebuilt.events:,} log entries on {store.name}, fewer than "
            f"the {store.folded:,} touchpoints and clock events recorded there"
        )
    rate = per_second(store.folded, rebuilt.seconds, "events folded by journey rebuild")
    result.runs.append(rebuilt)
    said = ""
    if base is not None:
        result.baselines.append(base)
        said = (
            f"; baseline {base.rate:,.0f} folded/s ({base.processed:,} folded over "
            f"{base.events:,} log positions, the first after {base.first:.2f} s)"
        )
    print(
        f"run {run} {store.label}: journey rebuild folded {store.folded:,} events "
        f"({rebuilt.events:,} log entries) in {rebuilt.seconds:.1f} s (it says "
        f"{rebuilt.reported_seconds:.1f} s) = {rate:,.0f} folded/s, peak RSS "
        f"{rebuilt.max_rss_mb:.0f} MB (largest process), {rebuilt.tree_rss_mb:.0f} MB "
        f"(all its processes), {rebuilt.cpu_seconds:.1f} CPU s{said}; "
        f"load average before {load:.1f}",
        flush=True,
    )


def rates(result: Result) -> list[float]:
    return [result.store.folded / r.seconds for r in result.runs]


def table(results: list[Result], customers: int, sample: int) -> None:
    print(
        "counted: the touchpoints and clock events each replay folds, the same on both stores "
        "(journey starts, and the decider's events on SQLite, are read past, not counted)"
    )
    width = max(9, *(len(result.store.label) for result in results))
    header = (
        f"{'store':<{width}} {'folded':>10} {'customers':>9} {'median ev/s':>11}  "
        f"{'runs ev/s':<26} {'peak RSS MB':>11} {'baseline ev/s':>13} {'ratio':>7}  "
        f"{'>=100k ev/s':<11} {'RSS<1GB':<7}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        name = result.store.label
        if result.error or not result.runs:
            said = result.error.splitlines()[0] if result.error else ""
            print(f"{name:<{width}} not measured: {said}")
            continue
        rate = statistics.median(rates(result))
        peak = max(max(r.tree_rss_mb, r.max_rss_mb) for r in result.runs)
        if result.baselines:
            base = statistics.median(b.rate for b in result.baselines)
            compared = f"{base:>13,.0f} {rate / base:>6.0f}x"
        else:
            compared = f"{'':>13} {'':>7}"
        print(
            f"{name:<{width}} {result.store.folded:>10,} {customers:>9,} {rate:>11,.0f}  "
            f"{' / '.join(f'{r:,.0f}' for r in rates(result)):<26} {peak:>11,.0f} {compared}  "
            f"{'yes' if rate >= TARGET_RATE else 'NO':<11} "
            f"{'yes' if peak < TARGET_RSS_MB else 'NO':<7}"
        )
    print()
    for result in results:
        if result.baselines:
            print(
                f"baseline {result.store.name}: {result.baselines[0].how}; engine's fold "
                f"(StageMachine.mark/evolve), one transaction per event (view row + tracking), "
                f"first {sample:,} touchpoints and clock events"
            )
        for note in result.store.notes:
            print(f"  note: {note}")


def compared(pairs: list[list[Result]], own_what: str, base_what: str) -> None:
    """Each store's rate against the one rebuilt before it in each run (the baseline
    journey's, or the store in the clear) on the same store."""
    for pair in pairs:
        if len(pair) < 2 or not all(result.runs for result in pair):
            continue
        base, own = pair
        base_rate, own_rate = statistics.median(rates(base)), statistics.median(rates(own))
        own_cpu = statistics.median(r.cpu_seconds for r in own.runs) / own.store.folded
        base_cpu = statistics.median(r.cpu_seconds for r in base.runs) / base.store.folded
        print(
            f"{own.store.name}: {own_what}: median {own_rate:,.0f} folded/s "
            f"({' / '.join(f'{r:,.0f}' for r in rates(own))}); {base_what}: median "
            f"{base_rate:,.0f} folded/s ({' / '.join(f'{r:,.0f}' for r in rates(base))}); "
            f"ratio {own_rate / base_rate:.2f}; CPU time per event folded (all its processes) "
            f"{own_cpu * 1e6:.1f} us against {base_cpu * 1e6:.1f} us"
        )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sample", type=int, default=20_000, help="touchpoints and clock events for the baseline"
    )
    parser.add_argument("--customers", type=int, default=100_000, help="customers generated")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--identities", action="store_true", help=f"replay {HELP_LABEL}")
    parser.add_argument("--journey", default=JOURNEY, help="the journey measured")
    parser.add_argument(
        "--baseline-journey",
        help="a journey that records the usual data in a store of its own and rebuilds it in "
        "the same run, before each run's own",
    )
    parser.add_argument(
        "--sealed",
        action="store_true",
        help="also record the data sealed, in a store of its own, rebuilt after the store in "
        "the clear in each run",
    )
    args = parser.parse_args()
    if args.sealed and args.baseline_journey:
        parser.error("--sealed and --baseline-journey each compare with another store: pick one")
    return args


def compared_variants(args: argparse.Namespace, plain: Path) -> list[Variant]:
    """The variants each run rebuilds, in turn: the one measured, and what it is compared
    with (the baseline journey's before it, or the same sealed after it)."""
    variants = [Variant(args.identities, args.journey)]
    if args.baseline_journey:
        variants.insert(0, Variant(False, args.baseline_journey))
        print(f"baseline journey: {args.baseline_journey} on the usual data, {plain}")
    if args.sealed:
        variants.append(Variant(args.identities, args.journey, sealed=True))
        print(f"sealed: a store of its own, master key {master_key_file()}")
    return variants


def main() -> None:
    args = arguments()

    print(
        f"targets: journey rebuild >= {TARGET_RATE:,} events/s; peak RSS < {TARGET_RSS_MB} MB "
        "(memory grows with active customers, not with history)"
    )
    plain, count, customers = replay_dataset(args.touchpoints, args.customers)
    path = identity_dataset(plain) if args.identities else plain
    what = LABEL if args.identities else "the usual data"
    print(
        f"dataset: {count:,} touchpoints of {customers:,} customers (each customer's first "
        f"{max(1, args.touchpoints // args.customers)} of `journey generate --customers "
        f"{args.customers}`), {path}: {what}",
        flush=True,
    )
    variants = compared_variants(args, plain)
    pairs = [[Result(sqlite_store(args.touchpoints, args.customers, v), v) for v in variants]]
    server, url = None, ""
    if not args.no_postgres:
        server = PostgresServer()
        try:
            url = server.ensure()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            server = None
            print(f"PostgreSQL could not be started, reporting SQLite only:\n{exc}", flush=True)
        else:
            how = "already running" if server.was_running else "started by this run"
            print(f"PostgreSQL at {url}, schemas {SCHEMA}* ({how})", flush=True)
            replayed = OUT / "replay-postgres"
            pairs.append([Result(postgres_store(url, replayed, v), v) for v in variants])
    try:
        for pair in pairs:
            on = server if pair[0].store.name == "postgres" else None
            for result in pair:
                try:
                    data = path if result.variant.identities else plain
                    prepare(result, data, count, on)
                    result.events = head(result.store)
                    result.store.folded = folded_entries(result.store.settings)
                except Exception as exc:  # reported in the table, the other store still runs
                    result.error = f"{type(exc).__name__}: {exc}"
                    print(f"{result.store.label} failed: {result.error}", file=sys.stderr)
            try:
                measure(pair, args.runs, args.sample, on)
            except Exception as exc:
                for result in pair:
                    result.error = result.error or f"{type(exc).__name__}: {exc}"
                print(f"{pair[0].store.name} failed: {exc}", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            print(server.finish(url), flush=True)
    print()
    table([result for pair in pairs for result in pair], customers, args.sample)
    if args.baseline_journey:
        print()
        compared(
            pairs, f"{what}, {args.journey}", f"the usual data, baseline {args.baseline_journey}"
        )
    if args.sealed:
        print()
        compared(pairs, f"{what}, sealed", f"{what}, in the clear")


if __name__ == "__main__":
    reporting(main)
