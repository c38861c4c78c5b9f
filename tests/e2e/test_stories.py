"""Every customer story, recorded through `journey ingest` and read back with `journey customer`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from journey.cli import cli
from tests.stories import STORIES

LADDER = ["aware", "engaged", "considering", "evaluating", "deciding", "customer", "advocate"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All stories in one file, interleaved as channel systems would deliver them."""
    folder = tmp_path_factory.mktemp("stories")
    records = [record for story in STORIES.values() for record in story()]
    # The late visit log arrives in a later file, after the views have caught up.
    late = [r for r in records if r["event_id"] == "s5-1"]
    for name, batch in (("stories", [r for r in records if r not in late]), ("late", late)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in batch))
        result = CliRunner().invoke(cli, ["--data-dir", str(folder / "data"), "ingest", str(path)])
        assert result.exit_code == 0, result.output
    # Twelve days after the first touchpoints: the tour's follow-up window has closed.
    result = CliRunner().invoke(
        cli, ["--data-dir", str(folder / "data"), "tick", "--at", "2026-03-14T09:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    return folder / "data"


def customer(data_dir: Path, customer_id: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), "customer", customer_id, "--json"]
    )
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.output)
    return shown


def stages(shown: dict[str, Any]) -> list[str]:
    return [entry["stage"] for entry in shown["stage_history"]]


def open_frictions(shown: dict[str, Any]) -> dict[str, list[str]]:
    """The customer's open frictions: their kind and the touchpoints behind them."""
    return {f["kind"]: f["events"] for f in shown["frictions"] if f["open"]}


def moments(shown: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """The customer's moments of truth: which touchpoint, and how it went."""
    return {m["kind"]: (m["event_id"], m["outcome"]) for m in shown["moments_of_truth"]}


def test_the_warm_referral_gone_cold_is_evaluating_after_a_tour_with_another_rep(
    data_dir: Path,
) -> None:
    anna = customer(data_dir, "S1-ANNA")

    assert anna["stage"] == "evaluating"
    tour = anna["timeline"][-1]
    assert (tour["type"], tour["rep_id"], tour["outcome"]) == ("tour", "peter", "negative")
    assert anna["rep"] == "kathrine"


def test_the_warm_referral_gone_cold_shows_where_it_hurt(data_dir: Path) -> None:
    anna = customer(data_dir, "S1-ANNA")

    assert open_frictions(anna) == {
        "referral_unused": ["s1-1", "s1-2"],  # location B offered, the referrer leases at A
        "hand_off": ["s1-6"],  # the tour was with Peter, not Kathrine
        "negative": ["s1-6"],
        "no_follow_up": ["s1-6"],
    }
    silence = next(f for f in anna["frictions"] if f["kind"] == "no_follow_up")
    assert silence["opened_at"] == "2026-03-11T09:00:00Z"  # the tour plus 48 hours
    assert moments(anna) == {
        "first_human_contact": ("s1-2", "positive"),
        "first_visit": ("s1-6", "negative"),
    }


def test_digital_to_phone_after_a_failed_step_is_considering(data_dir: Path) -> None:
    ben = customer(data_dir, "S2-BEN")

    assert ben["stage"] == "considering"
    assert [t["type"] for t in ben["timeline"]][-2:] == ["form_failed", "call_inbound"]
    assert open_frictions(ben) == {"channel_jump": ["s2-4", "s2-5"], "negative": ["s2-4"]}
    assert moments(ben) == {"first_human_contact": ("s2-5", None)}


def test_the_bank_customer_regresses_from_advocate_after_the_complaint(data_dir: Path) -> None:
    carla = customer(data_dir, "S3-CARLA")

    assert stages(carla) == ["customer", "advocate", "customer"]
    assert carla["stage_history"][-1]["event_id"] == "s3-6"
    outcomes = {t["channel"]: t["outcome"] for t in carla["timeline"][2:]}
    assert outcomes == {"visit": "positive", "phone": "negative", "email": "negative"}


def test_the_bank_customer_met_a_negative_moment_of_truth_on_inconsistent_channels(
    data_dir: Path,
) -> None:
    carla = customer(data_dir, "S3-CARLA")

    assert open_frictions(carla) == {
        "negative": ["s3-4", "s3-5", "s3-6"],
        "regression": ["s3-6"],
    }
    assert moments(carla) == {
        "first_human_contact": ("s3-1", "positive"),
        "first_purchase": ("s3-1", "positive"),
        "first_visit": ("s3-3", "positive"),
        "first_complaint": ("s3-6", "negative"),
    }
    assert carla["inconsistent_channels"]
    assert carla["channel_outcomes"]["visit"]["positive"] == 2
    assert carla["channel_outcomes"]["phone"]["negative"] == 2


def test_repeated_pricing_views_without_contact_stay_considering(data_dir: Path) -> None:
    dan = customer(data_dir, "S4-DAN")

    assert dan["stage"] == "considering"
    assert stages(dan) == ["considering"]  # clicks on the guide do not move them back
    assert dan["touchpoints"] == 8
    assert open_frictions(dan) == {"loop": ["s4-0", "s4-3"]}  # the fourth pricing view
    assert moments(dan) == {}


def test_the_late_visit_log_is_ordered_by_when_things_happened(data_dir: Path) -> None:
    eva = customer(data_dir, "S5-EVA")

    assert [t["event_id"] for t in eva["timeline"]] == ["s5-0", "s5-1", "s5-2", "s5-3"]
    arrivals = [t["arrival"] for t in eva["timeline"]]
    assert arrivals[1] == max(arrivals)  # recorded last: the log keeps arrival order
    assert eva["stage"] == "evaluating"
    assert eva["stage_history"][-1]["event_id"] == "s5-1"
    assert eva["stage_history"][-1]["entered_at"] == eva["timeline"][1]["occurred_at"]
    # Nobody followed the visit up: the window closed by the emails' and the clock's time.
    assert open_frictions(eva) == {"no_follow_up": ["s5-1"]}
    assert moments(eva)["first_visit"] == ("s5-1", "positive")


def test_the_late_visit_log_gives_the_same_journey_after_a_rebuild(data_dir: Path) -> None:
    before = customer(data_dir, "S5-EVA")

    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "rebuild"])

    assert result.exit_code == 0, result.output
    assert customer(data_dir, "S5-EVA") == before


