"""The `journey` command as a user runs it: clear one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from journey.cli import cli
from tests.stories import happy_path, kathrines_morning, recorded_stories, warm_referral_gone_cold

JOURNEY = str(Path(sys.executable).with_name("journey"))
T = TypeVar("T")


def journey(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JOURNEY, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "missing.jsonl"], "missing.jsonl: no such file"),
        (
            ["ingest", "touchpoints.xlsx"],
            "touchpoints.xlsx: unknown file type (expected .jsonl, .csv or .avro, maybe .gz)",
        ),
        (["customer", "C-404"], "no touchpoints recorded for customer 'C-404'"),
        (
            ["--definition", "nowhere.toml", "funnel"],
            "nowhere.toml: cannot read the journey definition (No such file or directory)",
        ),
    ],
)
def test_a_users_mistake_is_one_line_and_a_non_zero_exit(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = journey(*args, data_dir=tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {message}"]


def test_files_settings_and_services_that_fail_are_one_line_and_an_exit_status_saying_whose(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / "views.db").write_text("not a database at all, not at all")
    touchpoints = write_jsonl(tmp_path / "t.jsonl", [json.dumps(happy_path()[0])])
    cases = [
        (
            [JOURNEY, "generate", "--out", str(tmp_path / "no" / "x.jsonl")],
            {},
            f"error: {tmp_path / 'no' / 'x.jsonl'}: No such file or directory",
            2,
        ),
        (
            [JOURNEY, "--definition", str(tmp_path / "bad.toml"), "funnel"],
            {},
            f"error: {tmp_path / 'bad.toml'}: not UTF-8 text (invalid start byte)",
            2,
        ),
        (
            [JOURNEY, "funnel"],
            {"JOURNEY_DATABASE_URL": "postgresql://u@h:port/db"},
            "error: JOURNEY_DATABASE_URL: the port is not a number",
            2,
        ),
        (
            [JOURNEY, "--data-dir", str(tmp_path / "views"), "funnel"],
            {},
            "error: the store failed: file is not a database",
            3,
        ),
        (
            [JOURNEY, "consume"],
            {},
            "error: journey consume works with the PostgreSQL store: set JOURNEY_DATABASE_URL",
            2,
        ),
        (
            [JOURNEY, "dead-letters"],
            {},
            "error: journey dead-letters works with the PostgreSQL store: set JOURNEY_DATABASE_URL",
            2,
        ),
        (
            [JOURNEY, "produce", str(touchpoints), "--bootstrap", "127.0.0.1:9"],
            {},
            "error: cannot reach Kafka at 127.0.0.1:9: KafkaTimeoutError: "
            "Unable to bootstrap from 127.0.0.1:9",
            3,
        ),
    ]
    for command, env, expected, status in cases:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            check=False,
            cwd=tmp_path,
        )
        assert result.returncode == status, command
        assert result.stderr.strip().replace("'", "") == expected, command


def test_a_bad_definition_names_the_key(tmp_path: Path) -> None:
    definition = tmp_path / "journey.toml"
    definition.write_text('[journey]\nname = "x"\n[[stages]]\nid = "a"\nlabel = "A"\nmin = 1\n')

    result = journey("--definition", str(definition), "funnel", data_dir=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: {definition}: stages[0].min: Extra inputs are not permitted"
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_option_shows_usage_not_a_traceback(tmp_path: Path) -> None:
    result = journey("ingest", "--batch-size", "zero", "x.jsonl", data_dir=tmp_path)

    assert result.returncode == 2
    assert "Invalid value for '--batch-size'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("parallel", ["serial", "parallel"])
def test_ingest_names_each_bad_line_records_every_good_one_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: str
) -> None:
    if parallel == "parallel":  # even a small file goes through the second process
        monkeypatch.setenv("JOURNEY_PARALLEL_ABOVE_BYTES", "0")
    good = [json.dumps(record) for record in happy_path()]
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            good[0],
            "{not json",
            good[1],
            json.dumps({**happy_path()[2], "channel": "fax"}),
            *good[3:],
        ],
    )

    result = journey("ingest", str(path), data_dir=tmp_path / "data")

    assert result.returncode == 1
    assert f"{path}:2: not valid JSON" in result.stderr
    assert f"{path}:4: channel: 'fax' is not one of web, email, phone, visit" in result.stderr
    assert "11 records: 9 recorded, 0 already recorded, 2 bad" in result.stderr
    shown = journey("customer", "S6-FIN", "--json", data_dir=tmp_path / "data")
    assert json.loads(shown.stdout)["touchpoints"] == 9


def test_a_large_file_with_bad_lines_throughout_loses_no_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in the second process, in batches smaller than the file, each encoded a few
    thousand touchpoints at a time: every good line is recorded once, every bad one named."""
    from itertools import islice

    from journey.demo import demo_touchpoints
    from schemas.files import touchpoint_json

    monkeypatch.setenv("JOURNEY_PARALLEL_ABOVE_BYTES", "0")
    monkeypatch.setenv("JOURNEY_BATCH_SIZE", "4000")
    lines = [json.dumps(touchpoint_json(tp)) for tp in islice(demo_touchpoints(700), 12_000)]
    bad_lines = range(2_500, len(lines), 2_500)
    for number in bad_lines:  # each at its line number, counting those before it
        lines.insert(number - 1, "{not json")
    path = write_jsonl(tmp_path / "large.jsonl", lines)

    result = journey("ingest", "--no-project", str(path), data_dir=tmp_path / "data")

    assert result.returncode == 1
    for number in bad_lines:
        assert f"{path}:{number}: not valid JSON" in result.stderr
    total = len(lines)
    assert f"{total} records: 12000 recorded, 0 already recorded, {len(bad_lines)} bad" in (
        result.stderr
    )


