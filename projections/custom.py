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
from engine.definition import IdentityPolicy
from engine.errors import ConfigurationError
from engine.identity import Regrouped
from engine.journeys import TouchpointState
from projections.log import JourneyLog
from projections.people import Decision, People, sighting_of
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
        *,
        identity: IdentityPolicy | None = None,
    ) -> None:
        """The view holds a state per person, as `identity` (the journey definition's
        policy; the default one if not given) joins touchpoints into people."""
        self._log = log
        self._views = views
        self._projection = projection
        self._spec = spec
        self._page_size = page_size
        self._states: dict[str, dict[str, Any]] = {}
        self._people = People(identity or IdentityPolicy(), log)

    def replay(self, progress: Progress | None = None) -> tuple[Generation, int]:
        """Builds a fresh generation from the start of the log, then makes it live. Readers
        see the previous generation until then. Returns it and the events it folded."""
        generation = self._views.new_generation(self._projection.name)
        self._states.clear()
        self._people.forget()
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
                self._people.forget()
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
        holds nothing there). Each touchpoint goes to its person's state; people joined or
        split are folded again from all their touchpoints, and ids that name no one any more
        leave the view."""
        evolve = self._projection.evolve
        people = self._people
        people.catch_up(position)
        with collector_paused():
            entries = self._log.entries(position, self._page_size, stop=head)
            if not entries:
                return None
            person_of = people.person_of
            keys = {cast(TouchpointState, e)["customer_id"] for _, e in entries if "event_id" in e}
            self._ensure(generation, {person_of(key) for key in keys})
            changed: dict[str, dict[str, Any]] = {}
            kinds = people.policy.kinds
            for log_position, entry in entries:
                if "decision" in entry:
                    moved = people.decide(log_position, Decision.of(entry))
                elif "event_id" in entry:
                    tp = cast(TouchpointState, entry)
                    seen = sighting_of(tp, kinds)
                    person, moved = people.place(
                        log_position, tp["customer_id"], seen, tp["event_id"], tp["occurred_at"]
                    )
                    if not (moved.changed or moved.gone):
                        state = self._states.get(person)
                        if state is None:
                            state = self._states[person] = self._loaded(generation, person)
                        evolve(state, tp)
                        changed[person] = state
                        continue
                else:
                    continue
                if moved.changed or moved.gone:
                    self._regroup(moved, log_position, changed)
        self._views.commit(generation, changed, entries[-1][0])
        return int(entries[-1][0])

    def _loaded(self, generation: Generation, person: str) -> dict[str, Any]:
        """A person not in memory: their state in the view, or their first."""
        self._ensure(generation, {person})
        return self._states.get(person) or self._projection.start(person)

    def _regroup(
        self, moved: Regrouped, log_position: int, changed: dict[str, dict[str, Any]]
    ) -> None:
        """People were joined or split at `log_position`: each one changed is folded again
        from all their touchpoints so far; an id gone leaves the view (an empty state)."""
        for gone in moved.gone:
            self._states.pop(gone, None)
            changed[gone] = {}
        evolve, begin = self._projection.evolve, self._projection.start
        for person in moved.changed:
            state = self._states[person] = begin(person)
            keys = self._people.keys(person)
            for tp in self._log.touchpoints_of(keys, before=log_position + 1):
                evolve(state, tp)
            changed[person] = state

    def _ensure(self, generation: Generation, customers: set[str]) -> None:
        missing = [c for c in customers if c not in self._states]
        if missing:
            self._states.update(self._views.load(generation, missing))
