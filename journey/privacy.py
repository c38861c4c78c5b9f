"""`journey forget` and `journey subject-export`: a person's right to be forgotten, and to see
what the engine holds about them; `journey keys` for the master keys.

Forgetting destroys the data keys of every journey the person's touchpoints were recorded
under, so that their sealed personal data can never be read again; empties the dead letters
that carry their customer id or identifiers; and appends a receipt, which holds no personal
data. Stage history, frictions, moments of truth and actions stay, and replay as before."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import click

from consumers.bookkeeping import Bookkeeping, StoredDeadLetter
from engine.errors import ConfigurationError, JourneyError
from engine.journeys import ERASURES_STREAM, Erasures
from engine.recording import StreamEvent
from engine.sealing import Sealing
from engine.settings import Settings
from engine.vault import MasterKeys
from journey import render, stages
from journey.bootstrap import Engine, build_bookkeeping, build_engine, rebuild_beside
from journey.console import catch_up, engine_for, now_ms, out
from journey.identity import (
    identifier_in,
    identifiers_shown,
    person_json,
    person_named,
    who_decides,
)
from journey.people import person_journey
from projections.identities import read_identities
from projections.log import IDENTITY_TOPIC, TOUCHPOINT_TOPIC, JourneyLog


class NotSealed(JourneyError):
    """The store keeps personal data unsealed: nothing can be erased by destroying keys."""

    def __init__(self) -> None:
        super().__init__(
            "personal data is not sealed in this store (no master key): set "
            "JOURNEY_MASTER_KEY_FILE to a file `journey keys new-master` wrote"
        )


class Receipt(NamedTuple):
    """What a person's erasure did; `position` is the receipt's place in the log, None if
    they had been forgotten before and nothing was left to erase."""

    person: str
    keys: tuple[str, ...]
    data_keys: int
    dead_letters: int
    position: int | None
    at: int


def forget(engine: Engine, who: str, *, by: str, reason: str) -> Receipt:
    """Erases the personal data of the person `who` names (a customer id or an identifier)
    everywhere the engine keeps it. Forgetting them again erases what came since, if anything."""
    sealing = _sealing(engine)
    catch_up(engine)
    person, keys = _person_and_keys(engine, sealing, who)
    states = engine.log.touchpoints_of(keys)
    known = set(keys)
    for state in states:
        opened = sealing.opened(state)
        known.update(opened["identifiers"].values())
        known.update(opened["attributes"][name] for name in engine.definition.privacy.personal
                     if name in opened["attributes"])  # fmt: skip
    data_keys = sealing.vault.erase(list(keys))
    letters = _erase_dead_letters(engine, known)
    at = now_ms()
    if data_keys == 0 and letters == 0 and receipts(engine.log, person):
        return Receipt(person, keys, 0, 0, None, at)
    fields = {
        "person": person,
        "keys": list(keys),
        "data_keys": data_keys,
        "dead_letters": letters,
        "by": by,
        "reason": reason,
        "occurred_at": at,
    }
    event = StreamEvent(
        f"erasure:{uuid.uuid4()}", ERASURES_STREAM, Erasures, Erasures.Forgotten, fields
    )
    position = engine.journeys.append([event])
    return Receipt(person, keys, data_keys, letters, position, at)


def receipts(log: JourneyLog, person: str | None = None) -> list[dict[str, Any]]:
    """The receipts of erasures (a person's, or everyone's), oldest first."""
    return [r for r in log.erasures() if person is None or r["person"] == person]


def subject_export(engine: Engine, who: str) -> dict[str, Any]:
    """Everything the engine holds about the person `who` names, personal data opened."""
    sealing = _sealing(engine)
    catch_up(engine)
    person, keys = _person_and_keys(engine, sealing, who)
    journey = person_journey(engine, person)
    clock = engine.view.time_of(journey.position)
    actions = engine.actions.actions(customer_id=person, open_only=False)
    graph = read_identities(engine.log, engine.definition.identity)
    conflicts = [c for c in graph.conflicts() if person in c.people]
    touchpoints = [
        _touchpoint_json(sealing.opened(state)) for state in engine.log.touchpoints_of(keys)
    ]
    known = set(keys)
    for touchpoint in touchpoints:
        known.update(touchpoint["identifiers"].values())
    return {
        "person": person,
        "keys": list(keys),
        "exported_at": render.iso(now_ms()),
        "identity": person_json(graph, person, conflicts, identifiers_shown(engine, person)),
        "journey": {
            **render.customer_json(
                engine.definition, journey.position, journey.timeline, clock, actions
            ),
            "stages": stages.stages_json(engine.definition, journey.position),
            "next_stage": stages.next_stage(engine.definition, journey.position),
        },
        "touchpoints": touchpoints,
        "dead_letters": [
            _letter_json(letter) for letter in _dead_letters_of(_bookkeeping(engine), known)
        ],
        "erasures": [
            {**receipt, "occurred_at": render.iso(receipt["occurred_at"])}
            for receipt in receipts(engine.log, person)
        ],
    }


def _sealing(engine: Engine) -> Sealing:
    if engine.sealing is None:
        raise NotSealed()
    return engine.sealing


def _person_and_keys(engine: Engine, sealing: Sealing, who: str) -> tuple[str, tuple[str, ...]]:
    graph = read_identities(engine.log, engine.definition.identity)
    person = person_named(graph, identifier_in(graph, who, sealing))
    keys = tuple(engine.view.keys_of(person)) or (person,)
    return person, keys


def _touchpoint_json(state: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in state.items() if k != "timestamp"}
    fields["occurred_at"] = render.iso(state["occurred_at"])
    return fields


def _bookkeeping(engine: Engine) -> Bookkeeping | None:
    if engine.settings.store != "postgres":
        return None  # the embedded store reads no Kafka, and keeps no dead letters
    return build_bookkeeping(engine.settings, "forget")


def _dead_letters_of(
    bookkeeping: Bookkeeping | None, known: Iterable[str]
) -> list[StoredDeadLetter]:
    """The dead letters that name any of `known`."""
    mentions = _mentions(known)
    if bookkeeping is None or mentions is None:
        return []
    return [stored for stored in bookkeeping.dead_letters() if _mentioned(stored, mentions)]


def _erase_dead_letters(engine: Engine, known: Iterable[str]) -> int:
    bookkeeping = _bookkeeping(engine)
    letters = _dead_letters_of(bookkeeping, known)
    if bookkeeping is not None and letters:
        bookkeeping.erase_dead_letters([stored.id for stored in letters])
    return len(letters)


def _mentions(known: Iterable[str]) -> re.Pattern[bytes] | None:
    """Any of these values as a whole word (C-1 is not C-10), in a record's bytes."""
    words = sorted({value for value in known if value and len(value) >= 3}, key=len, reverse=True)
    if not words:
        return None
    alternatives = b"|".join(re.escape(word.encode()) for word in words)
    return re.compile(rb"(?<![\w.@+-])(?:" + alternatives + rb")(?![\w@-])", re.IGNORECASE)


