"""The `journey` command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg
from eventsourcing.persistence import PersistenceError
from kafka.errors import KafkaError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from engine.definition import load_definition
from engine.errors import JourneyError, UnknownCustomer
from engine.settings import Settings
from engine.touchpoints import Touchpoint, from_millis, millis
from journey import render
from journey.bootstrap import (
    Engine,
    build_engine,
    build_projection_views,
    event_store_env,
    rebuild_beside,
)
from journey.demo import STORIES, demo_customers, demo_touchpoints, recent_start
from journey.ingest import IngestSummary, check_files, ingest_files
from journey.streaming import consume, dead_letters, produce, status
from projections.custom import CustomRunner, load_projection
from projections.diff import diff_definitions
from projections.timeline import timeline as project_timeline
from projections.views import FRICTION_GROUPS
from schemas.codec import contract
from schemas.files import file_format, touchpoint_avro, write_csv, write_jsonl

out = render.console()
err = render.console(stderr=True)


def say(line: str) -> None:
    """One plain line on stderr, never wrapped or styled, so that tools can read it."""
    click.echo(line, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded store keeps its files [env JOURNEY_DATA_DIR; .journey].",
)
@click.option(
    "--definition",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The journey definition, a TOML file [env JOURNEY_DEFINITION; the default B2B journey].",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, definition: Path | None) -> None:
    """Record every customer touchpoint and show where each customer stands in their journey."""
    env = dict(os.environ)
    if data_dir is not None:
        env["JOURNEY_DATA_DIR"] = str(data_dir)
    if definition is not None:
        env["JOURNEY_DEFINITION"] = str(definition)
    ctx.obj = Settings.from_env(env)


@contextmanager
def engine_for(ctx: click.Context) -> Iterator[Engine]:
    engine = build_engine(ctx.find_object(Settings) or Settings())
    try:
        yield engine
    finally:
        engine.close()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _catch_up(engine: Engine) -> None:
    """Brings the views up to date (and refuses views they cannot be read from)."""
    lag = engine.runner.lag()
    if not lag:
        engine.runner.catch_up()
        return
    with _progress() as progress:
        task = progress.add_task("Building journeys", total=lag)
        engine.runner.catch_up(lambda done, total: progress.update(task, completed=done))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--batch-size", type=click.IntRange(1, 100_000), help="Touchpoints per transaction.")
@click.option(
    "--no-project",
    is_flag=True,
    help="Only record; the journey views catch up on the next command that reads them.",
)
@click.option(
    "--tick",
    is_flag=True,
    help="Then move the engine's clock to now, as journey tick does.",
)
@click.pass_context
def ingest(
    ctx: click.Context,
    files: tuple[Path, ...],
    *,
    batch_size: int | None,
    no_project: bool,
    tick: bool,
) -> None:
    """Record touchpoints from JSON lines, CSV or Avro files (optionally .gz).

    Bad records are reported as file:line and reason; every good one is recorded. The exit
    status is 1 if any record was bad."""
    check_files(files)
    with engine_for(ctx) as engine:
        summary = _ingest(engine, list(files), batch_size or engine.settings.batch_size)
        if tick:
            engine.journeys.tick(_now_ms())
        if not no_project:
            _catch_up(engine)
    _print_summary(summary)
    if summary.bad:
        sys.exit(1)


def _ingest(
    engine: Engine, files: list[Path], batch_size: int, total: int | None = None
) -> IngestSummary:
    def bad(where: str, reason: str) -> None:
        say(f"{where}: {reason}")

    with _progress() as progress:
        task = progress.add_task("Recording touchpoints", total=total)
        summary = ingest_files(
            engine.journeys,
            files,
            batch_size=batch_size,
            now_ms=int(time.time() * 1000),
            on_bad=bad,
            on_batch=lambda s: progress.update(task, completed=s.read),
            store_env=event_store_env(engine.settings),
            parallel_above_bytes=engine.settings.parallel_above_bytes,
        )
        progress.update(task, total=summary.read, completed=summary.read)
    return summary


def _print_summary(summary: IngestSummary) -> None:
    say(
        f"{summary.read + summary.bad} records: {summary.recorded} recorded, "
        f"{summary.duplicates} already recorded, {summary.bad} bad"
    )


@cli.command()
@click.option("--customers", type=click.IntRange(1, 1_000_000), default=1_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--fresh", is_flag=True, help="Start from an empty data directory.")
@click.pass_context
def demo(ctx: click.Context, customers: int, seed: int, fresh: bool) -> None:
    """Generate a realistic multi-channel history, record it, and show the journeys."""
    settings = ctx.find_object(Settings) or Settings()
    if fresh and settings.store == "sqlite" and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    now = _now_ms()
    start = recent_start(now)
    dataset = settings.data_dir / f"demo-{customers}-{seed}-{from_millis(start).date()}.jsonl"
    with dataset.open("w", encoding="utf-8") as handle:
        count = write_jsonl(handle, demo_touchpoints(customers, seed, start, until=now))
    say(f"Generated {count} touchpoints for {customers} customers in {dataset}")
    with engine_for(ctx) as engine:
        summary = _ingest(engine, [dataset], engine.settings.batch_size, total=count)
        _print_summary(summary)
        engine.journeys.tick(now)
        _catch_up(engine)
        out.print(
            render.funnel_table(engine.definition, engine.view.funnel(engine.definition.ladder))
        )
        out.print()
        examples = _story_examples(customers, seed)
        for story, customer_id in examples:
            out.rule(f"[bold]{story}[/bold]")
            _show_customer(engine, customer_id)
            out.print()
        out.print(
            f"Look up any customer with [bold]{_program()} customer C-000042[/bold]; "
            f"the data is in {settings.data_dir}."
        )


def _program() -> str:
    """How the user can run this command again: `journey` if it is on the PATH."""
    if shutil.which("journey"):
        return "journey"
    return os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "journey"


def _story_examples(customers: int, seed: int) -> list[tuple[str, str]]:
    first: dict[str, str] = {}
    for customer in demo_customers(customers, seed):
        first.setdefault(customer.story, customer.customer_id)
    return [(name, first[name]) for name, _, _ in STORIES if name in first]


@cli.command()
@click.argument("customer_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def customer(ctx: click.Context, customer_id: str, as_json: bool) -> None:
    """Show where a customer stands: stage, stage history and timeline."""
    with engine_for(ctx) as engine:
        _catch_up(engine)
        _show_customer(engine, customer_id, as_json=as_json)


def _show_customer(engine: Engine, customer_id: str, *, as_json: bool = False) -> None:
    position = engine.view.position(customer_id)
    if position is None:
        raise UnknownCustomer(customer_id)
    timeline = project_timeline(engine.log.stream(customer_id))
    clock = engine.view.clock()
    if as_json:
        click.echo(
            json.dumps(
                render.customer_json(engine.definition, position, timeline, clock),
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        out.print(render.customer_view(engine.definition, position, timeline, clock))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def funnel(ctx: click.Context, as_json: bool) -> None:
    """Customers per stage: how many got at least this far, and how many are there now."""
    with engine_for(ctx) as engine:
        _catch_up(engine)
        counts = engine.view.funnel(engine.definition.ladder)
        if as_json:
            click.echo(json.dumps(render.funnel_json(engine.definition, counts), indent=2))
        else:
            out.print(render.funnel_table(engine.definition, counts))


class _Time(click.ParamType[int]):
    """A moment: ISO-8601 (UTC unless it names a zone) or milliseconds since the epoch."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is neither ISO-8601 nor milliseconds since the epoch", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return millis(moment)


