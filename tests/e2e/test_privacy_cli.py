"""Sealed personal data as an operator handles it from the command line: identifiers shown as
their channels sent them, the master key rotated, and every mistake one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli import JOURNEY, write_jsonl
from tests.e2e.test_identity_cli import touchpoint


def run(data_dir: Path, *args: str, keys: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_MASTER_KEY")}
    if keys is not None:
        env["JOURNEY_MASTER_KEY_FILE"] = str(keys)
    return subprocess.run(
        [JOURNEY, "--data-dir", str(data_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def new_master(data_dir: Path, name: str) -> str:
    made = run(data_dir, "keys", "new-master", name)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture(params=["serial", "parallel"])
def sealed(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, str]:
    """A store that sealed what a file held: read in the process that records it, or in a
    second one, which leaves the sealing to the first."""
    if request.param == "parallel":
        monkeypatch.setenv("JOURNEY_PARALLEL_ABOVE_BYTES", "0")
    data_dir, keys = tmp_path / "data", tmp_path / "master.keys"
    line = new_master(data_dir, "2025")
    keys.write_text(line + "\n")
    lines = [
        touchpoint("e1", "C-1", "2026-03-01T09:00:00Z", email="Anna@Example.com"),
        touchpoint("e2", "C-1", "2026-03-02T09:00:00Z", phone="+45 20 12 34 56"),
    ]
    ingested = run(data_dir, "ingest", str(write_jsonl(tmp_path / "t.jsonl", lines)), keys=keys)
    assert ingested.returncode == 0, ingested.stderr
    return data_dir, keys, line


def identifiers(data_dir: Path, keys: Path) -> list[tuple[str, str]]:
    shown = run(data_dir, "identity", "show", "--json", "email:anna@example.com", keys=keys)
    assert shown.returncode == 0, shown.stderr
    return [(i["kind"], i["value"]) for i in json.loads(shown.stdout)["identifiers"]]


def test_identifiers_are_shown_as_sent_and_survive_a_rotation_of_the_master_key(
    sealed: tuple[Path, Path, str],
) -> None:
    data_dir, keys, old = sealed
    assert identifiers(data_dir, keys) == [
        ("customer_id", "C-1"),
        ("email", "Anna@Example.com"),
        ("phone", "+45 20 12 34 56"),
    ]
    new = new_master(data_dir, "2026")
    keys.write_text(f"{new}\n{old}\n")
    rotated = run(data_dir, "keys", "rotate", keys=keys)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == "2 data keys wrapped again with 2026."  # C-1, the index
    keys.write_text(f"{new}\n")  # the old key can go
    assert identifiers(data_dir, keys)[1] == ("email", "Anna@Example.com")


def test_a_sealed_store_without_its_key_and_other_mistakes_are_one_line(
    sealed: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data_dir, keys, _ = sealed
    cases = [
        (run(data_dir, "funnel"), "error: the store holds sealed personal data: set "
         "JOURNEY_MASTER_KEY_FILE (or JOURNEY_MASTER_KEY) to its master keys"),
        (run(data_dir, "forget", "email:nobody@example.com", "--reason", "r", keys=keys),
         "error: no touchpoint recorded names email:nobody@example.com"),
        (run(data_dir, "keys", "new-master", "two words"),
         "error: Invalid value for 'NAME': master key name 'two words': use letters, digits, "
         ". _ - (see journey keys new-master -h)"),
        (run(tmp_path / "plain", "forget", "C-1", "--reason", "r"),
         "error: personal data is not sealed in this store (no master key): set "
         "JOURNEY_MASTER_KEY_FILE to a file `journey keys new-master` wrote"),
    ]  # fmt: skip
    other = tmp_path / "other.keys"
    other.write_text(new_master(data_dir, "2027") + "\n")
    cases.append(
        (
            run(data_dir, "funnel", keys=other),
            f"error: JOURNEY_MASTER_KEY_FILE {other}: has no master key '2025', which wraps "
            "the store's data keys (add it back, below the current one)",
        )
    )
    for done, said in cases:
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == said
