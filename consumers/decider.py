"""The decider: follows the journey log, folds each page into journey positions and action
states, decides next-best-actions, and commits the page's decision events, its state, its
outbox rows and its log position in one transaction.

It is a process in the event-sourcing sense: its input is the log (touchpoints, clock events,
outcomes reported by sales people), its output is decision events, and its position is
tracked with them, so a crash at any point leaves either the whole page or none of it. Every
time it reads is the journey's (touchpoint times and clock events), never the wall clock,
so deciding again from the same position gives the same actions with the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from consumers.action_store import ActionStore, DeciderPage, StatusChange
from consumers.deciding import DAY_MS, ActionState, Deciding, Decision, Referrer
from engine.actions import ActionOutcome, CustomerActions
from engine.bulk import collector_paused
from engine.definition import JourneyDefinition
from engine.errors import JourneyError
from engine.journeys import TouchpointState
from engine.recording import Journeys, StreamEvent
from engine.settings import DEFAULT_DECIDER_PAGE_SIZE, DEFAULT_PAGE_SIZE
from projections.log import DECIDER_TOPICS, JourneyLog
from projections.position import Mark, Position
from projections.runner import JourneyProjector, MarkedPage, definition_digest, marked_pages
from schemas.codec import wire_contract

# How many customers' positions and action states stay in memory between pages.
_MAX_CACHED = 50_000


class DeciderOutOfDate(JourneyError):
    """The decider's journeys were folded under another journey definition."""


@dataclass(frozen=True, slots=True)
class Decided:
    """What one catch-up did."""

    pages: int
    decisions: int
    position: int
    ended: int = 0  # open actions the journey ended (superseded, expired, cancelled)

    @property
    def published(self) -> int:
        """How many records it left in the outbox."""
        return self.decisions + self.ended


