"""A PostgreSQL schema behind the database port, and how the engine reaches the server."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from engine.errors import StoreUnavailable
from engine.settings import Settings
from projections.sql import Database

# Any fixed number: the advisory lock under which a schema's migrations are applied.
_MIGRATION_LOCK = 0x6A6F75726E6D69


def conninfo(settings: Settings) -> str:
    pg = settings.postgres
    return make_conninfo(
        dbname=pg["POSTGRES_DBNAME"],
        host=pg.get("POSTGRES_HOST", "127.0.0.1"),
        port=pg.get("POSTGRES_PORT", "5432"),
        user=pg.get("POSTGRES_USER"),
        password=pg.get("POSTGRES_PASSWORD"),
    )


def connect(info: str) -> psycopg.Connection[Any]:
    """An autocommit connection, or StoreUnavailable with the server's one-line reason."""
    try:
        return psycopg.connect(info, autocommit=True)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}".splitlines()[0]) from None


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(
        self, info: str, schema: str = "public", connection: psycopg.Connection[Any] | None = None
    ) -> None:
        """On `connection` (autocommit) if given, else on a connection of its own."""
        self._info = info
        self._db = connection if connection is not None else connect(info)
        self._schema = schema
        self._prefix = Identifier(schema).as_string() + "."
        self.where = f"PostgreSQL schema {schema}"

    def statement(self, sql: str) -> SQL:
        return SQL(sql.replace("{t}", self._prefix))

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(self.statement(sql), params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(self.statement(sql), params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(self.statement(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.transaction():
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._db.transaction():
            # Given up after a minute (a session idle in a transaction on a table a migration
            # touches would hang it for ever); held until the transaction ends.
            self._db.execute("SET LOCAL lock_timeout = '60s'")
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            yield

    def has_table(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (f"{Identifier(self._schema).as_string()}.{name}",),
        ).fetchone()
        return bool(row and row[0])

    def notice(self, channel: str) -> tuple[Any, tuple[Any, ...]]:
        return SQL("SELECT pg_notify(%s, '')"), (self._channel(channel),)

    def wait(self, channel: str, reached: Callable[[], bool], timeout: float) -> bool:
        return wait_for_notice(self._info, self._channel(channel), reached, timeout)

    def _channel(self, channel: str) -> str:
        return notice_channel(self._schema, channel)

    def close(self) -> None:
        self._db.close()


def notice_channel(schema: str, channel: str) -> str:
    """The name of a channel of one schema (notices of another schema's writers do not count),
    within PostgreSQL's 63 bytes whatever the schema's name."""
    return f"journey.{hashlib.sha256(schema.encode()).hexdigest()[:16]}.{channel}"[:63]


def wait_for_notice(info: str, channel: str, reached: Callable[[], bool], timeout: float) -> bool:
    """Waits until `reached()` holds, looking again at each notice on `channel`; False if it
    still does not hold after `timeout` seconds."""
    if reached():
        return True
    deadline = time.monotonic() + timeout
    with connect(info) as listener:
        # Listening before looking: a commit between the look and the wait is not missed.
        listener.execute(SQL("LISTEN {}").format(Identifier(channel)))
        while not reached():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for _ in listener.notifies(timeout=left, stop_after=1):
                pass
    return True
