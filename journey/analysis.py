"""Commands for analysts: projections of their own, replayed from history and followed, and
a new journey definition tried on history before switching to it."""

from __future__ import annotations

import json
import logging
import time
from itertools import islice
from pathlib import Path

import click

from consumers.metrics import PROJECTION_LAG
from engine.definition import load_definition
from engine.errors import StoreUnavailable, UnknownCustomer
from engine.outage import Outage
from engine.settings import Settings
from journey import render
from journey.bootstrap import build_projection_views
from journey.console import (
    engine_for,
    log_to_stderr,
    metrics_port_option,
    observed,
    out,
    print_json,
    progress,
    say,
    say_more,
    stop_on_signals,
    with_metrics_port,
)
from projections.custom import CustomRunner, load_projection
from projections.diff import diff_definitions


@click.command()
@click.option(
    "--projection",
    "spec",
    required=True,
    metavar="MODULE:CLASS",
    help="Your projection class, e.g. projections.examples:PricingInterest.",
)
@click.option("--once", is_flag=True, help="Stop once it has caught up instead of following.")
@click.option(
    "--every",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between looks at the log while following.",
)
@metrics_port_option
@click.pass_context
def replay(
    ctx: click.Context, spec: str, once: bool, every: float, metrics_port: int | None
) -> None:
    """Build a projection of your own from the start of history into a fresh view, switch
    readers to it, then keep it following the log until stopped (or --once)."""
    projection = load_projection(spec)
    settings = with_metrics_port(ctx.find_object(Settings) or Settings(), metrics_port)
    with engine_for(ctx) as engine:
        views = build_projection_views(settings)
        try:
            runner = CustomRunner(
                engine.log,
                views,
                projection,
                spec,
                settings.page_size,
                identity=engine.definition.identity,
            )
            head = engine.log.head()
            started = time.perf_counter()
            with progress() as bar:
                task = bar.add_task(f"Replaying {projection.name}", total=head)
                generation, events = runner.replay(lambda done, _: bar.update(task, completed=done))
            seconds = time.perf_counter() - started
            say(f"Built {projection.name} from {events} events in {seconds:.1f} s")
            if once:
                return
            log_to_stderr(settings, "replay")
            stop = stop_on_signals()
            postgres = Outage(
                logging.getLogger("journey.replay"), "PostgreSQL", "following again when it answers"
            )
            lag = PROJECTION_LAG.labels(projection.name)
            with observed(settings) as health:
                health.watch(postgres)
                health.started()
                say("Following the log; stop with Ctrl-C")
                while not stop.is_set():
                    try:
                        live = views.live(projection.name)
                        if live == generation:
                            lag.set(max(engine.log.head() - views.position(generation), 0))
                            # A long catch-up is the loop at work, not a stuck one.
                            runner.catch_up(generation, lambda *_: health.beat())
                    except StoreUnavailable as exc:
                        stop.wait(postgres.failed(exc))
                        continue
                    postgres.succeeded()
                    if live != generation:
                        say(f"A newer build of {projection.name} is live; this one stops following")
                        break
                    stop.wait(every)
        finally:
            views.db.close()


@click.command()
@click.argument("name", required=False)
@click.argument("customer_id", required=False)
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one per customer.")
@click.pass_context
def view(
    ctx: click.Context, name: str | None, customer_id: str | None, limit: int, as_json: bool
) -> None:
    """Show a view built by journey replay (without a NAME: list them)."""
    views = build_projection_views(ctx.find_object(Settings) or Settings())
    try:
        if name is None:
            for view_name, spec in views.names():
                click.echo(f"{view_name}\t{spec}")
            return
        found = views.states(name, customer_id)
        states = list(islice(found, limit))
        total = len(states) + sum(1 for _ in found)
        if customer_id is not None and not states:
            raise UnknownCustomer(customer_id)
        if as_json:
            print_json([{"customer_id": customer, **state} for customer, state in states])
        else:
            out.print(render.states_table(name, states))
        say_more(len(states), total, as_json=as_json)
    finally:
        views.db.close()


@click.command("diff-definition")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--limit", type=click.IntRange(0), default=20, show_default=True, help="Customers to list."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, every changed customer.")
@click.pass_context
def diff_definition(ctx: click.Context, old: str, new: str, limit: int, as_json: bool) -> None:
    """Replay the whole history under two journey definitions (TOML files, or `default`
    for the shipped one) and report what would change: stages, open frictions, moments of
    truth, in total and per customer. Nothing is written or sent."""
    definitions = [load_definition(None if d == "default" else Path(d)) for d in (old, new)]
    with engine_for(ctx) as engine:
        definitions = [engine.on_this_log(definition) for definition in definitions]
        head = engine.log.head()
        with progress() as bar:
            task = bar.add_task("Replaying history", total=2 * head)
            diff = diff_definitions(
                engine.log,
                *definitions,
                page_size=engine.settings.page_size,
                progress=lambda done, _: bar.update(task, completed=done),
            )
    if as_json:
        click.echo(json.dumps(render.diff_json(diff), indent=2, ensure_ascii=False))
    else:
        out.print(render.diff_view(diff, limit))
