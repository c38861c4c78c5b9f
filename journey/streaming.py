"""The `journey` commands that talk to Kafka: consume, produce, status and dead-letters."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from rich.table import Table

from consumers.bookkeeping import Bookkeeping
from consumers.broker import Retention, retention
from consumers.ingest import UNAVAILABLE, IngestTotals, TouchpointIngest, redrive
from consumers.produce import publish_files, touchpoint_producer
from consumers.settings import KafkaSettings
from engine.errors import ConfigurationError, ServiceUnavailable
from engine.lifeline import end_with_parent
from engine.outage import Outage
from engine.settings import Settings
from journey import render
from journey.bootstrap import (
    Engine,
    build_bookkeeping,
    build_engine,
    build_schema_registry,
    require_postgres,
)
from journey.console import (
    STOP_GRACE_S,
    Exit,
    leave_within,
    limit_option,
    log_to_stderr,
    metrics_port_option,
    observed,
    print_json,
    say,
    say_more,
    with_metrics_port,
)
from journey.ingest import check_files

out = render.console()


def kafka_options(function: Any) -> Any:
    """--bootstrap, --topic and --group, defaulting to the environment."""
    for option in reversed(
        [
            click.option(
                "--bootstrap",
                help="Kafka's bootstrap servers [env JOURNEY_KAFKA_BOOTSTRAP; 127.0.0.1:9092].",
            ),
            click.option(
                "--topic",
                help="The touchpoints topic [env JOURNEY_TOUCHPOINTS_TOPIC; "
                "journey.touchpoints]; dead letters go to TOPIC.dlq.",
            ),
            click.option(
                "--group",
                help="The ingest consumer group [env JOURNEY_CONSUMER_GROUP; journey-ingest].",
            ),
        ]
    ):
        function = option(function)
    return function


def kafka_settings(bootstrap: str | None, topic: str | None, group: str | None) -> KafkaSettings:
    env = dict(os.environ)
    for key, value in (
        ("JOURNEY_KAFKA_BOOTSTRAP", bootstrap),
        ("JOURNEY_TOUCHPOINTS_TOPIC", topic),
        ("JOURNEY_CONSUMER_GROUP", group),
    ):
        if value:
            env[key] = value
    return KafkaSettings.from_env(env)


@contextmanager
def recording_engine(ctx: click.Context, command: str) -> Iterator[tuple[Engine, Bookkeeping]]:
    settings = ctx.find_object(Settings) or Settings()
    bookkeeping = build_bookkeeping(settings, command)
    engine = build_engine(settings)
    try:
        yield engine, bookkeeping
    finally:
        engine.close()


@click.command()
@kafka_options
@click.option("--batch-size", type=click.IntRange(1, 100_000), help="Most records per transaction.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Members of the group to run, one process each; more than the topic has "
    "partitions would idle.",
)
@click.option(
    "--instance",
    help="A stable name for this member of the group, so that a restart under the same name "
    "takes its partitions back at once [env JOURNEY_CONSUMER_INSTANCE].",
)
@metrics_port_option
@click.pass_context
def consume(
    ctx: click.Context,
    *,
    bootstrap: str | None,
    topic: str | None,
    group: str | None,
    batch_size: int | None,
    workers: int,
    instance: str | None,
    metrics_port: int | None,
) -> None:
    """Record touchpoints from Kafka into PostgreSQL, each exactly once, until stopped.

    Each batch is recorded in one transaction with the offsets it was read up to; bad records
    go to the dead-letter topic and their neighbours are recorded. SIGTERM or Ctrl-C finishes
    the batch in hand and exits 0. While PostgreSQL or Kafka is away it waits and retries.
    With --workers N and a metrics port P, the members serve on ports P to P+N-1."""
    settings = with_metrics_port(ctx.find_object(Settings) or Settings(), metrics_port)
    kafka = kafka_settings(bootstrap, topic, group)
    if instance:
        kafka = replace(kafka, instance=instance)
    require_postgres(settings, "consume")
    size = batch_size or min(settings.batch_size, 25_000)
    if workers == 1:
        run_member(settings, kafka, size)
        return
    # Forked, not spawned: the members start at once instead of importing everything again.
    # Nothing here holds a thread or a connection yet, so forking is safe.
    fork = multiprocessing.get_context("fork")
    members = [
        fork.Process(
            target=_member,
            args=(
                os.getpid(),
                _member_settings(settings, number),
                replace(kafka, instance=f"{kafka.instance}-{number}") if kafka.instance else kafka,
                size,
            ),
            name=f"journey-consume-{number}",
        )
        for number in range(1, workers + 1)
    ]
    for member in members:
        member.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for member in members:
            if member.pid is not None and member.is_alive():
                os.kill(member.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for member in members:
        member.join()
    failed = [member.name for member in members if member.exitcode]
    if failed:
        raise ConfigurationError(f"{', '.join(failed)} stopped with an error (see above)")


def _member_settings(settings: Settings, number: int) -> Settings:
    """A member's settings: each serves its metrics on a port of its own, so that a scrape
    tells them apart and a member that died shows as a target down."""
    port = settings.metrics_port
    if not port:  # none, or any free one
        return settings
    return replace(settings, metrics_port=port + number - 1)


def _member(parent: int, settings: Settings, kafka: KafkaSettings, batch_size: int) -> None:
    """A member in a process of its own, which finishes the batch in hand and ends when the
    process that started it dies (even by kill -9): it would go on consuming unseen."""
    end_with_parent(parent, signal.SIGTERM)
    run_member(settings, kafka, batch_size)


def run_member(settings: Settings, kafka: KafkaSettings, batch_size: int) -> None:
    """One member of the ingest group, until SIGTERM or SIGINT."""
    log_to_stderr(settings, "consume")
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            logging.getLogger("journey.consume").info(
                "%s: finishing the batch in hand", signal.Signals(signum).name
            )
            leave_within(STOP_GRACE_S)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with observed(settings) as health:
        waiting = Outage(
            logging.getLogger("journey.consume"), "PostgreSQL", "connecting when it answers"
        )
        health.watch(waiting)
        built = waiting.attempt(
            lambda: (build_bookkeeping(settings, "consume"), build_engine(settings)),
            stop,
            UNAVAILABLE,
        )
        if built is None:
            return
        bookkeeping, engine = built
        registry = build_schema_registry(kafka)
        try:
            ingest = TouchpointIngest(
                engine.journeys, bookkeeping, kafka, batch_size=batch_size, registry=registry
            )
            health.watch(*ingest.outages)
            health.started()
            last_report = [time.monotonic()]

            def report(totals: IngestTotals) -> None:
                if time.monotonic() - last_report[0] >= 5:
                    last_report[0] = time.monotonic()
                    _log_totals(totals)

            totals = ingest.run(stop, on_batch=report)
        finally:
            if registry is not None:
                registry.close()
            engine.close()
    _log_totals(totals)


def _log_totals(totals: IngestTotals) -> None:
    logging.getLogger("journey.consume").info(
        "%d records consumed: %d recorded, %d already recorded, %d dead letters",
        totals.consumed,
        totals.recorded,
        totals.duplicates,
        totals.dead,
    )


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@kafka_options
def produce(
    files: tuple[Path, ...], bootstrap: str | None, topic: str | None, group: str | None
) -> None:
    """Publish touchpoints from JSON lines, CSV or Avro files to the touchpoints topic.

    Bad records are reported as file:line and reason and left out; the exit status is 1 if
    any record was bad."""
    del group
    check_files(files)
    settings = kafka_settings(bootstrap, topic, None)
    producer = touchpoint_producer(settings)
    try:
        summary = publish_files(
            producer,
            settings.touchpoints_topic,
            files,
            on_bad=lambda where, reason: say(f"{where}: {reason}"),
        )
    except KafkaError as exc:
        raise ServiceUnavailable(
            f"publishing to Kafka at {settings.bootstrap} failed: {exc}"
        ) from None
    finally:
        producer.close(timeout=10)
    say(
        f"{summary.published + summary.bad} records: {summary.published} published to "
        f"{settings.touchpoints_topic}, {summary.bad} bad"
    )
    if summary.bad:
        raise SystemExit(Exit.BAD_RECORDS)


@click.command()
@kafka_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def status(
    ctx: click.Context, bootstrap: str | None, topic: str | None, group: str | None, as_json: bool
) -> None:
    """Per-partition position and lag of the ingest group, touchpoints recorded, dead letters,
    next actions decided and not yet published."""
    settings = kafka_settings(bootstrap, topic, group)
    with recording_engine(ctx, "status") as (engine, bookkeeping):
        recorded = bookkeeping.next_offsets(settings.group, settings.touchpoints_topic)
        touchpoints = engine.journeys.recorded_count()
        log_position = engine.journeys.recorder.max_notification_id() or 0
        letters = bookkeeping.dead_letter_counts()
        decided, unsent = engine.actions.outbox_counts()
        decider_at = engine.actions.tracking()[0]
        sealing = engine.sealing
        personal = {
            "sealed": sealing is not None,
            "master_key": sealing.vault.master.current if sealing else None,
            "data_keys": sealing.vault.data_keys() if sealing else 0,
            "people_forgotten": len({r["person"] for r in engine.log.erasures()}),
        }
    ends, kafka_problem = _end_offsets(settings, {p for _, p in recorded})
    kept = _retention(settings) if kafka_problem is None else {}
    partitions = sorted(set(ends) | {p for _, p in recorded})
    rows = []
    for partition in partitions:
        position = recorded.get((settings.touchpoints_topic, partition), 0)
        end = ends.get(partition)
        rows.append(
            {
                "partition": partition,
                "recorded_up_to": position,
                "end": end,
                "lag": None if end is None else max(end - position, 0),
            }
        )
    report = {
        "topic": settings.touchpoints_topic,
        "group": settings.group,
        "kafka": kafka_problem or "reachable",
        "partitions": rows,
        "touchpoints": touchpoints,
        "log_position": log_position,
        "dead_letters": letters,
        "actions": {"decided": decided, "unpublished": unsent, "decider_at": decider_at},
        "retention": {topic: kept_for._asdict() for topic, kept_for in kept.items()},
        "personal_data": personal,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"{settings.touchpoints_topic}, group {settings.group}")
    for column in ("partition", "recorded up to", "end of log", "lag"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(row[key]) if row[key] is not None else "?" for key in row))
    out.print(table)
    if kafka_problem:
        out.print(f"Kafka: {kafka_problem}")
    out.print(f"Touchpoints recorded: {touchpoints:,} (the log is at position {log_position:,})")
    out.print(
        f"Dead letters: {letters['total']} ({letters['waiting']} waiting for a redrive, "
        f"{letters['unpublished']} not yet on {settings.dead_letter_topic})"
    )
    out.print(
        f"Next actions: {decided} decided ({unsent} not yet published); "
        f"the decider is at log position {decider_at}"
    )
    if personal["sealed"]:
        out.print(
            f"Personal data: sealed, {personal['data_keys']:,} data keys wrapped by master key "
            f"{personal['master_key']}; {personal['people_forgotten']} people forgotten"
        )
    else:
        out.print("Personal data: not sealed (no master key)")
    for name, kept_for in kept.items():
        out.print(
            f"{name} keeps its records {kept_for}: a person forgotten stays in them until then"
        )


def _retention(settings: KafkaSettings) -> dict[str, Retention]:
    try:
        return retention(
            settings.bootstrap, [settings.touchpoints_topic, settings.dead_letter_topic]
        )
    except KafkaError:
        return {}  # the end of the log was read: the broker's configs may be off limits


def _end_offsets(settings: KafkaSettings, known: set[int]) -> tuple[dict[int, int], str | None]:
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id="journey-status",
            enable_auto_commit=False,
            allow_auto_create_topics=False,  # looking must not create the topic
            bootstrap_timeout_ms=5000,
        )
    except KafkaError as exc:
        return {}, f"unreachable at {settings.bootstrap} ({exc})"
    try:
        partitions = consumer.partitions_for_topic(settings.touchpoints_topic) or known
        ends = consumer.end_offsets(
            [TopicPartition(settings.touchpoints_topic, p) for p in sorted(partitions)]
        )
        return {tp.partition: offset for tp, offset in ends.items()}, None
    except KafkaError as exc:
        return {}, f"could not read the end of the log ({exc})"
    finally:
        consumer.close(autocommit=False)


@click.group("dead-letters", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include those already redriven.")
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_context
def dead_letters(ctx: click.Context, show_all: bool, limit: int, as_json: bool) -> None:
    """List the records the engine could not record (or redrive them: see `redrive`)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = ctx.find_object(Settings) or Settings()
    letters = build_bookkeeping(settings, "dead-letters").dead_letters(waiting=not show_all)
    shown = letters[:limit]
    if as_json:
        print_json(
            [
                {
                    "id": stored.id,
                    "topic": stored.letter.topic,
                    "partition": stored.letter.partition,
                    "offset": stored.letter.offset,
                    "reason": stored.letter.reason,
                    "detail": stored.letter.detail,
                    "recorded_at": stored.recorded_at.isoformat(),
                    "redriven_at": stored.redriven_at.isoformat() if stored.redriven_at else None,
                    "value_hex": stored.letter.value.hex()
                    if stored.letter.value is not None
                    else None,
                }
                for stored in shown
            ]
        )
        say_more(len(shown), len(letters), as_json=True)
        return
    table = render.Listing(
        "Dead letters",
        ("id", "where", "reason", "detail", "when", "redriven"),
        head=3,
        wrap="detail",
        boxed=True,
        labelled=("redriven",),
    )
    for stored in shown:
        table.add_row(
            str(stored.id),
            stored.letter.where,
            stored.letter.reason,
            stored.letter.detail,
            stored.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
            stored.redriven_at.strftime("%Y-%m-%d %H:%M:%S") if stored.redriven_at else "",
        )
    out.print(table)
    say_more(len(shown), len(letters))
    say(f"{len(letters)} dead letters")


