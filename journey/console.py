"""What every `journey` command shares: how it talks to people, and the engine it works on."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from consumers.action_store import DeciderConflict
from engine.outage import Outage
from engine.settings import Settings
from engine.touchpoints import millis
from journey import logs, render
from journey.bootstrap import Engine, build_engine
from journey.health import Health, health_server

out = render.console()
err = render.console(stderr=True)


class Exit(IntEnum):
    """What a command's exit status tells a script that ran it."""

    OK = 0
    BAD_RECORDS = 1  # it ran, and some records it was given were bad (each was reported)
    USAGE = 2  # it could not run as asked: a missing file, an unknown customer, a bad option
    FAILED = 3  # the engine failed: the store, Kafka or the file system, or a fault of its own
    INTERRUPTED = 130


# Set once a process that runs until stopped logs JSON: what it says goes through the log too,
# so that every line on its stderr is one object.
_said_as_json = threading.Event()


def say(line: str) -> None:
    """One plain line on stderr, never wrapped or styled, so that tools can read it."""
    if _said_as_json.is_set():
        logging.getLogger("journey").info(line)
    else:
        click.echo(line, err=True)


def print_json(document: Any) -> None:
    """What every --json prints: one JSON document, an array for a list of things and an
    object for one thing, so that each command's output is read the same way."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def limit_option(function: Any) -> Any:
    return click.option(
        "--limit",
        type=click.IntRange(1),
        default=50,
        show_default=True,
        help="List at most this many; the last line says how many more there are.",
    )(function)


def say_more(shown: int, total: int, *, as_json: bool = False) -> None:
    """The last line of a list cut at its limit; beside JSON it goes to stderr, so that what
    is printed stays one document."""
    line = render.and_more(shown, total)
    if line is None:
        return
    if as_json:
        say(line)
    else:
        out.print(line)


@contextmanager
def engine_for(ctx: click.Context) -> Iterator[Engine]:
    engine = build_engine(ctx.find_object(Settings) or Settings())
    try:
        yield engine
    finally:
        engine.close()


def engine_when_store_answers(
    settings: Settings, stop: threading.Event, outage: Outage
) -> Engine | None:
    """For commands that run until stopped: the engine, once the store answers (the wait is
    said once); None if stopped first."""
    return outage.attempt(lambda: build_engine(settings), stop)


def log_to_stderr(settings: Settings, command: str) -> None:
    """Log lines on stderr, for commands that run until stopped: timestamped text, or one
    JSON object per line with JOURNEY_LOG_FORMAT=json (naming `command` and the process)."""
    process = multiprocessing.current_process().name
    if process == "MainProcess":
        process = f"journey-{command}"
    logs.configure(settings.log_format, command, process)
    if settings.log_format == "json":
        _said_as_json.set()
    else:
        _said_as_json.clear()


def metrics_port_option(function: Any) -> Any:
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        help="Serve /metrics, /healthz and /readyz on this port (0: any free one, logged) "
        "[env JOURNEY_METRICS_PORT; none].",
    )(function)


def with_metrics_port(settings: Settings, port: int | None) -> Settings:
    return settings if port is None else replace(settings, metrics_port=port)


@contextmanager
def observed(settings: Settings, *, stale_after_s: float | None = None) -> Iterator[Health]:
    """The health of a process that runs until stopped, served with its metrics on
    `settings.metrics_port` while the block runs (if a port is set)."""
    health = Health() if stale_after_s is None else Health(stale_after_s=stale_after_s)
    if settings.metrics_port is None:
        yield health
        return
    with health_server(settings.metrics_host, settings.metrics_port, health):
        yield health


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def catch_up(engine: Engine) -> int:
    """Brings the views up to date (and refuses views they cannot be read from), and on the
    embedded store decides next actions too (with PostgreSQL, `journey decide --follow`
    does that as a service). Deciding first leaves the views at the log's head, decisions
    included, so the next command finds nothing to catch up. Returns how far behind the
    views were."""
    if engine.settings.store == "sqlite":
        # Another process deciding (journey decide --follow) got there first: its work stands.
        with suppress(DeciderConflict):
            engine.decider.catch_up()
    lag = engine.runner.lag()
    if lag < 5_000:  # a moment's work: no progress bar
        engine.runner.catch_up()
    else:
        with progress() as bar:
            task = bar.add_task("Building journeys", total=lag)
            engine.runner.catch_up(lambda done, total: bar.update(task, completed=done))
    return lag


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


def now_ms() -> int:
    return int(time.time() * 1000)


# How long a process that runs until stopped may take to finish after SIGTERM or Ctrl-C;
# docker-compose gives it 30 s before it kills it.
STOP_GRACE_S = 20.0


def stop_on_signals(*wake: Callable[[], None]) -> threading.Event:
    """An event set by SIGTERM or Ctrl-C, for commands that run until stopped; the process
    ends within STOP_GRACE_S of the first signal, whatever it is waiting for. Each of `wake`
    is called then too, to end a wait on something other than the event (it must be safe
    in a signal handler)."""
    stop = threading.Event()

    def request_stop(*_: object) -> None:
        if not stop.is_set():
            leave_within(STOP_GRACE_S)
        stop.set()
        for call in wake:
            call()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    return stop


def leave_within(grace_s: float) -> None:
    """Ends the process `grace_s` seconds from now unless it ends by itself first. Nothing is
    lost by it: what was not committed is read or published again on the next start."""

    def leave() -> None:
        logging.getLogger("journey").warning(
            "did not finish within %.0f s of being asked to stop; leaving now", grace_s
        )
        os._exit(Exit.FAILED)

    timer = threading.Timer(grace_s, leave)
    timer.daemon = True
    timer.start()
