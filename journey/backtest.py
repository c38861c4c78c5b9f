"""`journey backtest`: candidate action rules and policy tried on history beside the
decisions logged, and the document the command's --json and POST /api/backtest return."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from consumers.backtest import Backtest, Pair, Progress, Proposal, Window, backtest
from consumers.deciding import DAY_MS
from engine.definition import JourneyDefinition, load_definition
from engine.errors import UnknownCustomer
from engine.touchpoints import from_millis
from journey import render
from journey.bootstrap import Engine
from journey.console import TIME, engine_for, out, print_json, progress

UNKNOWN_NEXT = (
    "Added proposals have no logged twin: no sales person saw them, so what would have "
    "happened next is unknown."
)
COUNTS = ("proposed", "logged", "added", "dropped", "changed", "same")


def run_backtest(
    engine: Engine,
    candidate: JourneyDefinition,
    *,
    window: Window | None = None,
    customer_id: str | None = None,
    progress: Progress | None = None,
) -> Backtest:
    """The candidate replayed up to where the decider has decided, beside its decisions."""
    if customer_id is not None and not engine.actions.load_positions([customer_id]):
        raise UnknownCustomer(customer_id)
    return backtest(
        engine.log,
        engine.on_this_log(candidate),
        engine.actions.actions(open_only=False),
        engine.actions.tracking()[0],
        window=window,
        customer_id=customer_id,
        progress=progress,
    )


def backtest_json(
    result: Backtest, candidate: str, times: Callable[[int | None], str | None] = render.iso
) -> dict[str, Any]:
    """The backtest as one JSON document, its times written by `times` (UTC)."""
    totals = result.totals
    return {
        "candidate": candidate,
        "window": {"from": times(result.window.start), "to": times(result.window.end)},
        "replayed": {
            "events": result.events,
            "position": result.position,
            "customers": result.customers,
            "seconds": round(result.seconds, 3),
        },
        "totals": _rule_json(totals),
        "rules": [_rule_json(rule) for rule in result.rules],
        "owners": [
            {
                "owner": load.owner,
                "limit": load.limit,
                "proposed": sum(load.proposed.values()),
                "logged": sum(load.logged.values()),
                "busiest_day": load.busiest,
                "days_at_limit": load.days_at_limit,
                "logged_days_over_limit": load.logged_days_over,
                "days": [
                    {
                        "day": from_millis(day * DAY_MS).date().isoformat(),
                        "proposed": load.proposed[day],
                        "logged": load.logged[day],
                    }
                    for day in sorted(load.proposed.keys() | load.logged.keys())
                ],
            }
            for load in result.owners
        ],
        "added_outcomes": UNKNOWN_NEXT,
        "customer": [_pair_json(pair, times) for pair in result.pairs],
    }


def _rule_json(rule: Any) -> dict[str, Any]:
    return {
        "rule": rule.rule,
        **{name: getattr(rule, name) for name in COUNTS},
        "changed_fields": dict(sorted(rule.changed_fields.items())),
        "outcomes": dict(sorted(rule.outcomes.items())),
        "dismissed_because": dict(rule.dismissed_because.most_common()),
        "dropped_outcomes": dict(sorted(rule.dropped_outcomes.items())),
    }


def _pair_json(pair: Pair, times: Callable[[int | None], str | None]) -> dict[str, Any]:
    return {
        "action_id": pair.any.action_id,
        "rule": pair.any.rule,
        "difference": pair.difference,
        "changed_fields": list(pair.changed),
        "candidate": _proposal_json(pair.candidate, times),
        "logged": _proposal_json(pair.logged, times),
    }


def _proposal_json(
    proposal: Proposal | None, times: Callable[[int | None], str | None]
) -> dict[str, Any] | None:
    if proposal is None:
        return None
    return {
        "owner": proposal.owner,
        "action_type": proposal.action_type,
        "channel": proposal.channel,
        "priority": proposal.priority,
        "decided_at": times(proposal.decided_at),
        "due_at": times(proposal.due_at),
        "reason": proposal.reason,
        "status": proposal.status,
        "status_reason": proposal.status_reason,
    }


@click.command("backtest")
@click.argument("candidate", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "start", type=TIME, help="Compare decisions from this journey time on.")
@click.option("--to", "end", type=TIME, help="Compare decisions before this journey time.")
@click.option("--customer", "customer_id", help="One customer's actions, side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.pass_context
def backtest_command(
    ctx: click.Context,
    *,
    candidate: Path,
    start: int | None,
    end: int | None,
    customer_id: str | None,
    as_json: bool,
) -> None:
    """Replay history with a candidate definition's action rules and policy beside the
    decisions logged, and report per rule what would be proposed, added, dropped or
    changed, how proposals spread over owners' days, and what followed those that match.
    Nothing is written or sent."""
    definition = load_definition(candidate)
    with engine_for(ctx) as engine, progress() as bar:
        task = bar.add_task("Replaying history", total=engine.actions.tracking()[0])
        result = run_backtest(
            engine,
            definition,
            window=Window(start, end),
            customer_id=customer_id,
            progress=lambda done, _: bar.update(task, completed=done),
        )
    if as_json:
        print_json(backtest_json(result, str(candidate)))
    elif customer_id is not None:
        _print_customer(customer_id, result)
    else:
        _print_backtest(str(candidate), result)


def _print_backtest(candidate: str, result: Backtest) -> None:
    totals = result.totals
    out.print(Text(f"Backtest of {render.shown(candidate)}", style="bold"))
    window = ""
    if result.window.start is not None or result.window.end is not None:
        window = (
            f" Decisions compared from {render.when(result.window.start)}"
            f" to {render.when(result.window.end)}."
        )
    _paragraph(
        f"Replayed {result.events:,} log entries of {result.customers:,} customers, up to "
        f"where the decider has decided (position {result.position:,}), in "
        f"{result.seconds:.1f} s. Nothing was written or sent.{window}"
    )
    out.print()
    _columns(("rule", *COUNTS), (23, 9, 9, 9, 9, 9, 9), bold=True)
    for rule in [*result.rules, totals]:
        _columns((rule.rule, *(f"{getattr(rule, name):,}" for name in COUNTS)), (23, *[9] * 6))
    changed = [rule for rule in result.rules if rule.changed]
    if changed:
        out.print()
        out.print(Text("What changed in the proposals kept", style="italic"))
        for rule in changed:
            _item(rule.rule, _counted(rule.changed_fields))
    out.print()
    out.print(Text("What followed the proposals that match logged ones", style="italic"))
    for rule in result.rules:
        if rule.outcomes:
            _item(rule.rule, _counted(rule.outcomes))
    if totals.dismissed_because:
        _item("dismissed", _counted(totals.dismissed_because, quoted=True))
    dropped = [rule for rule in result.rules if rule.dropped_outcomes]
    if dropped:
        out.print()
        out.print(Text("What became of the logged actions the candidate drops", style="italic"))
        for rule in dropped:
            _item(rule.rule, _counted(rule.dropped_outcomes))
    if totals.added:
        _paragraph(UNKNOWN_NEXT)
    if result.owners:
        limit = result.owners[0].limit
        out.print()
        out.print(
            Text(f"Owners' days against the limit of {limit} new actions a day", style="italic")
        )
        widths = (22, 10, 10, 9, 10, 13)
        _columns(("owner", "proposed", "logged", "busiest", "at limit", "logged over"), widths)
        for load in result.owners:
            _columns(
                (
                    render.shown(load.owner),
                    f"{sum(load.proposed.values()):,}",
                    f"{sum(load.logged.values()):,}",
                    f"{load.busiest:,}",
                    f"{load.days_at_limit:,}",
                    f"{load.logged_days_over:,}",
                ),
                widths,
            )
        _paragraph(
            "busiest: the most proposals on one day; at limit: days the candidate reaches the "
            "limit on (what comes after waits for a later day); logged over: days the logged "
            "decisions exceed it on."
        )


def _print_customer(customer_id: str, result: Backtest) -> None:
    differences = Counter(pair.difference for pair in result.pairs)
    proposed = sum(1 for pair in result.pairs if pair.candidate is not None)
    logged = sum(1 for pair in result.pairs if pair.logged is not None)
    out.print(
        Text(
            f"{render.shown(customer_id)}: {proposed} proposed, {logged} logged "
            f"({differences['added']} added, {differences['dropped']} dropped, "
            f"{differences['changed']} changed)",
            style="bold",
        )
    )
    for pair in result.pairs:
        out.print()
        out.print(Text.assemble((f"{pair.difference:<8}", "bold"), f"{pair.any.rule}  "))
        out.print(Text(f"  {pair.any.action_id}", style="dim"))
        for side, proposal in (("candidate", pair.candidate), ("logged", pair.logged)):
            if proposal is None:
                _item(f"  {side}", "-", indent=14)
                continue
            _item(
                f"  {side}",
                f"{render.when(proposal.decided_at)}, {render.shown(proposal.owner)} by "
                f"{proposal.channel}, priority {proposal.priority:g}, due "
                f"{render.when(proposal.due_at)}: {_status(proposal)}",
                indent=14,
            )
            if side == "logged" and "reason" in pair.changed:
                _item("", f"reason was: {render.shown(proposal.reason)}", indent=14)
            elif side == "candidate":
                _item("", render.shown(proposal.reason), indent=14)
    if differences["added"]:
        out.print()
        _paragraph(UNKNOWN_NEXT)


def _status(proposal: Proposal) -> str:
    if proposal.status_reason:
        return f"{proposal.status} ({render.shown(proposal.status_reason)})"
    return proposal.status


def _counted(counts: Counter[str], *, quoted: bool = False) -> str:
    shown = (f'"{render.shown(k)}"' if quoted else k for k, _ in counts.most_common())
    return ", ".join(f"{n:,} {k}" for (_, n), k in zip(counts.most_common(), shown, strict=True))


def _item(label: str, text: str, *, indent: int = 24) -> None:
    """`label` then `text`, wrapped to 80 columns under itself."""
    width = max(out.width, 40) if out.width else 80
    lines = textwrap.wrap(text, width=min(width, 80) - indent) or [""]
    out.print(f"{label:<{indent}}{lines[0]}", highlight=False, soft_wrap=True)
    for line in lines[1:]:
        out.print(" " * indent + line, highlight=False, soft_wrap=True)


def _columns(cells: tuple[str, ...], widths: tuple[int, ...], *, bold: bool = False) -> None:
    """A row of a table that fits 80 columns: the first cell on the left, numbers right."""
    first, *rest = cells
    line = f"{first:<{widths[0]}}" + "".join(
        f"{cell:>{width}}" for cell, width in zip(rest, widths[1:], strict=True)
    )
    out.print(Text(line, style="bold" if bold else ""), soft_wrap=True)


def _paragraph(text: str) -> None:
    for line in textwrap.wrap(text, width=min(out.width or 80, 80)):
        out.print(line, highlight=False, soft_wrap=True)
