"""What a page of the log decides, in memory: each customer decided at the journey time of
each of their touchpoints, outcomes and clock events, in log order, as if the log were read a
line at a time. Nothing here writes: the decider commits what a page decided, and a backtest
compares it with what the decider logged.

What is not in memory comes from an `ActionMemory`: the decider's stored action states and
owners' daily counts, or, for a replay from the start of the log that keeps everyone in
memory, nothing at all (`NOTHING_STORED`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from consumers.action_store import DeciderPage, StatusChange
from consumers.deciding import DAY_MS, ActionState, Deciding, Referrer
from engine.actions import ActionOutcome
from engine.definition import JourneyDefinition
from engine.identity import Regrouped
from projections.log import DeciderEntry
from projections.people import Decision, Sighting, sighting
from projections.position import Mark, Position
from projections.runner import JourneyProjector
from projections.stepwise import MarkedPage, StepwiseFold


class ActionMemory(Protocol):
    """What the deciding of earlier pages left stored (`ActionStore` is one)."""

    def load_states(self, customer_ids: Iterable[str]) -> dict[str, ActionState]: ...

    def due_times(self, action_ids: Iterable[str]) -> dict[str, int]: ...

    def owner_counts(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]: ...

    def retry_before(self, at: int) -> list[str]: ...


class NothingStored:
    """The memory of a replay from the start of the log: nothing was stored before it."""

    def load_states(self, customer_ids: Iterable[str]) -> dict[str, ActionState]:
        return {}

    def due_times(self, action_ids: Iterable[str]) -> dict[str, int]:
        return {}

    def owner_counts(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {key: 0 for key in keys}

    def retry_before(self, at: int) -> list[str]:
        return []


NOTHING_STORED = NothingStored()


class PageDecider:
    def __init__(
        self,
        definition: JourneyDefinition,
        projector: JourneyProjector,
        memory: ActionMemory,
        *,
        max_cached: int | None,
    ) -> None:
        """Keeps up to `max_cached` customers' action states in memory between pages (None:
        all); `projector` folds the positions the actions are decided from."""
        self.deciding = Deciding(definition)
        self._projector = projector
        self._memory = memory
        self._max_cached = max_cached
        self._states: dict[str, ActionState] = {}
        self._owner_days: dict[tuple[str, int], int] = {}
        self._owner_day = _OwnerDay(self._owner_days, memory, 0)  # the last decision's day
        self._ticked: int | None = None  # the page's last clock event's time, as folded

    @property
    def states(self) -> dict[str, ActionState]:
        """The action states in memory, by customer."""
        return self._states

    @property
    def owner_days(self) -> dict[tuple[str, int], int]:
        """New actions per (owner, day) counted so far, of those in memory."""
        return self._owner_days

    def forget(self) -> None:
        self._projector.forget()
        self._states.clear()
        self._owner_days.clear()

    def decide(self, page: DeciderPage, entries: list[tuple[int, DeciderEntry]]) -> StepwiseFold:
        """Decides on one page of entries as if the log had been read an entry at a time:
        each customer at the journey time of each of their touchpoints and outcomes, and at
        each clock event everyone time moved or who has something due. So the actions do
        not depend on where pages begin and end. `page` gets the customers, decisions and
        status changes; the fold returned says what the page changed in the positions."""
        marked = self._marked(entries)
        fold = self._projector.stepwise(marked, after=page.start)
        self._ticked = fold.ticked
        people = self._projector.people
        positions = self._open(page, marked, entries)
        marks = iter(marked)
        for log_position, entry in entries:
            if entry.action_id is not None:
                outcome = ActionOutcome(
                    entry.event_id or "",
                    entry.action_id,
                    entry.customer_id,
                    entry.status,
                    entry.reason,
                    entry.snoozed_until,
                    entry.rep_id,
                    entry.occurred_at,
                )
                person = people.person_of(outcome.customer_id)
                self._join(person, page)
                self._apply(outcome, person, page)
                self._decide_for(person, page, log_position)
                continue
            _, key, mark, seen = next(marks)
            if isinstance(seen, Decision):
                regrouped = fold.decision(log_position, seen)
                # Not `if regrouped`: compiled, a named tuple is true whenever it has fields.
                if regrouped.changed or regrouped.gone:
                    self._regroup(regrouped, page, log_position)
                    for person in regrouped.changed:
                        self._decide_for(person, page, log_position)
                continue
            if key is None:
                moved = fold.clock(mark.occurred_at)
                ticked = self._ticked = fold.ticked
                due = self._retry_before(ticked) if ticked == mark.occurred_at else set()
                for moved_id in sorted(due.union(moved)):
                    self._decide_for(moved_id, page, log_position)
                continue
            person, position, regrouped = fold.touchpoint(log_position, key, mark, seen)
            if regrouped.changed or regrouped.gone:
                self._regroup(regrouped, page, log_position)
            positions[person] = position
            _, state = self._join(person, page)
            self.deciding.observe(state, mark, entry.attributes)
            self._decide_with(position, state, page, log_position)
        return fold

    def _marked(self, entries: list[tuple[int, DeciderEntry]]) -> MarkedPage:
        """What the fold keeps of the page's touchpoints, clock events and people's
        decisions, in log order (outcomes are not folded)."""
        machine = self._projector.machine
        kinds = machine.definition.identity.kinds
        marked: MarkedPage = []
        for log_position, entry in entries:
            if entry.action_id is not None:
                continue  # an outcome: a touchpoint has an event id too, but no action id
            if entry.event_id is not None:
                mark = machine.mark_folded(entry)
                marked.append((log_position, entry.customer_id, mark, sighting(entry, kinds)))
            elif entry.decision:
                decision = Decision.of(entry)
                marked.append((log_position, None, Mark(decision.at, "", ()), decision))
            else:
                marked.append((log_position, None, Mark(entry.at, "", ()), None))
        return marked

    def _open(
        self, page: DeciderPage, marked: MarkedPage, entries: list[tuple[int, DeciderEntry]]
    ) -> dict[str, Position]:
        """Gives the page its people's states and positions, read in one go; returns the
        positions. A touchpoint without a customer id is placed first (its key need not name
        anyone), and its person joins the page then."""
        people = self._projector.people
        customers = {
            people.person_of(key)
            for _, key, _, seen in marked
            if key is not None and not (isinstance(seen, Sighting) and seen.customer_id is None)
        }
        customers.update(
            people.person_of(entry.customer_id)
            for _, entry in entries
            if entry.action_id is not None
        )
        page.states = self._states_of(sorted(customers), make_room=True)
        # The fold holds the positions of the page's touchpoints now; only a customer with
        # nothing but an outcome on it may still have to be loaded.
        held = self._projector.positions
        positions = page.positions = {c: held[c] for c in customers if c in held}
        if len(positions) < len(customers):
            positions.update(self._projector.positions_of(customers - positions.keys()))
        return positions

    def _decide_for(self, customer_id: str, page: DeciderPage, log_position: int) -> None:
        """Decides for one customer as of the log entry at `log_position`."""
        position, state = self._join(customer_id, page)
        self._decide_with(position, state, page, log_position)

    def _decide_with(
        self, position: Position, state: ActionState, page: DeciderPage, log_position: int
    ) -> None:
        """Decides for a customer of the page, from their position and state; if someone
        they were referred by gets a thank-you for it, for that customer too."""
        referrer = self._referrer(state, page)
        self._decide(position, state, page, log_position=log_position, referrer=referrer)
        if referrer is not None and self.deciding.note_referred(
            page.states[referrer.customer_id], position
        ):
            since = position.last_at or 0
            self._decide(
                page.positions[referrer.customer_id],
                page.states[referrer.customer_id],
                page,
                log_position=log_position,
                at=since,
            )

    def _join(self, customer_id: str, page: DeciderPage) -> tuple[Position, ActionState]:
        """Adds a customer who was not on the page (time moved them, or they referred someone)
        to it, to be written with it."""
        if customer_id not in page.positions:
            page.positions[customer_id] = self._position_of(customer_id)
        if customer_id not in page.states:
            page.states.update(self._states_of([customer_id]))
        return page.positions[customer_id], page.states[customer_id]

    def _decide(
        self,
        position: Position,
        state: ActionState,
        page: DeciderPage,
        *,
        log_position: int,
        referrer: Referrer | None = None,
        at: int = 0,
    ) -> None:
        """Decides for one customer at their time (or `at`, if later), as of the log entry at
        `log_position`, adding the decisions and the actions ended to the page."""
        now = max(position.last_at or 0, self._ticked or 0, at)
        day = now // DAY_MS
        if self._owner_day.day != day:
            self._owner_day = _OwnerDay(self._owner_days, self._memory, day)
        result = self.deciding.decide(position, state, now, self._owner_day, referrer)
        # An action ends before whatever replaced it is decided, so a sales tool hears of it
        # first.
        for ended in result.ended:
            page.changes.append(StatusChange(ended.action_id, ended.status, ended.at, ended.why))
            page.happened.append((True, len(page.ended)))
            page.ended.append((position.customer_id, ended))
        for decision in result.decisions:
            key = (decision.candidate.owner, day)
            self._owner_days[key] = page.owner_days[key] = self._owner_days.get(key, 0) + 1
            page.happened.append((False, len(page.decided)))
            page.decided.append((position.customer_id, decision, log_position))

    def _position_of(self, customer_id: str) -> Position:
        """A customer's position, from those the fold holds when it has it (a clock event
        moves thousands of customers at once), else loaded."""
        held = self._projector.positions
        if customer_id in held:
            return held[customer_id]
        return self._projector.positions_of([customer_id])[customer_id]

    def _referrer(self, state: ActionState, page: DeciderPage) -> Referrer | None:
        """The customer who referred this one, if the engine knows them, as of now; they join
        the page, to be written with it."""
        if state.context.referral is None:
            return None
        referrer_id = state.context.referral[1]
        if referrer_id not in page.positions:
            position = self._position_of(referrer_id)
            if position.first_at is None:
                return None  # nobody the engine knows, at least not yet
        position, referrer = self._join(referrer_id, page)
        if position.first_at is None:
            return None
        place = referrer.context.place[1] if referrer.context.place else None
        return Referrer(referrer_id, place, position.rep, position.stage)

    def _regroup(self, regrouped: Regrouped, page: DeciderPage, log_position: int) -> None:
        """People became one, or one became several, at this entry: the actions of ids that
        name no one any more end (and the sales tool is told), and everyone involved keeps
        what all of them were decided, so no trigger gets a second action."""
        involved = sorted({*regrouped.gone, *regrouped.changed})
        missing = [c for c in involved if c not in page.states]
        page.states.update(self._states_of(missing))
        now = max(
            self._projector.ticked or 0,
            *(page.positions[c].last_at or 0 for c in regrouped.changed if c in page.positions),
            0,
        )
        states = {c: page.states[c] for c in involved}
        for customer_id, ended in self.deciding.joined(states, regrouped.gone, now):
            page.changes.append(StatusChange(ended.action_id, ended.status, ended.at, ended.why))
            page.happened.append((True, len(page.ended)))
            page.ended.append((customer_id, ended))
        positions = self._projector.positions
        for gone in regrouped.gone:
            # Its row stays, with nothing due: no clock event decides for it again.
            page.positions[gone] = Position(gone)
        for person in regrouped.changed:
            page.positions[person] = positions[person]
        del log_position  # the decisions that follow are made at it, by the caller

    def _apply(self, outcome: ActionOutcome, person: str, page: DeciderPage) -> None:
        state = page.states[person]
        if outcome.action_id not in state.decided:
            # Only a backtest meets this: its rules never decided the action reported on (the
            # decider's own outcomes name actions it decided before them).
            return
        was_open = self.deciding.apply_outcome(state, outcome) is not None
        if not was_open and outcome.status in ("accepted", "snoozed"):
            return  # the journey ended it already: taking it up late does not reopen it
        page.changes.append(
            StatusChange(
                outcome.action_id,
                outcome.status,
                outcome.occurred_at,
                outcome.reason,
                outcome.snoozed_until,
            )
        )

    def _states_of(
        self, customers: list[str], *, make_room: bool = False
    ) -> dict[str, ActionState]:
        """These customers' action states, loading those not in memory. With `make_room`, at
        the start of a page, the states held may be dropped first to stay within bounds."""
        states = self._states
        if (
            make_room
            and self._max_cached is not None
            and len(states) + len(customers) > self._max_cached
        ):
            states.clear()
        missing = [c for c in customers if c not in states]
        if missing:
            loaded = self._memory.load_states(missing)
            undated = [
                action.action_id
                for state in loaded.values()
                for action in state.open.values()
                if action.expires_at is None
            ]
            if undated:  # decided by a release whose actions did not expire
                due = self._memory.due_times(undated)
                for state in loaded.values():
                    self.deciding.date_expiries(state, due)
            for customer_id in missing:
                states[customer_id] = loaded.get(customer_id) or ActionState(customer_id)
        return {customer_id: states[customer_id] for customer_id in customers}

    def _retry_before(self, at: int) -> set[str]:
        """The customers with something due by `at`: held-back candidates, open actions that
        expire. What is held in memory is newer than what is stored."""
        states = self._states
        found = {c for c, s in states.items() if s.retry_at is not None and s.retry_at <= at}
        found.update(c for c in self._memory.retry_before(at) if c not in states)
        return found


class _OwnerDay(Mapping[str, int]):
    """Each owner's count of new actions on one day, read only for the owners asked about:
    a customer is decided at every touchpoint, and most of the time nothing is proposed."""

    def __init__(self, counts: dict[tuple[str, int], int], memory: ActionMemory, day: int) -> None:
        """`counts` are those in memory, by (owner, day); `memory` has the others."""
        self._counts = counts
        self._memory = memory
        self.day = day

    def __getitem__(self, owner: str) -> int:
        """How many actions the owner was given on the day, so far."""
        key = (owner, self.day)
        if key not in self._counts:
            self._counts.update(self._memory.owner_counts([key]))
        return self._counts.get(key, 0)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the owners of a day are not listed, only looked up")

    def __len__(self) -> int:
        raise TypeError("the owners of a day are not counted, only looked up")
