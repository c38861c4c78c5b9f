"""The storage technologies: one package each (`stores.sqlite`, `stores.postgres`) holding every
table the engine keeps there, behind the `Store` port; the tables themselves are written once,
for both, in `stores.tables`, with their migrations."""

from __future__ import annotations

from engine.settings import Settings
from stores.store import Part, Store

__all__ = ["Part", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store the settings name: PostgreSQL when JOURNEY_DATABASE_URL is set, else the
    embedded SQLite files. The driver of the other is not loaded."""
    if settings.store == "postgres":
        from stores.postgres import PostgresStore

        return PostgresStore(settings)
    from stores.sqlite import SQLiteStore

    return SQLiteStore(settings)
