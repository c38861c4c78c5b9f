"""What each action rule achieved, per rule, owner or team, over a period: shared by `journey
effectiveness`, GET /api/effectiveness, the managers' page and the report. The figures are
`consumers.effectiveness`'s; this module reads their inputs (the decider's actions, the
outcomes in the log, the customers' journeys) and shows them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click
from rich.table import Table

from consumers.effectiveness import (
    GROUPINGS,
    Effect,
    Period,
    effectiveness,
    is_negative,
    negative_matches,
)
from engine.actions import ActionOutcome
from journey import render
from journey.bootstrap import Engine
from journey.console import TIME, catch_up, engine_for, now_ms, out, print_json
from journey.people import people_touchpoints
from projections.log import OUTCOME_TOPIC

_PAGE = 10_000
_CUSTOMERS_AT_ONCE = 1_000


@dataclass(frozen=True)
class Effectiveness:
    by: str
    period: Period
    within_days: int
    as_of: int  # the journey's clock
    groups: list[Effect]
    labels: dict[str, str]  # a rule's label, by its id

    def to_json(self, times: render.TimeText = render.iso) -> dict[str, Any]:
        return {
            "by": self.by,
            "from": times(self.period.since),
            "to": times(self.period.until),
            "within_days": self.within_days,
            "as_of": times(self.as_of),
            "items": [
                {**group.to_json(), "label": self._label(group.key)} for group in self.groups
            ],
        }

    def _label(self, key: str) -> str:
        return self.labels.get(key, key)


def read_effectiveness(
    engine: Engine, *, by: str, period: Period, within_days: int
) -> Effectiveness:
    """The groups' figures as of the journey's clock, from what is decided and recorded."""
    actions = [a for a in engine.actions.actions(open_only=False) if period.holds(a.decided_at)]
    customers = sorted({a.customer_id for a in actions})
    journeys = engine.view.load_positions(customers) if customers else {}
    clock = engine.view.clock() or now_ms()
    groups = effectiveness(
        engine.definition,
        actions,
        _outcomes(engine),
        journeys,
        negative=_negative_times(engine, customers),
        by=by,
        clock=clock,
        period=period,
        within_days=within_days,
    )
    labels = {}
    if by == "rule":
        labels = {rule.id: rule.label or rule.id for rule in engine.definition.actions.rules}
    return Effectiveness(by, period, within_days, clock, groups, labels)


def _negative_times(engine: Engine, customers: list[str]) -> dict[str, list[int]]:
    """When each customer had a negative touchpoint (a complaint, a bounce, ...), from their
    recorded touchpoints, read a chunk of customers at a time."""
    matches = negative_matches(engine.definition)
    found: dict[str, list[int]] = {}
    for start in range(0, len(customers), _CUSTOMERS_AT_ONCE):
        streams = people_touchpoints(engine, customers[start : start + _CUSTOMERS_AT_ONCE])
        for customer_id, touchpoints in streams.items():
            found[customer_id] = [
                tp.occurred_at
                for tp in touchpoints
                if is_negative(matches, tp.type, tp.channel, tp.outcome, tp.attributes)
            ]
    return found


def _outcomes(engine: Engine) -> Iterator[ActionOutcome]:
    """Every outcome sales people reported, from the log."""
    after = 0
    while True:
        entries = engine.log.entries(after, _PAGE, topics=(OUTCOME_TOPIC,))
        for _, entry in entries:
            yield ActionOutcome(**{k: entry[k] for k in ActionOutcome._fields})  # type: ignore[literal-required]
        if len(entries) < _PAGE:
            return
        after = entries[-1][0]


@click.command("effectiveness")
@click.option(
    "--by",
    type=click.Choice(GROUPINGS),
    default="rule",
    show_default=True,
    help="Group the actions by their rule, their owner or the owner's team.",
)
@click.option("--from", "since", type=TIME, help="Only actions decided from this time.")
@click.option("--to", "until", type=TIME, help="Only actions decided before this time.")
@click.option(
    "--within-days",
    type=click.IntRange(1, 365),
    default=14,
    show_default=True,
    help="What the customer did in this many days after the decision.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.pass_context
def effectiveness_command(
    ctx: click.Context,
    *,
    by: str,
    since: int | None,
    until: int | None,
    within_days: int,
    as_json: bool,
) -> None:
    """What each action rule achieved: how many actions it proposed, how many were taken up,
    done, dismissed (and why) or ended by the journey, how long owners took to act, and what
    the customers did next, for the actions acted on against the rest."""
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("must be after --from", param_hint="'--to'")
    with engine_for(ctx) as engine:
        catch_up(engine)
        found = read_effectiveness(
            engine, by=by, period=Period(since, until), within_days=within_days
        )
    if as_json:
        print_json(found.to_json())
        return
    _print(found)


def _print(found: Effectiveness) -> None:
    span = (
        f"decided {render.iso(found.period.since) or 'from the start'} "
        f"to {render.iso(found.period.until) or 'now'}"
    )
    out.print(f"Actions by {found.by}, {span}; the journey's clock is at {render.iso(found.as_of)}")
    if not found.groups:
        out.print("No action was decided in that period.")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column(found.by)
    for heading in ("made", "taken", "done", "dism.", "ended", "to act"):
        table.add_column(heading, justify="right")
    table.add_column(f"moved on in {found.within_days} d", justify="right")
    for group in found.groups:
        ended = group.expired + group.cancelled + group.superseded
        hours = group.median_hours_to_act
        table.add_row(
            render.shown(group.key),
            str(group.proposed),
            str(group.taken_up),
            str(group.done),
            str(group.dismissed),
            str(ended),
            "-" if hours is None else _duration(hours),
            f"{_share(group.acted.moved_on, group.acted.actions)} vs "
            f"{_share(group.not_acted.moved_on, group.not_acted.actions)}",
        )
    out.print(table)
    out.print(
        "taken: accepted or done; ended: expired, cancelled or superseded by the journey; "
        "to act: median time from decision to the first accept or done; moved on: share of "
        "customers who reached a later stage, acted on vs not (windows not yet over are "
        "left out)."
    )
    reasons = [
        (g.key, reason, n) for g in found.groups for reason, n in g.dismissed_because.items()
    ]
    if reasons:
        out.print("Dismissed because:")
        for key, reason, count in sorted(reasons, key=lambda r: (-r[2], r[0], r[1]))[:10]:
            out.print(f"  {render.shown(key)}: {render.shown(reason)} ({count})")


def _share(count: int, total: int) -> str:
    return f"{count / total:.0%}" if total else "-"


def _duration(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d"
