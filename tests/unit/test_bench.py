"""The benchmarks measure the store they name whatever the shell exports, and say what was not
measured rather than divide by nothing."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from engine.settings import Settings
from engine.touchpoints import millis, touchpoint_from_record
from journey.demo import demo_touchpoints
from schemas.files import read_records, write_jsonl

BENCH = Path(__file__).resolve().parents[2] / "bench"
SHELL = {
    "PATH": "/usr/bin",
    "JOURNEY_DATABASE_URL": "postgresql://journey:journey@127.0.0.1:5432/journey",
    "POSTGRES_DBNAME": "journey",
    "POSTGRES_SCHEMA": "elsewhere",
    "JOURNEY_DATA_DIR": "/somewhere/else",
}
LATER = millis(datetime(2100, 1, 1, tzinfo=UTC))  # after all the demo's touchpoints


@pytest.fixture(scope="module")
def measuring() -> ModuleType:
    # The benchmarks are scripts, not a package: the module is loaded from its file.
    spec = importlib.util.spec_from_file_location("bench_measuring", BENCH / "measuring.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_embedded_store_benchmark_ignores_the_database_the_shell_exports(
    measuring: ModuleType, tmp_path: Path
) -> None:
    env = measuring.embedded(SHELL, tmp_path)

    settings = Settings.from_env(env)
    assert settings.store == "sqlite"
    assert settings.data_dir == tmp_path
    assert env["PATH"] == "/usr/bin"


def test_a_postgres_benchmark_uses_its_own_url_and_schema_only(measuring: ModuleType) -> None:
    ours = "postgresql://bench:bench@127.0.0.1:6000/bench"

    env = measuring.without_store(SHELL, {"JOURNEY_DATABASE_URL": ours})

    assert Settings.from_env(env).postgres["POSTGRES_PORT"] == "6000"
    assert "POSTGRES_SCHEMA" not in env


def test_a_benchmark_runs_in_the_clear_whatever_master_key_the_shell_exports(
    measuring: ModuleType, tmp_path: Path
) -> None:
    shell = {**SHELL, "JOURNEY_MASTER_KEY": "k:AAAA", "JOURNEY_MASTER_KEY_FILE": "/keys"}

    settings = Settings.from_env(measuring.embedded(shell, tmp_path))

    assert settings.master_key is None
    assert settings.master_key_file is None


@pytest.mark.parametrize(("count", "seconds"), [(0, 1.5), (1_000, 0.0)])
def test_a_rate_of_nothing_says_what_was_not_measured(
    measuring: ModuleType, count: int, seconds: float
) -> None:
    with pytest.raises(measuring.NotMeasured, match="touchpoints"):
        measuring.per_second(count, seconds, "touchpoints")


def test_a_rate_is_the_count_over_the_time(measuring: ModuleType) -> None:
    assert measuring.per_second(3_000, 1.5, "touchpoints") == 2_000


@pytest.fixture(scope="module")
def identities() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_identities", BENCH / "identities.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _demo_file(path: Path, customers: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        write_jsonl(out, demo_touchpoints(customers, seed=1))
    return path


def test_identity_data_keeps_every_touchpoint_and_who_it_belongs_to(
    identities: ModuleType, tmp_path: Path
) -> None:
    plain = _demo_file(tmp_path / "touchpoints.jsonl", 200)

    changed = identities.identity_dataset(plain)

    before = [json.loads(line) for line in plain.open(encoding="utf-8")]
    after = [json.loads(line) for line in changed.open(encoding="utf-8")]
    assert [r["event_id"] for r in after] == [r["event_id"] for r in before]
    for old, new in zip(before, after, strict=True):
        assert new.get("customer_id", old["customer_id"]) == old["customer_id"]
        assert {k: v for k, v in old.items() if k != "customer_id"}.items() <= new.items()
        kept = [new[kind] for kind in identities.IDENTIFIERS if new.get(kind)]
        if "customer_id" not in new:
            assert kept
        # Every identifier added is the customer's own, as the demo gives them.
        assert set(kept) <= {
            identities.cookie(old["customer_id"]),
            identities.email(old["customer_id"]),
            old.get("phone"),
        }


def test_identity_data_has_the_shares_asked_for_and_is_the_same_every_time(
    identities: ModuleType, tmp_path: Path
) -> None:
    first = identities.identity_dataset(_demo_file(tmp_path / "a.jsonl", 500))
    second = identities.identity_dataset(_demo_file(tmp_path / "b.jsonl", 500))

    count, anonymous, two = identities.census(first)
    assert first.read_bytes() == second.read_bytes()
    assert anonymous / count == pytest.approx(identities.WITHOUT_CUSTOMER_ID, abs=0.02)
    assert two / count == pytest.approx(identities.TWO_IDENTIFIERS, abs=0.01)


def test_identity_touchpoints_are_read_as_the_engine_reads_them(
    identities: ModuleType, tmp_path: Path
) -> None:
    changed = identities.identity_dataset(_demo_file(tmp_path / "touchpoints.jsonl", 50))

    read = [
        touchpoint_from_record(item.record, now_ms=LATER)
        for item in read_records(changed)
        if item.record is not None
    ]

    assert len(read) == identities.census(changed)[0]
    assert any(tp.anonymous for tp in read)
    assert any(not tp.anonymous for tp in read)


def test_a_replay_store_recorded_by_another_journey_is_not_taken_for_this_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("bench_replay", BENCH / "replay.py")
    assert spec is not None
    assert spec.loader is not None
    replay = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, replay)  # its dataclasses look themselves up
    spec.loader.exec_module(replay)
    monkeypatch.setattr(replay, "OUT", tmp_path)
    ours = replay.sqlite_store(1_000, 100)
    theirs = replay.sqlite_store(1_000, 100, replay.Variant(journey="/elsewhere/journey"))
    for store in (ours, theirs):
        store.data_dir.mkdir(exist_ok=True)
        (store.data_dir / "recorded").write_text(f"{replay.marker(store, 1_000)}\n")

    assert theirs.data_dir != ours.data_dir
    assert replay.recorded(ours, 1_000)
    assert replay.recorded(theirs, 1_000)
    assert not replay.recorded(dataclasses.replace(theirs, journey="/other"), 1_000)
