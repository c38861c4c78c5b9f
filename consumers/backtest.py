"""A backtest: candidate action rules and contact policy run over the recorded history, in
memory, beside the decisions the decider logged. Nothing is written, appended or sent.

The replay is the decider's own loop (`PageDecider`) over the log from its start up to where
the decider has decided: touchpoints, clock events, and the outcomes sales people reported.
Action ids come from the customer, the rule and the triggering event, so a candidate action
and a logged one with the same id are the same proposal. An outcome names a logged action:
a candidate action with that id gets it, one without a logged twin gets none (what a sales
person would have done with it is unknown), and the journey ends candidate actions by itself
as the decider would (superseded, expired, cancelled)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from consumers.action_store import ActionRow, DeciderPage
from consumers.deciding import DAY_MS
from consumers.page_decider import NOTHING_STORED, PageDecider
from engine.bulk import collector_paused
from engine.definition import JourneyDefinition
from projections.log import JourneyLog
from projections.runner import JourneyProjector

# What makes a proposal with the same id a changed one.
COMPARED = ("owner", "priority", "due_at", "channel", "reason")
DEFAULT_PAGE_SIZE = 5_000

Progress = Callable[[int, int], None]  # (log position reached, log position to reach)


@dataclass(frozen=True, slots=True)
class Proposal:
    """An action as one side of the backtest decided it, and what became of it."""

    action_id: str
    customer_id: str
    rule: str
    owner: str
    action_type: str
    channel: str
    priority: float
    decided_at: int
    due_at: int | None
    reason: str
    status: str
    status_reason: str | None = None

    @classmethod
    def logged(cls, row: ActionRow) -> Proposal:
        return cls(
            row.action_id,
            row.customer_id,
            row.rule,
            row.owner,
            row.action_type,
            row.channel,
            row.priority,
            row.decided_at,
            row.due_at,
            row.reason,
            row.status,
            row.status_reason,
        )

    def differences(self, other: Proposal) -> tuple[str, ...]:
        """The compared fields in which `other` differs."""
        return tuple(name for name in COMPARED if getattr(self, name) != getattr(other, name))


@dataclass(frozen=True, slots=True)
class Window:
    """Which decisions are compared: those decided from `start` (inclusive) to `end`
    (exclusive), journey time in ms; None: unbounded."""

    start: int | None = None
    end: int | None = None

    def holds(self, at: int) -> bool:
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


@dataclass(frozen=True, slots=True)
class Pair:
    """One action id: the candidate's proposal, the logged one, or both."""

    candidate: Proposal | None
    logged: Proposal | None

    @property
    def any(self) -> Proposal:
        found = self.candidate or self.logged
        assert found is not None
        return found

    @property
    def difference(self) -> str:
        """added (the candidate only), dropped (logged only), changed, or same."""
        if self.logged is None:
            return "added"
        if self.candidate is None:
            return "dropped"
        return "changed" if self.candidate.differences(self.logged) else "same"

    @property
    def changed(self) -> tuple[str, ...]:
        if self.candidate is None or self.logged is None:
            return ()
        return self.candidate.differences(self.logged)


@dataclass
class RuleResult:
    """One rule's proposals compared. `outcomes` counts what became of the proposals that
    match logged ones, in the replay (the reps' outcomes and the journey's own ends);
    `dropped_outcomes`, what became of the logged actions the candidate drops."""

    rule: str
    proposed: int = 0
    logged: int = 0
    added: int = 0
    dropped: int = 0
    changed: int = 0
    same: int = 0
    changed_fields: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    dismissed_because: Counter[str] = field(default_factory=Counter)
    # What became of the logged actions the candidate drops: what it would give up.
    dropped_outcomes: Counter[str] = field(default_factory=Counter)


@dataclass
class OwnerLoad:
    """How one owner's proposals spread over the days, against the candidate's daily limit."""

    owner: str
    limit: int
    proposed: Counter[int] = field(default_factory=Counter)  # day -> proposals
    logged: Counter[int] = field(default_factory=Counter)  # day -> logged decisions

    @property
    def busiest(self) -> int:
        return max(self.proposed.values(), default=0)

    @property
    def days_at_limit(self) -> int:
        """Days the candidate reaches the limit on: what came after waited for a later day."""
        return sum(1 for n in self.proposed.values() if n >= self.limit)

    @property
    def logged_days_over(self) -> int:
        """Days the logged decisions exceed the candidate's limit on."""
        return sum(1 for n in self.logged.values() if n > self.limit)


