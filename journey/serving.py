"""What `journey serve` reads with: engines that requests borrow, one request each at a time,
and a follower that keeps the views current in the background.

Requests read the committed views as they stand: none takes a lock that others wait on, and
none brings the views up to date first. The follower does that as the log grows (and decides
next actions too, on the embedded store, where no decider service runs). A caller that must
see what it just wrote passes the log position its write returned, and its read waits until
the views are there. The follower also learns from the log whose journeys changed, so that a
journey already read is answered again from memory until something of that customer is
recorded."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple, cast

from consumers.action_store import DeciderConflict
from consumers.ingest import UNAVAILABLE
from consumers.metrics import PROJECTION_LAG
from engine.bulk import settle_young_objects
from engine.errors import JourneyError, StoreUnavailable
from engine.outage import LONGEST_WAIT_S, Outage
from engine.settings import Settings
from journey.bootstrap import Engine, build_engine
from journey.health import Health
from projections.log import DECIDER_TOPICS

log = logging.getLogger("journey.serve")

# Engines requests borrow: enough to keep both cores and the database busy; more would only
# queue on the interpreter's lock and hold connections the database counts.
READERS = 6
# How often the follower looks for what others recorded (another process, or another serve):
# what this server records itself wakes it at once.
LOOK_EVERY_S = 0.05
# Answers kept at most (a customer's is a few kilobytes), and customers whose latest change
# is remembered.
MOST_ANSWERS = 10_000
MOST_CHANGED = 200_000
# Log entries the follower reads at a time to learn whose answers changed.
LOOK_PAGE = 10_000


class Stamp(NamedTuple):
    """Where the views and the decisions stood: an answer read then holds while both do."""

    views: int
    decided: int

    @property
    def tag(self) -> str:
        """As an HTTP entity tag: weak, since equal answers may differ in their bytes."""
        return f'W/"{self.views}-{self.decided}"'

    def includes(self, position: int, *, decided: bool) -> bool:
        return position <= self.views and (not decided or position <= self.decided)


class BeyondTheLog(JourneyError):
    """A read asked to wait for a position no write has returned."""


class ViewsBehind(JourneyError):
    """The views did not reach the log position a reader asked for in time."""


class Readers:
    """Engines for request threads, opened when first needed and kept: a request borrows one
    for its whole work and gives it back. While the store is unavailable, requests fail
    with StoreUnavailable (said once in the log, and once when it is back)."""

    def __init__(self, settings: Settings, size: int = READERS) -> None:
        # One connection each: an engine serves one request at a time.
        self._settings = (
            dataclasses.replace(settings, postgres={**settings.postgres, "POSTGRES_POOL_SIZE": "1"})
            if settings.postgres
            else settings
        )
        self._idle: queue.SimpleQueue[Engine] = queue.SimpleQueue()
        self._opened: list[Engine] = []
        self._size = size
        self._opening = threading.Lock()
        self.store = Outage(log, "PostgreSQL", "answering 503 until it is back")

    @contextmanager
    def borrowed(self) -> Iterator[Engine]:
        engine = self._take()
        try:
            yield engine
        except StoreUnavailable as exc:
            self.store.failed(exc)
            raise
        finally:
            self._idle.put(engine)
        self.store.succeeded()

    def _take(self) -> Engine:
        with suppress(queue.Empty):
            return self._idle.get_nowait()
        with self._opening:
            if len(self._opened) < self._size:
                try:
                    engine = build_engine(self._settings)
                except StoreUnavailable as exc:
                    self.store.failed(exc)
                    raise
                self._opened.append(engine)
                return engine
        return self._idle.get()

    def close(self) -> None:
        for engine in self._opened:
            engine.close()


class Answers:
    """Customers' answers, each kept with where the views and the decisions stood when it was
    read, and given again while nothing that could change it has been recorded since: no
    touchpoint or outcome of that customer, and no clock event. So a floor of sales people
    reading the same customers costs one read each, while touchpoints pour in for others.

    What was recorded is learnt from the follower's look at the log, so an answer is never
    older than that look."""

    def __init__(self, most: int = MOST_ANSWERS, most_changed: int = MOST_CHANGED) -> None:
        self._most = most
        self._most_changed = most_changed
        self._kept: dict[str, tuple[Stamp, bytes]] = {}
        # The position of each customer's latest touchpoint or outcome seen in the log; every
        # customer changed at or before `_floor` (a clock event, or the start).
        self._changed: dict[str, int] = {}
        self._floor = 2**62  # until the follower's first look: nothing is known
        # The follower and the requests that record learn of changes; only they wait here.
        self._learning = threading.Lock()

    def get(self, customer_id: str) -> tuple[Stamp, bytes] | None:
        """The answer kept for a customer, and where it was read, if it still holds."""
        kept = self._kept.get(customer_id)
        if kept is None:
            return None
        changed = max(self._changed.get(customer_id, 0), self._floor)
        return kept if changed <= min(kept[0]) else None

    def put(self, customer_id: str, stamp: Stamp, body: bytes) -> None:
        if len(self._kept) >= self._most:
            self._kept = {}
        self._kept[customer_id] = (stamp, body)

    def seen(self, changes: Iterable[tuple[int, str | None]]) -> None:
        """What was recorded: (position, customer) of each touchpoint and outcome, (position,
        None) of each clock event; learnt from the log, or from this server's own writes at
        once (so that a page reading after its write never gets the answer from before)."""
        with self._learning:
            for position, customer_id in changes:
                if customer_id is None:
                    self._floor = max(self._floor, position)
                else:
                    self._changed[customer_id] = max(self._changed.get(customer_id, 0), position)
            if len(self._changed) > self._most_changed:
                # Forgotten who changed when: any of them may have, up to now.
                self._floor = max(self._floor, *self._changed.values())
                self._changed = {}

    def start_at(self, position: int) -> None:
        """Where the follower first looked at the log: whatever came before may have changed
        anyone."""
        with self._learning:
            self._floor = position if self._floor == 2**62 else max(self._floor, position)


class Follower:
    """Keeps the views current in a thread of its own: brings them up to date, then waits
    for the log to grow (or to be woken by a write of this server), until stopped. Waits out
    outages of the store; reports its health to `health`."""

    def __init__(self, settings: Settings, health: Health, answers: Answers, store: Outage) -> None:
        """`store` is the outage the requests keep too: one server, said once."""
        self._settings = settings
        self._health = health
        self._answers = answers
        self._seen: int | None = None  # how far the log was looked at for changes
        self._store = store
        self._woken = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="views follower", daemon=True)
        self._views_lag = PROJECTION_LAG.labels("journey")
        self._engine: Engine | None = None
        # Why the views cannot be kept up to date (built by another definition, say): every
        # read is refused with it, rather than answered from views that are not the journey's.
        self.refused: JourneyError | None = None

    def start(self) -> None:
        """Opens the store (so that a server that starts with it is ready at once) and starts
        following; a store that does not answer yet is waited for in the thread."""
        try:
            self._engine = build_engine(self._settings)
        except StoreUnavailable as exc:
            self._store.failed(exc)
        else:
            self._health.started()
        self._thread.start()

    def wake(self) -> None:
        """Something was recorded: look at once rather than at the next look."""
        self._woken.set()

    def stop(self) -> None:
        self._stop.set()
        self._woken.set()
        self._thread.join()

    def _run(self) -> None:
        engine = self._engine or self._store.attempt(
            lambda: build_engine(self._settings), self._stop
        )
        if engine is None:
            return
        self._health.started()
        try:
            while not self._stop.is_set():
                try:
                    moved = self._follow(engine)
                except UNAVAILABLE as exc:
                    self._stop.wait(self._store.failed(exc))
                    continue
                except JourneyError as exc:
                    # Views built by another definition or release, say: readers are refused
                    # with it until they are rebuilt; said once.
                    if self.refused is None or str(self.refused) != str(exc):
                        log.error("the views cannot be kept up to date: %s", exc)
                    self.refused = exc
                    self._stop.wait(LONGEST_WAIT_S)
                    continue
                self.refused = None
                self._store.succeeded()
                self._health.beat()
                if moved:
                    settle_young_objects()  # a live process: keep the collector off what it holds
                    continue
                self._woken.wait(LOOK_EVERY_S)
                self._woken.clear()
        finally:
            engine.close()

    def _follow(self, engine: Engine) -> bool:
        """One pass; whether anything moved on."""
        decided = 0
        if engine.settings.store == "sqlite":
            # Another process deciding (journey decide --follow) got there first: it stands.
            with suppress(DeciderConflict):
                decided = engine.decider.catch_up().pages
        lag = engine.runner.lag()
        self._views_lag.set(lag)
        if lag:
            # A long catch-up (the first after a large ingest) is work, not a stuck loop.
            engine.runner.catch_up(lambda done, total: self._health.beat())
            self._views_lag.set(engine.runner.lag())
        self._look(engine)
        return bool(lag or decided)

    def _look(self, engine: Engine) -> None:
        """Tells the answers whose journeys changed in what was recorded since the last look."""
        head = engine.log.head()
        if self._seen is None:
            # From where both the views and the decisions have got to: what came after may
            # change an answer read from now on.
            self._seen = min(engine.runner.position(), engine.decider.position())
            self._answers.start_at(self._seen)
        while self._seen < head:
            entries = engine.log.entries(self._seen, LOOK_PAGE, head, DECIDER_TOPICS)
            self._answers.seen((position, _whose(entry)) for position, entry in entries)
            if len(entries) < LOOK_PAGE:
                break
            self._seen = entries[-1][0]
        self._seen = head


def _whose(entry: Any) -> str | None:
    """The one customer whose answer an entry of the log may change; None: anyone's (a
    clock event; a people's decision, or a touchpoint with identifiers, may join or part
    people)."""
    found = cast(Mapping[str, Any], entry)
    if found.get("identifiers") or found.get("anonymous") or "decision" in found:
        return None
    customer_id: str | None = found.get("customer_id")
    return customer_id


def wait_until_read(engine: Engine, position: int, timeout: float, *, decided: bool) -> None:
    """Waits until the views (and with `decided`, the next actions) reflect the log up to
    `position`; raises ViewsBehind when they do not within `timeout` seconds. A position
    no write has returned yet is refused at once, not waited for."""
    head = engine.log.head()
    if position > head:
        raise BeyondTheLog(f"after: {position} is beyond the log, which ends at {head}")
    deadline = time.monotonic() + timeout
    try:
        engine.runner.wait_for(position, timeout)
        if decided:
            engine.decider.wait_for(position, max(deadline - time.monotonic(), 0.0))
    except TimeoutError as exc:
        raise ViewsBehind(str(exc)) from None
