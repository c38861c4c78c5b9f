"""eventsourcing's own recorder contract, held against our recorders, on every store.

The library ships the test cases its recorders pass (`eventsourcing.tests.persistence`). Ours
write a batch their own way (SQLite: one executemany; PostgreSQL: a binary COPY, without the
library's pipeline) and keep the touchpoint ledger in the same transaction. On each store,
the library's cases run:

- ApplicationRecorderTestCase, with the recorder called as the library calls it;
- ApplicationRecorderTestCase again, called as the engine records a batch: with a touchpoint
  id per event and a statement of its own (`touchpoint_ids=`, `also=`);
- AggregateRecorderTestCase, called as the engine records: the one case that checks a batch
  that fails leaves none of its events behind, and reads a stream by version ranges. It holds
  aggregate recorders to returning no notification ids, so they are dropped here;
  application recorders return them, the library's own too;
- NonInterleavingNotificationIDsBaseCase, called as the engine records: two batches written
  at once take a run of positions each, which our recorders count on to compute a batch's
  positions without reading them back.

The library's cases cannot see the touchpoint ledger: that it commits or rolls back with its
batch is for our own tests to show.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests import persistence

from stores.postgres.events import PostgresJourneyRecorder
from stores.sqlite.events import SQLiteJourneyRecorder
from tests import services


def as_the_engine_records(stored_events: Sequence[StoredEvent]) -> dict[str, Any]:
    """What the engine passes along with a batch: the id of the touchpoint each event carries,
    and a statement to run in the batch's transaction."""
    return {
        "touchpoint_ids": [f"{e.originator_id}/{e.originator_version}" for e in stored_events],
        "also": [lambda cursor: cursor.execute("SELECT 1")],
    }


class SQLiteAsTheEngineRecords(SQLiteJourneyRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return super().insert_events(
            stored_events, **as_the_engine_records(stored_events), **kwargs
        )


class SQLiteReturningNoIds(SQLiteAsTheEngineRecords):
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super().insert_events(stored_events, **kwargs)


class PostgresAsTheEngineRecords(PostgresJourneyRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return super().insert_events(
            stored_events, **as_the_engine_records(stored_events), **kwargs
        )


class PostgresReturningNoIds(PostgresAsTheEngineRecords):
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super().insert_events(stored_events, **kwargs)


@contextmanager
def threads_joined() -> Iterator[None]:
    """Waits for the threads a test started (not the pool's daemons, which live as long as the
    store): the library's concurrency test tells its readers to stop but returns without
    joining them, and closing a store under a reader still in SQLite crashes the interpreter."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        if not thread.daemon:
            thread.join(timeout=10)


class OnSQLite:
    """A database file of its own per test, as the engine keeps its events."""

    recorder_class: type[SQLiteJourneyRecorder]

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> Iterator[None]:
        self.datastore = SQLiteDatastore(str(tmp_path / "events.db"), lock_timeout=30)
        with threads_joined():
            yield
        self.datastore.close()

    def create_recorder(self) -> SQLiteJourneyRecorder:
        recorder = self.recorder_class(self.datastore)
        recorder.create_table()
        return recorder


class OnPostgres:
    """The test server, a schema of its own per test, the engine's pool size and table name."""

    recorder_class: type[PostgresJourneyRecorder]

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> Iterator[None]:
        url = urlsplit(postgres_url)
        with services.fresh_schema(postgres_url) as schema:
            self.datastore = PostgresDatastore(
                dbname=url.path.lstrip("/"),
                host=url.hostname or "127.0.0.1",
                port=url.port or 5432,
                user=unquote(url.username or ""),
                password=unquote(url.password or ""),
                schema=schema,
                pool_size=5,
            )
            with threads_joined():
                yield
            self.datastore.close()

    def create_recorder(self) -> PostgresJourneyRecorder:
        recorder = self.recorder_class(self.datastore, events_table_name="journeys_events")
        recorder.create_table()
        return recorder


class TestSQLite(OnSQLite, persistence.ApplicationRecorderTestCase[SQLiteJourneyRecorder]):
    recorder_class = SQLiteJourneyRecorder


class TestSQLiteAsTheEngineRecords(TestSQLite):
    recorder_class = SQLiteAsTheEngineRecords


class TestSQLiteAggregateContract(OnSQLite, persistence.AggregateRecorderTestCase):
    recorder_class = SQLiteReturningNoIds


class TestSQLiteNonInterleaving(OnSQLite, persistence.NonInterleavingNotificationIDsBaseCase):
    recorder_class = SQLiteAsTheEngineRecords


class TestPostgres(OnPostgres, persistence.ApplicationRecorderTestCase[PostgresJourneyRecorder]):
    recorder_class = PostgresJourneyRecorder

    def test_insert_subscribe(self) -> None:
        # Optional in the library (SQLite cannot subscribe); its PostgreSQL tests run it.
        self.optional_test_insert_subscribe()


class TestPostgresAsTheEngineRecords(TestPostgres):
    recorder_class = PostgresAsTheEngineRecords


class TestPostgresAggregateContract(OnPostgres, persistence.AggregateRecorderTestCase):
    recorder_class = PostgresReturningNoIds


class TestPostgresNonInterleaving(OnPostgres, persistence.NonInterleavingNotificationIDsBaseCase):
    recorder_class = PostgresAsTheEngineRecords