def _mentioned(stored: StoredDeadLetter, mentions: re.Pattern[bytes]) -> bool:
    letter = stored.letter
    parts = (letter.key, letter.value, letter.detail.encode(), letter.reason.encode())
    return any(part and mentions.search(part) for part in parts)


def _letter_json(stored: StoredDeadLetter) -> dict[str, Any]:
    letter = stored.letter
    return {
        "where": letter.where,
        "reason": letter.reason,
        "detail": letter.detail,
        "key": letter.key.decode(errors="replace") if letter.key else None,
        "value": letter.value.decode(errors="replace") if letter.value else None,
        "recorded_at": stored.recorded_at.isoformat(),
    }


@click.command("forget")
@click.argument("who")
@click.option("--reason", required=True, help="Why (the request's reference, say): kept.")
@click.option("--by", help="Who erases [the user running the command].")
@click.pass_context
def forget_command(ctx: click.Context, who: str, reason: str, by: str | None) -> None:
    """Forget a person everywhere: WHO is a customer id or an identifier
    (`email:anna@example.com`). Their personal data can never be read again; their journey
    (stages, frictions, moments, actions) stays, without it. A receipt is kept."""
    with engine_for(ctx) as engine:
        done = forget(engine, who, by=by or who_decides(), reason=reason)
    if done.position is None:
        out.print(f"{done.person} was forgotten before; nothing of theirs was left to erase.")
        return
    out.print(
        f"Forgot {done.person}: {done.data_keys} data key{'s' if done.data_keys != 1 else ''} "
        f"destroyed ({', '.join(done.keys)}), {done.dead_letters} dead "
        f"letter{'s' if done.dead_letters != 1 else ''} emptied; receipt at log position "
        f"{done.position}."
    )
    out.print(
        "Kept beyond reach: records still within the retention of the Kafka topics they came "
        "by (see journey status), and the database's backups until they expire."
    )


