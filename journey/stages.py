"""A customer's place on the journey's ladder, stage by stage: reached, current, skipped or
ahead, and what moves a customer into each stage, in words."""

from __future__ import annotations

from typing import Any

from engine.definition import EntryRule, JourneyDefinition
from projections.position import Position

STATES = ("reached", "current", "skipped", "ahead")


def stage_states(definition: JourneyDefinition, position: Position) -> dict[str, str]:
    """Each stage of the ladder for this customer. Skipped: before the current stage (or,
    off the ladder, before the furthest one reached) and never entered."""
    ladder = definition.ladder
    entered = {entry.stage for entry in position.history}
    if position.stage in ladder:
        mark = ladder.index(position.stage)
    else:
        mark = max((ladder.index(s) for s in entered if s in ladder), default=-1)
    states = {}
    for index, stage in enumerate(ladder):
        if stage == position.stage:
            states[stage] = "current"
        elif stage in entered:
            states[stage] = "reached"
        elif index < mark:
            states[stage] = "skipped"
        else:
            states[stage] = "ahead"
    return states


def next_stage(definition: JourneyDefinition, position: Position) -> str | None:
    ladder = definition.ladder
    if position.stage not in ladder:
        return None
    index = ladder.index(position.stage)
    return ladder[index + 1] if index + 1 < len(ladder) else None


def stages_json(definition: JourneyDefinition, position: Position) -> list[dict[str, Any]]:
    states = stage_states(definition, position)
    return [
        {
            "id": stage.id,
            "label": stage.label,
            "description": stage.description,
            "entered_by": [entry_words(definition, rule) for rule in stage.enter],
            "state": states[stage.id],
        }
        for stage in definition.stages
        if stage.id in states
    ]


def entry_words(definition: JourneyDefinition, rule: EntryRule) -> str:
    """An entry rule as a rep reads it: "3 page views", "a call inbound or webinar attended
    by phone", "a page view with page=pricing", "a complaint, from Advocate"."""
    types = [t.replace("_", " ") for t in rule.types]
    if "*" in rule.types:
        what = "any touchpoint" if rule.min_count == 1 else f"{rule.min_count} touchpoints"
    elif rule.min_count == 1:
        what = "a " + _either(types)
    else:
        what = f"{rule.min_count} " + _either([f"{t}s" for t in types])
    if rule.channels:
        what += " by " + _either(list(rule.channels))
    if rule.outcomes:
        what += " going " + _either(list(rule.outcomes))
    if rule.attributes:
        what += " with " + " and ".join(f"{k}={v}" for k, v in rule.attributes.items())
    if rule.from_stages:
        names = [_label(definition, s) for s in rule.from_stages]
        what += ", from " + _either(names)
    return what


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _label(definition: JourneyDefinition, stage: str) -> str:
    try:
        return definition.stage(stage).label
    except KeyError:
        return stage
