"""How journeys look to people: in a terminal, and as JSON for other programs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from consumers.action_store import ActionRow
from engine.definition import JourneyDefinition
from engine.touchpoints import from_millis
from journey.stages import entry_words, next_stage, stage_states
from projections.diff import DefinitionDiff
from projections.position import Friction, Moment, Position
from projections.timeline import TimelineEntry, reported_late
from projections.views import FrictionRow, StageCount

OUTCOME_STYLES = {"positive": "green", "negative": "red", "neutral": "yellow"}

# Text from channel systems is shown, never obeyed: control characters (a terminal's escape
# sequences, line breaks, the marks that reverse text direction) become visible symbols.
_CONTROL_PICTURES = {
    **{code: 0x2400 + code for code in range(0x20)},  # ␀ ... ␟, ␊ for a line break
    0x7F: 0x2421,  # ␡
    **{code: 0xFFFD for code in range(0x80, 0xA0)},
    **{code: 0xFFFD for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F))},
    **{code: 0xFFFD for code in range(0x2066, 0x206A)},
}


def shown(text: str) -> str:
    """Text from outside, safe to write to a terminal: one line, nothing it could obey."""
    return text.translate(_CONTROL_PICTURES)


class _Console(Console):
    """Prints text as it is: markup is not read from it (a customer's note can hold
    brackets), and control characters are shown, not written (see `shown`)."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(shown(text), **options)


Cell = str | Text


class Listing:
    """Rows shown as a table where the terminal is wide enough for every cell to stay whole,
    and stacked where it is not: a row's first `head` cells on one line, the others indented
    below it, wrapped between words. Either way no id and no word is cut; only the `wrap`
    column of a table may wrap, and never narrower than its longest word."""

    def __init__(
        self,
        title: str,
        columns: Sequence[str],
        *,
        head: int,
        wrap: str | None = None,
        boxed: bool = False,
        labelled: Sequence[str] = (),
        right: Sequence[str] = (),
    ) -> None:
        self.title = title
        self.columns = list(columns)
        self.head = head
        self.wrap = wrap
        self.boxed = boxed
        self.labelled = set(labelled)  # stacked, these cells say which column they are
        self.right = set(right)  # numbers, aligned on the right in a table
        self.rows: list[list[Cell]] = []

    def add_row(self, *cells: Cell) -> None:
        self.rows.append(list(cells))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.table()
        if self._width_needed(console, options, table) <= options.max_width:
            yield table
        else:
            yield self.stacked(options.max_width)

    def table(self) -> Table:
        table = (
            Table(title=self.title, title_justify="left")
            if self.boxed
            else Table(title=self.title, title_justify="left", box=None, padding=(0, 2))
        )
        for column in self.columns:
            if column == self.wrap:
                table.add_column(column, min_width=self._longest_word(column))
            else:
                table.add_column(
                    column, no_wrap=True, justify="right" if column in self.right else "left"
                )
        for row in self.rows:
            table.add_row(*row)
        return table

    def stacked(self, width: int = 80) -> Group:
        lines: list[Any] = [Text(self.title, style="italic")]
        for row in self.rows:
            cells = list(zip(self.columns, row, strict=True))
            lines.append(Text("  ").join(_text(cell) for _, cell in cells[: self.head] if cell))
            rest = [
                Text.assemble(f"{column} " if column in self.labelled else "", _text(cell))
                for column, cell in cells[self.head :]
                if cell
            ]
            for line in _packed(rest, width - 4):
                lines.append(Padding(line, (0, 0, 0, 4), expand=False))
        return Group(*lines)

    def _width_needed(self, console: Console, options: ConsoleOptions, table: Table) -> int:
        """The table's width with every cell on one line, but the wrapping column at its
        narrowest (its longest word)."""
        natural = Measurement.get(console, options.update_width(100_000), table).maximum
        if self.wrap is None:
            return natural
        index = self.columns.index(self.wrap)
        widest = max((Text(str(row[index])).cell_len for row in self.rows), default=0)
        return natural - widest + self._longest_word(self.wrap)

    def _longest_word(self, column: str) -> int:
        index = self.columns.index(column)
        words = [*column.split(), *(word for row in self.rows for word in str(row[index]).split())]
        return max(len(word) for word in words)


def _text(cell: Cell) -> Text:
    """A cell as text; what came from outside shown, never obeyed (see `shown`)."""
    return Text(shown(cell)) if isinstance(cell, str) else cell


