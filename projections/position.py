"""Where each customer stands in their journey: a pure fold over their touchpoints.

Touchpoints count in the order they happened. One that arrives late (it happened before the
latest one already seen) makes the fold replay all of the customer's touchpoints in
occurrence order, so the result is the same whatever order they arrived in. The position
itself stays small (stage history and rule counts, not the touchpoints), so it costs the same
to keep for a customer with five touchpoints as for one with five thousand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.definition import ANY_TYPE, JourneyDefinition
from engine.journeys import TouchpointState

DAY_MS = 86_400_000
_DORMANT_RANK = -1
_NO_RANK = -2


class StageEntry(NamedTuple):
    stage: str
    entered_at: int
    event_id: str | None  # the touchpoint that moved the customer; None for dormancy


class Mark(NamedTuple):
    """What the fold keeps of a touchpoint: when, which, and the entry rules it matched."""

    occurred_at: int
    event_id: str
    rules: tuple[int, ...]


@dataclass(slots=True)
class Position:
    customer_id: str
    stage: str | None = None
    since: int | None = None
    peak_rank: int = _NO_RANK
    first_at: int | None = None
    last_at: int | None = None
    touchpoints: int = 0
    history: list[StageEntry] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready form; `from_state` reads it back."""
        return {
            "p": self.peak_rank,
            "f": self.first_at,
            "l": self.last_at,
            "n": self.touchpoints,
            "h": [tuple(entry) for entry in self.history],
            "c": list(self.counts.items()),
        }

    @classmethod
    def from_state(cls, customer_id: str, state: Mapping[str, Any]) -> Position:
        history = [StageEntry(*entry) for entry in state["h"]]
        return cls(
            customer_id,
            stage=history[-1].stage if history else None,
            since=history[-1].entered_at if history else None,
            peak_rank=state["p"],
            first_at=state["f"],
            last_at=state["l"],
            touchpoints=state["n"],
            history=history,
            counts={rule: count for rule, count in state["c"]},
        )


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    stage: str
    rank: int
    types: frozenset[str] | None
    channels: frozenset[str] | None
    outcomes: frozenset[str | None] | None
    attributes: tuple[tuple[str, str], ...]
    min_count: int
    from_stages: frozenset[str] | None


class StageMachine:
    """The journey definition's stage rules, compiled for folding many events fast."""

    def __init__(self, definition: JourneyDefinition) -> None:
        self.definition = definition
        dormancy = definition.dormancy
        self.dormant_stage = dormancy.stage if dormancy else None
        self._dormant_after = int(dormancy.after_days * DAY_MS) if dormancy else 0
        self._dormant_from = frozenset(dormancy.from_stages) if dormancy else frozenset()
        self.ranks = {stage_id: rank for rank, stage_id in enumerate(definition.ladder)}
        if self.dormant_stage:
            self.ranks[self.dormant_stage] = _DORMANT_RANK
        self._rules: list[_Rule] = []
        for stage in definition.stages:
            for rule in stage.enter:
                self._rules.append(
                    _Rule(
                        index=len(self._rules),
                        stage=stage.id,
                        rank=self.ranks[stage.id],
                        types=None if ANY_TYPE in rule.types else frozenset(rule.types),
                        channels=frozenset(rule.channels) if rule.channels else None,
                        outcomes=frozenset(rule.outcomes) if rule.outcomes else None,
                        attributes=tuple(rule.attributes.items()),
                        min_count=rule.min_count,
                        from_stages=frozenset(rule.from_stages) if rule.from_stages else None,
                    )
                )
        self._any_type = [r for r in self._rules if r.types is None]
        # Only these attributes decide which rules match; they key a cache of matches.
        self._attribute_names = sorted({name for r in self._rules for name, _ in r.attributes})
        self._matches: dict[tuple[str | None, ...], tuple[int, ...]] = {}
        self._by_type: dict[str, list[_Rule]] = {}
        for r in self._rules:
            for kind in r.types or ():
                self._by_type.setdefault(kind, []).append(r)

    def mark(self, tp: TouchpointState) -> Mark:
        """What the fold keeps of a recorded touchpoint."""
        attributes = tp["attributes"]
        key = (
            tp["type"],
            tp["channel"],
            tp["outcome"],
            *map(attributes.get, self._attribute_names),
        )
        rules = self._matches.get(key)
        if rules is None:
            rules = self.matching_rules(tp["type"], tp["channel"], tp["outcome"], attributes)
            if len(self._matches) < 100_000:
                self._matches[key] = rules
        return Mark(tp["occurred_at"], tp["event_id"], rules)

    def matching_rules(
        self, kind: str, channel: str, outcome: str | None, attributes: Mapping[str, str]
    ) -> tuple[int, ...]:
        """The entry rules a touchpoint counts towards."""
        candidates = self._by_type.get(kind, ())
        return tuple(
            r.index
            for group in (self._any_type, candidates)
            for r in group
            if (r.channels is None or channel in r.channels)
            and (r.outcomes is None or outcome in r.outcomes)
            and all(attributes.get(key) == value for key, value in r.attributes)
        )

    def evolve(
        self,
        position: Position,
        mark: Mark,
        earlier: Callable[[Position], Sequence[Mark]] | None = None,
    ) -> Position:
        """The position after one more touchpoint. Updates and returns `position`, which the
        caller owns. A late touchpoint needs `earlier`: the customer's earlier touchpoints, in
        the order they arrived; the fold then replays them all in occurrence order."""
        if position.last_at is None or mark.occurred_at >= position.last_at:
            self._step(position, mark)
            return position
        if earlier is None:
            raise ValueError(f"a late touchpoint of {position.customer_id} needs the earlier ones")
        return self.replay(position.customer_id, [*earlier(position), mark])

    def replay(self, customer_id: str, marks: Iterable[Mark]) -> Position:
        """A customer's position from all their touchpoints, in any order."""
        position = Position(customer_id)
        for mark in sorted(marks, key=lambda m: m.occurred_at):  # stable: arrival breaks ties
            self._step(position, mark)
        return position

    def _step(self, position: Position, mark: Mark) -> None:
        at = mark.occurred_at
        position.touchpoints += 1
        if position.first_at is None:
            position.first_at = at
        last = position.last_at
        if (
            last is not None
            and position.stage in self._dormant_from
            and at - last > self._dormant_after
            and self.dormant_stage is not None
        ):
            self._enter(position, self.dormant_stage, last + self._dormant_after, None)
        position.last_at = at if last is None else max(last, at)

        counts = position.counts
        current = self.ranks.get(position.stage, _NO_RANK) if position.stage else _NO_RANK
        forward: _Rule | None = None
        back: _Rule | None = None
        for index in mark.rules:
            rule = self._rules[index]
            count = counts.get(index, 0) + 1
            counts[index] = count
            if count < rule.min_count:
                continue
            if rule.from_stages is not None:
                if position.stage in rule.from_stages and (back is None or rule.rank > back.rank):
                    back = rule
            elif rule.rank > current and (forward is None or rule.rank > forward.rank):
                forward = rule
        target = forward or back
        if target is not None and target.stage != position.stage:
            self._enter(position, target.stage, at, mark.event_id)

    def _enter(self, position: Position, stage: str, at: int, event_id: str | None) -> None:
        position.history.append(StageEntry(stage, at, event_id))
        position.stage = stage
        position.since = at
        position.peak_rank = max(position.peak_rank, self.ranks[stage])
