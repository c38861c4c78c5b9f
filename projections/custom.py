"""Projections of your own: ask a new question of the whole history.

A projection is a fold and a view. The fold, `evolve`, sees each customer's touchpoints in
the order they were recorded and keeps a small JSON-ready state per customer; the view is
those states, one row per customer, in the engine's view database. For example, who keeps
coming back to the pricing page::

    from projections.custom import Projection, TouchpointState

    class PricingInterest(Projection):
        name = "pricing_interest"

        def evolve(self, state: dict, touchpoint: TouchpointState) -> None:
            if touchpoint["attributes"].get("page") == "pricing":
                state["views"] = state.get("views", 0) + 1
                state["last"] = max(state.get("last", 0), touchpoint["occurred_at"])

`journey replay --projection mymodule:PricingInterest` builds it from the start of history
into a fresh table, with a progress bar, then switches readers to it and keeps it following
the log. `journey view pricing_interest` shows it; `ProjectionViews(...).states(name)` reads
it from Python. The fold must be deterministic: no wall clock, no randomness, no I/O. A
replay writes only its own view: nothing is sent anywhere.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import orjson

from engine.bulk import collector_paused
from engine.errors import ConfigurationError
from engine.journeys import TouchpointState
from projections.log import JourneyLog
from projections.sql import Database

__all__ = ["CustomRunner", "Projection", "ProjectionViews", "TouchpointState", "load_projection"]

Progress = Callable[[int, int], None]  # (events done, events to do)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class Projection(ABC):
    """A fold over each customer's touchpoints into a JSON-ready state."""

    name: ClassVar[str]  # names the view: lower-case letters, digits and underscores

    def start(self, customer_id: str) -> dict[str, Any]:
        """A customer's state before their first touchpoint. A customer whose state is empty
        is left out of the view."""
        return {}

    @abstractmethod
    def evolve(self, state: dict[str, Any], touchpoint: TouchpointState) -> None:
        """Updates the customer's state with one more touchpoint, in recording order."""


def load_projection(spec: str) -> Projection:
    """A projection from `module:ClassName`."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ConfigurationError(f"{spec!r}: expected module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"{spec!r}: cannot import {module_name} ({exc})") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Projection)):
        raise ConfigurationError(f"{spec!r}: {class_name} is not a Projection in {module_name}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"{spec!r}: name must be lower-case letters, digits and underscores, not {name!r}"
        )
    return cls()


@dataclass(frozen=True, slots=True)
class Generation:
    """One build of a projection's view; readers see the live one."""

    name: str
    number: int

    @property
    def table(self) -> str:
        return f"{{t}}custom_{self.name}_{self.number}"


