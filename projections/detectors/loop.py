"""A loop: the same step repeated in one stage without progress."""

from __future__ import annotations

from typing import Any

from engine.definition import Loop
from projections.detectors.base import Compile, Detector, ValueIndex, register
from projections.position import Friction, Mark, Position, add_friction, resolve_all, touch


class LoopDetector(Detector):
    def __init__(self, rule: Loop, compile_: Compile, value_index: ValueIndex) -> None:
        self.kind = rule.id
        self.patterns = compile_(rule.steps)
        self._values = tuple(value_index(name) for name in rule.step_attributes)
        self._repeats = rule.repeats
        self.watches_stages = True

    def see(self, position: Position, mark: Mark) -> None:
        values = mark.values
        key = mark.type
        for index in self._values:
            key = f"{key}|{values[index] or ''}"
        # What it remembers, in this stage: per step, [how often, the first touchpoint].
        steps: dict[str, list[Any]] | None = position.memory.get(self.kind)
        if steps is None:
            steps = position.memory[self.kind] = {}
        step = steps.get(key)
        if step is None:
            steps[key] = [1, mark.event_id]
            return
        step[0] += 1
        if step[0] == self._repeats:
            add_friction(
                position,
                Friction(
                    f"{self.kind}:{step[1]}",
                    self.kind,
                    mark.occurred_at,
                    None,
                    (step[1], mark.event_id),
                    position.stage,
                    mark.channel,
                    mark.rep_id,
                    touch(mark),
                ),
            )

    def entered(self, position: Position, at: int, event_id: str | None) -> None:
        """A new stage starts the count again, and ends the loops of the last one."""
        position.memory.pop(self.kind, None)
        resolve_all(position, self.kind, at, event_id)


register(Loop, LoopDetector)
