"""The `journey` command."""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from eventsourcing.persistence import PersistenceError
from rich.text import Text

from engine.errors import JourneyError, ServiceUnavailable, StoreTooNew
from engine.settings import Settings
from engine.touchpoints import Touchpoint, from_millis
from journey import render
from journey.bootstrap import (
    Engine,
    rebuild_beside,
)
from journey.console import Exit, catch_up, engine_for, now_ms, out, progress, say
from journey.demo import demo_customers, demo_outcomes, demo_touchpoints, recent_start
from journey.ingest import IngestSummary, check_files, ingest_files
from journey.people import person_journey
from journey.showcase import story_examples
from schemas.codec import contract
from schemas.files import file_format, touchpoint_avro, write_csv, write_jsonl


class _Commands(click.Group):
    """Loads the modules of the commands kept elsewhere only when one of them runs (or help
    lists them): the web server, Kafka's client and the charts take longer to import than
    most commands take to run."""

    # command name -> "module:function"
    elsewhere = {
        "actions": "journey.actions:actions",
        "backtest": "journey.backtest:backtest_command",
        "clock": "journey.intelligence:clock",
        "consume": "journey.streaming:consume",
        "dead-letters": "journey.streaming:dead_letters",
        "decide": "journey.actions:decide",
        "diff-definition": "journey.analysis:diff_definition",
        "effectiveness": "journey.effectiveness:effectiveness_command",
        "explain": "journey.actions:explain",
        "forget": "journey.privacy:forget_command",
        "friction": "journey.intelligence:friction",
        "identity": "journey.identity:identity",
        "keys": "journey.privacy:keys",
        "migrate": "journey.upgrade:migrate",
        "moments": "journey.intelligence:moments",
        "outcome": "journey.actions:outcome",
        "outcomes": "journey.actions:outcomes",
        "produce": "journey.streaming:produce",
        "replay": "journey.analysis:replay",
        "report": "journey.report:report",
        "serve": "journey.api:serve",
        "status": "journey.streaming:status",
        "subject-export": "journey.privacy:subject_export_command",
        "tick": "journey.intelligence:tick",
        "tokens": "journey.tokens:tokens",
        "view": "journey.analysis:view",
        "worklist": "journey.actions:worklist",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.elsewhere})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.elsewhere:
            return super().get_command(ctx, cmd_name)
        module, name = self.elsewhere[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
    status is 1 if any record was bad, 2 if a file is missing (then nothing is recorded)."""
    check_files(files)
    with engine_for(ctx) as engine:
        summary = _ingest(engine, list(files), batch_size or engine.settings.batch_size)
        if tick:
            engine.journeys.tick(now_ms())
        if not no_project:
            catch_up(engine)
    _print_summary(summary)
    if summary.bad:
        sys.exit(Exit.BAD_RECORDS)


def _ingest(
    engine: Engine, files: list[Path], batch_size: int, total: int | None = None
) -> IngestSummary:
    def bad(where: str, reason: str) -> None:
        say(f"{where}: {reason}")

    with progress() as bar:
        task = bar.add_task("Recording touchpoints", total=total)
        summary = ingest_files(
            engine.journeys,
            files,
            batch_size=batch_size,
            now_ms=int(time.time() * 1000),
            on_bad=bad,
            on_batch=lambda s: bar.update(task, completed=s.read),
            store=(engine.settings, engine.definition),
            parallel_above_bytes=engine.settings.parallel_above_bytes,
        )
        bar.update(task, total=summary.read, completed=summary.read)
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
    now = now_ms()
    start = recent_start(now)
    dataset = settings.data_dir / f"demo-{customers}-{seed}-{from_millis(start).date()}.jsonl"
    with dataset.open("w", encoding="utf-8") as handle:
        count = write_jsonl(handle, demo_touchpoints(customers, seed, start, until=now))
    say(f"Generated {count} touchpoints for {customers} customers in {dataset}")
    with engine_for(ctx) as engine:
        summary = _ingest(engine, [dataset], engine.settings.batch_size, total=count)
        _print_summary(summary)
        catch_up(engine)
        # The sales team at work: what they did with their actions, as their tools report it.
        from consumers.outcomes import record_outcomes  # brings Kafka's client: only here

        outcomes = demo_outcomes(engine.actions.actions(open_only=False), seed, now)
        record_outcomes(engine.journeys, outcomes)
        say(f"The sales team reported {len(outcomes)} outcomes on their actions")
        engine.journeys.tick(now)
        catch_up(engine)
        out.print(
            render.funnel_table(engine.definition, engine.view.funnel(engine.definition.ladder))
        )
        out.print()
        opened = engine.actions.actions(limit=None)
        for example in story_examples(engine, demo_customers(customers, seed), opened):
            out.rule(Text(example.story, style="bold"))
            out.print(Text(example.summary(str(from_millis(now).date())), style="italic"))
            if example.customer_id is not None:
                _show_customer(engine, example.customer_id)
            out.print()
        owners = len({action.owner for action in opened})
        from journey.report import write_report  # the charts' library takes long to load

        written = write_report(engine, settings.data_dir / "report.html", page=_DEMO_PAGE)
        out.print(
            Text.from_markup(
                f"Look up any customer with [bold]{_program()} customer C-000042[/bold]; "
                f"the data is in {settings.data_dir}.\n"
                f"{len(opened)} next actions wait for {owners} owners: "
                f"[bold]{_program()} actions[/bold] lists them, most important first, and "
                f"[bold]{_program()} explain ID[/bold] says why.\n"
                f"Charts of every journey: open {written}. The sales page and the pipeline: "
                f"[bold]{_program()} serve[/bold], then {_DEMO_PAGE}/."
            )
        )


# Where `journey serve` answers unless told otherwise: the demo's report links there.
_DEMO_PAGE = "http://127.0.0.1:8000"


def _program() -> str:
    """How the user can run this command again: `journey` if it is on the PATH."""
    if shutil.which("journey"):
        return "journey"
    return os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "journey"


@cli.command()
@click.argument("customer_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def customer(ctx: click.Context, customer_id: str, as_json: bool) -> None:
    """Show where a customer stands: stage, stage history, frictions, moments of truth and
    the timeline. CUSTOMER_ID may also be any identifier their touchpoints carried
    (`email:anna@example.com`, `phone:+4520123456`, `cookie_id:...`)."""
    with engine_for(ctx) as engine:
        catch_up(engine)
        _show_customer(engine, customer_id, as_json=as_json)


def _show_customer(engine: Engine, customer_id: str, *, as_json: bool = False) -> None:
    person, position, timeline = person_journey(engine, customer_id)
    customer_id = person
    clock = engine.view.time_of(position)
    actions = engine.actions.actions(customer_id=customer_id, open_only=False)
    if as_json:
        click.echo(
            json.dumps(
                render.customer_json(engine.definition, position, timeline, clock, actions),
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        out.print(render.customer_view(engine.definition, position, timeline, clock, actions))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def funnel(ctx: click.Context, as_json: bool) -> None:
    """Customers per stage: how many got at least this far, and how many are there now."""
    with engine_for(ctx) as engine:
        catch_up(engine)
        counts = engine.view.funnel(engine.definition.ladder)
        if as_json:
            click.echo(json.dumps(render.funnel_json(engine.definition, counts), indent=2))
        else:
            out.print(render.funnel_table(engine.definition, counts))


@cli.command()
@click.pass_context
def rebuild(ctx: click.Context) -> None:
    """Build the journey views again from the start of the log (after a definition change),
    beside the live ones: readers switch to them once they have caught up."""
    with engine_for(ctx) as engine:
        total = engine.journeys.recorder.max_notification_id() or 0
        started = time.perf_counter()
        with progress() as bar:
            task = bar.add_task("Rebuilding journeys", total=total)
            _, result = rebuild_beside(engine, lambda done, _: bar.update(task, completed=done))
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


def main() -> None:
    """The console entry point: a user's mistake is one line on stderr, and the exit status
    says whether records were bad, the command was wrong, or the engine failed."""
    try:
        cli.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        say("interrupted")
        sys.exit(Exit.INTERRUPTED)
    except click.UsageError as exc:
        # One line, as every other mistake: click's usage block would bury it.
        hint = f" (see {exc.ctx.command_path} -h)" if exc.ctx is not None else ""
        say(f"error: {' '.join(exc.format_message().split()).rstrip('.')}{hint}")
        sys.exit(Exit.USAGE)
    except click.ClickException as exc:
        say(f"error: {' '.join(exc.format_message().split())}")
        sys.exit(Exit.USAGE)
    except (ServiceUnavailable, StoreTooNew) as exc:
        say(f"error: {exc}")
        sys.exit(Exit.FAILED)
    except JourneyError as exc:
        say(f"error: {exc}")
        sys.exit(Exit.USAGE)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        say(f"error: {where}{exc.strerror or exc}")
        sys.exit(Exit.USAGE if exc.errno in _PATH_MISTAKES else Exit.FAILED)
    except Exception as exc:
        failed = _service_failed(exc)
        if failed is None:
            traceback.print_exc()
            failed = f"the engine failed ({type(exc).__name__}); please report the lines above"
        say(f"error: {failed}")
        sys.exit(Exit.FAILED)


# A path given that does not exist, is a directory, or may not be written: the user's to fix.
_PATH_MISTAKES = frozenset((errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EEXIST))


def _service_failed(exc: Exception) -> str | None:
    """The line for a failure of the store or Kafka; None for anything else.
    PostgreSQL's and Kafka's errors can come only from their clients, if they were loaded."""
    psycopg = sys.modules.get("psycopg")
    kafka_errors = sys.modules.get("kafka.errors")
    if isinstance(exc, PersistenceError | sqlite3.Error) or (
        psycopg is not None and isinstance(exc, psycopg.Error)
    ):
        return f"the store failed: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    if kafka_errors is not None and isinstance(exc, kafka_errors.KafkaError):
        return f"Kafka failed: {exc}"
    return None
