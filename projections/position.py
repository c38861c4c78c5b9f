"""Where a customer stands in their journey: the position a fold keeps per customer, what it
is made of (stage history, frictions, moments of truth, the detectors' memory), and its stored
form.

The position stays small (stage history and rule counts, not the touchpoints), so it costs the
same to keep for a customer with five touchpoints as for one with five thousand. The machine
that folds touchpoints into it is `projections.machine`; the detectors of frictions and
moments of truth are `projections.detectors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# The stored form's version: 3 adds the touchpoint behind each friction, moment of truth,
# window and stage entry (each touch once, in `touches`, named by its place there), and
# behind a channel jump's failed step in its memory (`Touch`, optional: a version 2 state
# reads as it is, without them); 2 names its
# fields and keeps each detector's memory under its rule id; 1 (release 0.1.0) used
# one-letter keys and a field per kind of memory.
STATE_VERSION = 3
_WITHOUT_TOUCHES = 2

# What changed in a position beyond its own row: which of the detail views to rewrite.
FRICTIONS, MOMENTS, OUTCOMES = 1, 2, 4
ALL_DETAILS = FRICTIONS | MOMENTS | OUTCOMES
NO_RANK = -2  # the rank of a customer in no stage yet
# A mark's values begin with the touchpoint's place and detail (see `Mark.values`).
WORDS = 2


class Touch(NamedTuple):
    """What the reasons say of the touchpoint behind a friction, a moment of truth, a window
    or a stage entry: what it was, when it happened, how it went, who was there and where,
    and which page, file or form it was about (see engine.words; kept as given, cut at
    engine.words.KEPT_LENGTH)."""

    type: str
    at: int
    channel: str
    outcome: str | None
    rep_id: str | None
    place: str | None
    detail: str | None


def touch(mark: Mark) -> Touch:
    """The words' part of a touchpoint: the first place and the first detail it has."""
    values = mark.values
    where, about = (values[0], values[1]) if len(values) >= WORDS else (None, None)
    return Touch(mark.type, mark.occurred_at, mark.channel, mark.outcome, mark.rep_id, where, about)


class _Touches:
    """The touches of a position as its stored form keeps them: each once, in a table, and
    named by their place in it wherever they are behind something (the first visit is a
    moment of truth, a stage entry and a window at once)."""

    def __init__(self) -> None:
        self.table: list[tuple[Any, ...]] = []
        self._places: dict[Touch, int] = {}

    def ref(self, touched: Touch | None) -> int | None:
        if touched is None:
            return None
        place = self._places.get(touched)
        if place is None:
            place = self._places[touched] = len(self.table)
            self.table.append(tuple(touched))
        return place


def _touch(stored: Any, table: Sequence[Touch]) -> Touch | None:
    """A touch read back: by its place in the table, or written out whole."""
    if stored is None:
        return None
    if isinstance(stored, int):
        return table[stored]
    return Touch(*stored)


class StageEntry(NamedTuple):
    stage: str
    entered_at: int
    event_id: str | None  # the touchpoint that moved the customer; None for dormancy
    touch: Touch | None = None  # that touchpoint in words' terms (from version 3)


class Mark(NamedTuple):
    """What the fold keeps of a touchpoint: when, which, the definition's patterns it matches
    (entry rules first), and the few fields the detectors read."""

    occurred_at: int
    event_id: str
    rules: tuple[int, ...]
    type: str = ""
    channel: str = ""
    outcome: str | None = None
    rep_id: str | None = None
    # The touchpoint's place and detail (engine.words.place_and_detail), which `touch`
    # reads, then the attributes the detectors name, in machine order.
    values: tuple[str | None, ...] = ()


class Friction(NamedTuple):
    """A friction the customer met. `id` is deterministic (the detector and the touchpoint or
    stage entry behind it), so a replay finds the same one. `events` are the touchpoints
    behind it, the resolving one last once it resolved. `touch` is the touchpoint that
    matters: the one nobody followed up, the step that failed before a channel jump, or the
    one at which it opened; None for a stall, and for frictions stored before version 3."""

    id: str
    kind: str
    opened_at: int
    resolved_at: int | None
    events: tuple[str, ...]
    stage: str | None
    channel: str | None
    rep_id: str | None
    touch: Touch | None = None

    def resolve(self, at: int, event_id: str | None) -> Friction:
        events = self.events if event_id is None else (*self.events, event_id)
        return self._replace(resolved_at=at, events=events)