@dead_letters.command("redrive")
@click.argument("ids", nargs=-1, type=int)
@click.pass_context
def redrive_command(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Offer dead letters (all waiting ones, or those with IDS) to the engine again.

    Run it after a fix, for example a larger JOURNEY_MAX_RECORD_BYTES or a
    JOURNEY_SCHEMA_REGISTRY_URL for registry-framed records. Those that now pass
    are recorded once, however often this runs; those that still fail stay, with the reason."""
    settings = kafka_settings(None, None, None)
    with recording_engine(ctx, "dead-letters redrive") as (engine, bookkeeping):
        letters = bookkeeping.dead_letters(ids=ids, waiting=True)
        missing = set(ids) - {stored.id for stored in letters}
        if missing:
            raise ConfigurationError(
                f"no waiting dead letter with id {', '.join(map(str, sorted(missing)))}"
            )
        registry = build_schema_registry(settings)
        try:
            report = redrive(
                engine.journeys,
                bookkeeping,
                letters,
                max_bytes=settings.max_record_bytes,
                now_ms=int(time.time() * 1000),
                registry=registry,
            )
        finally:
            if registry is not None:
                registry.close()
    for stored, reason in report.still_dead:
        say(f"dead letter {stored.id} ({stored.letter.where}) still fails: {reason}")
    say(
        f"{len(letters)} dead letters: {report.recorded} recorded, {report.duplicates} "
        f"already recorded, {len(report.still_dead)} still failing"
    )
    if report.still_dead:
        raise SystemExit(Exit.BAD_RECORDS)
