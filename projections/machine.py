"""The stage machine: the journey definition compiled for folding many touchpoints fast into
each customer's position (`projections.position`), with the detectors of its frictions and
moments of truth (`projections.detectors`).

Touchpoints count in the order they happened. One that arrives late (it happened before the
latest one already seen) makes the fold replay all of the customer's touchpoints in
occurrence order, so the result is the same whatever order they arrived in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from engine.definition import ANY_TYPE, JourneyDefinition, Match
from engine.journeys import TouchpointState, touchpoint_fields
from engine.touchpoints import Touchpoint
from engine.words import KEPT_LENGTH, PLACE_ATTRIBUTES, WORD_ATTRIBUTES
from projections.detectors import Detector, detector_for
from projections.log import Folded
from projections.position import (
    ALL_DETAILS,
    FRICTIONS,
    NO_RANK,
    OUTCOMES,
    WORDS,
    Friction,
    Mark,
    Position,
    StageEntry,
    Touch,
    add_friction,
    expire,
    resolve_all,
    touch,
)

DAY_MS = 86_400_000
_DORMANT_RANK = -1
_NO_RANK = NO_RANK


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    stage: str
    rank: int
    min_count: int
    from_stages: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class _Pattern:
    types: frozenset[str] | None
    channels: frozenset[str] | None
    outcomes: frozenset[str | None] | None
    attributes: tuple[tuple[str, str], ...]

    def matches(self, channel: str, outcome: str | None, attributes: Mapping[str, str]) -> bool:
        """Whether a touchpoint of one of `types` matches the rest."""
        return (
            (self.channels is None or channel in self.channels)
            and (self.outcomes is None or outcome in self.outcomes)
            and all(attributes.get(key) == value for key, value in self.attributes)
        )

    @classmethod
    def of(cls, match: Match) -> _Pattern:
        return cls(
            types=None if ANY_TYPE in match.types else frozenset(match.types),
            channels=frozenset(match.channels) if match.channels else None,
            outcomes=frozenset(match.outcomes) if match.outcomes else None,
            attributes=tuple(sorted(match.attributes.items())),
        )


class StageMachine:
    """The journey definition compiled for folding many events fast: its stage rules, and the
    detectors of its frictions and moments of truth."""

    def __init__(self, definition: JourneyDefinition) -> None:
        self.definition = definition
        dormancy = definition.dormancy
        self.dormant_stage = dormancy.stage if dormancy else None
        self._dormant_after = int(dormancy.after_days * DAY_MS) if dormancy else 0
        self._dormant_from = frozenset(dormancy.from_stages) if dormancy else frozenset()
        self.ranks = {stage_id: rank for rank, stage_id in enumerate(definition.ladder)}
        if self.dormant_stage:
            self.ranks[self.dormant_stage] = _DORMANT_RANK
        self._budgets = {
            stage.id: int(stage.budget_days * DAY_MS)
            for stage in definition.stages
            if stage.budget_days
        }
        self._patterns: list[_Pattern] = []
        self._pattern_ids: dict[_Pattern, int] = {}
        # Entry rules come first: rule i is pattern i, and counts are kept per rule.
        self._rules: list[_Rule] = []
        for stage in definition.stages:
            for rule in stage.enter:
                self._rules.append(
                    _Rule(
                        index=len(self._rules),
                        stage=stage.id,
                        rank=self.ranks[stage.id],
                        min_count=rule.min_count,
                        from_stages=frozenset(rule.from_stages) if rule.from_stages else None,
                    )
                )
                self._patterns.append(_Pattern.of(rule))
        self._entry_rules = len(self._rules)
        # The attributes the detectors read; a mark's values hold them after the two words.
        self.value_names: list[str] = []
        # Stalls and regressions follow stages and time alone: the machine keeps them itself.
        by_kind = {f.detector: f.id for f in reversed(definition.frictions)}
        self._stall: str | None = by_kind.get("stall")
        self._regression: str | None = by_kind.get("regression")
        detectors: list[Detector] = []
        for watched in (*definition.frictions, *definition.moments):
            detector = detector_for(watched, self._compile, self._value_index)
            if detector is not None:
                detectors.append(detector)
        self._detectors = detectors
        self._stage_watchers = tuple(d for d in detectors if d.watches_stages)
        # Which detectors read a touchpoint depends only on the patterns it matches.
        self._readers: dict[tuple[int, ...], tuple[Detector, ...]] = {}
        # Only these attributes decide which patterns match; they key a cache of matches.
        self._attribute_names = sorted({name for p in self._patterns for name, _ in p.attributes})
        self._matches: dict[tuple[str | None, ...], tuple[int, ...]] = {}
        self._any_type = [i for i, p in enumerate(self._patterns) if p.types is None]
        self._by_type: dict[str, list[int]] = {}
        for index, pattern in enumerate(self._patterns):
            for kind in pattern.types or ():
                self._by_type.setdefault(kind, []).append(index)

    def _compile(self, matches: tuple[Match, ...]) -> frozenset[int]:
        ids = set()
        for match in matches:
            pattern = _Pattern.of(match)
            if pattern not in self._pattern_ids:
                self._pattern_ids[pattern] = len(self._patterns)
                self._patterns.append(pattern)
            ids.add(self._pattern_ids[pattern])
        return frozenset(ids)

    def _value_index(self, attribute: str) -> int:
        if attribute not in self.value_names:
            self.value_names.append(attribute)
        return WORDS + self.value_names.index(attribute)

    def mark(self, tp: TouchpointState) -> Mark:
        """What the fold keeps of a recorded touchpoint."""
        return self.mark_fields(
            tp["occurred_at"],
            tp["event_id"],
            tp["type"],
            tp["channel"],
            tp["outcome"],
            tp["rep_id"],
            tp["attributes"],
        )

    def mark_folded(self, e: Folded) -> Mark:
        """`mark`, from the fields a fold reads of the log."""
        return self.mark_fields(
            e.occurred_at, e.event_id or "", e.type, e.channel, e.outcome, e.rep_id, e.attributes
        )

    def mark_fields(  # noqa: PLR0917 (a touchpoint's fields, one by one, for speed)
        self,
        occurred_at: int,
        event_id: str,
        kind: str,
        channel: str,
        outcome: str | None,
        rep_id: str | None,
        attributes: Mapping[str, str],
    ) -> Mark:
        """`mark`, from the fields it reads."""
        # Lists made a field at a time rather than by unpacking: compiled, that is about a
        # fifth cheaper, and a replay marks every event of the log.
        key: list[str | None] = [kind, channel, outcome]
        for name in self._attribute_names:
            key.append(attributes.get(name))
        rules = self._matches.get(tuple(key))
        if rules is None:
            rules = self.matching_rules(kind, channel, outcome, attributes)
            if len(self._matches) < 100_000:
                self._matches[tuple(key)] = rules
        place, detail = _place_and_detail(attributes)
        values: list[str | None] = [place, detail]
        for name in self.value_names:
            values.append(attributes.get(name))
        # Made by tuple.__new__, without the constructor a NamedTuple has in Python.
        return tuple.__new__(
            Mark, (occurred_at, event_id, rules, kind, channel, outcome, rep_id, tuple(values))
        )

    def mark_touchpoint(self, tp: Touchpoint) -> Mark:
        """`mark` for a touchpoint not yet recorded."""
        return self.mark(cast(TouchpointState, touchpoint_fields(tp)))

    def matching_rules(
        self, kind: str, channel: str, outcome: str | None, attributes: Mapping[str, str]
    ) -> tuple[int, ...]:
        """The patterns a touchpoint matches, entry rules first."""
        candidates = (*self._any_type, *self._by_type.get(kind, ()))
        return tuple(
            sorted(
                index
                for index in candidates
                if self._patterns[index].matches(channel, outcome, attributes)
            )
        )

    @staticmethod
    def is_late(position: Position, mark: Mark) -> bool:
        """Whether a touchpoint happened before what the position has already seen: a later
        touchpoint, or a clock event that changed it."""
        at = mark.occurred_at
        return (position.last_at is not None and at < position.last_at) or (
            position.horizon is not None and at < position.horizon
        )

    def evolve(
        self,
        position: Position,
        mark: Mark,
        earlier: Callable[[Position], Sequence[Mark]] | None = None,
        now: int | None = None,
    ) -> Position:
        """The position after one more touchpoint, as of the journey clock `now` (the latest
        clock event). Updates and returns `position`, which the caller owns. A late touchpoint
        needs `earlier`: the customer's earlier touchpoints, in the order they arrived; the
        fold then replays them all in occurrence order."""
        if not self.is_late(position, mark):
            self.step(position, mark)
            if now is not None and now > mark.occurred_at:
                self.advance(position, now)
            return position
        if earlier is None:
            raise ValueError(f"a late touchpoint of {position.customer_id} needs the earlier ones")
        return self.replay(position.customer_id, [*earlier(position), mark], now)

    def replay(self, customer_id: str, marks: Iterable[Mark], now: int | None = None) -> Position:
        """A customer's position from all their touchpoints, in any order, as of the journey
        clock `now` (the latest clock event seen)."""
        position = Position(customer_id)
        for mark in sorted(marks, key=lambda m: m.occurred_at):  # stable: arrival breaks ties
            self.step(position, mark)
        if now is not None:
            self.advance(position, now)
        position.details_changed = ALL_DETAILS
        return position

    def advance(self, position: Position, now: int) -> bool:
        """Lets time pass up to `now`: what falls due strictly before it happens, in the order
        it falls due (windows close, stalls open, silence turns dormant). Whether anything did."""
        moved = False
        while position.due is not None and position.due < now:
            moved = True
            at = position.due
            for window in [w for w in position.windows if w.deadline == at]:
                expire(position, window)
            stage, since = position.stage, position.since
            if stage is not None and since is not None:
                budget = self._budgets.get(stage)
                if budget is not None and since + budget == at and self._stall is not None:
                    add_friction(
                        position,
                        Friction(
                            f"{self._stall}:{stage}:{since}",
                            self._stall,
                            at,
                            None,
                            (),
                            stage,
                            None,
                            position.rep,
                        ),
                    )
                last = position.last_at
                if (
                    self.dormant_stage is not None
                    and stage in self._dormant_from
                    and last is not None
                    and last + self._dormant_after == at
                ):
                    self._enter(position, self.dormant_stage, at, None)
            position.due = self._due(position, after=at)
        if moved and (position.horizon is None or now > position.horizon):
            position.horizon = now
        return moved

    def _due(self, position: Position, after: int | None = None) -> int | None:
        """When time alone next changes this position (after `after`, which has been dealt with)."""
        due: int | None = None
        for window in position.windows:
            if due is None or window.deadline < due:
                due = window.deadline
        stage, since = position.stage, position.since
        if stage is not None and since is not None:
            budget = self._budgets.get(stage)
            if budget is not None and self._stall is not None:
                stall = since + budget
                if (due is None or stall < due) and not self._stalled(position):
                    due = stall
            last = position.last_at
            if last is not None and stage in self._dormant_from:
                dormant = last + self._dormant_after
                if due is None or dormant < due:
                    due = dormant
        if after is not None and due is not None and due <= after:
            # Rare: something else was due at the same moment; look again without it.
            times = [w.deadline for w in position.windows]
            if stage is not None and since is not None:
                budget = self._budgets.get(stage)
                if budget is not None and self._stall is not None and not self._stalled(position):
                    times.append(since + budget)
                if position.last_at is not None and stage in self._dormant_from:
                    times.append(position.last_at + self._dormant_after)
            later = [t for t in times if t > after]
            return min(later) if later else None
        return due

    def _stalled(self, position: Position) -> bool:
        stall = self._stall
        for friction in position.frictions:
            if friction.resolved_at is None and friction.kind == stall:
                return True
        return False

    def step(self, position: Position, mark: Mark) -> None:
        """Folds one touchpoint that is not late (see `is_late`) into the position."""
        at = mark.occurred_at
        if position.due is not None and position.due < at:
            self.advance(position, at)
        position.touchpoints += 1
        if position.first_at is None:
            position.first_at = at
        last = position.last_at
        if last is None or at > last:
            position.last_at = at

        counts = position.counts
        stage = position.stage
        current = self.ranks.get(stage, _NO_RANK) if stage else _NO_RANK
        forward: _Rule | None = None
        back: _Rule | None = None
        entry_rules, rules = self._entry_rules, self._rules
        for index in mark.rules:
            if index >= entry_rules:
                break
            rule = rules[index]
            count = counts.get(index, 0) + 1
            counts[index] = count
            if count < rule.min_count:
                continue
            if rule.from_stages is not None:
                if stage in rule.from_stages and (back is None or rule.rank > back.rank):
                    back = rule
            elif rule.rank > current and (forward is None or rule.rank > forward.rank):
                forward = rule
        target = forward or back
        if target is not None and target.stage != stage:
            self._enter(position, target.stage, at, mark.event_id, touch(mark))

        readers = self._readers.get(mark.rules)
        if readers is None:
            matched = set(mark.rules)
            readers = self._readers[mark.rules] = tuple(
                d for d in self._detectors if not d.patterns.isdisjoint(matched)
            )
        for detector in readers:
            detector.see(position, mark)
        outcome = mark.outcome
        if outcome is not None:
            tally = position.outcomes.get(mark.channel)
            if tally is None:
                tally = position.outcomes[mark.channel] = [0, 0, 0]
            tally[_OUTCOME_INDEX[outcome]] += 1
            position.details_changed |= OUTCOMES
        position.due = self._due(position)

    def _enter(
        self,
        position: Position,
        stage: str,
        at: int,
        event_id: str | None,
        touched: Touch | None = None,
    ) -> None:
        previous = position.stage
        history = position.history
        if history and history[-1].touch is not None:
            # Only the latest entry's touchpoint is ever put in words: the others keep none.
            history[-1] = history[-1]._replace(touch=None)
        history.append(StageEntry(stage, at, event_id, touched))
        position.stage = stage
        position.since = at
        rank = self.ranks[stage]
        position.peak_rank = max(position.peak_rank, rank)
        if self._stall is not None:
            resolve_all(position, self._stall, at, event_id)
        for watcher in self._stage_watchers:
            watcher.entered(position, at, event_id)
        if self._regression is None or previous is None:
            return
        before = self.ranks.get(previous, _NO_RANK)
        for index, friction in enumerate(position.frictions):
            if (
                friction.resolved_at is None
                and friction.kind == self._regression
                and self.ranks.get(friction.stage or "", _NO_RANK) <= rank
            ):
                position.frictions[index] = friction.resolve(at, event_id)
                position.details_changed |= FRICTIONS
        if 0 <= rank < before:
            add_friction(
                position,
                Friction(
                    f"{self._regression}:{event_id or at}",
                    self._regression,
                    at,
                    None,
                    (event_id,) if event_id else (),
                    previous,
                    None,
                    position.rep,
                    touched,
                ),
            )


_OUTCOME_INDEX = {"positive": 0, "neutral": 1, "negative": 2}


_RANKS = {name: rank for rank, name in enumerate(WORD_ATTRIBUTES)}


def _place_and_detail(attributes: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Where a touchpoint happened and what it was about, as the fold keeps them (the first
    of each kind of attribute that is present, cut at KEPT_LENGTH). Goes through the
    touchpoint's own few attributes rather than asking for every name; here, to be
    compiled with the fold."""
    place = detail = None
    place_rank = detail_rank = len(WORD_ATTRIBUTES)
    for name, value in attributes.items():
        rank = _RANKS.get(name)
        if rank is None or not value:
            continue
        if rank < len(PLACE_ATTRIBUTES):
            if rank < place_rank:
                place, place_rank = value, rank
        elif rank < detail_rank:
            detail, detail_rank = value, rank
    return (
        None if place is None else place[:KEPT_LENGTH],
        None if detail is None else detail[:KEPT_LENGTH],
    )