def _packed(items: Sequence[Text], width: int) -> list[Text]:
    """Items joined by " · " into lines of at most `width`, each item kept on one line
    (unless it alone is wider)."""
    lines: list[Text] = []
    for item in items:
        if lines and lines[-1].cell_len + 5 + item.cell_len <= width:
            lines[-1].append("  ·  ").append_text(item)
        else:
            lines.append(item.copy())
    return lines


# Priority in words. The default policy's rules score 0.8 to 0.93 for a follow-up, a call
# back or a recovery call, 0.64 to 0.74 for an introduction or a call back to a customer who
# never phoned, and below 0.6 for a consultation offer or a thank-you: the lines fall
# between those, so a word says what kind of action it is, not a rounding of the number.
HIGH, MEDIUM = 0.8, 0.6


def priority_level(priority: float) -> str:
    """high (0.8 and above), medium (0.6 and above) or low."""
    # A weighted sum such as 0.5 x 0.9 + 0.3 x 0.9 + 0.2 x 0.4 is 0.8 give or take a bit.
    priority += 1e-9
    return "high" if priority >= HIGH else "medium" if priority >= MEDIUM else "low"


def and_more(shown: int, total: int) -> str | None:
    """The last line of a list cut at its limit."""
    return f"… and {total - shown} more" if total > shown else None


def when(ms: int | None) -> str:
    """A time as text views show it: in UTC, and saying so (2026-03-02 09:00 UTC)."""
    return "-" if ms is None else from_millis(ms).strftime("%Y-%m-%d %H:%M UTC")


def iso(ms: int | None) -> str | None:
    return None if ms is None else from_millis(ms).isoformat().replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1)  # naive: the times are UTC, written with a Z


def instant(ms: int | None) -> str | None:
    """A time as the HTTP API gives every time: ISO 8601 in UTC, always to the millisecond
    (2026-03-02T09:00:00.000Z, as JavaScript's toISOString writes it), so that every time has
    the same width, sorts as text, and says all the engine knows of it."""
    if ms is None:
        return None
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


# How the JSON of a view writes its times: `iso` for the command line, `instant` for the API.
TimeText = Callable[[int | None], str | None]


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
    actions: Sequence[ActionRow] = (),
    *,
    times: TimeText = iso,
) -> dict[str, Any]:
    history = position.history
    return {
        "customer_id": position.customer_id,
        "stage": position.stage,
        "stage_label": label(definition, position.stage),
        "stage_since": times(position.since),
        "time_in_stage_hours": _hours_since(position.since, clock),
        "as_of": times(clock),
        "touchpoints": position.touchpoints,
        "first_seen": times(position.first_at),
        "last_seen": times(position.last_at),
        "stage_history": [
            {
                "stage": entry.stage,
                "entered_at": times(entry.entered_at),
                "event_id": entry.event_id,
                "hours_in_stage": round(
                    ((nxt.entered_at if nxt else clock or entry.entered_at) - entry.entered_at)
                    / 3_600_000,
                    1,
                ),
            }
            for entry, nxt in zip(history, [*history[1:], None], strict=True)
        ],
        "rep": position.rep,
        "frictions": [
            friction_json(definition, f, position.rep, times=times) for f in position.frictions
        ],
        "moments_of_truth": [moment_json(definition, m, times=times) for m in position.moments],
        "channel_outcomes": {
            channel: dict(zip(("positive", "neutral", "negative"), tally, strict=True))
            for channel, tally in sorted(position.outcomes.items())
        },
        "inconsistent_channels": position.inconsistent_channels,
        "next_actions": [action_json(action, times=times) for action in actions],
        "timeline": [
            {
                "occurred_at": times(t.occurred_at),
                "event_id": t.event_id,
                "channel": t.channel,
                "type": t.type,
                "what": t.what,
                "detail": t.detail,
                "outcome": t.outcome,
                "rep_id": t.rep_id,
                "source": t.source,
                "attributes": dict(t.attributes),
                "arrival": t.arrival,
            }
            for t in timeline
        ],
    }


