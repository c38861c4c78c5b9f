"""A person forgotten on request: none of their personal data is left anywhere in the store's
files, everyone else's is as it was, and their journey still replays to the same stages and
frictions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from engine.errors import ConfigurationError
from engine.settings import Settings
from engine.touchpoints import touchpoint_from_record
from engine.vault import MasterKeys
from journey.bootstrap import Engine, build_engine, rebuild_beside
from journey.console import catch_up
from journey.privacy import NotSealed, forget, subject_export
from tests import services

NOW = 1_800_000_000_000
ANNA = {
    "email": "anna.berg@example.com",
    "phone": "+45 20 11 22 33",
    "cookie_id": "ck-anna-7f3e91",
}
ANNA_PERSONAL = {"name": "Anna Bergström", "note": "prefers calls before nine"}
BERIT = {"email": "berit.holm@example.org", "phone": "+4531445566"}


def record(event_id: str, customer_id: str | None, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "channel": "visit",
        "type": "page_view",
        "occurred_at": at,
        "source": "crm",
        **fields,
    }


def history() -> list[dict[str, Any]]:
    """Anna, first an anonymous reader, then a visitor no one follows up; Berit alike."""
    return [
        record("a1", None, "2026-03-01T09:00:00Z", channel="web", cookie_id=ANNA["cookie_id"]),
        record(
            "a2",
            "C-ANNA",
            "2026-03-02T09:00:00Z",
            channel="web",
            type="form_submitted",
            email=ANNA["email"],
            cookie_id=ANNA["cookie_id"],
            attributes={"name": ANNA_PERSONAL["name"]},
        ),
        record(
            "a3",
            "C-ANNA",
            "2026-03-03T09:00:00Z",
            type="visit",
            rep_id="kathrine",
            phone=ANNA["phone"],
            attributes={"location": "B", "note": ANNA_PERSONAL["note"]},
        ),
        record(
            "b1",
            "C-BERIT",
            "2026-03-02T10:00:00Z",
            type="visit",
            rep_id="jonas",
            email=BERIT["email"],
            phone=BERIT["phone"],
            attributes={"name": "Berit Holm", "location": "A"},
        ),
    ]


def annas_values() -> list[str]:
    """Anna's personal data in every form it might be kept in."""
    return [*ANNA.values(), "+4520112233", *ANNA_PERSONAL.values()]


@pytest.fixture
def sealed(settings: Settings) -> Iterator[Engine]:
    keyed = dataclasses.replace(settings, master_key=MasterKeys.new_line("2026"))
    engine = build_engine(keyed)
    touchpoints = [touchpoint_from_record(r, now_ms=NOW) for r in history()]
    engine.journeys.record(touchpoints)
    engine.journeys.tick(NOW)
    catch_up(engine)
    yield engine
    engine.close()


def journeys(engine: Engine) -> dict[str, Any]:
    """What the views say of each person: stages entered, and frictions."""
    found = {}
    for person in ("C-ANNA", "C-BERIT"):
        position = engine.view.position(person)
        assert position is not None
        found[person] = (
            [(entry.stage, entry.event_id) for entry in position.history],
            sorted((f.kind, f.resolved_at, f.events) for f in position.frictions),
        )
    return found


def store_bytes(engine: Engine) -> bytes:
    """Every byte the store keeps: each SQLite file (free pages and write-ahead logs
    included), or a dump of the PostgreSQL schema."""
    settings = engine.settings
    if settings.store == "sqlite":
        return b"".join(path.read_bytes() for path in sorted(settings.data_dir.rglob("*")))
    postgres = settings.postgres
    url = (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@"
        f"{postgres['POSTGRES_HOST']}:{postgres['POSTGRES_PORT']}/{postgres['POSTGRES_DBNAME']}"
    )
    return services.dumped(url, postgres["POSTGRES_SCHEMA"])


