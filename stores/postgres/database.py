"""A PostgreSQL schema behind the database port, and how the engine reaches the server.

A server that goes away (a restart, a failover, the network) is the engine's StoreUnavailable
wherever the driver says so, and a connection it dropped is opened again on next use: the
processes that run for days wait the outage out instead of failing on a dead connection."""

from __future__ import annotations

import hashlib
import os
import select
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from engine.errors import StoreUnavailable
from engine.settings import Settings
from projections.sql import Database
from stores.store import LogWatch

# Any fixed number: the advisory lock under which a schema's migrations are applied.
_MIGRATION_LOCK = 0x6A6F75726E6D69
# What the server says when it goes away or is not back yet: class 08 (connection exceptions),
# and the shutdowns and start-up of class 57. Other operational errors (a lock or a statement
# that timed out) are a statement's failure, not an outage.
_GONE = ("57P01", "57P02", "57P03")


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
        raise unavailable(exc) from None


def dropped(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server closed an idle connection (it went away, or restarted since): an
    idle connection is sent nothing, unless it is told that. Asked without a round trip."""
    if conn.broken or conn.closed:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def lost(exc: BaseException) -> bool:
    """Whether the driver's error says that the server is out of reach, rather than that a
    statement failed."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _GONE


def unavailable(exc: BaseException) -> StoreUnavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"PostgreSQL is unavailable: {reason}")


@contextmanager
def translated() -> Iterator[None]:
    """Raises StoreUnavailable for a driver's error that says the server is out of reach;
    other errors pass as they are. Also a decorator."""
    try:
        yield
    except psycopg.OperationalError as exc:
        if lost(exc):
            raise unavailable(exc) from exc
        raise


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, info: str, schema: str = "public") -> None:
        """On a connection of its own (autocommit), opened again if the server drops it."""
        self._info = info
        self._db = connect(info)
        self._transactions = 0  # open on the connection: a new one would not be in them
        self._schema = schema
        self._prefix = Identifier(schema).as_string() + "."
        self.where = f"PostgreSQL schema {schema}"

    def connection(self) -> psycopg.Connection[Any]:
        """The live connection: a new one if the server dropped the last (so the first
        statement after a restart does not fail on it), or StoreUnavailable. Inside a
        transaction, the one it runs on, broken or not (it failed with it)."""
        if not self._transactions and dropped(self._db):
            self._db.close()
            self._db = connect(self._info)
        return self._db

    def statement(self, sql: str) -> SQL:
        return SQL(sql.replace("{t}", self._prefix))

    @translated()
    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.connection().execute(self.statement(sql), params).fetchall()

    @translated()
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection().execute(self.statement(sql), params)

    @translated()
    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.connection().cursor() as cursor:
            cursor.executemany(self.statement(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with translated(), self.connection().transaction():
            self._transactions += 1
            try:
                yield
            finally:
                self._transactions -= 1

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self.transaction():
            # Given up after a minute (a session idle in a transaction on a table a migration
            # touches would hang it for ever); held until the transaction ends.
            self._db.execute("SET LOCAL lock_timeout = '60s'")
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            yield

    @translated()
    def has_table(self, name: str) -> bool:
        row = (
            self.connection()
            .execute(
                "SELECT to_regclass(%s) IS NOT NULL",
                (f"{Identifier(self._schema).as_string()}.{name}",),
            )
            .fetchone()
        )
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
    with translated(), connect(info) as listener:
        # Listening before looking: a commit between the look and the wait is not missed.
        listener.execute(SQL("LISTEN {}").format(Identifier(channel)))
        while not reached():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for _ in listener.notifies(timeout=left, stop_after=1):
                pass
    return True


class Listening(LogWatch):
    """Waits for notices on a channel that writers notify as they commit, on a connection of
    its own: opened at the first wait, and again as soon as the server dropped it (or at
    the next wait, if it does not answer then). A wait that began listening returns at
    once, as something may have been committed before."""

    def __init__(self, info: str, channel: str) -> None:
        self._info = info
        self._channel = channel
        self._listener: psycopg.Connection[Any] | None = None
        # Written by `interrupt`, so that a stop request ends the wait at once.
        self._woken, self._wake = os.pipe()
        os.set_blocking(self._woken, False)
        os.set_blocking(self._wake, False)

    def wait(self, timeout: float) -> None:
        listener = self._listener
        if listener is None or listener.closed:
            self._listen()
            return
        try:
            ready, _, _ = select.select([listener.fileno(), self._woken], [], [], timeout)
            if self._woken in ready:
                self._drain()
            # Every notice that arrived, taken without waiting; the server closing the
            # connection fails here.
            for _ in listener.notifies(timeout=0):
                pass
        except (psycopg.Error, OSError, ValueError):
            # The server closed the connection: it went away, and may be back already.
            listener.close()
            self._listener = None
            self._listen()

    def _listen(self) -> None:
        listener = connect(self._info)
        try:
            listener.execute(SQL("LISTEN {}").format(Identifier(self._channel)))
        except psycopg.Error as exc:
            listener.close()
            raise unavailable(exc) from None
        self._listener = listener

    def _drain(self) -> None:
        try:
            while os.read(self._woken, 64):
                pass
        except BlockingIOError:
            pass  # emptied

    def interrupt(self) -> None:
        with suppress(OSError):  # already woken (the pipe is full), or closed
            os.write(self._wake, b"\0")

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for fd in (self._woken, self._wake):
            with suppress(OSError):
                os.close(fd)
