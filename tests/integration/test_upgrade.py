"""A store written by the previous release, opened by this one: every command works, the views
read the same, and what cannot be rebuilt from the log (outcomes, the outbox, dead letters,
Kafka offsets) is all there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
import pytest

from engine.errors import StoreTooNew
from engine.settings import Settings
from journey.bootstrap import build_engine
from stores import open_store
from stores.tables import PARTS
from tests import services

ROOT = Path(__file__).parents[2]
PREVIOUS_RELEASE = "2632c64"  # 0.1.0, the last release before the store kept versions


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's tree, taken from the repository's history."""
    tree = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", PREVIOUS_RELEASE],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        services.unavailable(
            f"the previous release {PREVIOUS_RELEASE}", archive.stderr.decode().strip()
        )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("dataset") / "touchpoints.jsonl"
    journey(ROOT, {}, "generate", "--customers", "40", "--out", str(target))
    return target


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of the `journey` command for a fresh store of each kind."""
    base = {"JOURNEY_DATA_DIR": str(tmp_path / "data")}
    if request.param == "sqlite":
        yield base
        return
    url = request.getfixturevalue("postgres_url")
    with services.fresh_schema(url) as schema:
        yield {**base, "JOURNEY_DATABASE_URL": url, "POSTGRES_SCHEMA": schema}


def journey(tree: Path, env: dict[str, str], *args: str) -> str:
    """Runs the `journey` command of the code in `tree`, and returns what it printed."""
    done = python(tree, env, "-m", "journey", *args)
    assert done.returncode == 0, f"journey {' '.join(args)} ({tree}): {done.stderr}"
    return done.stdout


def python(tree: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Python with the code in `tree`, in the environment `env` adds to."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=tree,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def without_priority_levels(value: Any) -> Any:
    """JSON read back, without the actions' `priority_level`."""
    if isinstance(value, dict):
        return {k: without_priority_levels(v) for k, v in value.items() if k != "priority_level"}
    if isinstance(value, list):
        return [without_priority_levels(item) for item in value]
    return value


def without_timeline_words(customer: Any) -> Any:
    """A customer as the previous release showed them: this one adds what each touchpoint
    was in words, and its detail, to their timeline."""
    for entry in customer["timeline"]:
        del entry["what"], entry["detail"]
    return customer


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_store_of_the_previous_release_upgrades_keeping_everything(
    previous_release: Path, dataset: Path, env: dict[str, str]
) -> None:
    old, new = previous_release, ROOT
    postgres = "JOURNEY_DATABASE_URL" in env
    journey(old, env, "ingest", str(dataset))
    if postgres:
        journey(old, env, "decide", "--no-publish")
    actions = json_lines(journey(old, env, "actions", "--json"))
    dismissed = actions[0]["action_id"]
    journey(old, env, "outcome", dismissed, "dismissed", "--reason", "met them already")
    if postgres:
        journey(old, env, "decide", "--no-publish")
        kept = write_bookkeeping(old, env)
    customers = sorted({action["customer_id"] for action in actions})[:5]
    reads = [
        ("funnel", "--json"),
        ("friction", "--all", "--json"),
        ("moments", "--json"),
        ("actions", "--all", "--json"),
        *(("customer", customer, "--json") for customer in customers),
    ]
    before = {read: journey(old, env, *read) for read in reads}
    # The previous release printed actions as JSON lines, every one of them; this one prints
    # one array, as every --json does, cut at --limit.
    everything = ("actions", "--all", "--json")
    before[everything] = json.dumps([cancelled(a) for a in json_lines(before[everything])])

    planned = journey(new, env, "migrate", "--dry-run")
    assert "would apply" in planned
    assert journey(new, env, "migrate", "--dry-run") == planned, "a dry run changed the store"

    after = {read: journey(new, env, *read) for read in reads}
    after[everything] = json.dumps(json.loads(journey(new, env, *everything, "--limit", "100000")))
    # This release says each action's priority in a word as well, and each touchpoint in
    # words: fields added, nothing lost.
    shown = {read: without_priority_levels(json.loads(text)) for read, text in after.items()}
    for read in reads[4:]:  # the customers
        shown[read] = without_timeline_words(shown[read])
    assert shown == {read: json.loads(text) for read, text in before.items()}
    outcome = journey(new, env, "explain", dismissed, "--json")
    assert json.loads(outcome)["status"] == "dismissed"
    journey(new, env, "migrate")  # what no command opened yet
    up_to_date = journey(new, env, "migrate", "--dry-run").splitlines()
    assert up_to_date, "no part of the store is versioned"
    assert all(line.endswith("up to date") for line in up_to_date)

    # Every command goes on working on the upgraded store.
    journey(new, env, "ingest", str(dataset))  # nothing new: every event_id was recorded
    journey(new, env, "decide", "--no-publish")
    journey(new, env, "report", "--out", str(Path(env["JOURNEY_DATA_DIR"]).parent / "report.html"))
    journey(new, env, "diff-definition", "default", "default")
    journey(new, env, "replay", "--projection", "projections.examples:PricingInterest", "--once")
    assert json.loads(journey(new, env, "view", "pricing_interest", "--json"))
    journey(new, env, "tick")
    ticked = journey(new, env, "funnel", "--json")
    journey(new, env, "rebuild")
    assert journey(new, env, "funnel", "--json") == ticked
    if postgres:
        assert read_bookkeeping(env) == kept
        journey(new, env, "decide", "--no-publish")
    # The clock is now far past the history: the previous release's open actions, decided
    # before actions expired, have expired or been cancelled since, saying why.
    assert json.loads(journey(new, env, "actions", "--json")) == []
    ended = json.loads(journey(new, env, "actions", "--all", "--json", "--limit", "100000"))
    assert {a["status"] for a in ended if a["action_id"] != dismissed} <= {"expired", "cancelled"}
    assert all(a["status_reason"] for a in ended)

    # The upgraded views keep who is who (the views' third migration).
    merged_and_parted(new, env, *customers[:2])