def test_the_happy_path_climbs_from_aware_to_advocate_in_order(data_dir: Path) -> None:
    fin = customer(data_dir, "S6-FIN")

    assert stages(fin) == LADDER
    assert [entry["event_id"] for entry in fin["stage_history"]][-1] == "s6-10"


def test_the_happy_path_has_no_friction_and_only_positive_moments_of_truth(
    data_dir: Path,
) -> None:
    fin = customer(data_dir, "S6-FIN")

    assert fin["frictions"] == []
    assert {outcome for _, outcome in moments(fin).values()} == {"positive"}
    assert set(moments(fin)) == {"first_human_contact", "first_visit", "proposal", "first_purchase"}


def test_outcomes_are_shown_per_channel_rep_and_team(data_dir: Path, tmp_path: Path) -> None:
    default = (Path(__file__).parents[2] / "engine" / "default_journey.toml").read_text()
    teams = tmp_path / "teams.toml"
    teams.write_text(default + '\n[teams]\nbranch = ["li"]\nsales = ["kathrine", "peter"]\n')

    result = CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), "--definition", str(teams), "moments", "--json"]
    )

    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert {row["team"]: row["positive"] for row in shown["teams"]} == {"branch": 3, "sales": 1}
    phone = next(row for row in shown["channels"] if row["channel"] == "phone")
    assert phone["negative"] == 2  # Carla stuck in the voice menu, twice
    first_visits = [m for m in shown["moments"] if m["moment"] == "first_visit"]
    assert {(m["outcome"], m["count"]) for m in first_visits} == {("positive", 3), ("negative", 1)}