def test_ingest_refuses_a_missing_file_before_recording_any_of_the_others(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [json.dumps(r) for r in happy_path()])

    refused = journey("ingest", str(good), str(tmp_path / "missing.jsonl"), data_dir=tmp_path)
    shown = journey("customer", happy_path()[0]["customer_id"], data_dir=tmp_path)

    assert refused.returncode == 2
    assert refused.stderr.strip() == f"error: {tmp_path / 'missing.jsonl'}: no such file"
    assert shown.returncode == 2  # nothing of good.jsonl was recorded


def test_ingest_refuses_a_touchpoint_whose_event_id_was_recorded_with_other_content(
    tmp_path: Path,
) -> None:
    first = happy_path()[0]
    journey(
        "ingest", str(write_jsonl(tmp_path / "a.jsonl", [json.dumps(first)])), data_dir=tmp_path
    )
    changed = {**first, "channel": "phone" if first["channel"] != "phone" else "web"}
    path = write_jsonl(tmp_path / "b.jsonl", [json.dumps(first), json.dumps(changed)])

    result = journey("ingest", str(path), data_dir=tmp_path)

    assert result.returncode == 1
    assert f"{path}:2: event_id: conflicts with the touchpoint given earlier" in result.stderr
    assert "2 records: 0 recorded, 1 already recorded, 1 bad" in result.stderr


def test_text_views_show_what_channel_systems_wrote_without_obeying_it(tmp_path: Path) -> None:
    hostile = {
        **happy_path()[0],
        "customer_id": "C-1\nC-2",
        "rep_id": "rep\x1b[1m",
        "attributes": {"page": "\x1b]0;owned\x07\x1b[2J[bold]pricing[/bold]\u202e"},
    }
    path = write_jsonl(tmp_path / "hostile.jsonl", [json.dumps(hostile)])
    journey("ingest", str(path), data_dir=tmp_path)

    shown = journey("customer", "C-1\nC-2", data_dir=tmp_path)

    assert shown.returncode == 0
    assert "\x1b" not in shown.stdout
    assert "\x07" not in shown.stdout
    assert "\u202e" not in shown.stdout
    assert shown.stdout.splitlines()[0].startswith("Customer C-1␊C-2")
    assert "[bold]pricing[/bold]" in "".join(shown.stdout.split())  # cells fold over lines


