"""The data keys' table, written once for both stores, in the event store's database."""

from __future__ import annotations

from collections.abc import Sequence

from engine.vault import KeyStore, WrappedKey
from projections.sql import Database

_CHUNK = 500


class DatabaseKeyStore(KeyStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        if db.dialect == "sqlite":
            # Deleted rows are overwritten with zeros rather than left in free pages.
            db.execute("PRAGMA secure_delete = ON")

    def wrapped_keys(self, subjects: Sequence[str]) -> dict[str, WrappedKey]:
        found: dict[str, WrappedKey] = {}
        for start in range(0, len(subjects), _CHUNK):
            chunk = subjects[start : start + _CHUNK]
            rows = self._db.fetch(
                "SELECT subject, master, wrapped FROM {t}journey_keys "
                f"WHERE subject IN ({','.join(['%s'] * len(chunk))})",
                chunk,
            )
            found.update((row[0], WrappedKey(row[0], row[1], bytes(row[2]))) for row in rows)
        return found

    def add_keys(self, keys: Sequence[WrappedKey]) -> None:
        with self._db.transaction():
            self._db.execute_many(
                "INSERT INTO {t}journey_keys (subject, master, wrapped) VALUES (%s, %s, %s) "
                "ON CONFLICT (subject) DO NOTHING",
                [(key.subject, key.master, key.wrapped) for key in keys],
            )

    def replace_keys(self, keys: Sequence[WrappedKey]) -> None:
        with self._db.transaction():
            self._db.execute_many(
                "UPDATE {t}journey_keys SET master = %s, wrapped = %s WHERE subject = %s",
                [(key.master, key.wrapped, key.subject) for key in keys],
            )
            self._changed()
        self._scrub()

    def erase_keys(self, subjects: Sequence[str]) -> int:
        with self._db.transaction():
            erased = len(self.wrapped_keys(subjects))
            for start in range(0, len(subjects), _CHUNK):
                chunk = subjects[start : start + _CHUNK]
                self._db.execute(
                    "DELETE FROM {t}journey_keys "
                    f"WHERE subject IN ({','.join(['%s'] * len(chunk))})",
                    chunk,
                )
            self._changed()
        self._scrub()
        return erased

    def all_keys(self) -> list[WrappedKey]:
        rows = self._db.fetch("SELECT subject, master, wrapped FROM {t}journey_keys")
        return [WrappedKey(row[0], row[1], bytes(row[2])) for row in rows]

    def changes(self) -> int:
        rows = self._db.fetch("SELECT changes FROM {t}journey_key_changes")
        return int(rows[0][0]) if rows else 0

    def count_keys(self) -> int:
        return int(self._db.fetch("SELECT count(*) FROM {t}journey_keys")[0][0])

    def has_keys(self) -> bool:
        return bool(self._db.fetch("SELECT 1 FROM {t}journey_keys LIMIT 1"))

    def _changed(self) -> None:
        """Counts a change of keys, in the transaction that made it."""
        self._db.execute(
            "INSERT INTO {t}journey_key_changes AS counted (one, changes) VALUES (1, 1) "
            "ON CONFLICT (one) DO UPDATE SET changes = counted.changes + 1"
        )

    def _scrub(self) -> None:
        """Leaves no old copy of a key in the table's files: SQLite's write-ahead log is
        folded into the zeroed file; PostgreSQL's dead rows are vacuumed away. (PostgreSQL's
        own write-ahead log and backups keep them until they expire.)"""
        if self._db.dialect == "sqlite":
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            self._db.execute("VACUUM {t}journey_keys")