def test_a_forgotten_person_leaves_no_personal_data_and_the_same_journey(sealed: Engine) -> None:
    before = journeys(sealed)
    kept = store_bytes(sealed)
    assert b"form_submitted" in kept  # the scan reads the events
    assert all(value.encode() not in kept for value in annas_values())
    exported = subject_export(sealed, "email:ANNA.BERG@example.com")
    assert exported["person"] == "C-ANNA"
    assert {json.dumps(tp["identifiers"]) for tp in exported["touchpoints"]} >= {
        json.dumps({"cookie_id": ANNA["cookie_id"]})
    }
    assert exported["touchpoints"][1]["attributes"]["name"] == ANNA_PERSONAL["name"]

    receipt = forget(sealed, "phone:+4520112233", by="dpo", reason="request 2026-17")

    assert receipt.person == "C-ANNA"
    assert set(receipt.keys) == {"C-ANNA", exported["keys"][1]}  # hers, and the reader's
    assert receipt.data_keys == 2
    dump = store_bytes(sealed)
    left = [value for value in annas_values() if value.encode() in dump]
    assert left == []
    assert b"request 2026-17" in dump  # the receipt stays
    assert journeys(sealed) == before
    after = subject_export(sealed, "C-ANNA")
    assert {value for tp in after["touchpoints"] for value in tp["identifiers"].values()} == {
        "(erased)"
    }
    assert [r["reason"] for r in after["erasures"]] == ["request 2026-17"]
    berit = subject_export(sealed, "C-BERIT")
    assert berit["touchpoints"][0]["identifiers"] == BERIT
    assert berit["touchpoints"][0]["attributes"]["name"] == "Berit Holm"

    again = forget(sealed, "C-ANNA", by="dpo", reason="request 2026-17")
    assert again.position is None  # nothing was left: no second receipt

    settings = sealed.settings
    sealed.close()
    rebuilt = build_engine(settings)
    try:
        rebuild_beside(rebuilt)
    finally:
        rebuilt.close()
    replayed = build_engine(settings)
    try:
        assert journeys(replayed) == before
        # Her touchpoints sent again, as a channel redelivers them, are repeats.
        result = replayed.journeys.record(
            [touchpoint_from_record(r, now_ms=NOW) for r in history()]
        )
        assert (result.recorded, result.conflicts) == (0, ())
    finally:
        replayed.close()


def test_a_sealed_store_is_not_opened_without_its_master_key(sealed: Engine) -> None:
    settings = dataclasses.replace(sealed.settings, master_key=None)
    with pytest.raises(ConfigurationError) as refused:
        build_engine(settings)
    assert str(refused.value) == (
        "the store holds sealed personal data: set JOURNEY_MASTER_KEY_FILE "
        "(or JOURNEY_MASTER_KEY) to its master keys"
    )


def test_a_store_without_a_master_key_says_it_cannot_forget(engine: Engine) -> None:
    engine.journeys.record([touchpoint_from_record(history()[1], now_ms=NOW)])
    with pytest.raises(NotSealed, match="personal data is not sealed in this store"):
        forget(engine, "C-ANNA", by="dpo", reason="r")


def test_a_process_recording_while_another_forgets_seals_what_comes_next_with_a_new_key(
    sealed: Engine,
) -> None:
    other = build_engine(sealed.settings)  # a consumer that keeps recording, say
    try:
        other.journeys.record([touchpoint_from_record(history()[1], now_ms=NOW)])  # holds her key
        forget(sealed, "C-ANNA", by="dpo", reason="asked on the phone")
        later = record("a9", "C-ANNA", "2026-04-01T09:00:00Z", email=ANNA["email"])
        other.journeys.record([touchpoint_from_record(later, now_ms=NOW)])
    finally:
        other.close()
    catch_up(sealed)
    exported = subject_export(sealed, "C-ANNA")
    opened = {tp["event_id"]: tp["identifiers"] for tp in exported["touchpoints"]}
    assert opened["a2"] == {"email": "(erased)", "cookie_id": "(erased)"}
    assert opened["a9"] == {"email": ANNA["email"]}