class Moment(NamedTuple):
    """A moment of truth: which touchpoint, how it went, and how it was resolved if the
    definition asks."""

    kind: str
    at: int
    event_id: str
    channel: str
    rep_id: str | None
    outcome: str | None
    resolved_at: int | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    touch: Touch | None = None  # its touchpoint (from version 3)


class Window(NamedTuple):
    """A touchpoint waiting for its follow-up until `deadline`: when time passes it, the
    machine opens the friction `kind`."""

    kind: str
    deadline: int
    event_id: str
    stage: str | None
    channel: str
    rep_id: str | None
    touch: Touch | None = None  # the touchpoint waiting for its follow-up


def due_before(positions: dict[str, Position], at: int) -> set[str]:
    """The customers whose positions time changes before `at` (a clock event's time). Here,
    to be compiled with the fold: a clock event looks at every position held in memory."""
    return {customer_id for customer_id, p in positions.items() if p.due is not None and p.due < at}


@dataclass(slots=True)
class Position:
    customer_id: str
    stage: str | None = None
    since: int | None = None
    peak_rank: int = NO_RANK
    first_at: int | None = None
    last_at: int | None = None
    touchpoints: int = 0
    history: list[StageEntry] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    # The customer's rep: the rep of their first contact with one.
    rep: str | None = None
    frictions: list[Friction] = field(default_factory=list)
    moments: list[Moment] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    # What each detector remembers between touchpoints, under its rule id (JSON-ready).
    memory: dict[str, Any] = field(default_factory=dict)
    # Touchpoints with an outcome, per channel: [positive, neutral, negative].
    outcomes: dict[str, list[int]] = field(default_factory=dict)
    # When time alone next changes something (a window closes, a stall, dormancy); None: never.
    due: int | None = None
    # The latest clock event that changed this position: a touchpoint that happened before
    # it must be replayed with the others, like one that arrived late. Only decides how the
    # fold gets to its result, never the result itself.
    horizon: int | None = field(default=None, compare=False)
    # Not stored: which of frictions, moments and outcomes changed since the view last wrote
    # them (FRICTIONS | MOMENTS | OUTCOMES).
    details_changed: int = field(default=0, compare=False)

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready form; `from_state` reads it back."""
        touches = _Touches()
        return {
            "version": STATE_VERSION,
            "peak_rank": self.peak_rank,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "touchpoints": self.touchpoints,
            "history": [(*entry[:-1], touches.ref(entry.touch)) for entry in self.history],
            "counts": list(self.counts.items()),
            "rep": self.rep,
            "frictions": [(*f[:-1], touches.ref(f.touch)) for f in self.frictions],
            "moments": [(*m[:-1], touches.ref(m.touch)) for m in self.moments],
            "windows": [(*w[:-1], touches.ref(w.touch)) for w in self.windows],
            "touches": touches.table,
            "memory": self.memory,
            "outcomes": self.outcomes,
            "due": self.due,
            "horizon": self.horizon,
        }

    @classmethod
    def from_state(cls, customer_id: str, state: Mapping[str, Any]) -> Position:
        """Reads what `to_state` wrote, in this version or an earlier one."""
        if state.get("version") not in (STATE_VERSION, _WITHOUT_TOUCHES):
            state = _upcast(state)
        table = [Touch(*stored) for stored in state.get("touches", ())]
        history = [StageEntry(*_with_touch(entry, 3, table)) for entry in state["history"]]
        return cls(
            customer_id,
            stage=history[-1].stage if history else None,
            since=history[-1].entered_at if history else None,
            peak_rank=state["peak_rank"],
            first_at=state["first_at"],
            last_at=state["last_at"],
            touchpoints=state["touchpoints"],
            history=history,
            counts={rule: count for rule, count in state["counts"]},
            rep=state["rep"],
            frictions=[_friction(f, table) for f in state["frictions"]],
            moments=[Moment(*_with_touch(m, 9, table)) for m in state["moments"]],
            windows=[Window(*_with_touch(w, 6, table)) for w in state["windows"]],
            memory=state["memory"],
            outcomes=state["outcomes"],
            due=state["due"],
            horizon=state["horizon"],
        )

    @property
    def open_frictions(self) -> list[Friction]:
        return [f for f in self.frictions if f.resolved_at is None]

    @property
    def inconsistent_channels(self) -> bool:
        """Mostly positive on one channel and mostly negative on another."""
        leaning = {(o[0] > o[2]) - (o[2] > o[0]) for o in self.outcomes.values()}
        return {1, -1} <= leaning


def _upcast(state: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1's one-letter keys, and its memory kept per kind (a channel jump's failed
    step, a loop's steps keyed `rule|type|values`, a referral) under each rule's id."""
    if "h" not in state:
        raise ValueError(f"a position's state of unknown version {state.get('version')!r}")
    memory: dict[str, Any] = {}
    for rule, failure in state["j"].items():
        memory[rule] = list(failure)
    for key, step in state["s"].items():
        rule, _, step_key = key.partition("|")
        memory.setdefault(rule, {})[step_key] = list(step)
    for rule, referral in state["e"].items():
        memory[rule] = list(referral)
    return {
        "version": STATE_VERSION,
        "peak_rank": state["p"],
        "first_at": state["f"],
        "last_at": state["l"],
        "touchpoints": state["n"],
        "history": state["h"],
        "counts": state["c"],
        "rep": state["r"],
        "frictions": state["x"],
        "moments": state["m"],
        "windows": state["w"],
        "memory": memory,
        "outcomes": state["o"],
        "due": state["d"],
        "horizon": state["z"],
    }