def merged_and_parted(new: Path, env: dict[str, str], first: str, second: str) -> None:
    """Two customers merged read as one, found by either id; the undo parts them."""
    journey(new, env, "identity", "merge", second, first, "--reason", "one person")
    joined = json.loads(journey(new, env, "customer", first, "--json"))["customer_id"]
    assert joined in (first, second)
    assert json.loads(journey(new, env, "customer", second, "--json"))["customer_id"] == joined
    shown = json.loads(journey(new, env, "identity", "show", first, "--json"))
    (merge_id,) = [link["merge_id"] for link in shown["links"] if link["merge_id"]]
    journey(new, env, "identity", "unmerge", merge_id, "--reason", "two people")
    assert json.loads(journey(new, env, "customer", second, "--json"))["customer_id"] == second


def test_a_store_of_the_previous_release_is_sealed_and_then_forgets_a_customer(
    previous_release: Path, dataset: Path, env: dict[str, str], tmp_path: Path
) -> None:
    old, new = previous_release, ROOT
    journey(old, env, "ingest", str(dataset))
    records = json_lines(dataset.read_text())
    email = next(r["email"] for r in records if r.get("email"))
    customer = next(r["customer_id"] for r in records if r.get("email") == email)
    theirs = {
        r[k] for r in records if r["customer_id"] == customer for k in IDENTIFIERS if r.get(k)
    }
    other = next(r for r in records if r.get("email") and r["customer_id"] != customer)
    reads = [
        ("funnel", "--json"),
        ("friction", "--all", "--json"),
        ("customer", customer, "--json"),
    ]
    before = {read: without_timeline_words_of(read, journey(new, env, *read)) for read in reads}

    keys = tmp_path / "master.keys"
    keys.write_text(journey(new, env, "keys", "new-master", "2026"))
    sealed_env = {**env, "JOURNEY_MASTER_KEY_FILE": str(keys)}
    refused = python(new, sealed_env, "-m", "journey", "funnel")
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith(
        "before it had a master key: run `journey keys seal` once to seal their personal data"
    )
    assert "Sealed" in journey(new, sealed_env, "keys", "seal")
    after = {
        read: without_timeline_words_of(read, journey(new, sealed_env, *read)) for read in reads
    }
    assert after == before

    journey(new, sealed_env, "forget", f"email:{email.upper()}", "--reason", "request 7")
    assert not {value for value in theirs if value.encode() in store_bytes(env)}
    export = tmp_path / "export.json"
    journey(new, sealed_env, "subject-export", other["customer_id"], "--out", str(export))
    exported = json.loads(export.read_text())
    assert other["email"] in {tp["identifiers"].get("email") for tp in exported["touchpoints"]}
    forgotten = {
        read: without_timeline_words_of(read, journey(new, sealed_env, *read)) for read in reads
    }
    assert forgotten == before


IDENTIFIERS = ("email", "phone", "cookie_id")


def without_timeline_words_of(read: tuple[str, ...], text: str) -> Any:
    value = json.loads(text)
    return without_timeline_words(value) if read[0] == "customer" else value


