"""Commands about next-best-actions: deciding and publishing them, listing and explaining
them, following them as a sales tool does, and recording what sales people did."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from contextlib import closing
from dataclasses import replace
from typing import Any

import click
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from rich.text import Text

from consumers.action_store import ActionRow, ActionStore, DeciderConflict
from consumers.broker import FIRST_BACKOFF_S, MAX_BACKOFF_S
from consumers.ingest import UNAVAILABLE
from consumers.metrics import DECIDER_LAG, DECISIONS, OUTBOX_BACKLOG, PROJECTION_LAG, Every
from consumers.outcomes import OutcomeIngest, check_outcome, record_outcomes
from consumers.relay import ACTION_ID_HEADER, Relay, Relaying, action_producer
from consumers.settings import KafkaSettings
from engine.actions import STATUSES, outcome_from_record
from engine.bulk import settle_young_objects
from engine.errors import DecodeError, ServiceUnavailable, UnknownAction
from engine.outage import Outage
from engine.settings import Settings
from journey import render
from journey import worklist as work
from journey.bootstrap import (
    Engine,
    build_bookkeeping,
    build_engine,
    build_log_watch,
    build_schema_registry,
    require_postgres,
)
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
    print_json,
    progress,
    say,
    say_more,
    stop_on_signals,
    with_metrics_port,
)
from journey.health import Health
from journey.streaming import kafka_settings
from schemas.codec import wire_contract
from stores.store import LogWatch

log = logging.getLogger("journey.decide")
# The longest `decide --follow` waits for the log to move on before it looks again anyway.
IDLE_LOOK_S = 5.0


@click.command()
@click.option("--follow", is_flag=True, help="Keep deciding as touchpoints arrive, until stopped.")
@click.option(
    "--publish/--no-publish",
    default=None,
    help="Publish decided actions to Kafka [on with PostgreSQL, off on the embedded store].",
)
@click.option(
    "--refold",
    is_flag=True,
    help="First fold the decider's journeys again under the current journey definition, "
    "after a change of its stages, frictions or moments; nothing is decided twice.",
)
@click.option("--bootstrap", help="Kafka's bootstrap servers [env JOURNEY_KAFKA_BOOTSTRAP].")
@metrics_port_option
@click.pass_context
def decide(
    ctx: click.Context,
    *,
    follow: bool,
    publish: bool | None,
    refold: bool,
    bootstrap: str | None,
    metrics_port: int | None,
) -> None:
    """Decide next-best-actions for everything recorded, and publish them to
    journey.next-actions (the outbox relay).

    Each decision commits with its log position and its outbox row; the relay marks a row
    sent once the broker acknowledges it, so nothing decided is lost and nothing is
    decided twice, whatever stops the process. Rebuilds and replays never come here."""
    settings = with_metrics_port(ctx.find_object(Settings) or Settings(), metrics_port)
    if not follow:
        settings = replace(settings, metrics_port=None)  # a run that ends serves nothing
    publish = settings.store == "postgres" if publish is None else publish
    kafka = kafka_settings(bootstrap, None, None)
    # Following, it waits for the log to move on; a stop request ends the wait.
    watch = build_log_watch(settings) if follow else None
    stop = stop_on_signals(*([watch.interrupt] if watch else []))
    postgres = Outage(log, "PostgreSQL", "deciding again when it answers")
    if follow:
        log_to_stderr(settings, "decide")
    try:
        with observed(settings) as health:
            health.watch(postgres)
            if follow:
                engine = engine_when_store_answers(settings, stop, postgres)
                if engine is None:
                    return
            else:
                engine = build_engine(settings)
            _decide(
                engine, kafka, health, stop, postgres, watch=watch, refold=refold, publish=publish
            )
    finally:
        if watch is not None:
            watch.close()
    if follow:
        say("Decider stopped")


def _decide(
    engine: Engine,
    kafka: KafkaSettings,
    health: Health,
    stop: threading.Event,
    postgres: Outage,
    *,
    watch: LogWatch | None,
    refold: bool,
    publish: bool,
) -> None:
    """Decides what the log holds, and with a `watch` goes on as it grows until stopped."""
    with closing(engine):
        if refold:
            with progress() as bar:
                task = bar.add_task("Folding journeys", total=None)
                folded = engine.decider.refold(
                    lambda done, total: bar.update(task, completed=done, total=total)
                )
            say(
                f"{folded} journey{'s' if folded != 1 else ''} folded again "
                "under the current definition"
            )
        if watch is None:
            done = engine.decider.catch_up()
            published = (
                Relay(engine.actions, action_producer(kafka), kafka.actions_topic).publish_pending()
                if publish
                else 0
            )
            say(
                f"{done.decisions} action{'s' if done.decisions != 1 else ''} decided"
                + (f", {done.ended} ended" if done.ended else "")
                + (f", {published} published to {kafka.actions_topic}" if publish else "")
            )
            return
        relaying = None
        if publish:
            kafka_outage = Outage(
                log, f"Kafka at {kafka.bootstrap}", "decided actions wait in the outbox"
            )
            health.watch(kafka_outage)
            relaying = Relaying(
                lambda: ActionStore(engine.store.database()),
                action_producer(kafka),
                kafka.actions_topic,
                postgres=postgres,
                kafka=kafka_outage,
                failed=watch.interrupt,
            )
        health.started()  # before it says so: whoever reads the line finds it ready
        say(
            "Deciding as touchpoints arrive"
            + (f", publishing to {kafka.actions_topic}" if publish else "")
            + "; Ctrl-C stops"
        )
        if relaying is not None:
            relaying.start()
        try:
            _follow(engine, relaying, stop, postgres, watch)
        finally:
            if relaying is not None:
                relaying.stop()
        if relaying is not None:
            relaying.check()


def _follow(
    engine: Engine,
    relaying: Relaying | None,
    stop: threading.Event,
    postgres: Outage,
    watch: LogWatch,
) -> None:
    """Decides until stopped, a page at a time, handing each page's actions to the relay as
    soon as it commits; waits for the log to move on when it has decided everything, and
    waits out outages of PostgreSQL (each said once when it begins and once when it ends)."""
    delay = FIRST_BACKOFF_S
    measure = Every(5.0)  # the lags and the backlog cost a query each
    while not stop.is_set():
        if relaying is not None:
            relaying.check()
        try:
            done = engine.decider.catch_up(max_pages=1)
            if done.published and relaying is not None:
                relaying.due()
            if measure.due():
                _measure(engine, done.position)
            if not done.pages:
                # Every append notifies the watch as it commits; looking again now and
                # then only keeps the loop's health and metrics current.
                watch.wait(IDLE_LOOK_S)
        except UNAVAILABLE as exc:
            stop.wait(postgres.failed(exc))
            continue
        except DeciderConflict as exc:
            log.warning("another decider is at work (%s); its pages stand", exc)
            stop.wait(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            continue
        postgres.succeeded()
        if done.decisions:
            DECISIONS.inc(done.decisions)
        if done.pages:
            settle_young_objects()  # a live process: keep the collector off what it holds
        delay = FIRST_BACKOFF_S


def _measure(engine: Engine, decided_up_to: int) -> None:
    """The decider's lag and the outbox's backlog, and how far the journey views are behind
    (the decider is the process that always runs beside them)."""
    head = engine.log.head()
    DECIDER_LAG.set(max(head - decided_up_to, 0))
    PROJECTION_LAG.labels("journey").set(engine.runner.lag())
    OUTBOX_BACKLOG.set(engine.actions.unsent_count())


@click.command()
@click.option("--owner", help="Only the actions of this owner (a rep id or a role).")
@click.option("--customer", "customer_id", help="Only the actions for this customer.")
@click.option("--all", "everything", is_flag=True, help="Closed actions too.")
@limit_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON array instead of text (with --follow: one object per line).",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Show actions live from journey.next-actions, as a sales tool receives them.",
)
@click.option("--from-beginning", is_flag=True, help="With --follow: from the topic's start.")
@click.option("--bootstrap", help="Kafka's bootstrap servers [env JOURNEY_KAFKA_BOOTSTRAP].")
@click.pass_context
def actions(
    ctx: click.Context,
    *,
    owner: str | None,
    customer_id: str | None,
    everything: bool,
    limit: int,
    as_json: bool,
    follow: bool,
    from_beginning: bool,
    bootstrap: str | None,
) -> None:
    """List next actions, the most important first; or follow them live (--follow)."""
    if follow:
        _follow_topic(kafka_settings(bootstrap, None, None), owner, from_beginning, as_json)
        return
    with engine_for(ctx) as engine:
        catch_up(engine)
        rows = engine.actions.actions(
            customer_id=customer_id, owner=owner, open_only=not everything
        )
    shown = rows[:limit]
    if as_json:
        print_json([render.action_json(row) for row in shown])
    elif not rows:
        say("No open actions" if not everything else "No actions")
    else:
        _print_rows(shown)
    say_more(len(shown), len(rows), as_json=as_json)


def _follow_topic(settings: Any, owner: str | None, from_beginning: bool, as_json: bool) -> None:
    decode = wire_contract("NextAction").decode
    try:
        consumer = KafkaConsumer(
            settings.actions_topic,
            bootstrap_servers=settings.bootstrap,
            group_id=None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
            bootstrap_timeout_ms=5000,
        )
    except KafkaError as exc:
        raise ServiceUnavailable(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from None
    stop = stop_on_signals()
    say(
        f"Following {settings.actions_topic}"
        + (f" for {owner}" if owner else "")
        + "; Ctrl-C stops"
    )
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if owner is not None and record.key != owner.encode():
                        continue
                    try:
                        action = decode(record.value)
                    except DecodeError as exc:
                        say(f"{record.topic}[{record.partition}]@{record.offset}: {exc}")
                        continue
                    _print_live(action, dict(record.headers or ()), as_json)
    finally:
        consumer.close()


def _print_live(action: dict[str, Any], headers: dict[str, bytes], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(action, ensure_ascii=False))
        return
    shown_id = headers.get(ACTION_ID_HEADER, b"").decode()
    if action.get("status", "open") != "open":  # the journey ended it: a tool drops it
        click.echo(
            f"{action['owner']}: {action['action_type']} {action['customer_id']} "
            f"{action['status']}: {action['status_reason']} [{shown_id}]"
        )
        return
    due = f", due {render.when(action['due_at'])}" if action.get("due_at") else ""
    click.echo(
        f"{action['owner']}: {action['action_type']} {action['customer_id']} "
        f"by {action['channel']} ({render.priority_level(action['priority'])} priority{due}) "
        f"[{shown_id}]\n  {action['reason']}"
    )


@click.command()
@click.option("--owner", required=True, help="The rep (or role) whose day it is.")
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.pass_context
def worklist(ctx: click.Context, *, owner: str, limit: int, as_json: bool) -> None:
    """A sales person's day: their actions to do, overdue first, then due today, then later,
    with what to do, for whom, why and how urgent. "Now" is the journey's clock (the latest
    time recorded), and days are UTC days."""
    with engine_for(ctx) as engine:
        catch_up(engine)
        day = work.read_worklist(engine, owner, work.UTC_ZONE, now_ms())
        labels = {a.action_id: work.label_of(engine.definition, a) for _, a in day.items}
    listed = day.items[:limit]
    if as_json:
        print_json(
            {
                "owner": owner,
                "as_of": render.iso(day.now),
                "zone": "UTC",
                "counts": work.counts_json(day),
                "days": work.days_json(day),
                "items": [
                    {
                        **render.action_json(action),
                        "group": group,
                        "label": labels[action.action_id],
                    }
                    for group, action in listed
                ],
            }
        )
    else:
        _print_worklist(day, listed, labels)
    say_more(len(listed), len(day.items), as_json=as_json)


def _print_worklist(
    day: work.Worklist, listed: list[tuple[str, ActionRow]], labels: dict[str, str]
) -> None:
    counts = work.counts_json(day)
    out.print(
        Text.assemble(
            (f"{render.shown(day.owner)}'s day", "bold"),
            f", as of {work.moment_text(day.now, day.zone)} (the journey's clock)",
        )
    )
    out.print(
        f"{counts['overdue']} overdue, {counts['today']} due today, {counts['later']} later"
        + (f", {counts['snoozed']} snoozed till later" if counts["snoozed"] else "")
    )
    if day.days:
        line = "Due:"
        for due, n in day.days:
            said = f" {n} on {work.day_text(due)},"
            if len(line) + len(said) > out.width:  # a day is never cut in two
                out.print(line)
                line = "    "
            line += said
        out.print(line.rstrip(","))
    if not day.items:
        out.print("Nothing to do.")
    titles = {"overdue": "Overdue", "today": "Due today", "later": "Later"}
    for group in work.GROUPS:
        rows = [action for shown, action in listed if shown == group]
        if not rows:
            continue
        table = render.Listing(
            f"{titles[group]} ({counts[group]})",
            ("due", "customer", "priority", "do", "by", "why", "action"),
            head=3,
            wrap="why",
            labelled=("by", "action"),
        )
        for action in rows:
            table.add_row(
                work.moment_text(action.due_at, day.zone) if action.due_at else "no due time",
                action.customer_id,
                render.priority_level(action.priority),
                labels[action.action_id],
                action.channel,
                action.reason,
                action.action_id,
            )
        out.print(Text())
        out.print(table)


@click.command()
@click.argument("action_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def explain(ctx: click.Context, action_id: str, as_json: bool) -> None:
    """Why an action was decided: the rule, the events behind it, the score parts and the
    candidates it beat."""
    with engine_for(ctx) as engine:
        catch_up(engine)
        row = engine.actions.action(action_id)
        rule = engine.definition.action_rule(row.rule) if row else None
    if row is None:
        raise UnknownAction(action_id)
    if as_json:
        print_json(render.action_json(row, explained=True))
        return
    e = row.explanation
    score, weights = e["score"], e["weights"]
    lines = [
        f"{row.action_type} for {row.customer_id}, owner {row.owner}, by {row.channel}: "
        f"{row.status}",
        f"  {row.reason}",
        f"rule      {row.rule}" + (f" ({rule.label})" if rule and rule.label else ""),
        f"trigger   {e['trigger']} at {render.when(e['triggered_at'])}",
        f"events    {', '.join(e['events']) or 'none'}",
        f"decided   {render.when(row.decided_at)} (journey time), "
        f"at log position {row.log_position}",
        "priority  "
        + " + ".join(f"{weights[p]:g} x {p} {score[p]:g}" for p in ("value", "urgency", "fit"))
        + f" = {e['priority']:g} ({render.priority_level(e['priority'])})",
    ]
    if row.due_at:
        lines.append(f"due       {render.when(row.due_at)}")
    for beaten in e["beat"]:
        lines.append(
            f"beat      {beaten['rule']} (priority {beaten['priority']:g}), "
            f"held by {beaten['held_by']}"
        )
    if row.status_at is not None:
        why = f": {row.status_reason}" if row.status_reason else ""
        lines.append(f"status    {row.status} at {render.when(row.status_at)}{why}")
    click.echo("\n".join(lines))


@click.command()
@click.argument("action_id")
@click.argument("status", type=click.Choice(STATUSES))
@click.option("--reason", help="Why, in the rep's words (expected with dismissed).")
@click.option("--until", "snoozed_until", type=TIME, help="With snoozed: when it comes back.")
@click.option("--rep", "rep_id", help="Who reports it.")
@click.option("--at", type=TIME, help="When the rep acted [now].")
@click.pass_context
def outcome(
    ctx: click.Context,
    action_id: str,
    status: str,
    *,
    reason: str | None,
    snoozed_until: int | None,
    rep_id: str | None,
    at: int | None,
) -> None:
    """Record what a sales person did with an action, as a sales tool would on
    journey.action-outcomes."""
    with engine_for(ctx) as engine:
        catch_up(engine)
        row = engine.actions.action(action_id)
        if row is None:
            raise UnknownAction(action_id)
        record = {
            "event_id": str(uuid.uuid4()),
            "action_id": action_id,
            "customer_id": row.customer_id,
            "status": status,
            "reason": reason,
            "snoozed_until": snoozed_until,
            "rep_id": rep_id,
            "occurred_at": at if at is not None else now_ms(),
        }
        recorded = outcome_from_record(record, now_ms=now_ms())
        check_outcome(engine.actions, recorded)
        record_outcomes(engine.journeys, [recorded])
        catch_up(engine)
    say(f"Recorded: {action_id} {status}")


@click.command()
@click.option("--bootstrap", help="Kafka's bootstrap servers [env JOURNEY_KAFKA_BOOTSTRAP].")
@metrics_port_option
@click.pass_context
def outcomes(ctx: click.Context, bootstrap: str | None, metrics_port: int | None) -> None:
    """Record outcomes from journey.action-outcomes, each exactly once, until stopped; bad
    ones go to journey.action-outcomes.dlq with the reason."""
    settings = with_metrics_port(ctx.find_object(Settings) or Settings(), metrics_port)
    require_postgres(settings, "outcomes")
    kafka = kafka_settings(bootstrap, None, None)
    log_to_stderr(settings, "outcomes")
    stop = stop_on_signals()
    with observed(settings) as health:
        waiting = Outage(logging.getLogger("journey.outcomes"))
        health.watch(waiting)
        built = waiting.attempt(
            lambda: (build_bookkeeping(settings, "outcomes"), build_engine(settings)), stop
        )
        if built is None:
            return
        bookkeeping, engine = built
        registry = build_schema_registry(kafka)
        try:
            consumer = OutcomeIngest(
                engine.journeys, bookkeeping, kafka, engine.actions, registry=registry
            )
            health.watch(*consumer.outages)
            health.started()
            say(f"Recording outcomes from {kafka.outcomes_topic}; Ctrl-C stops")
            totals = consumer.run(stop)
        finally:
            if registry is not None:
                registry.close()
            engine.close()
    say(f"{totals.recorded} outcomes recorded, {totals.dead} dead letters")


def _print_rows(rows: list[ActionRow]) -> None:
    for row in rows:
        due = f", due {render.when(row.due_at)}" if row.due_at else ""
        out.print(
            Text.assemble(
                (render.shown(row.owner), "bold"),
                f": {row.action_type} {render.shown(row.customer_id)} by {row.channel} "
                f"({render.priority_level(row.priority)} priority{due}) ",
                (f"{render.shown(render.action_status(row))} {row.action_id}", "dim"),
            )
        )
        out.print(f"  {row.reason}")