def test_ingesting_the_same_file_twice_records_nothing_new(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "fin.jsonl", [json.dumps(r) for r in happy_path()])
    journey("ingest", str(path), data_dir=tmp_path / "data")

    again = journey("ingest", str(path), data_dir=tmp_path / "data")

    assert again.returncode == 0
    assert "10 records: 0 recorded, 10 already recorded, 0 bad" in again.stderr


def test_csv_and_avro_files_are_ingested_like_json_lines(tmp_path: Path) -> None:
    for suffix in ("csv", "avro", "jsonl.gz"):
        target = tmp_path / f"demo.{suffix}"
        made = subprocess.run(
            [JOURNEY, "generate", "--customers", "5", "--out", str(target)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "touchpoints for 5 customers" in made.stderr

        result = journey("ingest", str(target), data_dir=tmp_path / suffix)

        assert result.returncode == 0, result.stderr
        funnel = json.loads(journey("funnel", "--json", data_dir=tmp_path / suffix).stdout)
        assert funnel[0] == {"stage": "aware", "label": "Aware", "reached": 5, "current": 0}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo's data directory and what it printed."""
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    result = journey("demo", "--customers", "120", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return data_dir, result.stdout


def test_the_demo_runs_on_the_embedded_store_and_shows_the_funnel_and_stories(
    demo: tuple[Path, str],
) -> None:
    _, shown = demo

    assert "Journey funnel" in shown
    for story in ("warm referral gone cold", "happy path", "late visit log"):
        assert story in shown


def _open_frictions(customer: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(f["kind"], f["stage"]) for f in customer["frictions"] if f["open"]}


def _moments(customer: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(m["kind"], m["outcome"]) for m in customer["moments_of_truth"]}


def _a_visit_reported_late(customer: dict[str, Any]) -> bool:
    timeline = customer["timeline"]
    return any(
        visit["channel"] == "visit"
        and any(
            t["arrival"] < visit["arrival"] and t["occurred_at"] > visit["occurred_at"]
            for t in timeline
        )
        for visit in timeline
    )


# What makes each story, in what `journey customer --json` shows of its example customer.
STORY_SHOWN: dict[str, Callable[[dict[str, Any]], bool]] = {
    "warm referral gone cold": lambda c: (
        {kind for kind, _ in _open_frictions(c)} >= {"referral_unused", "no_follow_up"}
    ),
    "digital to phone after a failed step": lambda c: (
        "channel_jump" in {kind for kind, _ in _open_frictions(c)}
    ),
    "bank customer on two channels": lambda c: ("first_complaint", "negative") in _moments(c),
    "repeated pricing views, no contact": lambda c: (
        c["stage"] == "considering" and "loop" in {kind for kind, _ in _open_frictions(c)}
    ),
    "late visit log": _a_visit_reported_late,
    "happy path": lambda c: (
        [s["stage"] for s in c["stage_history"]]
        == ["aware", "engaged", "considering", "evaluating", "deciding", "customer", "advocate"]
    ),
    "browser": lambda c: "first_human_contact" not in {kind for kind, _ in _moments(c)},
    "stalled evaluation": lambda c: ("stall", "evaluating") in _open_frictions(c),
}


def test_the_demo_shows_for_each_story_a_customer_whose_journey_shows_it(
    demo: tuple[Path, str],
) -> None:
    data_dir, shown = demo
    examples: dict[str, str | None] = {}
    story = None
    for line in shown.splitlines():
        if match := re.fullmatch(r"─+ (.+?) ─+", line.strip()):
            story = match[1]
        elif story is not None and line.startswith("No example"):
            examples[story] = None
        elif story is not None and (shown_customer := re.match(r"Customer (C-\d{6}) ", line)):
            examples.setdefault(story, shown_customer[1])

    assert set(examples) == set(STORY_SHOWN)
    for story, customer_id in examples.items():
        assert customer_id is not None, f"no example of {story}"
        looked_up = CliRunner().invoke(
            cli, ["--data-dir", str(data_dir), "customer", customer_id, "--json"]
        )
        assert looked_up.exit_code == 0, looked_up.output
        assert STORY_SHOWN[story](json.loads(looked_up.output)), f"{customer_id}: {story}"


def test_the_file_reader_stops_when_ingest_is_killed(tmp_path: Path) -> None:
    from journey.demo import demo_touchpoints
    from schemas.files import write_jsonl as write_touchpoints

    path = tmp_path / "big.jsonl"
    with path.open("w") as out:
        write_touchpoints(out, demo_touchpoints(1_500, seed=3))
    env = {**os.environ, "JOURNEY_PARALLEL_ABOVE_BYTES": "0", "JOURNEY_BATCH_SIZE": "200"}
    ingest = subprocess.Popen(
        [JOURNEY, "--data-dir", str(tmp_path / "data"), "ingest", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    reader = wait_for(lambda: children(ingest.pid), "the file reader to start")[0]

    ingest.kill()
    ingest.wait()

    wait_for(lambda: not running(reader), "the file reader to stop")


def wait_for(condition: Callable[[], T], what: str, seconds: float = 30.0) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ingest_with_tick_closes_the_follow_up_window_of_a_visit_days_ago(tmp_path: Path) -> None:
    five_days_ago = int(time.time() * 1000) - 5 * 86_400_000
    visit = {
        "event_id": "v-1",
        "customer_id": "C-1",
        "channel": "visit",
        "type": "demo",
        "occurred_at": five_days_ago,
        "source": "crm",
        "rep_id": "kathrine",
    }
    path = write_jsonl(tmp_path / "visit.jsonl", [json.dumps(visit)])

    without = journey("ingest", str(path), data_dir=tmp_path / "a")
    quiet = journey("friction", "--json", data_dir=tmp_path / "a")
    ticked = journey("ingest", "--tick", str(path), data_dir=tmp_path / "b")
    listed = journey("friction", "--json", "--rep", "kathrine", data_dir=tmp_path / "b")

    assert without.returncode == ticked.returncode == 0
    assert json.loads(quiet.stdout or "[]") == []
    (friction,) = json.loads(listed.stdout)
    assert (friction["kind"], friction["customer_id"], friction["events"]) == (
        "no_follow_up",
        "C-1",
        ["v-1"],
    )


def anna_days_after_her_visit(tmp_path: Path) -> Path:
    """The data directory of story 1 (Anna's visit went unanswered), with the clock moved on
    until the decider has given Kathrine actions for her."""
    story = write_jsonl(
        tmp_path / "s1.jsonl", [json.dumps(record) for record in warm_referral_gone_cold()]
    )
    data_dir = tmp_path / "data"
    assert journey("ingest", str(story), data_dir=data_dir).returncode == 0
    assert journey("tick", "--at", "2026-03-14T09:00:00Z", data_dir=data_dir).returncode == 0
    return data_dir


def kathrines_actions(data_dir: Path) -> list[dict[str, str]]:
    listed = journey("actions", "--owner", "kathrine", "--json", data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    actions: list[dict[str, str]] = json.loads(listed.stdout)
    return actions


def kathrine_reports_on_the_follow_up(data_dir: Path, *outcome: str) -> None:
    follow_up = next(a for a in kathrines_actions(data_dir) if a["action_type"] == "follow_up")
    reported = journey(
        "outcome", follow_up["action_id"], *outcome, "--rep", "kathrine", data_dir=data_dir
    )
    assert reported.returncode == 0, reported.stderr


def test_a_rep_dismisses_an_action_and_sees_it_gone(tmp_path: Path) -> None:
    data_dir = anna_days_after_her_visit(tmp_path)

    kathrine_reports_on_the_follow_up(data_dir, "dismissed", "--reason", "called her from the fair")

    assert [a["action_type"] for a in kathrines_actions(data_dir)] == ["introduction"]
    shown = json.loads(journey("customer", "S1-ANNA", "--json", data_dir=data_dir).stdout)
    statuses = {a["action_type"]: (a["status"], a["status_reason"]) for a in shown["next_actions"]}
    assert statuses["follow_up"] == ("dismissed", "called her from the fair")


def test_a_snoozed_action_says_until_when(tmp_path: Path) -> None:
    data_dir = anna_days_after_her_visit(tmp_path)

    kathrine_reports_on_the_follow_up(
        data_dir, "snoozed", "--until", "2026-03-16T09:00:00Z", "--reason", "she is at a fair"
    )

    shown = journey("actions", "--owner", "kathrine", data_dir=data_dir)
    assert "snoozed until 2026-03-16 09:00 UTC: she is at a fair" in shown.stdout
    customer = journey("customer", "S1-ANNA", data_dir=data_dir).stdout
    # (the customer view wraps its lines to the terminal's width)
    assert "snoozed until 2026-03-16 09:00 UTC: she is at a fair" in " ".join(customer.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["outcome", "no-such-action", "done"], "no action 'no-such-action' was decided"),
        (["outcome", "x", "finished"], "'finished' is not one of"),
        (["actions", "--follow", "--bootstrap", "127.0.0.1:1"], "cannot reach Kafka"),
    ],
)
def test_action_commands_explain_mistakes_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = journey(*args, data_dir=tmp_path / "data")

    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_after_a_definition_change_the_decider_is_folded_again(tmp_path: Path) -> None:
    story = write_jsonl(
        tmp_path / "s1.jsonl", [json.dumps(record) for record in warm_referral_gone_cold()]
    )
    data_dir = tmp_path / "data"
    assert journey("ingest", str(story), data_dir=data_dir).returncode == 0
    default = Path(__file__).parents[2] / "engine" / "default_journey.toml"
    changed = tmp_path / "changed.toml"
    changed.write_text(default.read_text().replace("within_hours = 48", "within_hours = 24"))

    refused = journey("--definition", str(changed), "actions", data_dir=data_dir)
    refolded = journey("--definition", str(changed), "decide", "--refold", data_dir=data_dir)

    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: the decider's journeys were folded under another journey definition; "
        "fold them again under this one (journey decide --refold)"
    ]
    assert refolded.returncode == 0, refolded.stderr
    assert "1 journey folded again under the current definition" in refolded.stderr


def test_every_command_the_help_lists_shows_its_own_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(cli, ["--help"], prog_name="journey").output
    commands = [line.split()[0] for line in listing.split("Commands:")[1].splitlines() if line]
    assert {"ingest", "consume", "decide", "serve", "report"} <= set(commands)

    for command in commands:
        result = runner.invoke(cli, [command, "--help"], prog_name="journey")
        assert result.exit_code == 0, f"{command}: {result.output}"
        assert result.output.startswith(f"Usage: journey {command} "), command


@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded_stories(tmp_path_factory.mktemp("stories"))


def at_80_columns(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), *args], env={"COLUMNS": "80"}, catch_exceptions=False
    )


def test_at_80_columns_ids_details_and_moments_are_shown_whole(stories: Path) -> None:
    shown = at_80_columns(stories, "customer", "S1-ANNA").output
    frictions = at_80_columns(stories, "friction").output

    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "referred_by=C-17 referrer_location=A" in shown
    assert "location=B content=same as website" in shown
    assert "First in-person visit or demo  negative" in shown
    assert "…" not in shown
    for customer in ("S1-ANNA", "S2-BEN", "S3-CARLA", "S4-DAN", "S5-EVA"):
        assert customer in frictions
    assert "…" not in frictions


def test_a_list_stops_at_its_limit_and_says_how_many_more(stories: Path) -> None:
    every = json.loads(at_80_columns(stories, "actions", "--json", "--limit", "1000").stdout)
    listed = at_80_columns(stories, "actions", "--limit", "2")
    as_json = at_80_columns(stories, "actions", "--json", "--limit", "2")

    assert len(every) > 2
    assert listed.stdout.splitlines()[-1] == f"… and {len(every) - 2} more"
    assert [a["action_id"] for a in json.loads(as_json.stdout)] == [
        a["action_id"] for a in every[:2]
    ]
    assert as_json.stderr.splitlines() == [f"… and {len(every) - 2} more"]


@pytest.mark.parametrize(
    "args",
    [["actions", "--all"], ["friction", "--all"], ["friction", "--by", "kind"], ["funnel"]],
)
def test_every_list_prints_one_json_array(stories: Path, args: list[str]) -> None:
    listed = json.loads(at_80_columns(stories, *args, "--json").stdout)

    assert isinstance(listed, list)
    assert listed
    assert all(isinstance(item, dict) for item in listed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "nope"], "no action 'nope' was decided"),
        (["outcome", "nope", "done"], "no action 'nope' was decided"),
        (["actions", "--limit", "0"], "Invalid value for '--limit'"),
        (["friction", "--by", "colour"], "Invalid value for '--by'"),
        (["explain"], "Missing argument 'ACTION_ID' (see journey explain -h)"),
        (["worklist", "--owner", "kathrin"], "no actions were ever decided for owner 'kathrin'"),
        (["worklist"], "Missing option '--owner'"),
    ],
)
def test_a_missing_action_or_a_bad_argument_is_one_line_and_exit_2(
    stories: Path, args: list[str], message: str
) -> None:
    result = journey(*args, data_dir=stories)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert message in line


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stories, and Kathrine's morning: actions of hers overdue, due today and later."""
    folder = tmp_path_factory.mktemp("morning")
    data_dir = recorded_stories(folder)
    more = write_jsonl(folder / "morning.jsonl", [json.dumps(r) for r in kathrines_morning()])
    assert at_80_columns(data_dir, "ingest", str(more)).exit_code == 0
    return data_dir