class ProjectionViews:
    """The views of custom projections in one database."""

    def __init__(self, db: Database) -> None:
        """`db` holds the projections' tables (the store makes them)."""
        self.db = db

    def live(self, name: str) -> Generation | None:
        rows = self.db.fetch("SELECT generation FROM {t}custom_views WHERE name = %s", (name,))
        return Generation(name, rows[0][0]) if rows else None

    def names(self) -> list[tuple[str, str]]:
        """(name, projection class) of every live view."""
        return [
            (name, spec)
            for name, spec in self.db.fetch(
                "SELECT name, projection FROM {t}custom_views ORDER BY name"
            )
        ]

    def states(
        self, name: str, customer_id: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The live view's states, by customer id."""
        generation = self.live(name)
        if generation is None:
            raise ConfigurationError(f"no view named {name!r}: build it with journey replay")
        sql, params = f"SELECT customer_id, state FROM {generation.table}", list[Any]()
        if customer_id is not None:
            sql, params = sql + " WHERE customer_id = %s", [customer_id]
        sql += " ORDER BY customer_id"
        if limit is not None:
            sql, params = sql + " LIMIT %s", [*params, limit]
        for customer, state in self.db.fetch(sql, params):
            yield customer, orjson.loads(state)

    def new_generation(self, name: str) -> Generation:
        rows = self.db.fetch(
            "SELECT MAX(generation) FROM {t}custom_tracking WHERE name = %s", (name,)
        )
        generation = Generation(name, (rows[0][0] or 0) + 1)
        with self.db.transaction():
            self.db.execute(f"DROP TABLE IF EXISTS {generation.table}")
            self.db.execute(
                f"CREATE TABLE {generation.table} (customer_id TEXT PRIMARY KEY, state TEXT)"
            )
            self.db.execute(
                "INSERT INTO {t}custom_tracking VALUES (%s, %s, 0)", (name, generation.number)
            )
        return generation

    def position(self, generation: Generation) -> int:
        rows = self.db.fetch(
            "SELECT position FROM {t}custom_tracking WHERE name = %s AND generation = %s",
            (generation.name, generation.number),
        )
        return int(rows[0][0]) if rows else 0

    def load(self, generation: Generation, customers: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(customers), 500):
            chunk = customers[start : start + 500]
            marks = ",".join(["%s"] * len(chunk))
            for customer, state in self.db.fetch(
                f"SELECT customer_id, state FROM {generation.table} WHERE customer_id IN ({marks})",
                chunk,
            ):
                found[customer] = orjson.loads(state)
        return found

    def commit(
        self, generation: Generation, states: dict[str, dict[str, Any]], position: int
    ) -> None:
        """Writes a page's states and its position together. A customer whose state is empty
        has no row."""
        kept = [
            (customer, orjson.dumps(state).decode()) for customer, state in states.items() if state
        ]
        emptied = [(customer,) for customer, state in states.items() if not state]
        with self.db.transaction():
            if kept:
                self.db.execute_many(
                    f"INSERT INTO {generation.table} VALUES (%s, %s) "
                    "ON CONFLICT (customer_id) DO UPDATE SET state = excluded.state",
                    kept,
                )
            if emptied:
                self.db.execute_many(
                    f"DELETE FROM {generation.table} WHERE customer_id = %s", emptied
                )
            self.db.execute(
                "UPDATE {t}custom_tracking SET position = %s WHERE name = %s AND generation = %s",
                (position, generation.name, generation.number),
            )

    def switch(self, generation: Generation, projection: str) -> None:
        """Makes a caught-up generation the live one; keeps the one before for readers still
        on it, and drops any older."""
        name = generation.name
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO {t}custom_views VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
                "SET generation = excluded.generation, projection = excluded.projection",
                (name, generation.number, projection),
            )
            old = self.db.fetch(
                "SELECT generation FROM {t}custom_tracking WHERE name = %s AND generation < %s",
                (name, generation.number - 1),
            )
            for (number,) in old:
                self.db.execute(f"DROP TABLE IF EXISTS {Generation(name, number).table}")
            self.db.execute(
                "DELETE FROM {t}custom_tracking WHERE name = %s AND generation < %s",
                (name, generation.number - 1),
            )


class CustomRunner:
    """Builds a projection's view from the log, page by page, each page's states and position
    committed together."""

    def __init__(
        self,
        log: JourneyLog,
        views: ProjectionViews,
        projection: Projection,
        spec: str,
        page_size: int = 50_000,
    ) -> None:
        self._log = log
        self._views = views
        self._projection = projection
        self._spec = spec
        self._page_size = page_size
        self._states: dict[str, dict[str, Any]] = {}

    def replay(self, progress: Progress | None = None) -> tuple[Generation, int]:
        """Builds a fresh generation from the start of the log, then makes it live. Readers
        see the previous generation until then. Returns it and the events it folded."""
        generation = self._views.new_generation(self._projection.name)
        self._states.clear()
        done = self.catch_up(generation, progress)
        self._views.switch(generation, self._spec)
        return generation, done

    def catch_up(self, generation: Generation, progress: Progress | None = None) -> int:
        """Folds what the log holds beyond the generation's position; returns how many
        touchpoints and clock events that was."""
        start = position = self._views.position(generation)
        head = self._log.head()
        while position < head:
            try:
                folded = self._fold_page(generation, position, head)
            except BaseException:
                # States folded from a page that was not committed (the store went away, say)
                # would fold it twice when it is read again: they are read back from the view.
                self._states.clear()
                raise
            if folded is None:
                break
            position = folded
            if progress is not None:
                progress(position - start, head - start)
        if position < head:  # the last events were neither touchpoints nor clock events
            self._views.commit(generation, {}, head)
            position = head
        return position - start

    def _fold_page(self, generation: Generation, position: int, head: int) -> int | None:
        """Folds and commits the page after `position`; returns where it ends (None: the log
        holds nothing there)."""
        evolve, begin = self._projection.evolve, self._projection.start
        with collector_paused():
            entries = self._log.entries(position, self._page_size, stop=head)
            if not entries:
                return None
            touchpoints = [
                cast(TouchpointState, entry) for _, entry in entries if "event_id" in entry
            ]
            self._ensure(generation, {tp["customer_id"] for tp in touchpoints})
            changed: dict[str, dict[str, Any]] = {}
            for tp in touchpoints:
                customer = tp["customer_id"]
                state = self._states.get(customer)
                if state is None:
                    state = self._states[customer] = begin(customer)
                evolve(state, tp)
                changed[customer] = state
        self._views.commit(generation, changed, entries[-1][0])
        return int(entries[-1][0])

    def _ensure(self, generation: Generation, customers: set[str]) -> None:
        missing = [c for c in customers if c not in self._states]
        if missing:
            self._states.update(self._views.load(generation, missing))
