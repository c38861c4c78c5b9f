"""The batched runner: pages through the notification log, folds each page, and commits the
page's view changes together with its log position. It resumes exactly where it stopped and
serves every store the same way: it reads the log through the store's `select_states`."""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from collections.abc import Callable, Container, Generator, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, cast

from eventsourcing.application import Application

from engine.bulk import collector_paused
from engine.definition import IdentityPolicy, JourneyDefinition
from engine.identity import Regrouped
from engine.journeys import stream_id
from engine.ledger import Partition
from engine.pipeline import from_another_process, from_other_processes
from engine.recording import Journeys
from engine.settings import DEFAULT_PAGE_SIZE
from projections.log import Folded, JourneyLog
from projections.machine import StageMachine
from projections.people import Decision, History, People, Sighting, sighting
from projections.position import Mark, Position, due_before
from projections.stepwise import MarkedPage, StepwiseFold
from projections.views import (
    JOURNEY_PROJECTION,
    DetailRows,
    JourneyView,
    PageChanges,
    ViewConflict,
    ViewOutOfDate,
)

Progress = Callable[[int, int], None]  # (events done so far, events to do)

_MAX_CACHED_POSITIONS = 100_000
_MAX_PARTITIONS = 8
_SHARE_HEADROOM = 1.25
# The log entries a rebuild reads first to tell whether it joins people under several keys
# (then its partitions are by person from the start, rather than after a false start).
_GLANCE = 1_000


