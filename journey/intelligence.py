"""Commands about where journeys hurt and how they feel: the engine's clock, frictions and
moments of truth."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import closing
from typing import Any

import click

from engine.errors import StoreUnavailable
from engine.outage import Outage
from engine.settings import Settings
from journey import render
from journey.console import (
    TIME,
    catch_up,
    engine_for,
    engine_when_store_answers,
    limit_option,
    log_to_stderr,
    metrics_port_option,
    now_ms,
    observed,
    out,
    say,
    say_more,
    stop_on_signals,
    with_metrics_port,
)
from journey.health import STALE_AFTER_S
from projections.views import FRICTION_GROUPS


@click.command()
@click.option("--at", type=TIME, help="The time the clock reaches [now].")
@click.pass_context
def tick(ctx: click.Context, at: int | None) -> None:
    """Move the engine's clock to now (or --at): windows such as "no follow-up within 48
    hours" close for customers who have gone silent.

    The clock is an event in the log, so a replay closes the same windows at the same
    place. Servers run `journey clock` instead."""
    now = now_ms()
    at = now if at is None else at
    if at > now + 60_000:
        raise click.BadParameter(f"{render.iso(at)} is in the future", param_hint="'--at'")
    with engine_for(ctx) as engine:
        moved = engine.journeys.tick(at)
        catch_up(engine)
    if moved:
        say(f"Clock moved to {render.iso(at)}")
    else:
        say(f"Clock already at or past {render.iso(at)}; nothing to do")


@click.command()
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between ticks.",
)
@metrics_port_option
@click.pass_context
def clock(ctx: click.Context, every: float, metrics_port: int | None) -> None:
    """Tick the engine's clock every so often, until stopped (SIGTERM or Ctrl-C). While
    PostgreSQL is away it waits for it, and ticks as soon as it answers."""
    settings = with_metrics_port(ctx.find_object(Settings) or Settings(), metrics_port)
    log_to_stderr(settings, "clock")
    stop = stop_on_signals()
    postgres = Outage(logging.getLogger("journey.clock"), "PostgreSQL", "ticking when it answers")
    # The loop tries PostgreSQL once per tick: stuck is when several ticks went missing.
    with observed(settings, stale_after_s=max(STALE_AFTER_S, 3 * every)) as health:
        health.watch(postgres)
        engine = engine_when_store_answers(settings, stop, postgres)
        if engine is None:
            return
        health.started()
        with closing(engine):
            say(f"Ticking every {every:g} s")
            while not stop.is_set():
                try:
                    engine.journeys.tick(now_ms())
                except StoreUnavailable as exc:
                    stop.wait(postgres.failed(exc))
                    continue
                postgres.succeeded()
                stop.wait(every)
    say("Clock stopped")


@click.command()
@click.option("--rep", help="Only the frictions of this rep's customers (or involving them).")
@click.option("--type", "kind", help="Only frictions of this kind (a friction id).")
@click.option("--all", "everything", is_flag=True, help="Resolved frictions too.")
@click.option(
    "--by",
    type=click.Choice(FRICTION_GROUPS),
    help="Count frictions per kind, stage, channel or owner instead of listing them.",
)
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_context
def friction(
    ctx: click.Context,
    *,
    rep: str | None,
    kind: str | None,
    everything: bool,
    by: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Open frictions, worst first: where journeys hurt and whose customers they are."""
    with engine_for(ctx) as engine:
        definition = engine.definition
        if kind is not None and definition.friction(kind) is None:
            known = ", ".join(f.id for f in definition.frictions)
            raise click.BadParameter(f"unknown friction {kind!r} (one of {known})")
        catch_up(engine)
        if by is not None:
            counts = engine.view.friction_counts(by, open_only=not everything)
            if as_json:
                click.echo(
                    json.dumps([{by: key, "frictions": n} for key, n in counts[:limit]], indent=2)
                )
            else:
                what = "Open frictions" if not everything else "Frictions"
                out.print(render.counts_table(f"{what} by {by}", by, counts[:limit]))
            say_more(min(limit, len(counts)), len(counts), as_json=as_json)
            return
        rows = engine.view.frictions(open_only=not everything, owner=rep, kind=kind)
        shown = rows[:limit]
        if as_json:
            listed = [render.friction_json(definition, row) for row in shown]
            click.echo(json.dumps(listed, indent=2, ensure_ascii=False))
        elif rows:
            out.print(render.frictions_table(definition, shown, engine.view.clock()))
        else:
            say("No open frictions" if not everything else "No frictions")
        say_more(len(shown), len(rows), as_json=as_json)


@click.command()
@limit_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON object of arrays instead of tables."
)
@click.pass_context
def moments(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Moments of truth and how they went, per channel; and how consistent the experience is
    across channels and reps."""
    with engine_for(ctx) as engine:
        catch_up(engine)
        view = engine.view
        by_moment = view.moment_outcomes()
        channels, reps = view.consistency("channel"), view.consistency("rep")
        teams = render.per_team(engine.definition, reps)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "moments": [
                        {"moment": m, "channel": c, "outcome": o, "count": n}
                        for m, c, o, n in by_moment[:limit]
                    ],
                    "channels": [render.outcome_json("channel", row) for row in channels[:limit]],
                    "reps": [render.outcome_json("rep", row) for row in reps[:limit]],
                    "teams": [render.outcome_json("team", row) for row in teams[:limit]],
                },
                indent=2,
            )
        )
        for name, listed in (
            ("moments", by_moment),
            ("channels", channels),
            ("reps", reps),
            ("teams", teams),
        ):
            if len(listed) > limit:
                say(f"{name}: {render.and_more(limit, len(listed))}")
        return
    tally: dict[tuple[str, str], list[int]] = {}
    for moment, channel, outcome, count in by_moment:
        counts = tally.setdefault((moment, channel), [0, 0, 0])
        counts[{"positive": 0, "neutral": 1}.get(outcome or "", 2 if outcome else 1)] += count
    rows = [(f"{m} · {c}", *counts) for (m, c), counts in sorted(tally.items())]
    tables: list[tuple[str, str, Sequence[tuple[Any, ...]]]] = [
        ("Moments of truth by channel", "moment · channel", rows),
        ("Every outcome, by channel", "channel", channels),
        ("Moments of truth, by rep", "rep", reps),
        *([("Moments of truth, by team", "team", teams)] if teams else []),
    ]
    for title, heading, counted in tables:
        out.print(render.outcomes_table(title, heading, counted[:limit]))
        say_more(min(limit, len(counted)), len(counted))