TIME = _Time()


def _now_ms() -> int:
    return int(time.time() * 1000)


@cli.command()
@click.option("--at", type=TIME, help="The time the clock reaches [now].")
@click.pass_context
def tick(ctx: click.Context, at: int | None) -> None:
    """Move the engine's clock to now (or --at): windows such as "no follow-up within 48
    hours" close for customers who have gone silent.

    The clock is an event in the log, so a replay closes the same windows at the same
    place. Servers run `journey clock` instead."""
    now = _now_ms()
    at = now if at is None else at
    if at > now + 60_000:
        raise click.BadParameter(f"{render.iso(at)} is in the future", param_hint="'--at'")
    with engine_for(ctx) as engine:
        moved = engine.journeys.tick(at)
        _catch_up(engine)
    if moved:
        say(f"Clock moved to {render.iso(at)}")
    else:
        say(f"Clock already at or past {render.iso(at)}; nothing to do")


@cli.command()
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between ticks.",
)
@click.pass_context
def clock(ctx: click.Context, every: float) -> None:
    """Tick the engine's clock every so often, until stopped (SIGTERM or Ctrl-C)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with engine_for(ctx) as engine:
        say(f"Ticking every {every:g} s")
        while not stop.is_set():
            engine.journeys.tick(_now_ms())
            stop.wait(every)
    say("Clock stopped")


@cli.command()
@click.option("--rep", help="Only the frictions of this rep's customers (or involving them).")
@click.option("--type", "kind", help="Only frictions of this kind (a friction id).")
@click.option("--all", "everything", is_flag=True, help="Resolved frictions too.")
@click.option(
    "--by",
    type=click.Choice(FRICTION_GROUPS),
    help="Count frictions per kind, stage, channel or owner instead of listing them.",
)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
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
        _catch_up(engine)
        if by is not None:
            counts = engine.view.friction_counts(by, open_only=not everything)
            if as_json:
                click.echo(json.dumps([{by: key, "frictions": n} for key, n in counts], indent=2))
            else:
                what = "Open frictions" if not everything else "Frictions"
                out.print(render.counts_table(f"{what} by {by}", by, counts))
            return
        rows = engine.view.frictions(open_only=not everything, owner=rep, kind=kind, limit=limit)
        if as_json:
            listed = [render.friction_json(definition, row) for row in rows]
            click.echo(json.dumps(listed, indent=2, ensure_ascii=False))
        elif rows:
            out.print(render.frictions_table(definition, rows, engine.view.clock()))
        else:
            say("No open frictions" if not everything else "No frictions")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def moments(ctx: click.Context, as_json: bool) -> None:
    """Moments of truth and how they went, per channel; and how consistent the experience is
    across channels and reps."""
    with engine_for(ctx) as engine:
        _catch_up(engine)
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
                        for m, c, o, n in by_moment
                    ],
                    "channels": [render.outcome_json("channel", row) for row in channels],
                    "reps": [render.outcome_json("rep", row) for row in reps],
                    "teams": [render.outcome_json("team", row) for row in teams],
                },
                indent=2,
            )
        )
        return
    tally: dict[tuple[str, str], list[int]] = {}
    for moment, channel, outcome, count in by_moment:
        counts = tally.setdefault((moment, channel), [0, 0, 0])
        counts[{"positive": 0, "neutral": 1}.get(outcome or "", 2 if outcome else 1)] += count
    rows = [(f"{m} · {c}", *counts) for (m, c), counts in sorted(tally.items())]
    out.print(render.outcomes_table("Moments of truth by channel", "moment · channel", rows))
    out.print(render.outcomes_table("Every outcome, by channel", "channel", channels))
    out.print(render.outcomes_table("Moments of truth, by rep", "rep", reps))
    if teams:
        out.print(render.outcomes_table("Moments of truth, by team", "team", teams))


@cli.command()
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
@click.pass_context
def replay(ctx: click.Context, spec: str, once: bool, every: float) -> None:
    """Build a projection of your own from the start of history into a fresh view, switch
    readers to it, then keep it following the log until stopped (or --once)."""
    projection = load_projection(spec)
    settings = ctx.find_object(Settings) or Settings()
    with engine_for(ctx) as engine:
        views = build_projection_views(settings)
        try:
            runner = CustomRunner(engine.log, views, projection, spec, settings.page_size)
            head = engine.log.head()
            started = time.perf_counter()
            with _progress() as progress:
                task = progress.add_task(f"Replaying {projection.name}", total=head)
                generation, events = runner.replay(
                    lambda done, _: progress.update(task, completed=done)
                )
            seconds = time.perf_counter() - started
            say(f"Built {projection.name} from {events} events in {seconds:.1f} s")
            if once:
                return
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            say("Following the log; stop with Ctrl-C")
            while not stop.is_set():
                runner.catch_up(generation)
                stop.wait(every)
        finally:
            views.db.close()


@cli.command()
@click.argument("name", required=False)
@click.argument("customer_id", required=False)
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one per customer.")
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
        states = list(views.states(name, customer_id, None if customer_id else limit))
        if customer_id is not None and not states:
            raise UnknownCustomer(customer_id)
        if as_json:
            for customer, state in states:
                click.echo(json.dumps({"customer_id": customer, **state}, ensure_ascii=False))
        else:
            out.print(render.states_table(name, states))
    finally:
        views.db.close()


@cli.command("diff-definition")
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
        head = engine.log.head()
        with _progress() as progress:
            task = progress.add_task("Replaying history", total=2 * head)
            diff = diff_definitions(
                engine.log,
                *definitions,
                page_size=engine.settings.page_size,
                progress=lambda done, _: progress.update(task, completed=done),
            )
    if as_json:
        click.echo(json.dumps(render.diff_json(diff), indent=2, ensure_ascii=False))
    else:
        out.print(render.diff_view(diff, limit))


@cli.command()
@click.pass_context
def rebuild(ctx: click.Context) -> None:
    """Build the journey views again from the start of the log (after a definition change),
    beside the live ones: readers switch to them once they have caught up."""
    with engine_for(ctx) as engine:
        total = engine.journeys.recorder.max_notification_id() or 0
        started = time.perf_counter()
        with _progress() as progress:
            task = progress.add_task("Rebuilding journeys", total=total)
            _, result = rebuild_beside(
                engine, lambda done, _: progress.update(task, completed=done)
            )
        seconds = time.perf_counter() - started
        say(f"Rebuilt from {result.events} events in {seconds:.1f} s")


@cli.command()
@click.option("--customers", type=click.IntRange(1, 10_000_000), default=1_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--out",
    "target",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A .jsonl, .csv or .avro file (add .gz to compress text).",
)
def generate(customers: int, seed: int, target: Path) -> None:
    """Write the demo dataset to a file, for trying ingest or feeding other tools."""
    fmt = file_format(target)
    touchpoints = demo_touchpoints(customers, seed)
    count = _write(target, fmt, touchpoints)
    say(f"Wrote {count} touchpoints for {customers} customers to {target}")


def _write(target: Path, fmt: str, touchpoints: Iterator[Touchpoint]) -> int:
    import gzip

    if fmt == "avro":
        counted = _Counter(touchpoints)
        with target.open("wb") as handle:
            contract("Touchpoint").write_container(handle, (touchpoint_avro(tp) for tp in counted))
        return counted.count
    opener: Callable[..., Any] = gzip.open if target.suffix == ".gz" else open
    with opener(target, "wt", encoding="utf-8", newline="") as handle:
        return (write_jsonl if fmt == "jsonl" else write_csv)(handle, touchpoints)


class _Counter:
    def __init__(self, items: Iterator[Touchpoint]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[Touchpoint]:
        for item in self._items:
            self.count += 1
            yield item


for command in (consume, produce, status, dead_letters):
    cli.add_command(command)


def main() -> None:
    """The console entry point: a user's mistake is one line on stderr and a non-zero exit."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        say("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except JourneyError as exc:
        say(f"error: {exc}")
        sys.exit(1)
    except (PersistenceError, sqlite3.Error, psycopg.Error) as exc:
        say(f"error: the store failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")
        sys.exit(1)
    except KafkaError as exc:
        say(f"error: Kafka failed: {exc}")
        sys.exit(1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        say(f"error: {where}{exc.strerror or exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