def action_json(
    row: ActionRow, *, explained: bool = False, times: TimeText = iso
) -> dict[str, Any]:
    """A next action and what became of it."""
    shown: dict[str, Any] = {
        "action_id": row.action_id,
        "customer_id": row.customer_id,
        "owner": row.owner,
        "action_type": row.action_type,
        "channel": row.channel,
        "rule": row.rule,
        "priority": row.priority,
        "priority_level": priority_level(row.priority),
        "status": row.status,
        "reason": row.reason,
        "decided_at": times(row.decided_at),
        "due_at": times(row.due_at) if row.due_at else None,
        "triggering_event_ids": row.record["triggering_event_ids"],
        "status_at": times(row.status_at) if row.status_at else None,
        "status_reason": row.status_reason,
        "snoozed_until": times(row.snoozed_until) if row.snoozed_until else None,
    }
    if explained:
        explanation = row.explanation
        shown["explanation"] = {
            **explanation,
            "triggered_at": times(explanation["triggered_at"]),
        }
        shown["log_position"] = row.log_position
    return shown


def friction_label(definition: JourneyDefinition, kind: str) -> str:
    rule = definition.friction(kind)
    return rule.label if rule else kind


def friction_json(
    definition: JourneyDefinition,
    friction: Friction | FrictionRow,
    owner: str | None = None,
    *,
    times: TimeText = iso,
) -> dict[str, Any]:
    rule = definition.friction(friction.kind)
    return {
        "id": friction.id,
        "kind": friction.kind,
        "label": rule.label if rule else friction.kind,
        "severity": rule.severity if rule else None,
        "open": friction.resolved_at is None,
        "opened_at": times(friction.opened_at),
        "resolved_at": times(friction.resolved_at),
        "stage": friction.stage,
        "channel": friction.channel,
        "rep_id": friction.rep_id,
        "owner": getattr(friction, "owner", owner),
        "events": list(friction.events),
        **({"customer_id": friction.customer_id} if isinstance(friction, FrictionRow) else {}),
    }


def moment_json(
    definition: JourneyDefinition, moment: Moment, *, times: TimeText = iso
) -> dict[str, Any]:
    rule = definition.moment(moment.kind)
    return {
        "kind": moment.kind,
        "label": rule.label if rule else moment.kind,
        "at": times(moment.at),
        "event_id": moment.event_id,
        "channel": moment.channel,
        "rep_id": moment.rep_id,
        "outcome": moment.outcome,
        "resolved_at": times(moment.resolved_at),
        "resolved_by": moment.resolved_by,
        "resolution": moment.resolution,
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
    actions: Sequence[ActionRow] = (),
) -> Group:
    ladder = Text()
    for index, (stage_id, state) in enumerate(stage_states(definition, position).items()):
        if index:
            ladder.append(" ▸ ", style="dim")
        name = label(definition, stage_id)
        if state == "current":
            ladder.append(f" {name} ", style="bold reverse")
        elif state == "skipped":  # said in words, not by a style alone
            ladder.append(f"{name} (skipped)", style="dim italic")
        else:
            ladder.append(name, style="" if state == "reached" else "dim")
    if position.stage not in definition.ladder:
        ladder.append(f"   ({label(definition, position.stage)})", style="bold yellow")
    in_stage = duration((clock or 0) - (position.since or 0)) if position.since else "-"
    headline = Text.assemble(
        (f"Customer {shown(position.customer_id)}", "bold"),
        f"  ·  {label(definition, position.stage)} for {in_stage} (since {when(position.since)})",
        f"  ·  {position.touchpoints} touchpoints, journey clock {when(clock)}",
    )
    stages = Listing("Stage history", ("entered", "stage", "moved by"), head=3)
    for entry in position.history:
        stages.add_row(
            when(entry.entered_at),
            label(definition, entry.stage),
            entry.event_id or "silence (dormancy)",
        )
    events = Listing(
        "Timeline, by when it happened",
        ("when", "channel", "what", "outcome", "rep", "details"),
        head=5,
        wrap="details",
    )
    for t, late in zip(timeline, reported_late(list(timeline)), strict=True):
        details = " ".join(f"{k}={v}" for k, v in t.attributes.items())
        if late:
            details = f"{details}  (reported late)".strip()
        events.add_row(
            when(t.occurred_at),
            t.channel,
            t.what,
            Text(t.outcome or "", style=OUTCOME_STYLES.get(t.outcome or "", "")),
            t.rep_id or "",
            details,
        )
    parts: list[Any] = [headline, ladder]
    following = next_stage(definition, position)
    if following is not None:
        moves = "; or ".join(
            entry_words(definition, rule) for rule in definition.stage(following).enter
        )
        parts.append(Text(f"To move on to {label(definition, following)}: {moves}.", style="dim"))
    parts += [Text(), stages, Text()]
    if position.frictions:
        parts += [_frictions_table(definition, position), Text()]
    if position.moments:
        parts += [_moments_table(definition, position), Text()]
    if position.inconsistent_channels:
        leaning = ", ".join(
            f"{channel} {tally[0]}+ {tally[2]}-"
            for channel, tally in sorted(position.outcomes.items())
        )
        parts += [Text(f"Inconsistent across channels: {leaning}", style="yellow"), Text()]
    if actions:
        parts += [_actions_list(actions), Text()]
    return Group(*parts, events)