def _usable_cores() -> int:
    """The cores this process may run on (a container's, not the host's, where it can tell)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class CatchUp:
    events: int
    position: int


# Changes whenever the views' tables or stored states change shape, so that views written by
# an earlier release are rebuilt rather than misread.
VIEW_FORMAT = 3


def definition_digest(definition: JourneyDefinition) -> str:
    """Identifies a journey definition's meaning and the views' format, so that a view built
    with another definition, or by another release, is noticed."""
    # Teams only group the views' figures when they are shown, and action rules only decide
    # what to do next: neither changes what the views store. The identity policy does, but
    # the default one gives the views of a log without anonymous touchpoints or merges that
    # an earlier release gave: it counts only when it is not the default.
    # What is personal changes only what the store seals, never what the views hold.
    unchanged = {"teams", "actions", "privacy"}
    if definition.identity == IdentityPolicy():
        unchanged.add("identity")
    meaning = definition.model_dump_json(by_alias=True, exclude=unchanged)
    text = f"{VIEW_FORMAT}:{meaning}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# A page of the log as `marked_pages(..., marked=False)` gives it: each touchpoint as it
# was read, for the fold to mark if it folds it.
FoldedPage = list[tuple[int, str | None, Mark | Folded, Sighting | Decision | None]]


def marked_pages(
    log: JourneyLog,
    machine: StageMachine,
    start: int,
    head: int,
    page_size: int,
    *,
    partition: Partition | None = None,
) -> Generator[MarkedPage, None, None]:
    """The log's touchpoints and clock events after `start` up to `head`, a page at a time,
    reduced to what the fold needs; with a partition, only its customers' touchpoints. An
    empty page closes the range when its last events are neither."""
    return cast(
        Generator[MarkedPage, None, None],
        _pages(log, machine, start, head, page_size, partition=partition, marked=True),
    )


def unmarked_pages(
    log: JourneyLog, machine: StageMachine, start: int, head: int, page_size: int
) -> Generator[FoldedPage, None, None]:
    """`marked_pages`, each touchpoint left as it was read: for a fold that places every
    touchpoint but folds only some (a rebuild's share, by person)."""
    return _pages(log, machine, start, head, page_size, partition=None, marked=False)


def _pages(
    log: JourneyLog,
    machine: StageMachine,
    start: int,
    head: int,
    page_size: int,
    *,
    partition: Partition | None,
    marked: bool,
) -> Generator[FoldedPage, None, None]:
    position = start
    mark: Callable[[Folded], Mark | Folded] = machine.mark_folded if marked else _as_read
    kinds = machine.definition.identity.kinds
    while position < head:
        page: FoldedPage = []
        add = page.append
        with collector_paused():
            for log_position, e in log.folded(position, page_size, stop=head, partition=partition):
                if e.decision:
                    add((log_position, None, Mark(e.occurred_at, "", ()), Decision.of(e)))
                elif e.event_id is None:
                    add((log_position, None, Mark(e.at, "", ()), None))
                elif e.identifiers or e.anonymous or kinds:
                    add((log_position, e.customer_id, mark(e), sighting(e, kinds)))
                else:
                    add((log_position, e.customer_id, mark(e), None))
        yield page
        if not page:
            return
        position = page[-1][0]


def _as_read(e: Folded) -> Folded:
    return e


def _marked_pages_of_store(
    store_env: dict[str, str], definition: JourneyDefinition, start: int, head: int, size: int
) -> Iterator[MarkedPage]:
    """`marked_pages`, in a second process reading the same store."""
    app = Journeys(store_env)
    try:
        yield from marked_pages(JourneyLog(app), StageMachine(definition), start, head, size)
    finally:
        app.close()


class ShareFolded(NamedTuple):
    """What a partition's fold reports once its share is written; or, `joined`, that it
    stopped: the log joins people recorded under several keys, whose touchpoints may sit in
    other partitions, so that partitions of the keys are not partitions of the people (the
    rebuild then partitions by person: see `Share.by_person`)."""

    clock: int | None
    ticked: int | None
    joined: bool = False


@dataclass(frozen=True)
class Share:
    """One partition's part of building views from the start of the log up to `head`."""

    store_env: dict[str, str]
    open_view: Callable[[], JourneyView]
    definition: JourneyDefinition
    partition: Partition
    head: int
    page_size: int
    max_cached: int | None = _MAX_CACHED_POSITIONS
    # Partitioned by person rather than by stream: the share reads the whole log and places
    # every touchpoint, so that each share knows who is who as the log says at each entry,
    # and folds and writes only its own people (`owned_by`).
    by_person: bool = False


def _joins_keys(page: MarkedPage | FoldedPage) -> bool:
    """Whether a page holds a touchpoint without a customer id, or a people's decision:
    what makes one person's touchpoints sit under several keys (`People.joins_keys`)."""
    for _, _, _, seen in page:
        if isinstance(seen, Decision) or (seen is not None and seen.customer_id is None):
            return True
    return False


class _Owned(dict[str, bool]):
    """Whether a person, or a key's row of who is who, is a share's in a rebuild partitioned
    by person: told by the id alone, so that every process agrees, and a person stays in one
    share for as long as their id names them. Each id is worked out once."""

    def __init__(self, partition: Partition) -> None:
        super().__init__()
        self._index, self._count = partition.index, partition.count

    def __missing__(self, name: str) -> bool:
        owned = self[name] = zlib.crc32(name.encode()) % self._count == self._index
        return owned


def owned_by(partition: Partition) -> Callable[[str], bool]:
    """`_Owned`, asked as a function."""
    return _Owned(partition).__getitem__


def _fold_share(share: Share) -> Iterator[int | ShareFolded]:
    """Folds one partition's customers into views that hold none of them yet. Yields the log
    position reached after each page, then `ShareFolded`. The share is written under a
    projection name of its own, without the journey's position and clocks, which the runner
    writes once every share is in."""
    definition, partition = share.definition, share.partition
    # The store's tables exist; making them in several processes at once could fail.
    app = Journeys({**share.store_env, "CREATE_TABLE": "no"})
    view = share.open_view()
    try:
        log = JourneyLog(app)
        owns = owned_by(partition) if share.by_person else None

        def due(at: int) -> list[str]:
            if owns is not None:
                return [c for c in view.due_before(at) if owns(c)]
            return [c for c in view.due_before(at) if partition.holds(stream_id(c))]

        projector = JourneyProjector(
            definition,
            view.load_positions,
            log,
            due,
            ticked=lambda: None,
            max_cached=share.max_cached,
            owns=owns,
        )
        projector.forget(view_is_empty=True)
        digest = definition_digest(definition)
        name = f"{JOURNEY_PROJECTION}:{partition.index + 1}/{partition.count}"
        held = _HeldBack(projector.severity, view_is_empty=True)

        def write_held() -> None:
            if held:
                changes = held.take()
                view.commit(name, replace(changes, clock=None, ticked=None), digest)
                projector.committed(changes)

        projector.before_forgetting = write_held
        clock: int | None = None
        with collector_paused():
            pages: Iterator[MarkedPage | FoldedPage]
            if share.by_person:
                pages = unmarked_pages(log, projector.machine, 0, share.head, share.page_size)
            else:
                pages = marked_pages(
                    log, projector.machine, 0, share.head, share.page_size, partition=partition
                )
            for page in pages:
                if not page:
                    break
                if not share.by_person and _joins_keys(page):
                    yield ShareFolded(None, None, joined=True)
                    return
                changes = projector.fold(page)
                if projector.people.joins_keys and not share.by_person:
                    yield ShareFolded(None, None, joined=True)
                    return
                held.add(changes)
                if changes.clock is not None:
                    clock = max(clock or 0, changes.clock)
                yield changes.position
            write_held()
        yield ShareFolded(clock, projector.ticked)
    finally:
        view.close()
        app.close()


class JourneyProjector:
    """Folds pages of recorded touchpoints and clock events into position changes, one
    position per person (see projections/people.py). No I/O of its own: positions it has
    not seen come from `load`, touchpoints to fold again from `history`, customers with
    something due by a time from `due`, and the last clock event's time from `ticked`."""

    def __init__(
        self,
        definition: JourneyDefinition,
        load: Callable[[list[str]], dict[str, Position]],
        history: History,
        due: Callable[[int], list[str]],
        ticked: Callable[[], int | None],
        *,
        max_cached: int | None = _MAX_CACHED_POSITIONS,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        """Keeps up to `max_cached` positions in memory between pages (None: all). With
        `owns`, `fold` places every touchpoint but folds, and reports, only the people it
        owns, and of who is who only the keys it owns (a rebuild's share, by person)."""
        self.machine = StageMachine(definition)
        self.people = People(definition.identity, history)
        self._max_cached = max_cached
        self.severity = {f.id: f.severity for f in definition.frictions}
        self._load = load
        self._due = due
        self._load_ticked = ticked
        self._owns = owns
        self._ticked: int | None = None
        self._ticked_known = False
        self._positions: dict[str, Position] = {}
        # Called before positions held in memory are dropped to make room: a runner that
        # holds changes back writes them then.
        self.before_forgetting: Callable[[], None] = lambda: None
        # On a run from an empty view, the customers whose positions have been written; any
        # other customer has none stored, so there is nothing to load. None: ask the view.
        self._written: set[str] | None = None

    def forget(self, *, view_is_empty: bool = False) -> None:
        self._positions.clear()
        self.people.forget()
        self._written = set() if view_is_empty else None
        self._ticked_known = False

    def fold(self, page: MarkedPage | FoldedPage) -> PageChanges:
        """Folds a page; touchpoints left unmarked (`unmarked_pages`) are marked if folded."""
        self._prepare(page)
        self.people.read_ahead(())  # streams are read once, at the end of the page
        positions = self._positions
        step, advance = self.machine.step, self.machine.advance
        place = self.people.place
        changed: dict[str, Position] = {}
        # People with a touchpoint that arrived late: their touchpoints from that one on
        # wait, and each such person is replayed once for the page, however many arrived
        # late (a bulk import of old call logs, say), from the position of the first.
        waiting: dict[str, tuple[int, list[Mark]]] = {}
        # People who became one, or were split: folded again from all their touchpoints at
        # the end of the page. The ids that name no one any more are removed.
        regrouped: set[str] = set()
        removed: set[str] = set()
        clock = 0
        ticked = self._ticked
        owns = self._owns
        mark_folded = self.machine.mark_folded
        for log_position, key, entry, seen in page:
            at = entry.occurred_at
            if key is None:
                if isinstance(seen, Decision):
                    moved = self.people.decide(log_position, seen)
                    if moved.changed or moved.gone:
                        self._regroup(moved, changed, waiting, regrouped, removed)
                elif ticked is None or at > ticked:
                    ticked = self._ticked = at
                    self._tick(ticked, changed, waiting.keys() | regrouped)
                continue
            clock = max(clock, at)
            # Only a key's entry has a sighting: decisions have none.
            person, moved = place(
                log_position, key, cast(Sighting | None, seen), entry.event_id or "", at
            )
            if moved.changed or moved.gone:
                self._regroup(moved, changed, waiting, regrouped, removed)
            if person in regrouped or (owns is not None and not owns(person)):
                continue
            mark = entry if isinstance(entry, Mark) else mark_folded(entry)
            if person in waiting:
                waiting[person][1].append(mark)
                continue
            position = positions.get(person) or self._position_of(person)
            # StageMachine.is_late, inlined: this loop runs for every event of a replay.
            last, horizon = position.last_at, position.horizon
            if (last is not None and at < last) or (horizon is not None and at < horizon):
                waiting[person] = (log_position, [mark])
                continue
            step(position, mark)
            if ticked is not None and ticked > at:
                advance(position, ticked)
            changed[person] = position
        end = page[-1][0] if page else 0
        self._replay(waiting, regrouped, end, ticked, changed)
        if self._written is not None:
            self._written.update(changed)
        aliases = self.people.take_aliases()
        if owns is not None:
            aliases = {key: person for key, person in aliases.items() if owns(key)}
        return PageChanges(
            list(changed.values()),
            clock or None,
            end,
            ticked=ticked,
            details=self._rows(changed.values()),
            removed=tuple(sorted(removed)),
            aliases=aliases,
        )

    def _position_of(self, person: str) -> Position:
        """A person not in memory: loaded, or new."""
        self._ensure({person})
        return self._positions[person]

    def _regroup(
        self,
        moved: Regrouped,
        changed: dict[str, Position],
        waiting: dict[str, tuple[int, list[Mark]]],
        regrouped: set[str],
        removed: set[str],
    ) -> None:
        """People became one, or one became several: the ids gone leave the views, and the
        people who changed are folded again at the end of the page (of those this projector
        owns)."""
        owns = self._owns
        for gone in moved.gone:
            self._positions.pop(gone, None)
            changed.pop(gone, None)
            waiting.pop(gone, None)
            regrouped.discard(gone)
            if owns is None or owns(gone):
                removed.add(gone)
        for person in moved.changed:
            removed.discard(person)
            waiting.pop(person, None)
            if owns is None or owns(person):
                regrouped.add(person)

    def _replay(
        self,
        waiting: dict[str, tuple[int, list[Mark]]],
        regrouped: set[str],
        end: int,
        ticked: int | None,
        changed: dict[str, Position],
    ) -> None:
        """Folds again the people with late touchpoints, and those regrouped."""
        if not waiting and not regrouped:
            return
        machine, positions, mark = self.machine, self._positions, self.machine.mark_folded
        for person, (since, marks) in waiting.items():
            earlier = self.people.touchpoints([person], before=since).get(person, [])
            replayed = machine.replay(person, [*map(mark, earlier), *marks], ticked)
            positions[person] = changed[person] = replayed
        if regrouped:
            found = self.people.touchpoints(sorted(regrouped), before=end + 1)
            for person in sorted(regrouped):
                marks = [mark(e) for e in found.get(person, [])]
                replayed = machine.replay(person, marks, ticked)
                positions[person] = changed[person] = replayed

    def stepwise(self, page: MarkedPage, *, after: int | None = None) -> StepwiseFold:
        """Folds `page` an entry at a time, for a reader that acts on the positions as of each
        touchpoint and each clock event (the decider): see `StepwiseFold`. `after`: the
        position the page was read after, every folded entry from there on in it."""
        persons = self._prepare(page, after)
        self.people.read_ahead(page, also=self._late_ones(page, persons))
        return StepwiseFold(self)

    def _late_ones(self, page: MarkedPage, persons: list[str | None]) -> set[str]:
        """The people with a touchpoint on the page earlier than one already folded, whose
        earlier touchpoints are read with the page's (once people are joined, any of them
        may be: this is only what is read ahead). `persons`: whose each entry is, as the
        page begins (`_prepare`)."""
        positions = self._positions
        latest: dict[str, int] = {}
        late = set()
        for (_, _, mark, _), person in zip(page, persons, strict=True):
            if person is None:
                continue
            seen = latest.get(person)
            if seen is None:
                position = positions.get(person)
                seen = 0 if position is None else max(position.last_at or 0, position.horizon or 0)
            if mark.occurred_at < seen:
                late.add(person)
            latest[person] = max(seen, mark.occurred_at)
        return late

    def _prepare(self, page: MarkedPage | FoldedPage, after: int | None = None) -> list[str | None]:
        """Knows the last clock event and who is who before the page, and holds the page's
        customers' positions in memory. Returns whose each entry is as the page begins
        (None for a clock event or a people's decision)."""
        positions = self._positions
        if not self._ticked_known:
            self._ticked = self._load_ticked()
            self._ticked_known = True
        if page:
            self.people.catch_up(page[0][0] - 1, read_after=after)
        person_of = self.people.person_of
        persons = [None if key is None else person_of(key) for _, key, _, _ in page]
        customers = {person for person in persons if person is not None}
        if self._owns is not None:
            customers = set(filter(self._owns, customers))
        if self._max_cached is not None and len(positions) + len(customers) > self._max_cached:
            self.before_forgetting()
            positions.clear()
        self._ensure(customers)
        return persons

    @property
    def max_cached(self) -> int | None:
        return self._max_cached

    @property
    def ticked(self) -> int | None:
        """The time of the last clock event folded."""
        return self._ticked

    @property
    def positions(self) -> dict[str, Position]:
        """The positions in memory, by customer."""
        return self._positions

    def positions_of(self, customers: Iterable[str]) -> dict[str, Position]:
        """These customers' positions, loading those not in memory."""
        wanted = set(customers)
        self._ensure(wanted)
        return {customer_id: self._positions[customer_id] for customer_id in wanted}

    def committed(self, changes: PageChanges) -> None:
        """The page's changes are stored: their frictions and moments are written."""
        for position in changes.positions:
            position.details_changed = 0

    def _ensure(self, customers: set[str]) -> None:
        """Puts these customers' positions in memory, loading those stored."""
        positions = self._positions
        # Not `customers - positions.keys()`: that copies every key held, for each page.
        missing = [customer_id for customer_id in customers if customer_id not in positions]
        if not missing:
            return
        written = self._written
        to_load = missing if written is None else [c for c in missing if c in written]
        loaded = self._load(to_load) if to_load else {}
        for customer_id in missing:
            positions[customer_id] = loaded.get(customer_id) or Position(customer_id)

    def set_ticked(self, at: int) -> None:
        self._ticked = at

    def tick(self, at: int, changed: dict[str, Position]) -> None:
        """Time has reached `at`: `changed` gets the customers it moved."""
        self._tick(at, changed, ())

    def note_written(self, changed: Iterable[str]) -> None:
        """These customers' positions are about to be written."""
        if self._written is not None:
            self._written.update(changed)

    def _tick(self, at: int, changed: dict[str, Position], skip: Container[str]) -> None:
        """Time has reached `at`: whatever falls due before it happens for every customer
        (but those in `skip`, folded again later)."""
        positions = self._positions
        due = due_before(positions, at)
        due.update(cid for cid in self._due(at) if cid not in positions)
        self._ensure(due)
        advance = self.machine.advance
        for customer_id in sorted(due):
            if customer_id not in skip and advance(positions[customer_id], at):
                changed[customer_id] = positions[customer_id]

    def _rows(self, changed: Iterable[Position]) -> DetailRows:
        """The rows of the frictions and moments views of customers whose details changed."""
        return DetailRows([p for p in changed if p.details_changed], self.severity)


class _HeldBack:
    """Changes of several pages, merged: each customer's latest position, and the furthest
    log position and clocks."""

    def __init__(self, severity: dict[str, int], *, view_is_empty: bool = False) -> None:
        """With `view_is_empty`, the views held none of the customers when the changes
        started: the first time a customer's changes are taken, nothing of theirs is stored."""
        self._severity = severity
        self._taken: set[str] | None = set() if view_is_empty else None
        self._positions: dict[str, Position] = {}
        self._removed: set[str] = set()
        self._aliases: dict[str, str | None] = {}
        self._clock: int | None = None
        self._ticked: int | None = None
        self._position = 0

    def __bool__(self) -> bool:
        return self._position > 0

    def add(self, changes: PageChanges) -> None:
        for gone in changes.removed:
            self._positions.pop(gone, None)
            self._removed.add(gone)
        self._removed.difference_update(p.customer_id for p in changes.positions)
        self._aliases.update(changes.aliases)
        self._positions.update((p.customer_id, p) for p in changes.positions)
        if changes.clock is not None:
            self._clock = max(self._clock or 0, changes.clock)
        self._ticked = changes.ticked if changes.ticked is not None else self._ticked
        self._position = changes.position

    def take(self) -> PageChanges:
        positions = list(self._positions.values())
        taken = self._taken
        first_write = taken is not None and taken.isdisjoint(self._positions) and not self._removed
        if taken is not None:
            taken.update(self._positions)
        changes = PageChanges(
            positions,
            self._clock,
            self._position,
            ticked=self._ticked,
            details=DetailRows([p for p in positions if p.details_changed], self._severity),
            first_write=first_write,
            removed=tuple(sorted(self._removed)),
            aliases=self._aliases,
        )
        self._positions, self._removed, self._aliases = {}, set(), {}
        self._clock, self._position = None, 0
        return changes


class ProjectionRunner:
    """Keeps the journey views up to date with an application's log."""

    def __init__(
        self,
        app: Application[Any],
        view: JourneyView,
        definition: JourneyDefinition,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        store_env: Mapping[str, str] | None = None,
        parallel_above_events: int = 200_000,
        partitions: int | None = None,
    ) -> None:
        """With `store_env`, a catch-up longer than `parallel_above_events` reads and marks
        the log in a second process while this one folds and commits; a build of views that
        no reader sees yet, from the start of the log, folds in `partitions` processes (by
        default one per core), each writing its share of the customers."""
        self._app = app
        self._view = view
        self._definition = definition
        self._digest = definition_digest(definition)
        self._store_env = store_env
        self._parallel_above_events = parallel_above_events
        self._partitions = partitions or min(_usable_cores(), _MAX_PARTITIONS)
        self._committed = -1  # the last position this runner wrote; -1: none yet
        self._page_size = page_size
        self._glance = _GLANCE
        self._log = JourneyLog(app)
        self._projector = JourneyProjector(
            definition, view.load_positions, self._log, view.due_before, view.ticked
        )

    def position(self) -> int:
        return self._view.tracking(JOURNEY_PROJECTION)[0]

    def wait_for(self, position: int, timeout: float) -> int:
        """Waits until the views, brought up to date by another runner (in another process, or
        another thread with views of its own), reflect the log up to `position`; returns where
        they are, or raises TimeoutError after `timeout` seconds."""
        if not self._view.wait_for(JOURNEY_PROJECTION, position, timeout):
            raise TimeoutError(
                f"the views are at {self.position()}, not yet at {position}, after {timeout:g} s"
            )
        return self.position()

    def lag(self) -> int:
        return max(0, self._log.head() - self.position())

    def catch_up(self, progress: Progress | None = None, *, unseen: bool = False) -> CatchUp:
        """Processes everything recorded so far, one page per transaction.

        With `unseen` (views no reader looks at yet, such as a rebuild beside the live ones),
        changes are held back and written when the positions in memory must make room and
        at the end, each with the position they reach: a customer is written about once
        instead of once per page. A crash loses what was held back, which a rebuild starts
        again anyway."""
        start, digest = self._view.tracking(JOURNEY_PROJECTION)
        if start and digest != self._digest:
            raise ViewOutOfDate(
                "the views were built with another journey definition or by another release "
                "of the engine; rebuild them (journey rebuild) to use this one"
            )
        if start == 0:
            self._projector.forget(view_is_empty=True)
        elif start != self._committed:
            # Another runner moved the view on since this one last wrote it.
            self._projector.forget()
        head = self._log.head()
        large = self._store_env is not None and head - start > self._parallel_above_events
        if large and unseen and start == 0 and self._partitions > 1:
            opener = self._view.opener()
            built = self._fold_in_partitions(opener, head, progress) if opener else None
            if built is not None:
                return built
        if large:
            pages = from_another_process(
                _marked_pages_of_store,
                dict(self._store_env or {}),
                self._definition,
                start,
                head,
                self._page_size,
                name="log reader",
            )
        else:
            pages = marked_pages(self._log, self._projector.machine, start, head, self._page_size)
        held = _HeldBack(self._projector.severity, view_is_empty=start == 0)

        def write_held() -> None:
            if held:
                self._write(held.take())

        if unseen:
            self._projector.before_forgetting = write_held
        position = start
        # Folding and committing allocate many objects and make no reference cycles; with the
        # collector on, each page would rescan every position held in memory.
        try:
            with closing(pages), collector_paused():
                for page in pages:
                    changes = self._projector.fold(page) if page else PageChanges([], None, head)
                    if unseen:
                        held.add(changes)
                    elif not self._write(changes):
                        break
                    position = changes.position
                    if progress is not None:
                        progress(position - start, head - start)
                else:
                    write_held()
                    return CatchUp(position - start, position)
        finally:
            self._projector.before_forgetting = lambda: None
        done = self.catch_up(progress)
        return CatchUp(done.position - start, done.position)

    def _fold_in_partitions(
        self, open_view: Callable[[], JourneyView], head: int, progress: Progress | None
    ) -> CatchUp | None:
        """Builds empty views from the start of the log up to `head`, one process per
        partition of the customers, then writes the journey's position and clocks. Each
        share reads only its customers' streams, unless the log joins people recorded under
        several keys (a touchpoint without a customer id, a merge), whose touchpoints may sit
        in several shares: then it starts again, partitioned by person (`Share.by_person`),
        or starts so at once if the log's first entries already join people."""
        first = marked_pages(self._log, self._projector.machine, 0, head, self._glance)
        glance = next(first, [])
        first.close()
        built = None
        if not _joins_keys(glance):
            built = self._fold_shares(open_view, head, progress, by_person=False)
        if built is None:  # the log joins people under several keys
            built = self._fold_shares(open_view, head, progress, by_person=True)
        return built

    def _fold_shares(
        self,
        open_view: Callable[[], JourneyView],
        head: int,
        progress: Progress | None,
        *,
        by_person: bool,
    ) -> CatchUp | None:
        """`_fold_in_partitions` partitioned one way; None, with the views emptied, if the
        shares were partitioned by stream and the log joins people under several keys."""
        count = self._partitions
        # What a build that stopped may have left (the journey's position stays 0 until the
        # end) goes first: each share takes the views as holding none of its customers.
        self._view.reset()
        cached = self._projector.max_cached
        if cached is not None:
            # Together the shares keep about as many positions as one process would, with room
            # for one share holding a few more customers than the others.
            cached = math.ceil(cached * _SHARE_HEADROOM / count)
        shares = [
            (
                Share(
                    dict(self._store_env or {}),
                    open_view,
                    self._definition,
                    Partition(index, count),
                    head,
                    self._page_size,
                    cached,
                    by_person,
                ),
            )
            for index in range(count)
        ]
        reached = [0] * count
        clock: int | None = None
        ticked: int | None = None
        folded = from_other_processes(_fold_share, shares, name="partition fold")
        joined = False
        with closing(folded):  # closing stops the other partitions' processes
            for which, item in folded:
                if isinstance(item, ShareFolded) and item.joined:
                    joined = True
                    break
                if isinstance(item, ShareFolded):
                    reached[which] = head
                    if item.clock is not None:
                        clock = max(clock or 0, item.clock)
                    if item.ticked is not None:
                        ticked = max(ticked or 0, item.ticked)
                else:
                    reached[which] = item
                if progress is not None:
                    progress(sum(reached) // count, head)
        if joined:
            self._view.reset()
            return None
        if not self._write(PageChanges([], clock, head, ticked=ticked)):
            return self.catch_up(progress)
        self._projector.forget()  # the positions are in the views, not in this process
        return CatchUp(head, head)

    def _write(self, changes: PageChanges) -> bool:
        """Commits changes with their position; False if another runner got there first."""
        try:
            self._view.commit(JOURNEY_PROJECTION, changes, self._digest)
        except ViewConflict:
            # Another runner got there first: its work stands, ours is dropped.
            self._projector.forget()
            return False
        except BaseException:
            # What was folded was never stored: do not build on it.
            self._projector.forget()
            raise
        self._projector.committed(changes)
        self._committed = changes.position
        return True

    def rebuild(self, progress: Progress | None = None) -> CatchUp:
        """Empties the views and builds them again from the start of the log."""
        self._view.reset()
        return self.catch_up(progress)