def store_bytes(env: dict[str, str]) -> bytes:
    """The store's files, or its PostgreSQL schema's rows as they are stored."""
    if "JOURNEY_DATABASE_URL" not in env:
        return b"".join(p.read_bytes() for p in Path(env["JOURNEY_DATA_DIR"]).rglob("*"))
    with psycopg.connect(env["JOURNEY_DATABASE_URL"]) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (env["POSTGRES_SCHEMA"],),
        ).fetchall()
        found = b""
        for (table,) in tables:
            for row in conn.execute(
                psycopg.sql.SQL("SELECT * FROM {}.{}").format(
                    psycopg.sql.Identifier(env["POSTGRES_SCHEMA"]), psycopg.sql.Identifier(table)
                )
            ):
                found += b"".join(
                    bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row
                )
        return found


def cancelled(action: dict[str, Any]) -> dict[str, Any]:
    """An action as this release reads it: the previous release's resolved and withdrawn
    actions are cancelled, saying why."""
    why = {
        "resolved": "the friction it answered resolved",
        "withdrawn": "the customer opted out of contact",
    }.get(action["status"])
    return action if why is None else {**action, "status": "cancelled", "status_reason": why}


def write_bookkeeping(old: Path, env: dict[str, str]) -> dict[str, Any]:
    """Kafka offsets and a dead letter as the previous release's consumer keeps them, and what
    is in its outbox."""
    script = """
import json, os
import psycopg
import psycopg.sql
from consumers.action_store import ActionStore
from consumers.bookkeeping import DeadLetter
from engine.settings import Settings
from journey.bootstrap import _event_store_database, build_bookkeeping, postgres_conninfo

settings = Settings.from_env(os.environ)
books = build_bookkeeping(settings, "consume")
letter = DeadLetter("journey.touchpoints", 1, 41, 1767225600000, b"C-9", b"\\x00garbage",
                    (("trace", b"\\x01\\x02"),), "undecodable", "not an Avro message")
db = _event_store_database(settings)
with psycopg.connect(postgres_conninfo(settings)) as conn, conn.cursor() as cursor:
    books.offsets_write("journey-ingest", {("journey.touchpoints", 0): 120,
                                           ("journey.touchpoints", 1): 42})(cursor)
    books.dead_letters_write([letter])(cursor)
print(json.dumps(len(ActionStore(db).unsent(10_000))))
"""
    done = python(old, env, "-c", script)
    assert done.returncode == 0, done.stderr
    unsent = json.loads(done.stdout)
    assert unsent > 0, "the previous release left nothing in its outbox"
    return {
        "offsets": {("journey.touchpoints", 0): 120, ("journey.touchpoints", 1): 42},
        "letters": [("journey.touchpoints", 1, 41, b"\x00garbage", (("trace", b"\x01\x02"),))],
        "unsent": unsent,
    }


def read_bookkeeping(env: dict[str, str]) -> dict[str, Any]:
    settings = Settings.from_env(env)
    books = open_store(settings).bookkeeping("consume")
    engine = build_engine(settings)
    try:
        unsent = len(engine.actions.unsent(10_000))
    finally:
        engine.close()
    return {
        "offsets": books.next_offsets("journey-ingest"),
        "letters": [
            (s.letter.topic, s.letter.partition, s.letter.offset, s.letter.value, s.letter.headers)
            for s in books.dead_letters()
        ],
        "unsent": unsent,
    }


def test_a_store_of_a_newer_release_is_refused_with_one_line(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    build_engine(settings).close()
    database = open_store(settings).database()
    latest = PARTS["store"][-1].version
    try:
        database.execute(
            "UPDATE {t}journey_schema_versions SET version = %s WHERE part = 'store'",
            (latest + 1,),
        )
    finally:
        database.close()
    with pytest.raises(StoreTooNew, match=f"store tables are at version {latest + 1}"):
        build_engine(settings)
    refused = python(ROOT, env, "-m", "journey", "funnel")
    assert refused.returncode == 3
    assert refused.stderr.strip().count("\n") == 0
    assert "upgrade the engine" in refused.stderr


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_migrating_a_store_that_was_never_written_changes_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data_dir = tmp_path / "data"
    env = {"JOURNEY_DATA_DIR": str(data_dir)}
    schema = f"t_never_{os.getpid()}"
    if kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        env |= {"JOURNEY_DATABASE_URL": url, "POSTGRES_SCHEMA": schema}

    for command in (["migrate", "--dry-run"], ["migrate"]):
        done = python(ROOT, env, "-m", "journey", *command)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == "nothing to migrate: the store is empty"

    assert not data_dir.exists()
    if kind == "postgres":
        with psycopg.connect(env["JOURNEY_DATABASE_URL"]) as conn:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            assert found.fetchone() is None
