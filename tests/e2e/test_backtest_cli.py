"""`journey backtest` as a manager runs it: a changed rule's differences at 80 columns, one
customer side by side, a JSON document, and a bad candidate file in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.definition import load_definition
from tests.e2e.test_cli import at_80_columns, journey
from tests.stories import recorded_stories

FOLLOW_UP = (
    'reason = "Nobody followed up their {touchpoint} ({outcome}), and they have heard nothing '
    'for {silence} since. Get back to them."'
)


@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded_stories(tmp_path_factory.mktemp("stories"))


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    """The shipped definition with the follow-up's reason said another way."""
    shipped = Path(__file__).parents[2] / "engine" / "default_journey.toml"
    text = shipped.read_text()
    assert FOLLOW_UP in text
    path = tmp_path / "candidate.toml"
    path.write_text(text.replace(FOLLOW_UP, 'reason = "Follow up their {touchpoint}."'))
    load_definition(path)
    return path


def test_a_changed_rule_is_reported_per_rule_at_80_columns(stories: Path, candidate: Path) -> None:
    shown = at_80_columns(stories, "backtest", str(candidate))
    document = json.loads(at_80_columns(stories, "backtest", str(candidate), "--json").stdout)

    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rules = {rule["rule"]: rule for rule in document["rules"]}
    follow_ups = rules.pop("follow_up_visit")
    assert follow_ups["changed"] == follow_ups["logged"] > 0
    assert follow_ups["changed_fields"] == {"reason": follow_ups["changed"]}
    assert all(r["added"] == r["dropped"] == r["changed"] == 0 for r in rules.values())
    row = next(line for line in lines if line.startswith("follow_up_visit "))
    assert row.split()[1:] == [str(follow_ups[n]) for n in ("proposed", "logged")] + [
        "0",
        "0",
        str(follow_ups["changed"]),
        "0",
    ]
    assert document["totals"]["logged"] == sum(o["logged"] for o in document["owners"])


def test_one_customers_actions_side_by_side(stories: Path, candidate: Path) -> None:
    shown = at_80_columns(stories, "backtest", str(candidate), "--customer", "S1-ANNA").stdout
    document = json.loads(
        at_80_columns(stories, "backtest", str(candidate), "--customer", "S1-ANNA", "--json").stdout
    )

    assert max(len(line) for line in shown.splitlines()) <= 80
    assert shown.splitlines()[0].startswith("S1-ANNA: ")
    assert document["customer"]
    for pair in document["customer"]:
        assert pair["action_id"] in shown
        assert pair["candidate"] is not None
        assert pair["logged"] is not None


def test_a_bad_candidate_is_one_line(tmp_path: Path, stories: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[actions]\nmax_open = -1\n")

    result = journey("backtest", str(bad), data_dir=stories)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {bad}: ")
