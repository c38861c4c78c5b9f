"""The story "anonymous reader turns caller", recorded through `journey ingest` from
channels that do not share a customer id: one journey, as for a known customer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from journey.cli import cli
from tests.e2e.test_stories import customer, open_actions, open_frictions
from tests.stories import anonymous_reader_turns_caller


def run(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("greta")
    path = folder / "greta.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in anonymous_reader_turns_caller()))
    run(folder / "data", "ingest", str(path))
    return folder / "data"


def test_the_anonymous_reader_who_calls_is_one_known_customer(data_dir: Path) -> None:
    greta = customer(data_dir, "S7-GRETA")

    assert [t["event_id"] for t in greta["timeline"]] == ["s7-0", "s7-1", "s7-2", "s7-3", "s7-4"]
    assert greta["stage"] == "considering"
    assert open_frictions(greta) == {"channel_jump": ["s7-3", "s7-4"], "negative": ["s7-3"]}


def test_the_anonymous_reader_who_calls_gets_a_call_back(data_dir: Path) -> None:
    (call_back,) = open_actions(customer(data_dir, "S7-GRETA")).values()

    assert (call_back["action_type"], call_back["channel"]) == ("call_back", "phone")
    assert call_back["customer_id"] == "S7-GRETA"
    assert call_back["triggering_event_ids"] == ["s7-3", "s7-4"]


def test_the_funnel_counts_greta_once(data_dir: Path) -> None:
    funnel: list[dict[str, Any]] = json.loads(run(data_dir, "funnel", "--json"))
    assert sum(step["current"] for step in funnel) == 1
    assert funnel[0]["reached"] == 1


def test_any_identifier_finds_greta_and_a_rebuild_changes_nothing(data_dir: Path) -> None:
    by_cookie = customer(data_dir, "cookie_id:ck-7f3a")
    assert by_cookie["customer_id"] == "S7-GRETA"
    run(data_dir, "rebuild")
    assert customer(data_dir, "phone:+4531415926") == by_cookie
