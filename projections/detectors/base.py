"""What every detector is, and the registry that finds a friction rule's detector by the
definition model it reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.definition import Match
from projections.position import Mark, Position

HOUR_MS = 3_600_000
MINUTE_MS = 60_000

PatternIds = frozenset[int]
Compile = Callable[[tuple[Match, ...]], PatternIds]  # a rule's matches as the machine's patterns
ValueIndex = Callable[[str], int]  # where an attribute's value is in a mark's values


class Detector:
    """Reads the marks that match any of `patterns` and updates the position; keeps what it
    must remember between touchpoints in `position.memory[kind]`, JSON-ready. It never reads a
    clock: time passes by touchpoints and clock events."""

    kind: str  # the rule's id
    patterns: PatternIds
    # Whether `entered` must be called when the customer enters another stage.
    watches_stages: bool = False

    def see(self, position: Position, mark: Mark) -> None:
        raise NotImplementedError

    def entered(self, position: Position, at: int, event_id: str | None) -> None:
        """The customer entered another stage at `at`."""


DetectorFactory = Callable[[Any, Compile, ValueIndex], Detector]
_REGISTRY: dict[type, DetectorFactory] = {}


def register(rule: type, factory: DetectorFactory) -> None:
    """Makes `factory` the detector of the definition's rules of type `rule`."""
    _REGISTRY[rule] = factory


def detector_for(rule: object, compile_: Compile, value_index: ValueIndex) -> Detector | None:
    """The detector of a friction rule or moment of truth; None for the rules the stage machine
    itself follows (stalls and regressions, which depend on stages and time alone)."""
    factory = _REGISTRY.get(type(rule))
    return factory(rule, compile_, value_index) if factory is not None else None
