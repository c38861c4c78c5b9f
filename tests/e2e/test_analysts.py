"""What analysts do: replay history into a projection of their own and keep it following the
log, and try a new journey definition on history before switching to it. On the embedded
store and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from engine.settings import Settings
from journey.bootstrap import build_engine, build_projection_views, rebuild_beside
from projections.custom import CustomRunner
from projections.examples import PricingInterest
from tests import services
from tests.e2e.test_cli import JOURNEY, wait_for
from tests.stories import STORIES

PRICING = "projections.examples:PricingInterest"


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a store holding every story, with the clock twelve days on."""
    env = {**os.environ, "JOURNEY_DATA_DIR": str(tmp_path / "data")}
    with ExitStack() as stack:
        if request.param == "postgres":
            url = request.getfixturevalue("postgres_url")
            schema = stack.enter_context(services.fresh_schema(url))
            env |= {"JOURNEY_DATABASE_URL": url, "POSTGRES_SCHEMA": schema}
        stories = tmp_path / "stories.jsonl"
        records = [record for story in STORIES.values() for record in story()]
        stories.write_text("".join(json.dumps(r) + "\n" for r in records))
        journey("ingest", str(stories), env=env)
        journey("tick", "--at", "2026-03-14T09:00:00Z", env=env)
        yield env


def journey(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [JOURNEY, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def view(name: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    rows = json.loads(journey("view", name, "--json", "--limit", "1000", env=env))
    return {row.pop("customer_id"): row for row in rows}


def follow(env: dict[str, str]) -> subprocess.Popen[str]:
    """`journey replay` of the pricing view, following the log."""
    return subprocess.Popen(
        [JOURNEY, "replay", "--projection", PRICING, "--every", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_replay_builds_the_analysts_view_from_the_whole_history(env: dict[str, str]) -> None:
    journey("replay", "--projection", PRICING, "--once", env=env)

    shown = view("pricing_interest", env)
    assert {customer: state["views"] for customer, state in shown.items()} == {
        "S2-BEN": 2,
        "S4-DAN": 6,
        "S6-FIN": 1,
    }


def test_a_replay_keeps_following_the_log_until_stopped(
    env: dict[str, str], tmp_path: Path
) -> None:
    follower = follow(env)
    try:
        wait_for(lambda: "S4-DAN" in _view_or_empty(env), "the first build")
        more = tmp_path / "more.jsonl"
        more.write_text(
            json.dumps(
                {
                    "event_id": "later-1",
                    "customer_id": "S1-ANNA",
                    "channel": "web",
                    "type": "page_view",
                    "occurred_at": "2026-03-13T10:00:00Z",
                    "source": "web-analytics",
                    "attributes": {"page": "pricing"},
                }
            )
            + "\n"
        )
        journey("ingest", "--no-project", str(more), env=env)

        wait_for(lambda: "S1-ANNA" in _view_or_empty(env), "the follower to fold it", 60)
    finally:
        follower.send_signal(signal.SIGTERM)
        _, errors = follower.communicate(timeout=30)
    assert follower.returncode == 0, errors


def test_a_follower_stops_when_a_newer_build_goes_live(env: dict[str, str]) -> None:
    follower = follow(env)
    try:
        wait_for(lambda: "S4-DAN" in _view_or_empty(env), "the first build")
        journey("replay", "--projection", PRICING, "--once", env=env)
        _, errors = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()

    assert follower.returncode == 0, errors
    assert "A newer build of pricing_interest is live" in errors
    assert view("pricing_interest", env)["S4-DAN"]["views"] == 6


def _view_or_empty(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    result = subprocess.run(
        [JOURNEY, "view", "pricing_interest", "--json", "--limit", "1000"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode:
        return {}
    return {row.pop("customer_id"): row for row in json.loads(result.stdout)}


def test_readers_see_the_previous_build_until_a_new_one_has_caught_up(
    env: dict[str, str],
) -> None:
    journey("replay", "--projection", PRICING, "--once", env=env)
    before = view("pricing_interest", env)
    settings = Settings.from_env(env | {"JOURNEY_PAGE_SIZE": "3"})
    engine = build_engine(settings)
    views = build_projection_views(settings)
    seen_while_building: list[dict[str, Any]] = []
    try:
        runner = CustomRunner(engine.log, views, PricingInterest(), PRICING, page_size=3)
        runner.replay(
            lambda done, _: seen_while_building.append(dict(views.states("pricing_interest")))
        )
        after = dict(views.states("pricing_interest"))
    finally:
        views.db.close()
        engine.close()

    assert len(seen_while_building) > 3  # pages committed while readers kept reading
    assert all(seen == before for seen in seen_while_building)
    assert after == before


def test_a_definition_diff_reports_what_a_wider_follow_up_window_would_change(
    env: dict[str, str], tmp_path: Path
) -> None:
    default = (Path(__file__).parents[2] / "engine" / "default_journey.toml").read_text()
    wider = tmp_path / "wider.toml"
    wider.write_text(default.replace("within_hours = 48", "within_hours = 480", 1))

    report = json.loads(journey("diff-definition", "default", str(wider), "--json", env=env))

    assert report["customers"] == len(STORIES)
    assert report["frictions_removed"] == {"no_follow_up": 2}
    changed = {c["customer_id"]: c for c in report["customers_changed"]}
    assert set(changed) == {"S1-ANNA", "S5-EVA"}
    assert changed["S1-ANNA"]["frictions_removed"] == ["no_follow_up"]
    assert report["stage_moves"] == []
    # Trying a definition changes nothing in the live views.
    anna = json.loads(journey("customer", "S1-ANNA", "--json", env=env))
    assert "no_follow_up" in {f["kind"] for f in anna["frictions"]}


def test_a_rebuild_under_a_new_definition_is_built_beside_the_live_views(
    env: dict[str, str], tmp_path: Path
) -> None:
    journey("funnel", env=env)  # the live views, under the default journey
    default = (Path(__file__).parents[2] / "engine" / "default_journey.toml").read_text()
    wider = tmp_path / "wider.toml"
    wider.write_text(default.replace("within_hours = 48", "within_hours = 480", 1))
    old, new = Settings.from_env(env), Settings.from_env(env | {"JOURNEY_DEFINITION": str(wider)})
    seen_while_building: list[set[str]] = []

    def read_anna_while_building(done: int, total: int) -> None:
        reader = build_engine(old)
        try:
            anna = reader.view.position("S1-ANNA")
            assert anna is not None
            assert anna.touchpoints == 6
            seen_while_building.append({f.kind for f in anna.frictions})
        finally:
            reader.close()

    builder = build_engine(
        Settings.from_env(env | {"JOURNEY_DEFINITION": str(wider), "JOURNEY_PAGE_SIZE": "4"})
    )
    try:
        rebuild_beside(builder, read_anna_while_building)
    finally:
        builder.close()

    assert len(seen_while_building) > 3
    assert all("no_follow_up" in kinds for kinds in seen_while_building)
    after = build_engine(new)
    try:
        after.runner.catch_up()
        anna = after.view.position("S1-ANNA")
        assert anna is not None
        assert "no_follow_up" not in {f.kind for f in anna.frictions}
    finally:
        after.close()
    stale = subprocess.run(
        [JOURNEY, "customer", "S1-ANNA"], capture_output=True, text=True, env=env, check=False
    )
    assert stale.returncode == 2
    assert "another journey definition" in stale.stderr