class Decider:
    def __init__(
        self,
        journeys: Journeys,
        store: ActionStore,
        definition: JourneyDefinition,
        *,
        page_size: int = DEFAULT_DECIDER_PAGE_SIZE,
    ) -> None:
        self._journeys = journeys
        self._store = store
        self._log = JourneyLog(journeys)
        self._page_size = page_size
        self._deciding = Deciding(definition)
        self._projector = JourneyProjector(
            definition,
            store.load_positions,
            self._log.folded_streams,
            store.due_before,
            store.ticked,
            max_cached=_MAX_CACHED,
        )
        self._states: dict[str, ActionState] = {}
        self._owner_days: dict[tuple[str, int], int] = {}
        self._position: int | None = None  # where this decider's memory is; None: unknown
        self._encode = wire_contract("NextAction").encode
        self._definition = definition
        self._digest = definition_digest(definition)

    def position(self) -> int:
        return self._store.tracking()[0]

    def wait_for(self, position: int, timeout: float) -> int:
        """Waits until another decider (in another process, or another thread with an engine of
        its own) has decided on the log up to `position`; returns where it is, or raises
        TimeoutError after `timeout` seconds."""
        if not self._store.wait_for(position, timeout):
            raise TimeoutError(
                f"the decider is at {self.position()}, not yet at {position}, after {timeout:g} s"
            )
        return self.position()

    def catch_up(self, *, max_pages: int | None = None) -> Decided:
        """Decides on everything recorded so far, a page per transaction."""
        pages = decisions = ended = 0
        position = self.position()
        if position != self._position:
            self._forget()  # another decider moved on, or this one never ran
            folded_with = self._store.definition()
            if position and folded_with != self._digest:
                raise DeciderOutOfDate(
                    "the decider's journeys were folded under another journey definition; "
                    "fold them again under this one (journey decide --refold)"
                )
        while max_pages is None or pages < max_pages:
            entries = self._log.entries(position, self._page_size, topics=DECIDER_TOPICS)
            if not entries:
                break
            try:
                # A page makes no reference cycles; with the collector on, it would rescan
                # every position and state held in memory, again and again.
                with collector_paused():
                    page = self._decide_page(position, entries)
            except BaseException:
                self._forget()
                raise
            pages += 1
            decisions += len(page.actions)
            ended += len(page.ended)
            position = entries[-1][0]
        return Decided(pages, decisions, position, ended)

    def refold(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Folds the journeys the decider keeps again, under this definition, up to where it
        has decided; decides nothing. Returns the number of customers folded."""
        end = self.position()
        projector = JourneyProjector(
            self._definition,
            lambda _: {},
            self._log.folded_streams,
            lambda _: [],
            lambda: None,
            max_cached=None,
        )
        projector.forget(view_is_empty=True)
        pages = marked_pages(self._log, projector.machine, 0, end, DEFAULT_PAGE_SIZE)
        with collector_paused():
            for page in pages:
                if page:
                    projector.fold(page)
                    if progress is not None:
                        progress(page[-1][0], end)
        self._store.refolded(projector.positions.values(), self._digest)
        self._forget()
        return len(projector.positions)

    def _forget(self) -> None:
        self._projector.forget()
        self._states.clear()
        self._owner_days.clear()
        self._position = None

    def _decide_page(self, start: int, entries: list[tuple[int, Any]]) -> DeciderPage:
        """Decides on one page as if the log had been read an entry at a time: each customer
        at the journey time of each of their touchpoints and outcomes, and at each clock
        event everyone time moved or who has something due. So the actions do not depend on
        where pages begin and end."""
        machine = self._projector.machine
        marked: MarkedPage = []
        customers: set[str] = set()
        for log_position, entry in entries:
            if "action_id" in entry:
                customers.add(entry["customer_id"])
            elif "event_id" in entry:
                mark = machine.mark(cast(TouchpointState, entry))
                marked.append((log_position, entry["customer_id"], mark))
                customers.add(entry["customer_id"])
            else:
                marked.append((log_position, None, Mark(entry["at"], "", ())))
        fold = self._projector.stepwise(marked)
        page = DeciderPage(start, entries[-1][0], None, self._digest)
        page.states = self._states_of(sorted(customers), make_room=True)
        page.positions = self._projector.positions_of(customers)
        events: list[StreamEvent] = []
        marks = iter(marked)
        for log_position, entry in entries:
            if "action_id" in entry:
                outcome = ActionOutcome(**{k: entry[k] for k in ActionOutcome._fields})
                self._apply(outcome, page.states, page)
                self._decide_for(outcome.customer_id, page, events, log_position)
                continue
            _, customer_id, mark = next(marks)
            if customer_id is None:
                moved = fold.clock(mark.occurred_at)
                ticked = self._projector.ticked
                due = self._retry_before(ticked) if ticked == mark.occurred_at else set()
                for moved_id in sorted(due.union(moved)):
                    self._decide_for(moved_id, page, events, log_position)
                continue
            page.positions[customer_id] = fold.touchpoint(customer_id, mark)
            self._deciding.observe(page.states[customer_id], mark, entry["attributes"])
            self._decide_for(customer_id, page, events, log_position)
        changes = fold.changes(page.position)
        page.ticked = changes.ticked
        self._publish_ended(page, events)
        self._journeys.append(events, also=[self._store.write(page)])
        self._projector.committed(changes)
        self._position = page.position
        return page

    def _decide_for(
        self, customer_id: str, page: DeciderPage, events: list[StreamEvent], log_position: int
    ) -> None:
        """Decides for one customer as of the log entry at `log_position`; if someone they
        were referred by gets a thank-you for it, for that customer too."""
        position, state = self._join(customer_id, page)
        referrer = self._referrer(state, page)
        self._decide(position, state, page, events, log_position=log_position, referrer=referrer)
        if referrer is not None and self._deciding.note_referred(
            page.states[referrer.customer_id], position
        ):
            since = position.last_at or 0
            self._decide(
                page.positions[referrer.customer_id],
                page.states[referrer.customer_id],
                page,
                events,
                log_position=log_position,
                at=since,
            )

    def _join(self, customer_id: str, page: DeciderPage) -> tuple[Position, ActionState]:
        """Adds a customer who was not on the page (time moved them, or they referred someone)
        to it, to be written with it."""
        if customer_id not in page.positions:
            page.positions.update(self._projector.positions_of([customer_id]))
        if customer_id not in page.states:
            page.states.update(self._states_of([customer_id]))
        return page.positions[customer_id], page.states[customer_id]

    def _decide(
        self,
        position: Position,
        state: ActionState,
        page: DeciderPage,
        events: list[StreamEvent],
        *,
        log_position: int,
        referrer: Referrer | None = None,
        at: int = 0,
    ) -> list[Decision]:
        """Decides for one customer at their time (or `at`, if later), as of the log entry at
        `log_position`, adding the decisions to the page and their events to `events`."""
        now = max(position.last_at or 0, self._projector.ticked or 0, at)
        day = now // DAY_MS
        result = self._deciding.decide(position, state, now, _OwnerDay(self, day), referrer)
        for ended in result.ended:
            page.changes.append(StatusChange(ended.action_id, ended.status, ended.at, ended.why))
            page.ended.append((position.customer_id, ended))
        for decision in result.decisions:
            c = decision.candidate
            key = (c.owner, day)
            self._owner_days[key] = page.owner_days[key] = self._owner_days.get(key, 0) + 1
            record = decision.record(position.customer_id)
            explanation = decision.explanation(self._deciding.policy)
            page.actions.append(
                (
                    c.action_id,
                    position.customer_id,
                    c.owner,
                    c.action_type,
                    c.channel,
                    c.rule,
                    c.priority,
                    "open",
                    decision.decided_at,
                    c.due_at,
                    c.reason,
                    None,
                    None,
                    None,
                    log_position,
                    orjson.dumps(record).decode(),
                    orjson.dumps(explanation).decode(),
                )
            )
            page.outbox.append((c.action_id, "open", c.owner, self._encode(record)))
            events.append(
                StreamEvent(
                    f"action:{c.action_id}",
                    position.customer_id,
                    CustomerActions,
                    CustomerActions.Decided,
                    {
                        "action_id": c.action_id,
                        "customer_id": position.customer_id,
                        "action": record,
                        "explanation": explanation,
                    },
                )
            )
        return result.decisions

    def _referrer(self, state: ActionState, page: DeciderPage) -> Referrer | None:
        """The customer who referred this one, if the engine knows them, as of now; they join
        the page, to be written with it."""
        if state.context.referral is None:
            return None
        referrer_id = state.context.referral[1]
        if referrer_id not in page.positions:
            position = self._projector.positions_of([referrer_id])[referrer_id]
            if position.first_at is None:
                return None  # nobody the engine knows, at least not yet
        position, referrer = self._join(referrer_id, page)
        if position.first_at is None:
            return None
        place = referrer.context.place[1] if referrer.context.place else None
        return Referrer(referrer_id, place, position.rep, position.stage)

    def _publish_ended(self, page: DeciderPage, events: list[StreamEvent]) -> None:
        """Each action the journey ended on this page: an event, and its record again, with
        its status, for the sales tools, which then drop it."""
        if not page.ended:
            return
        on_page = {row[0]: orjson.loads(row[15]) for row in page.actions}
        records = self._store.records(
            e.action_id for _, e in page.ended if e.action_id not in on_page
        )
        # A sales tool hears that an action ended before it hears of what replaced it.
        earlier: list[tuple[str, str, str, bytes]] = []
        for customer_id, ended in page.ended:
            decided = on_page.get(ended.action_id) or records.get(ended.action_id)
            if decided is None:
                raise JourneyError(f"action {ended.action_id} ended but was never decided")
            record = {
                **decided,
                "status": ended.status,
                "status_reason": ended.why,
                "status_at": ended.at,
                "replaced_by": ended.replaced_by,
            }
            row = (ended.action_id, ended.status, record["owner"], self._encode(record))
            if ended.action_id in on_page:
                page.outbox.append(row)  # after its own decision
            else:
                earlier.append(row)
            events.append(
                StreamEvent(
                    f"action:{ended.action_id}:{ended.status}",
                    customer_id,
                    CustomerActions,
                    CustomerActions.Ended,
                    {
                        "action_id": ended.action_id,
                        "customer_id": customer_id,
                        "status": ended.status,
                        "why": ended.why,
                        "at": ended.at,
                        "replaced_by": ended.replaced_by,
                    },
                )
            )
        page.outbox[:0] = earlier

    def _apply(
        self, outcome: ActionOutcome, states: dict[str, ActionState], page: DeciderPage
    ) -> None:
        state = states[outcome.customer_id]
        was_open = self._deciding.apply_outcome(state, outcome) is not None
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

    def owner_count(self, owner: str, day: int) -> int:
        """How many actions the owner was given on the day, so far."""
        key = (owner, day)
        if key not in self._owner_days:
            self._owner_days.update(self._store.owner_counts([key]))
        return self._owner_days.get(key, 0)

    def _states_of(
        self, customers: list[str], *, make_room: bool = False
    ) -> dict[str, ActionState]:
        """These customers' action states, loading those not in memory. With `make_room`, at
        the start of a page, the states held may be dropped first to stay within bounds."""
        states = self._states
        if make_room and len(states) + len(customers) > _MAX_CACHED:
            states.clear()
        missing = [c for c in customers if c not in states]
        if missing:
            loaded = self._store.load_states(missing)
            undated = [
                action.action_id
                for state in loaded.values()
                for action in state.open.values()
                if action.expires_at is None
            ]
            if undated:  # decided by a release whose actions did not expire
                due = self._store.due_times(undated)
                for state in loaded.values():
                    self._deciding.date_expiries(state, due)
            for customer_id in missing:
                states[customer_id] = loaded.get(customer_id) or ActionState(customer_id)
        return {customer_id: states[customer_id] for customer_id in customers}

    def _retry_before(self, at: int) -> set[str]:
        """The customers with something due by `at`: held-back candidates, open actions that
        expire. What this decider holds in memory is newer than what is stored."""
        states = self._states
        found = {c for c, s in states.items() if s.retry_at is not None and s.retry_at <= at}
        found.update(c for c in self._store.retry_before(at) if c not in states)
        return found


class _OwnerDay(Mapping[str, int]):
    """Each owner's count of new actions on one day, read only for the owners asked about:
    a customer is decided at every touchpoint, and most of the time nothing is proposed."""

    def __init__(self, decider: Decider, day: int) -> None:
        self._decider = decider
        self._day = day

    def __getitem__(self, owner: str) -> int:
        return self._decider.owner_count(owner, self._day)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the owners of a day are not listed, only looked up")

    def __len__(self) -> int:
        raise TypeError("the owners of a day are not counted, only looked up")
