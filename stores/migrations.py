"""Versioned tables: each part of a store (the decider's tables, the journey views, ...) has a
version in `journey_schema_versions`, and opening the part applies the migrations it lacks, in
order, in one transaction that no other process runs at the same time.

Written here rather than with yoyo-migrations or alembic: yoyo records a migration in another
transaction than the one that applies it and leaves its lock row behind after a crash, and
alembic brings SQLAlchemy and no lock between processes. What the engine needs is a few lines
over the database port it already has: the version read, the statements run and the version
moved in one transaction, serialised by the database's own lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import StoreTooNew
from projections.sql import Database

VERSIONS = "journey_schema_versions"


@dataclass(frozen=True, slots=True)
class Step:
    """One statement, run on the dialects named (both by default). Names are written `{t}name`
    and types as the dialect's `{placeholders}` (see `stores.tables.TYPES`)."""

    sql: str
    dialects: tuple[str, ...] = ("sqlite", "postgres")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    does: str  # what it changes, as `journey migrate` shows it
    steps: tuple[Step, ...]


def stored_version(db: Database, part: str) -> int:
    """The version of `part` in this database: 0 if it was never versioned (a new database,
    or one written before versions were kept)."""
    if not db.has_table(VERSIONS):
        return 0
    rows = db.fetch(f"SELECT version FROM {{t}}{VERSIONS} WHERE part = %s", (part,))
    return int(rows[0][0]) if rows else 0


def pending(db: Database, part: str, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations `part` lacks here. Raises StoreTooNew if it is newer than these."""
    version = stored_version(db, part)
    latest = migrations[-1].version
    if version > latest:
        raise StoreTooNew(
            f"{db.where}: {part} tables are at version {version}, this release of the engine "
            f"knows up to {latest}: upgrade the engine"
        )
    return [migration for migration in migrations if migration.version > version]


def migrate(
    db: Database, part: str, migrations: Sequence[Migration], types: dict[str, str]
) -> list[Migration]:
    """Applies what `part` lacks, once whatever the number of processes opening it at the same
    time, and returns what was applied."""
    if not pending(db, part, migrations):  # the usual case, without taking the lock
        return []
    with db.exclusive():
        return _apply(db, part, migrations, types)


def recreate(
    db: Database,
    part: str,
    tables: Sequence[str],
    migrations: Sequence[Migration],
    types: dict[str, str],
) -> None:
    """Drops `part`'s tables and makes them anew, in one transaction: a reader sees the
    tables full or empty, never missing."""
    with db.exclusive():
        for table in tables:
            db.execute(f"DROP TABLE IF EXISTS {{t}}{table}")
        forget(db, part)
        _apply(db, part, migrations, types)


def forget(db: Database, part: str) -> None:
    """Forgets the version of `part`, whose tables were dropped: opening it makes them anew."""
    if db.has_table(VERSIONS):
        db.execute(f"DELETE FROM {{t}}{VERSIONS} WHERE part = %s", (part,))


def _apply(
    db: Database, part: str, migrations: Sequence[Migration], types: dict[str, str]
) -> list[Migration]:
    """Applies what `part` lacks, inside the caller's exclusive transaction."""
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {{t}}{VERSIONS} "
        "(part TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    todo = pending(db, part, migrations)  # another process may have applied them
    for migration in todo:
        for step in migration.steps:
            if db.dialect in step.dialects:
                db.execute(render(step.sql, types))
    if todo:
        db.execute(
            f"INSERT INTO {{t}}{VERSIONS} (part, version) VALUES (%s, %s) "
            "ON CONFLICT (part) DO UPDATE SET version = excluded.version",
            (part, todo[-1].version),
        )
    return todo


def render(sql: str, types: dict[str, str]) -> str:
    for name, sql_type in types.items():
        sql = sql.replace(f"{{{name}}}", sql_type)
    return sql