def test_a_reps_worklist_at_80_columns_puts_overdue_first_and_shows_ids_whole(
    morning: Path,
) -> None:
    day = json.loads(at_80_columns(morning, "worklist", "--owner", "kathrine", "--json").stdout)
    shown = at_80_columns(morning, "worklist", "--owner", "kathrine").stdout
    lines = shown.splitlines()

    assert max(len(line) for line in lines) <= 80
    assert lines[:2] == [
        "kathrine's day, as of Sun 14 Jun 2026, 09:00 UTC (the journey's clock)",
        "2 overdue, 1 due today, 1 later",
    ]
    headings = [line for line in lines if line.endswith(")") and not line.startswith(" ")]
    assert headings[-3:] == ["Overdue (2)", "Due today (1)", "Later (1)"]
    assert [item["group"] for item in day["items"]] == ["overdue", "overdue", "today", "later"]
    for item in day["items"]:
        assert item["action_id"] in shown
        assert item["customer_id"] in shown
    assert "Sun 14 Jun 2026, 12:10 UTC  S7-GUS  high" in lines
    assert "Wed 17 Jun 2026, 08:30 UTC  S8-HEDDA  low" in lines
    assert "…" not in shown


def test_a_reps_worklist_stops_at_its_limit_and_its_json_is_one_document(morning: Path) -> None:
    listed = at_80_columns(morning, "worklist", "--owner", "kathrine", "--limit", "2")
    as_json = at_80_columns(morning, "worklist", "--owner", "kathrine", "--json", "--limit", "1")
    day = json.loads(as_json.stdout)

    assert listed.stdout.splitlines()[-1] == "… and 2 more"
    assert "Due today" not in listed.stdout
    assert as_json.stderr.splitlines() == ["… and 3 more"]
    assert (day["owner"], day["as_of"], day["zone"]) == ("kathrine", "2026-06-14T09:00:00Z", "UTC")
    assert day["counts"] == {"overdue": 2, "today": 1, "later": 1, "snoozed": 0}
    assert [(d["day"], d["actions"]) for d in day["days"]] == [
        ("2026-03-07", 1),
        ("2026-03-15", 1),
        ("2026-06-14", 1),
        ("2026-06-17", 1),
    ]
    [top] = day["items"]
    assert (top["priority"], top["priority_level"], top["label"]) == (
        0.73,
        "medium",
        "Personal introduction through the referrer",
    )


def test_the_customer_view_says_which_stages_were_skipped_and_what_moves_them_on(
    stories: Path,
) -> None:
    shown = " ".join(at_80_columns(stories, "customer", "S1-ANNA").stdout.split())

    assert "Aware ▸ Engaged (skipped) ▸ Considering (skipped) ▸ Evaluating ▸ Deciding" in shown
    assert "To move on to Deciding: a proposal sent or negotiation." in shown
    assert "journey clock 2026-03-14 09:00 UTC" in shown