def _friction(stored: Sequence[Any], table: Sequence[Touch]) -> Friction:
    fid, kind, opened, resolved, events, stage, channel, rep, *rest = stored
    touched = _touch(rest[0], table) if rest else None
    return Friction(fid, kind, opened, resolved, tuple(events), stage, channel, rep, touched)


def _with_touch(stored: Sequence[Any], at: int, table: Sequence[Touch]) -> list[Any]:
    """A stored record's fields with its touch (last, at `at`, if stored) read back."""
    fields = list(stored)
    if len(fields) > at:
        fields[at] = _touch(fields[at], table)
    return fields


# What the detectors and the machine do to a position's frictions.


def open_frictions(position: Position, kind: str) -> list[int]:
    """Indexes of the customer's open frictions of one kind."""
    frictions = position.frictions
    if not frictions:
        return []
    return [
        index
        for index, friction in enumerate(frictions)
        if friction.resolved_at is None and friction.kind == kind
    ]


def resolve_all(position: Position, kind: str, at: int, event_id: str | None) -> None:
    frictions = position.frictions
    if not frictions:
        return
    for index, friction in enumerate(frictions):
        if friction.resolved_at is None and friction.kind == kind:
            frictions[index] = friction.resolve(at, event_id)
            position.details_changed |= FRICTIONS


def add_friction(position: Position, friction: Friction) -> None:
    position.frictions.append(friction)
    position.details_changed |= FRICTIONS


def open_at(
    position: Position,
    kind: str,
    mark: Mark,
    events: tuple[str, ...],
    rep_id: str | None,
    *,
    touched: Touch | None = None,
) -> None:
    """Opens a friction at a touchpoint (which also names it), in the customer's stage;
    `touched` is the touchpoint that matters, if not that one."""
    friction = Friction(
        f"{kind}:{mark.event_id}",
        kind,
        mark.occurred_at,
        None,
        events,
        position.stage,
        mark.channel,
        rep_id,
        touched or touch(mark),
    )
    add_friction(position, friction)


def join_or_open(position: Position, kind: str, mark: Mark) -> None:
    """Adds the touchpoint to the open friction of this kind, or opens one at it."""
    opened = open_frictions(position, kind)
    if not opened:
        open_at(position, kind, mark, (mark.event_id,), mark.rep_id)
        return
    friction = position.frictions[opened[-1]]
    position.frictions[opened[-1]] = friction._replace(events=(*friction.events, mark.event_id))
    position.details_changed |= FRICTIONS


def expire(position: Position, window: Window) -> None:
    """The window closed with no follow-up: the friction opens at its deadline."""
    position.windows.remove(window)
    add_friction(
        position,
        Friction(
            f"{window.kind}:{window.event_id}",
            window.kind,
            window.deadline,
            None,
            (window.event_id,),
            window.stage,
            window.channel,
            window.rep_id,
            window.touch,
        ),
    )
