"""The batched runner: pages through the notification log, folds each page, and commits the
page's view changes together with its log position. It resumes exactly where it stopped and
serves every store the same way, since it only reads `select_notifications`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from engine.definition import JourneyDefinition
from engine.journeys import CustomerJourney
from projections.position import Mark, Position, StageMachine
from projections.views import (
    JOURNEY_PROJECTION,
    JourneyView,
    PageChanges,
    TimelineEntry,
    ViewConflict,
    ViewOutOfDate,
)

Progress = Callable[[int, int], None]  # (events done so far, events to do)

_TOUCHPOINT_TOPIC = (
    f"{CustomerJourney.__module__}:{CustomerJourney.__qualname__}.TouchpointRecorded"
)
_MAX_CACHED_POSITIONS = 100_000


@dataclass(frozen=True, slots=True)
class CatchUp:
    events: int
    position: int


def definition_digest(definition: JourneyDefinition) -> str:
    """Identifies a journey definition's meaning, so a view built with another is noticed."""
    return hashlib.sha256(definition.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


class JourneyProjector:
    """Folds pages of journey events into position and timeline changes. No I/O of its own:
    positions it has not seen come from `load`."""

    def __init__(
        self, definition: JourneyDefinition, load: Callable[[list[str]], dict[str, Position]]
    ) -> None:
        self.machine = StageMachine(definition)
        self._load = load
        self._positions: dict[str, Position] = {}

    def forget(self) -> None:
        self._positions.clear()

    def fold(self, page: Sequence[tuple[int, Any]]) -> PageChanges:
        touchpoints = [
            (pos, e) for pos, e in page if isinstance(e, CustomerJourney.TouchpointRecorded)
        ]
        positions = self._positions
        missing = list({e.customer_id for _, e in touchpoints if e.customer_id not in positions})
        if missing:
            if len(positions) + len(missing) > _MAX_CACHED_POSITIONS:
                positions.clear()
            loaded = self._load(missing)
            for customer_id in missing:
                positions[customer_id] = loaded.get(customer_id) or Position(customer_id)
        machine = self.machine
        changed: dict[str, Position] = {}
        timeline: list[TimelineEntry] = []
        clock: int | None = None
        for log_position, e in touchpoints:
            mark = Mark(
                e.occurred_at,
                e.event_id,
                machine.matching_rules(e.type, e.channel, e.outcome, e.attributes),
            )
            position = machine.evolve(positions[e.customer_id], mark)
            positions[e.customer_id] = changed[e.customer_id] = position
            timeline.append(
                TimelineEntry(
                    e.customer_id,
                    e.occurred_at,
                    log_position,
                    e.event_id,
                    e.channel,
                    e.type,
                    e.outcome,
                    e.rep_id,
                    e.source,
                    e.attributes,
                )
            )
            if clock is None or e.occurred_at > clock:
                clock = e.occurred_at
        return PageChanges(list(changed.values()), timeline, clock, page[-1][0])


class ProjectionRunner:
    """Keeps the journey views up to date with an application's log."""

    def __init__(
        self,
        app: Application[Any],
        view: JourneyView,
        definition: JourneyDefinition,
        *,
        page_size: int = 5_000,
    ) -> None:
        self._app = app
        self._view = view
        self._definition = definition
        self._digest = definition_digest(definition)
        self._page_size = page_size
        self._projector = JourneyProjector(definition, view.load_positions)

    def position(self) -> int:
        return self._view.tracking(JOURNEY_PROJECTION)[0]

    def lag(self) -> int:
        return max(0, (self._app.recorder.max_notification_id() or 0) - self.position())

    def catch_up(self, progress: Progress | None = None) -> CatchUp:
        """Processes everything recorded so far, one page per transaction."""
        start, digest = self._view.tracking(JOURNEY_PROJECTION)
        if start and digest != self._digest:
            raise ViewOutOfDate(
                "the views were built with another journey definition; "
                "rebuild them (journey rebuild) to use this one"
            )
        head = self._app.recorder.max_notification_id() or 0
        position, done = start, 0
        recorder, to_event = self._app.recorder, self._app.mapper.to_domain_event
        while position < head:
            notifications = recorder.select_notifications(
                start=position, limit=self._page_size, stop=head, inclusive_of_start=False
            )
            if not notifications:
                break
            page = [
                (n.id, to_event(n) if n.topic == _TOUCHPOINT_TOPIC else None) for n in notifications
            ]
            changes = self._projector.fold(page)
            try:
                self._view.commit(JOURNEY_PROJECTION, changes, self._digest)
            except ViewConflict:
                # Another runner got there first: its work stands, ours is dropped.
                self._projector.forget()
                position = self.position()
                continue
            position = changes.position
            done += len(notifications)
            if progress is not None:
                progress(done, head - start)
        return CatchUp(done, position)

    def rebuild(self, progress: Progress | None = None) -> CatchUp:
        """Empties the views and builds them again from the start of the log."""
        self._view.reset()
        self._projector.forget()
        return self.catch_up(progress)