def action_status(action: ActionRow) -> str:
    """The action's status as people read it: "snoozed until 2026-03-16 09:00 UTC: at a fair"."""
    status = action.status
    if status == "snoozed" and action.snoozed_until is not None:
        status = f"snoozed until {when(action.snoozed_until)}"
    return f"{status}: {action.status_reason}" if action.status_reason else status


def _actions_list(actions: Sequence[ActionRow]) -> Group:
    lines: list[Any] = [Text("Next actions", style="italic")]
    for action in actions:
        status = action_status(action)
        lines.append(
            Text.assemble(
                f"  {when(action.decided_at)}  ",
                (f"{action.action_type}", "bold" if action.is_open else "dim"),
                f" by {action.channel}, owner {shown(action.owner)}  ",
                (status, "green" if action.is_open else "dim"),
            )
        )
        lines.append(Text(f"      {shown(action.reason)}", style="" if action.is_open else "dim"))
    return Group(*lines)


def _frictions_table(definition: JourneyDefinition, position: Position) -> Listing:
    table = Listing(
        "Frictions",
        ("opened", "friction", "status", "stage", "rep", "because of"),
        head=3,
        wrap="because of",
        labelled=("rep", "because of"),
    )
    for f in sorted(position.frictions, key=lambda f: (f.resolved_at is not None, f.opened_at)):
        status = (
            Text("open", style="bold red")
            if f.resolved_at is None
            else Text(f"resolved {when(f.resolved_at)}", style="green")
        )
        table.add_row(
            when(f.opened_at),
            friction_label(definition, f.kind),
            status,
            label(definition, f.stage) if f.stage else "",
            f.rep_id or "",
            " ".join(f.events),
        )
    return table


def _moments_table(definition: JourneyDefinition, position: Position) -> Listing:
    table = Listing(
        "Moments of truth",
        ("when", "moment", "outcome", "channel", "rep", "touchpoint", "resolved"),
        head=3,
        labelled=("rep", "touchpoint", "resolved"),
    )
    for m in position.moments:
        rule = definition.moment(m.kind)
        resolved = f"{when(m.resolved_at)} ({m.resolution or '-'})" if m.resolved_at else ""
        table.add_row(
            when(m.at),
            rule.label if rule else m.kind,
            Text(m.outcome or "unknown", style=OUTCOME_STYLES.get(m.outcome or "", "dim")),
            m.channel,
            m.rep_id or "",
            m.event_id,
            resolved,
        )
    return table


def frictions_table(
    definition: JourneyDefinition, rows: Sequence[FrictionRow], clock: int | None
) -> Listing:
    table = Listing(
        "Open frictions, worst first",
        ("severity", "customer", "friction", "open for", "stage", "owner", "because of"),
        head=3,
        wrap="because of",
        boxed=True,
        labelled=("open for", "owner", "because of"),
    )
    for row in rows:
        table.add_row(
            str(row.severity),
            row.customer_id,
            friction_label(definition, row.kind),
            duration((clock or row.opened_at) - row.opened_at),
            label(definition, row.stage) if row.stage else "",
            row.owner or "",
            " ".join(row.events),
        )
    return table


