"""How journeys look to people: in a terminal, and as JSON for other programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from engine.definition import JourneyDefinition
from engine.touchpoints import from_millis
from projections.position import Position
from projections.timeline import TimelineEntry, reported_late
from projections.views import StageCount

OUTCOME_STYLES = {"positive": "green", "negative": "red", "neutral": "yellow"}


def when(ms: int | None) -> str:
    return "-" if ms is None else from_millis(ms).strftime("%Y-%m-%d %H:%M")


def iso(ms: int | None) -> str | None:
    return None if ms is None else from_millis(ms).isoformat().replace("+00:00", "Z")


def duration(ms: int) -> str:
    days, rest = divmod(max(ms, 0), 86_400_000)
    hours = rest // 3_600_000
    return f"{days} d {hours} h" if days else f"{hours} h"


def label(definition: JourneyDefinition, stage: str | None) -> str:
    if stage is None:
        return "-"
    try:
        return definition.stage(stage).label
    except KeyError:
        return stage


def customer_json(
    definition: JourneyDefinition,
    position: Position,
    timeline: Sequence[TimelineEntry],
    clock: int | None,
) -> dict[str, Any]:
    history = position.history
    return {
        "customer_id": position.customer_id,
        "stage": position.stage,
        "stage_label": label(definition, position.stage),
        "stage_since": iso(position.since),
        "time_in_stage_hours": _hours_since(position.since, clock),
        "as_of": iso(clock),
        "touchpoints": position.touchpoints,
        "first_seen": iso(position.first_at),
        "last_seen": iso(position.last_at),
        "stage_history": [
            {
                "stage": entry.stage,
                "entered_at": iso(entry.entered_at),
                "event_id": entry.event_id,
                "hours_in_stage": round(
                    ((nxt.entered_at if nxt else clock or entry.entered_at) - entry.entered_at)
                    / 3_600_000,
                    1,
                ),
            }
            for entry, nxt in zip(history, [*history[1:], None], strict=True)
        ],
        "timeline": [
            {
                "occurred_at": iso(t.occurred_at),
                "event_id": t.event_id,
                "channel": t.channel,
                "type": t.type,
                "outcome": t.outcome,
                "rep_id": t.rep_id,
                "source": t.source,
                "attributes": dict(t.attributes),
                "arrival": t.arrival,
            }
            for t in timeline
        ],
    }


def _hours_since(since: int | None, clock: int | None) -> float | None:
    if since is None or clock is None:
        return None
    return round((clock - since) / 3_600_000, 1)


def customer_view(
    definition: JourneyDefinition,
    position: Position,
    timeline: Sequence[TimelineEntry],
    clock: int | None,
) -> Group:
    ladder = Text()
    for index, stage_id in enumerate(definition.ladder):
        if index:
            ladder.append(" ▸ ", style="dim")
        current = stage_id == position.stage
        ladder.append(
            f" {label(definition, stage_id)} " if current else label(definition, stage_id),
            style="bold reverse" if current else ("" if _reached(position, stage_id) else "dim"),
        )
    if position.stage not in definition.ladder:
        ladder.append(f"   ({label(definition, position.stage)})", style="bold yellow")
    in_stage = duration((clock or 0) - (position.since or 0)) if position.since else "-"
    headline = Text.assemble(
        (f"Customer {position.customer_id}", "bold"),
        f"  ·  {label(definition, position.stage)} for {in_stage} (since {when(position.since)})",
        f"  ·  {position.touchpoints} touchpoints, journey clock {when(clock)}",
    )
    stages = Table(title="Stage history", title_justify="left", box=None, padding=(0, 2))
    for column in ("entered", "stage", "moved by"):
        stages.add_column(column, no_wrap=True)
    for entry in position.history:
        stages.add_row(
            when(entry.entered_at),
            label(definition, entry.stage),
            entry.event_id or "silence (dormancy)",
        )
    events = Table(
        title="Timeline, by when it happened", title_justify="left", box=None, padding=(0, 2)
    )
    for column in ("when", "channel", "what", "outcome", "rep"):
        events.add_column(column, no_wrap=True)
    events.add_column("details", overflow="fold")
    for t, late in zip(timeline, reported_late(list(timeline)), strict=True):
        details = " ".join(f"{k}={v}" for k, v in t.attributes.items())
        if late:
            details = f"{details}  (reported late)".strip()
        events.add_row(
            when(t.occurred_at),
            t.channel,
            t.type,
            Text(t.outcome or "", style=OUTCOME_STYLES.get(t.outcome or "", "")),
            t.rep_id or "",
            details,
        )
    return Group(headline, ladder, Text(), stages, Text(), events)


def _reached(position: Position, stage: str) -> bool:
    return any(entry.stage == stage for entry in position.history)


def funnel_table(definition: JourneyDefinition, counts: Sequence[StageCount]) -> Table:
    table = Table(title="Journey funnel", title_justify="left")
    table.add_column("stage")
    table.add_column("reached", justify="right")
    table.add_column("of first", justify="right")
    table.add_column("from previous", justify="right")
    table.add_column("in stage now", justify="right")
    first = counts[0].reached if counts else 0
    previous: int | None = None
    for count in counts:
        on_ladder = count.stage in definition.ladder
        table.add_row(
            label(definition, count.stage),
            str(count.reached) if on_ladder else "",
            _share(count.reached, first) if on_ladder else "",
            _share(count.reached, previous) if on_ladder and previous is not None else "",
            str(count.current),
        )
        if on_ladder:
            previous = count.reached
    return table


def funnel_json(
    definition: JourneyDefinition, counts: Sequence[StageCount]
) -> list[dict[str, Any]]:
    return [
        {
            "stage": c.stage,
            "label": label(definition, c.stage),
            "reached": c.reached if c.stage in definition.ladder else None,
            "current": c.current,
        }
        for c in counts
    ]


def _share(part: int, whole: int | None) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)