def open_actions(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The customer's open next actions, by the rule that decided them."""
    return {a["rule"]: a for a in shown["next_actions"] if a["status"] == "open"}


def test_the_warm_referral_gone_cold_asks_kathrine_to_follow_up_and_propose_location_a(
    data_dir: Path,
) -> None:
    actions = open_actions(customer(data_dir, "S1-ANNA"))

    assert set(actions) == {"follow_up_visit", "introduction_referral"}
    follow_up = actions["follow_up_visit"]
    assert (follow_up["action_type"], follow_up["owner"]) == ("follow_up", "kathrine")
    assert follow_up["priority"] > actions["introduction_referral"]["priority"]
    assert follow_up["triggering_event_ids"] == ["s1-6"]
    # The tour, where, with whom, when and how it went, and the silence since it.
    assert follow_up["reason"] == (
        "Nobody followed up their tour at B with peter on Mon 9 Mar (negative), and they have "
        "heard nothing for 5 days since. Get back to them."
    )
    introduction = actions["introduction_referral"]
    assert (introduction["action_type"], introduction["owner"]) == ("introduction", "kathrine")
    assert introduction["reason"] == (
        "They came by referral from C-17, a customer at A, but were offered B (call from us "
        "about B with kathrine on Wed 4 Mar). Propose A, with an introduction through C-17 and "
        "their rep."
    )


def test_digital_to_phone_gets_a_call_back_with_context(data_dir: Path) -> None:
    actions = open_actions(customer(data_dir, "S2-BEN"))

    (call_back,) = actions.values()
    assert (call_back["action_type"], call_back["channel"]) == ("call_back", "phone")
    assert call_back["owner"] == "inside_sales"  # Ben has no rep yet
    assert call_back["triggering_event_ids"] == ["s2-4", "s2-5"]
    # What they tried online, and when.
    assert "(failed form 'quote', Mon 2 Mar at 09:16 UTC)" in call_back["reason"]


def test_the_bank_customer_gets_a_recovery_call_from_the_branch_manager(data_dir: Path) -> None:
    actions = open_actions(customer(data_dir, "S3-CARLA"))

    (recovery,) = actions.values()
    assert (recovery["action_type"], recovery["owner"]) == ("recovery_call", "branch_manager")
    assert recovery["triggering_event_ids"] == ["s3-6"]
    assert "complaint 'phone_service', by email on Sun 8 Mar" in recovery["reason"]


def test_repeated_pricing_views_get_a_consultation_offer_by_email(data_dir: Path) -> None:
    actions = open_actions(customer(data_dir, "S4-DAN"))

    (offer,) = actions.values()
    assert (offer["action_type"], offer["channel"]) == ("consultation_offer", "email")
    assert "page view 'pricing'" in offer["reason"]


def test_the_late_visit_is_followed_up_by_the_rep_who_made_it(data_dir: Path) -> None:
    actions = open_actions(customer(data_dir, "S5-EVA"))

    assert {(a["action_type"], a["owner"]) for a in actions.values()} == {("follow_up", "amira")}
    # The silence counts from the visit, not from the emails they opened since.
    (follow_up,) = actions.values()
    assert "their visit with amira on Mon 2 Mar (positive)" in follow_up["reason"]
    assert "heard nothing for 11 days since" in follow_up["reason"]


def test_the_happy_path_gets_nothing_but_a_thank_you_for_the_referral(data_dir: Path) -> None:
    fin = customer(data_dir, "S6-FIN")

    assert [(a["action_type"], a["owner"], a["status"]) for a in fin["next_actions"]] == [
        ("thank_you", "jonas", "open")
    ]
    assert fin["next_actions"][0]["triggering_event_ids"] == ["s6-10"]
    assert "advocate on Sun 14 Jun with the referral they gave" in fin["next_actions"][0]["reason"]


def test_no_reason_cites_an_event_id(data_dir: Path) -> None:
    event_ids = {r["event_id"] for story in STORIES.values() for r in story()}
    reasons = [
        a["reason"]
        for story in STORIES.values()
        for a in customer(data_dir, story()[0]["customer_id"])["next_actions"]
    ]

    assert len(reasons) == 8  # the stories' seven, and Carla's thank-you long ago
    assert not [(r, e) for r in reasons for e in event_ids if e in r]


def test_explain_shows_the_rule_the_events_and_the_score(data_dir: Path) -> None:
    follow_up = open_actions(customer(data_dir, "S1-ANNA"))["follow_up_visit"]

    result = CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), "explain", follow_up["action_id"]]
    )

    assert result.exit_code == 0, result.output
    assert "rule      follow_up_visit (Follow up after the visit)" in result.output
    assert "events    s1-6" in result.output
    assert "0.5 x value 0.9 + 0.3 x urgency 0.9 + 0.2 x fit 0.8 = 0.88" in result.output


def test_explaining_an_unknown_action_is_one_line(data_dir: Path) -> None:
    journey = str(Path(sys.executable).with_name("journey"))
    result = subprocess.run(
        [journey, "--data-dir", str(data_dir), "explain", "no-such-id"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: no action 'no-such-id' was decided"]