def counts_table(title: str, heading: str, counts: Sequence[tuple[str | None, int]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(heading)
    table.add_column("frictions", justify="right")
    for key, count in counts:
        table.add_row(key or "-", str(count))
    return table


def outcomes_table(title: str, heading: str, rows: Sequence[tuple[Any, ...]]) -> Listing:
    """Positive, neutral and negative counts per key, with the positive and negative shares."""
    numbers = ("positive", "neutral", "negative", "positive %", "negative %")
    table = Listing(title, (heading, *numbers), head=1, boxed=True, labelled=numbers, right=numbers)
    for key, positive, neutral, negative in rows:
        total = positive + neutral + negative
        table.add_row(
            key or "-",
            str(positive),
            str(neutral),
            str(negative),
            _share(positive, total),
            _share(negative, total),
        )
    return table


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
    return _Console(stderr=stderr, highlight=False, soft_wrap=False, markup=False)


def outcome_json(key: str, row: Sequence[Any]) -> dict[str, Any]:
    name, positive, neutral, negative = row
    return {key: name, "positive": positive, "neutral": neutral, "negative": negative}


def diff_json(diff: DefinitionDiff) -> dict[str, Any]:
    return {
        "customers": diff.customers,
        "events": diff.events,
        "changed": len(diff.changed),
        "stage_moves": [
            {"from": old, "to": new, "customers": n} for (old, new), n in diff.stage_moves.items()
        ],
        "frictions_added": dict(diff.frictions_added),
        "frictions_removed": dict(diff.frictions_removed),
        "moments_changed": dict(diff.moments_changed),
        "customers_changed": [
            {
                "customer_id": c.customer_id,
                "stage": {"old": c.stage[0], "new": c.stage[1]},
                "frictions_added": list(c.frictions_added),
                "frictions_removed": list(c.frictions_removed),
                "moments": [{"moment": m, "old": o, "new": n} for m, o, n in c.moments],
            }
            for c in diff.changed
        ],
    }


def diff_view(diff: DefinitionDiff, limit: int) -> Group:
    headline = Text.assemble(
        (f"{len(diff.changed)} of {diff.customers} customers would change", "bold"),
        f"  ·  {diff.events} events replayed under both definitions",
    )
    parts: list[Any] = [headline, Text()]
    if diff.stage_moves:
        moves = Table(title="Stage changes", title_justify="left")
        for column in ("old stage", "new stage", "customers"):
            moves.add_column(column, justify="right" if column == "customers" else "left")
        for (old, new), count in diff.stage_moves.most_common():
            moves.add_row(old or "-", new or "-", str(count))
        parts += [moves, Text()]
    kinds = sorted(
        diff.frictions_added.keys() | diff.frictions_removed.keys() | diff.moments_changed.keys()
    )
    if kinds:
        details = Table(title="Frictions and moments of truth", title_justify="left")
        for column in ("rule", "frictions added", "frictions removed", "moments changed"):
            details.add_column(column, justify="left" if column == "rule" else "right")
        for kind in kinds:
            details.add_row(
                kind,
                str(diff.frictions_added[kind]),
                str(diff.frictions_removed[kind]),
                str(diff.moments_changed[kind]),
            )
        parts += [details, Text()]
    if diff.changed and limit:
        customers = Table(title=f"Customers (first {limit})", title_justify="left")
        for column in ("customer", "stage", "frictions", "moments"):
            customers.add_column(column, overflow="fold")
        for change in diff.changed[:limit]:
            old, new = change.stage
            customers.add_row(
                change.customer_id,
                f"{old} → {new}" if old != new else (new or "-"),
                " ".join(
                    [f"+{k}" for k in change.frictions_added]
                    + [f"-{k}" for k in change.frictions_removed]
                ),
                " ".join(f"{m}: {o or '-'} → {n or '-'}" for m, o, n in change.moments),
            )
        parts.append(customers)
    if not diff.changed:
        parts.append(Text("Nothing would change."))
    return Group(*parts)


def states_table(name: str, states: Sequence[tuple[str, dict[str, Any]]]) -> Table:
    """A custom projection's states, one row per customer, one column per top-level key."""
    columns: list[str] = []
    for _, state in states:
        columns.extend(key for key in state if key not in columns)
    table = Table(title=name, title_justify="left")
    table.add_column("customer")
    for column in columns:
        table.add_column(column, overflow="fold")
    for customer, state in states:
        table.add_row(customer, *(_cell(state.get(column)) for column in columns))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def per_team(
    definition: JourneyDefinition, reps: Sequence[tuple[str | None, int, int, int]]
) -> list[tuple[str | None, int, int, int]]:
    """Outcomes per rep summed per team of the definition (reps in no team are left out)."""
    teams: dict[str, list[int]] = {team: [0, 0, 0] for team in definition.teams}
    for rep, *counts in reps:
        team = definition.team_of(rep)
        if team is not None:
            teams[team] = [a + b for a, b in zip(teams[team], counts, strict=True)]
    return [(team, *counts) for team, counts in teams.items()]  # type: ignore[misc]
