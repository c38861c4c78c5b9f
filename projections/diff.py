"""What a new journey definition would change: the whole history folded under two
definitions, in memory, and the customers' journeys compared. Nothing is written anywhere."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.definition import JourneyDefinition
from projections.log import JourneyLog
from projections.position import Position
from projections.runner import JourneyProjector, marked_pages

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class CustomerChange:
    customer_id: str
    stage: tuple[str | None, str | None]  # (old, new); equal if the stage stays
    frictions_added: tuple[str, ...]  # kinds of frictions met under the new definition only
    frictions_removed: tuple[str, ...]  # ... under the old definition only
    moments: tuple[tuple[str, str | None, str | None], ...]  # (moment, old event, new event)


@dataclass
class DefinitionDiff:
    customers: int = 0
    events: int = 0
    changed: list[CustomerChange] = field(default_factory=list)
    stage_moves: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    frictions_added: Counter[str] = field(default_factory=Counter)
    frictions_removed: Counter[str] = field(default_factory=Counter)
    moments_changed: Counter[str] = field(default_factory=Counter)


def diff_definitions(
    log: JourneyLog,
    old: JourneyDefinition,
    new: JourneyDefinition,
    *,
    page_size: int = 50_000,
    progress: Progress | None = None,
) -> DefinitionDiff:
    """Folds the log up to its current head under both definitions and compares them."""
    head = log.head()

    def halfway(done: int, _: int) -> None:
        if progress is not None:
            progress(head + done, 2 * head)

    olds = _fold(log, old, head, page_size, progress)
    news = _fold(log, new, head, page_size, halfway)
    diff = DefinitionDiff(customers=len(olds.keys() | news.keys()))
    diff.events = head
    for customer_id in sorted(olds.keys() | news.keys()):
        before, after = olds.get(customer_id), news.get(customer_id)
        change = _compare(customer_id, before, after)
        if change is None:
            continue
        diff.changed.append(change)
        if change.stage[0] != change.stage[1]:
            diff.stage_moves[change.stage] += 1
        diff.frictions_added.update(change.frictions_added)
        diff.frictions_removed.update(change.frictions_removed)
        diff.moments_changed.update(moment for moment, _, _ in change.moments)
    return diff


def _fold(
    log: JourneyLog,
    definition: JourneyDefinition,
    head: int,
    page_size: int,
    progress: Progress | None,
) -> dict[str, Position]:
    """Every customer's position under a definition, all kept in memory."""
    projector = JourneyProjector(
        definition,
        lambda _: {},  # nothing stored: every position stays in memory
        log,
        lambda _: [],
        lambda: None,
        max_cached=None,
    )
    projector.forget(view_is_empty=True)
    for page in marked_pages(log, projector.machine, 0, head, page_size):
        if page:
            projector.fold(page)
            if progress is not None:
                progress(page[-1][0], head)
    return projector.positions


def _compare(
    customer_id: str, before: Position | None, after: Position | None
) -> CustomerChange | None:
    old_stage = before.stage if before else None
    new_stage = after.stage if after else None
    old_open = {f.id: f.kind for f in before.frictions} if before else {}
    new_open = {f.id: f.kind for f in after.frictions} if after else {}
    old_moments = {m.kind: m.event_id for m in before.moments} if before else {}
    new_moments = {m.kind: m.event_id for m in after.moments} if after else {}
    moments = tuple(
        (kind, old_moments.get(kind), new_moments.get(kind))
        for kind in sorted(old_moments.keys() | new_moments.keys())
        if old_moments.get(kind) != new_moments.get(kind)
    )
    opened = tuple(sorted(new_open[f] for f in new_open.keys() - old_open.keys()))
    closed = tuple(sorted(old_open[f] for f in old_open.keys() - new_open.keys()))
    if old_stage == new_stage and not opened and not closed and not moments:
        return None
    return CustomerChange(customer_id, (old_stage, new_stage), opened, closed, moments)
