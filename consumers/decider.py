"""The decider: follows the journey log, folds each page into journey positions and action
states, decides next-best-actions, and commits the page's decision events, its state, its
outbox rows and its log position in one transaction.

It is a process in the event-sourcing sense: its input is the log (touchpoints, clock events,
outcomes reported by sales people), its output is decision events, and its position is
tracked with them, so a crash at any point leaves either the whole page or none of it. Every
time it reads is the journey's (touchpoint times and clock events), never the wall clock,
so deciding again from the same position gives the same actions with the same ids. What a
page decides is `PageDecider`'s (consumers/page_decider.py); the decider writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from consumers.action_store import ActionStore, DeciderPage
from consumers.deciding import Decision, Ended
from consumers.page_decider import PageDecider
from engine.actions import CustomerActions
from engine.bulk import collector_paused
from engine.definition import JourneyDefinition
from engine.errors import JourneyError
from engine.recording import Journeys, StreamEvent
from engine.settings import DEFAULT_DECIDER_PAGE_SIZE, DEFAULT_PAGE_SIZE
from projections.log import DeciderEntry, JourneyLog
from projections.runner import JourneyProjector, definition_digest, marked_pages
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
        self._projector = JourneyProjector(
            definition,
            store.load_positions,
            self._log,
            store.due_before,
            store.ticked,
            max_cached=_MAX_CACHED,
        )
        self._pages = PageDecider(definition, self._projector, store, max_cached=_MAX_CACHED)
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
            entries = self._log.decider_entries(position, self._page_size)
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
            self._log,
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
        self._pages.forget()
        self._position = None

    def _decide_page(self, start: int, entries: list[tuple[int, DeciderEntry]]) -> DeciderPage:
        """Decides on one page (see `PageDecider.decide`) and commits what it decided."""
        self._store.begin_page()
        page = DeciderPage(start, entries[-1][0], None, self._digest)
        fold = self._pages.decide(page, entries)
        changes = fold.changes(page.position)
        page.ticked = changes.ticked
        events = self._record(page)
        self._journeys.append(events, also=[self._store.write(page)])
        self._projector.committed(changes)
        self._position = page.position
        return page

    def _record(self, page: DeciderPage) -> list[StreamEvent]:
        """What the page decided and ended, in the order it happened: rows of the actions
        view, outbox rows (an ended action's record again, with its status, for the sales
        tools, which then drop it) and events."""
        decided_here = {decision.candidate.action_id for _, decision, _ in page.decided}
        stored = self._store.records(
            {e.action_id for _, e in page.ended if e.action_id not in decided_here}
        )
        records: dict[str, dict[str, Any]] = {}
        events: list[StreamEvent] = []
        for is_end, index in page.happened:
            if is_end:
                customer_id, ended = page.ended[index]
                decided = records.get(ended.action_id) or stored.get(ended.action_id)
                if decided is None:
                    raise JourneyError(f"action {ended.action_id} ended but was never decided")
                events.append(self._end(page, customer_id, ended, decided))
            else:
                customer_id, decision, log_position = page.decided[index]
                record = decision.record(customer_id)
                records[decision.candidate.action_id] = record
                events.append(self._decision(page, customer_id, decision, record, log_position))
        return events

    def _decision(
        self,
        page: DeciderPage,
        customer_id: str,
        decision: Decision,
        record: dict[str, Any],
        log_position: int,
    ) -> StreamEvent:
        c = decision.candidate
        explanation = decision.explanation(self._pages.deciding.policy)
        page.actions.append(
            (
                c.action_id,
                customer_id,
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
        return StreamEvent(
            f"action:{c.action_id}",
            customer_id,
            CustomerActions,
            CustomerActions.Decided,
            {
                "action_id": c.action_id,
                "customer_id": customer_id,
                "action": record,
                "explanation": explanation,
            },
        )

    def _end(
        self, page: DeciderPage, customer_id: str, ended: Ended, decided: dict[str, Any]
    ) -> StreamEvent:
        record = {
            **decided,
            "status": ended.status,
            "status_reason": ended.why,
            "status_at": ended.at,
            "replaced_by": ended.replaced_by,
        }
        page.outbox.append((ended.action_id, ended.status, record["owner"], self._encode(record)))
        return StreamEvent(
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