@click.command("subject-export")
@click.argument("who")
@click.option(
    "--out",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSON file to write.",
)
@click.pass_context
def subject_export_command(ctx: click.Context, who: str, path: Path) -> None:
    """Write everything the engine holds about a person (WHO: a customer id or an
    identifier) to one JSON file, their personal data opened: identifiers, touchpoints,
    journey, actions, dead letters and erasure receipts."""
    with engine_for(ctx) as engine:
        exported = subject_export(engine, who)
    path.write_text(json.dumps(exported, indent=2, ensure_ascii=False) + "\n")
    out.print(
        f"Wrote {path}: {exported['person']}, {len(exported['touchpoints'])} touchpoints, "
        f"{len(exported['journey']['next_actions'])} next actions."
    )


@click.group("keys")
def keys() -> None:
    """The master keys that wrap each person's data key."""


@keys.command("new-master")
@click.argument("name")
def new_master(name: str) -> None:
    """Print a new master key line (NAME:base64) for JOURNEY_MASTER_KEY_FILE. Put it first
    in the file, keep the old lines below it, then run `journey keys rotate`."""
    try:
        click.echo(MasterKeys.new_line(name))
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="'NAME'") from None


class Sealed(NamedTuple):
    touchpoints: int
    decisions: int


def seal_existing(engine: Engine, page: int = 5_000) -> Sealed:
    """Seals the personal data of every touchpoint recorded in the clear (and the
    identifiers people's decisions name), in place, leaving no clear copy in the store."""
    sealing = _sealing(engine)
    ledger = engine.journeys.ledger
    encoder = engine.journeys.encoder()
    touchpoints = decisions = 0
    position = 0
    while rows := ledger.select_states(position, page, (TOUCHPOINT_TOPIC, IDENTITY_TOPIC)):
        rewritten: list[tuple[int, bytes]] = []
        for at, state in rows:
            fields = encoder.decode(state)
            if "event_id" in fields:
                sealed = sealing.resealed(fields)
                touchpoints += sealed is not None
            else:
                sealed = sealing.decision_sealed(fields)
                decisions += sealed is not None
            if sealed is not None:
                rewritten.append((at, encoder.encode_state(sealed)))
        if rewritten:
            ledger.rewrite_states(rewritten)
        position = rows[-1][0]
    ledger.scrub()
    return Sealed(touchpoints, decisions)


@keys.command("seal")
@click.pass_context
def seal(ctx: click.Context) -> None:
    """Seal the personal data a store recorded before it had a master key (once, after
    setting JOURNEY_MASTER_KEY_FILE), and build the views again: who is who is then read
    from digests."""
    settings = ctx.find_object(Settings) or Settings()
    engine = build_engine(settings, sealing_existing=True)
    try:
        done = seal_existing(engine)
        generation, _ = rebuild_beside(engine)
    finally:
        engine.close()
    out.print(
        f"Sealed {done.touchpoints:,} touchpoints and {done.decisions:,} people's decisions; "
        f"the views were built again (generation {generation})."
    )


@keys.command("rotate")
@click.pass_context
def rotate(ctx: click.Context) -> None:
    """Wrap every data key with the first master key of the file; the other lines can then
    be removed. No personal data is encrypted again."""
    with engine_for(ctx) as engine:
        sealing = _sealing(engine)
        rewrapped = sealing.vault.rotate()
        current = sealing.vault.master.current
    out.print(f"{rewrapped} data key{'s' if rewrapped != 1 else ''} wrapped again with {current}.")