@dataclass
class Backtest:
    window: Window
    events: int  # log entries replayed: touchpoints, clock events, outcomes
    position: int  # the log position replayed up to (where the decider has decided)
    customers: int
    seconds: float
    rules: list[RuleResult]
    owners: list[OwnerLoad]
    pairs: list[Pair]  # of the customer asked for, or none

    @property
    def totals(self) -> RuleResult:
        total = RuleResult("all")
        for result in self.rules:
            for name in ("proposed", "logged", "added", "dropped", "changed", "same"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
            total.changed_fields.update(result.changed_fields)
            total.outcomes.update(result.outcomes)
            total.dismissed_because.update(result.dismissed_because)
            total.dropped_outcomes.update(result.dropped_outcomes)
        return total


@dataclass
class Replayed:
    """What the candidate decided over the log, with the ends and outcomes that followed."""

    proposals: dict[str, Proposal]
    events: int
    customers: int


def replay(
    log: JourneyLog,
    definition: JourneyDefinition,
    until: int,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress | None = None,
) -> Replayed:
    """Decides over the log from its start up to `until` under `definition`, every customer
    held in memory, and writes nothing."""
    # Replaying makes no reference cycles; with the collector on, it would rescan every
    # position and state held in memory, again and again, and they are all held. They are
    # all garbage once `_decide_all` returns, before it is back on: its first pass would
    # look at each of them once more (a second or more for a million events).
    with collector_paused():
        return _decide_all(log, definition, until, page_size=page_size, progress=progress)


def _decide_all(
    log: JourneyLog,
    definition: JourneyDefinition,
    until: int,
    *,
    page_size: int,
    progress: Progress | None,
) -> Replayed:
    projector = JourneyProjector(
        definition,
        lambda _: {},
        log,
        lambda _: [],
        lambda: None,
        max_cached=None,
    )
    projector.forget(view_is_empty=True)
    pages = PageDecider(definition, projector, NOTHING_STORED, max_cached=None)
    proposals: dict[str, Proposal] = {}
    position = events = 0
    while position < until:
        entries = log.decider_entries(position, page_size, stop=until)
        if not entries:
            break
        page = DeciderPage(position, entries[-1][0], None, "")
        pages.decide(page, entries)
        _note(page, proposals)
        events += len(entries)
        position = entries[-1][0]
        if progress is not None:
            progress(position, until)
    return Replayed(proposals, events, len(pages.states))


def _note(page: DeciderPage, proposals: dict[str, Proposal]) -> None:
    """The page's decisions as proposals, then the ends and outcomes that changed them: each
    change follows the decision it changes (a page's decisions come first, as the decider
    writes them)."""
    for customer_id, decision, _ in page.decided:
        c = decision.candidate
        proposals[c.action_id] = Proposal(
            c.action_id,
            customer_id,
            c.rule,
            c.owner,
            c.action_type,
            c.channel,
            c.priority,
            decision.decided_at,
            c.due_at,
            c.reason,
            "open",
        )
    for change in page.changes:
        proposal = proposals.get(change.action_id)
        if proposal is not None:
            proposals[change.action_id] = replace(
                proposal, status=change.status, status_reason=change.reason
            )


def backtest(
    log: JourneyLog,
    candidate: JourneyDefinition,
    logged: Iterable[ActionRow],
    until: int,
    *,
    window: Window | None = None,
    customer_id: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress | None = None,
) -> Backtest:
    """Replays the log up to `until` (where the decider has decided) under the candidate
    definition and compares its proposals in the window with the `logged` decisions."""
    began = time.perf_counter()
    replayed = replay(log, candidate, until, page_size=page_size, progress=progress)
    seconds = time.perf_counter() - began
    logged_ones = {row.action_id: Proposal.logged(row) for row in logged}
    return compare(
        replayed,
        logged_ones,
        candidate,
        window=window or Window(),
        customer_id=customer_id,
        position=until,
        seconds=seconds,
    )


def compare(
    replayed: Replayed,
    logged: dict[str, Proposal],
    candidate: JourneyDefinition,
    *,
    window: Window,
    customer_id: str | None,
    position: int,
    seconds: float,
) -> Backtest:
    """The proposals and the logged decisions of each action id decided in the window on
    either side, per rule and per owner's day; `customer_id`'s side by side."""
    proposals = replayed.proposals
    rules = {rule.id: RuleResult(rule.id) for rule in candidate.actions.rules}
    limit = candidate.actions.per_owner_per_day
    owners: dict[str, OwnerLoad] = {}
    pairs: list[Pair] = []
    for action_id in sorted(proposals.keys() | logged.keys()):
        pair = Pair(proposals.get(action_id), logged.get(action_id))
        ours, theirs = pair.candidate, pair.logged
        ours_in = ours is not None and window.holds(ours.decided_at)
        theirs_in = theirs is not None and window.holds(theirs.decided_at)
        if not (ours_in or theirs_in):
            continue
        result = rules.setdefault(pair.any.rule, RuleResult(pair.any.rule))
        if ours is not None and ours_in:
            result.proposed += 1
            load = owners.setdefault(ours.owner, OwnerLoad(ours.owner, limit))
            load.proposed[ours.decided_at // DAY_MS] += 1
        if theirs is not None and theirs_in:
            result.logged += 1
            load = owners.setdefault(theirs.owner, OwnerLoad(theirs.owner, limit))
            load.logged[theirs.decided_at // DAY_MS] += 1
        difference = pair.difference
        setattr(result, difference, getattr(result, difference) + 1)
        result.changed_fields.update(pair.changed)
        if ours is not None and theirs is not None:
            result.outcomes[ours.status] += 1
            if ours.status == "dismissed":
                result.dismissed_because[ours.status_reason or "no reason given"] += 1
        elif theirs is not None and theirs_in:
            result.dropped_outcomes[theirs.status] += 1
        if customer_id is not None and pair.any.customer_id == customer_id:
            pairs.append(pair)
    pairs.sort(key=lambda p: (p.any.decided_at, p.any.action_id))
    return Backtest(
        window,
        replayed.events,
        position,
        replayed.customers,
        seconds,
        list(rules.values()),
        sorted(owners.values(), key=lambda load: load.owner),
        pairs,
    )
