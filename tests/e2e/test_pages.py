"""The sales page, the pipeline and the analyst report, driven in real headless Chromium
(Debian's, through Playwright) against `journey serve` on 127.0.0.1. Screenshots of each are
saved under test-artifacts/ to look at."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page, expect, sync_playwright

from journey.cli import cli
from tests import services
from tests.conftest import HOUR, T0
from tests.e2e.test_roles import token_of, tokens_file, with_teams
from tests.stories import anonymous_reader_turns_caller, kathrines_morning, recorded_stories, tp

JOURNEY = str(Path(sys.executable).with_name("journey"))
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded_stories(tmp_path_factory.mktemp("pages"))


@contextmanager
def serving(data_dir: Path, **env: str) -> Iterator[str]:
    """`journey serve` on a free port of 127.0.0.1, until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [JOURNEY, "--data-dir", str(data_dir), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/openapi.json", timeout=2).close()
            break
        except urllib.error.HTTPError:
            break  # it answers, asking for a token
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"journey serve did not answer: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[str]:
    with serving(data_dir) as url:
        yield url


@pytest.fixture(scope="module")
def guarded(data_dir: Path) -> Iterator[str]:
    """A server that asks for tokens: one for sales people, another for channel systems."""
    with serving(data_dir, JOURNEY_API_TOKEN="sales-token", JOURNEY_INGEST_TOKEN="ingest") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = services.chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, timezone_id="UTC")
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stories and Kathrine's morning: actions of hers overdue, due today and later."""
    folder = tmp_path_factory.mktemp("morning")
    data_dir = recorded_stories(folder)
    more = folder / "morning.jsonl"
    more.write_text("".join(json.dumps(record) + "\n" for record in kathrines_morning()))
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "ingest", str(more)])
    assert result.exit_code == 0, result.output
    with serving(data_dir) as url:
        yield url


def opened(browser: Browser, width: int, zone: str = "UTC") -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id=zone)
    return context.new_page()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def test_a_sales_person_finds_the_customer_and_dismisses_the_follow_up(
    page: Page, server: str
) -> None:
    page.goto(server)
    page.get_by_test_id("search").fill("S1")
    page.get_by_test_id("result").first.click()

    expect(page.get_by_test_id("current-stage")).to_have_text("Evaluating● now")
    moments = page.get_by_test_id("moment")
    expect(moments).to_have_count(2)
    expect(moments.nth(1)).to_have_class("mot bad")  # the tour went badly
    expect(page.locator("[data-channel=visit]")).to_have_count(1)
    follow_up = page.locator("[data-testid=action][data-action-type=follow_up]")
    expect(follow_up.get_by_test_id("reason")).to_contain_text("tour at B with peter on Mon 9 Mar")
    # The timeline says which page they read.
    expect(page.get_by_test_id("touchpoint").nth(2)).to_contain_text("page view · amenities")
    expect(page.get_by_test_id("friction")).to_have_count(4)
    # Frictions name their touchpoints as the timeline does, never by event id.
    expect(page.get_by_test_id("frictions")).to_contain_text("Visit with no follow-up")
    expect(page.get_by_test_id("frictions")).to_contain_text("· tour · at B")
    expect(page.get_by_test_id("frictions")).not_to_contain_text("s1-")
    screenshot(page, "sales-page-before")

    follow_up.get_by_test_id("dismiss-reason").fill("she signed with us at the fair")
    follow_up.get_by_test_id("dismiss").click()

    expect(page.locator("[data-testid=action][data-action-type=follow_up]")).to_have_count(0)
    expect(page.get_by_test_id("closed-action")).to_contain_text(
        "follow_up (kathrine) · dismissed: she signed with us at the fair"
    )
    screenshot(page, "sales-page-after")
    recorded = json.load(
        urllib.request.urlopen(f"{server}/api/actions?customer=S1-ANNA&include_closed=true")
    )
    statuses = {a["action_type"]: a["status"] for a in recorded["items"]}
    assert statuses == {"follow_up": "dismissed", "introduction": "open"}


def test_a_sales_person_snoozes_an_action_until_a_day_they_choose(page: Page, server: str) -> None:
    page.goto(f"{server}/?customer=S5-EVA")
    follow_up = page.locator("[data-testid=action][data-action-type=follow_up]")

    follow_up.get_by_test_id("snooze").click()
    expect(page.locator("#message")).to_have_text(
        "Choose when the action comes back, then snooze it."
    )
    follow_up.get_by_test_id("snooze-until").fill("2026-04-20T09:00")
    follow_up.get_by_test_id("snooze").click()

    snoozed = page.locator("[data-testid=action][data-action-type=follow_up]")
    expect(snoozed).to_contain_text("snoozed until Mon 20 Apr, 09:00 UTC")
    recorded = json.load(urllib.request.urlopen(f"{server}/api/actions?customer=S5-EVA"))
    assert [(a["status"], a["snoozed_until"]) for a in recorded["items"]] == [
        ("snoozed", "2026-04-20T09:00:00.000Z")
    ]


def test_a_customer_the_engine_does_not_know_is_named_on_the_page(page: Page, server: str) -> None:
    page.goto(f"{server}/?customer=NOBODY")

    expect(page.locator("#message")).to_have_text("no touchpoints recorded for customer 'NOBODY'")
    expect(page.locator("#customer")).to_be_hidden()


def test_a_refused_token_is_asked_for_once_and_the_page_says_why(page: Page, guarded: str) -> None:
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept("not-the-token")

    page.on("dialog", answer)
    page.goto(f"{guarded}/?customer=S1-ANNA")

    expect(page.locator("#message")).to_contain_text("the engine refused the token given")
    assert asked == ["This engine asks for a token:"]


@pytest.fixture(scope="module")
def with_roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that takes the tokens of a file: a rep's, a manager's, an admin's."""
    folder = tmp_path_factory.mktemp("roles")
    data_dir = recorded_stories(folder)
    env = {
        "JOURNEY_TOKENS_FILE": str(tokens_file(folder)),
        "JOURNEY_DEFINITION": str(with_teams(folder)),
    }
    with serving(data_dir, **env) as url:
        yield url


def giving(page: Page, name: str) -> list[str]:
    """Answers the page's question for a token with `name`'s; what it asked, in order."""
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept(token_of(name))

    page.on("dialog", answer)
    return asked


def test_a_token_in_the_address_is_not_taken_the_page_asks_for_one(
    page: Page, with_roles: str
) -> None:
    asked: list[str] = []

    def decline(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", decline)
    page.goto(f"{with_roles}/?token={token_of('root')}&customer=S1-ANNA")

    expect(page.locator("#message")).to_contain_text("this engine asks for a token")
    assert asked == ["This engine asks for a token:"]
    assert page.evaluate("sessionStorage.getItem('journey-token')") is None


def test_a_reps_page_opens_on_their_own_day_and_lists_only_them(
    page: Page, with_roles: str
) -> None:
    asked = giving(page, "kathrine")
    page.goto(with_roles)

    expect(page.locator("#worklist-title")).to_have_text("kathrine's day")
    expect(page.get_by_test_id("owner").locator("option")).to_have_count(2)  # and "choose…"
    expect(page.get_by_test_id("owner")).to_have_value("kathrine")
    expect(page.locator("header .pipeline")).to_be_hidden()
    page.goto(f"{with_roles}/?customer=S1-ANNA")
    expect(page.get_by_test_id("current-stage")).to_contain_text("Evaluating")
    page.goto(f"{with_roles}/?customer=S3-CARLA")
    expect(page.locator("#message")).to_have_text(
        "kathrine (rep): customer 'S3-CARLA' is not kathrine's to read"
    )
    assert asked == ["This engine asks for a token:"]  # once, kept for the tab
    screenshot(page, "rep")


def test_a_managers_page_lists_the_reps_of_their_team(page: Page, with_roles: str) -> None:
    giving(page, "branch")
    page.goto(with_roles)

    expect(page.get_by_test_id("owner-link")).to_have_text(["amira"])
    page.get_by_test_id("owner-link").first.click()
    expect(page.locator("#worklist-title")).to_have_text("amira's day")
    page.get_by_test_id("customer-link").first.click()
    expect(page.get_by_test_id("current-stage")).to_contain_text("Evaluating")
    expect(page.locator("header .pipeline")).to_be_hidden()


def test_an_admins_page_lists_everyone_and_links_the_pipeline(page: Page, with_roles: str) -> None:
    giving(page, "root")
    page.goto(with_roles)

    expect(page.get_by_test_id("owner-link")).to_have_count(5)
    expect(page.locator("header .pipeline")).to_be_visible()


def test_a_sales_person_reports_an_outcome_with_the_sales_token(page: Page, guarded: str) -> None:
    page.on("dialog", lambda dialog: dialog.accept("sales-token"))
    page.goto(f"{guarded}/?customer=S4-DAN")
    action = page.get_by_test_id("action").first

    action.get_by_role("button", name="Done").click()

    expect(page.get_by_test_id("closed-action").first).to_contain_text("done")


def test_a_manager_sees_the_funnel_stalls_and_frictions_by_rep(page: Page, server: str) -> None:
    page.goto(f"{server}/pipeline")

    expect(page.get_by_test_id("funnel").get_by_test_id("bar-row")).to_have_count(7)
    expect(page.get_by_test_id("funnel")).to_contain_text("Evaluating")
    matrix = page.get_by_test_id("matrix")
    expect(matrix.locator("tr")).not_to_have_count(0)
    expect(matrix).to_contain_text("kathrine")
    expect(matrix).to_contain_text("hand off")
    screenshot(page, "pipeline")


@pytest.fixture(scope="module")
def acted_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stories, on a server of their own: its test reports what a rep did."""
    with serving(recorded_stories(tmp_path_factory.mktemp("acted"))) as url:
        yield url


def test_a_manager_sees_what_each_rule_achieved_and_groups_it_by_rep(
    page: Page, acted_on: str
) -> None:
    morning = acted_on
    actions = json.load(urllib.request.urlopen(f"{morning}/api/actions?owner=kathrine"))
    first = actions["items"][0]
    request = urllib.request.Request(
        f"{morning}/api/actions/{first['action_id']}/outcome",
        data=json.dumps({"status": "done", "rep_id": "kathrine"}).encode(),
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request).close()

    page.goto(f"{morning}/pipeline")

    rule_row = page.locator(f"[data-testid=effect-row][data-key={first['rule']}]")
    expect(rule_row).to_contain_text("(")  # taken up, with its share
    expect(rule_row.locator("td").nth(3)).to_have_text("1")  # done
    expect(page.get_by_test_id("effect")).to_contain_text("made")
    screenshot(page, "pipeline-effectiveness")
    page.get_by_test_id("effect-by").select_option("owner")
    expect(page.locator("[data-testid=effect-row][data-key=kathrine]")).to_have_count(1)
    page.get_by_test_id("effect-from").fill("2027-01-01")
    page.get_by_test_id("effect-from").dispatch_event("change")
    expect(page.get_by_test_id("effect")).to_have_text("No action was decided in that period.")


def write_report(data_dir: Path, target: Path, *more: str) -> None:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), "report", "--out", str(target), *more]
    )
    assert result.exit_code == 0, result.output


def test_the_report_draws_every_chart_with_its_numbers_in_sight(
    page: Page, data_dir: Path, tmp_path: Path
) -> None:
    write_report(data_dir, tmp_path / "report.html")

    page.goto((tmp_path / "report.html").as_uri())

    charts = page.locator(".js-plotly-plot")
    expect(charts).to_have_count(11)
    for index in range(11):
        expect(charts.nth(index).locator(".main-svg").first).to_be_visible()
    flow = page.locator("section[data-chart='2']")
    expect(flow.locator(".sankey")).to_have_count(1)
    expect(flow.locator(".node-label", has_text="Evaluating (3 in, 1 out)")).to_be_visible()
    expect(
        flow.get_by_test_id("moves").locator("tr", has_text="Aware → Evaluating")
    ).to_contain_text("2")
    frictions = page.locator("section[data-chart='4']")
    expect(frictions.locator("h2")).to_have_text(
        "Frictions by stage and channel: frictions (open and resolved) all customers met"
    )
    expect(frictions.locator(".xtick", has_text="unknown")).to_be_visible()
    expect(frictions.locator("text", has_text="4")).not_to_have_count(0)  # in a cell
    expect(page.locator("section[data-chart='5'] .legendtext", has_text="unknown")).to_be_visible()
    actions = page.locator("section[data-chart='9']")
    expect(actions.locator("h2")).to_have_text(
        "Next actions by rule: what became of the actions decided on any day"
    )
    expect(actions.locator("tr", has_text="Follow up after the visit")).to_contain_text("2")
    expect(actions.locator(".legendtext", has_text="expired")).to_be_visible()
    # Nobody acted on the stories' actions: each rule's customers, not acted on.
    acted = page.locator("section[data-chart='10']")
    expect(acted.locator(".xtick", has_text="Thank them for the referral")).to_be_visible()
    expect(acted.locator("text", has_text="0 of 1")).not_to_have_count(0)
    screenshot(page, "report")


def test_a_report_with_a_backtest_shows_a_changed_rule_and_what_it_would_drop(
    page: Page, data_dir: Path, tmp_path: Path
) -> None:
    shipped = (Path(__file__).parents[2] / "engine" / "default_journey.toml").read_text()
    offers = 'friction = "loop"\nstages = ["engaged", "considering"]\n'
    assert offers in shipped
    candidate = tmp_path / "no-offers.toml"  # the consultation offer only when deciding
    candidate.write_text(shipped.replace(offers, 'friction = "loop"\nstages = ["deciding"]\n'))
    write_report(data_dir, tmp_path / "tried.html", "--backtest", str(candidate))

    page.goto((tmp_path / "tried.html").as_uri())

    rules = page.locator("section", has=page.locator("h2", has_text="Backtest of no-offers.toml"))
    expect(rules.first.locator("h2")).to_contain_text("its proposals per rule against the 8")
    expect(rules.first.locator(".legendtext", has_text="dropped")).to_be_visible()
    expect(rules.first.locator("tr", has_text="Offer a consultation")).to_be_visible()
    expect(rules.nth(1).locator("h2")).to_contain_text("each owner's busiest day")
    screenshot(page, "report-backtest")


def test_a_report_of_a_date_range_counts_only_customers_first_seen_in_it_and_says_so(
    page: Page, data_dir: Path, tmp_path: Path
) -> None:
    write_report(data_dir, tmp_path / "march.html", "--from", "2026-03-01", "--to", "2026-03-31")

    page.goto((tmp_path / "march.html").as_uri())

    expect(page.locator(".meta")).to_contain_text(
        "4 customers in this report: customers first seen 2026-03-01 to 2026-03-31 (UTC)"
    )
    titles = page.locator("h2")
    expect(titles).to_have_count(11)
    for index in range(9):
        expect(titles.nth(index)).to_contain_text("customers first seen 2026-03-01 to 2026-03-31")
    for index in (9, 10):  # the actions' charts count actions decided on those days
        expect(titles.nth(index)).to_contain_text("decided from 2026-03-01 to 2026-03-31 (UTC)")
    funnel_top = page.locator("section[data-chart='0'] .point text").first
    expect(funnel_top).to_contain_text("4")


def test_a_date_range_that_ends_before_it_begins_is_refused(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(data_dir),
            "report",
            "--out",
            str(tmp_path / "r.html"),
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-01",
        ],
    )

    assert result.exit_code == 2
    assert "2026-03-01 is before --from, 2026-03-02" in result.output
    assert not (tmp_path / "r.html").exists()


def click_cell(page: Page, chart: int, *, cell: tuple[int, int], of: tuple[int, int]) -> None:
    """Clicks the middle of a cell (row from the top, column) of a heat map of so many rows
    and columns."""
    (row, column), (rows, columns) = cell, of
    plot = page.locator(f"section[data-chart='{chart}'] .nsewdrag").first
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    assert box is not None
    page.mouse.click(
        box["x"] + (column + 0.5) * box["width"] / columns,
        box["y"] + (row + 0.5) * box["height"] / rows,
    )


def test_a_click_on_a_chart_lists_the_customers_behind_it_on_the_sales_page(
    page: Page, data_dir: Path, server: str, tmp_path: Path
) -> None:
    write_report(data_dir, tmp_path / "report.html", "--page", server)
    page.goto((tmp_path / "report.html").as_uri())

    # Evaluating, on a visit: rows Considering, Evaluating, Advocate; columns phone, visit,
    # web, unknown.
    click_cell(page, 4, cell=(1, 1), of=(3, 4))

    expect(page.get_by_test_id("list-filters")).to_contain_text(
        "Who met a friction in stage evaluating on channel visit"
    )
    listed = page.get_by_test_id("listed-customer")
    expect(listed).to_have_count(2)
    expect(listed.nth(0)).to_contain_text("S5-EVA")
    expect(listed.nth(1)).to_contain_text("S1-ANNA")
    screenshot(page, "report-click-through")

    page.go_back()
    step = page.locator("section[data-chart='0'] .point").nth(4)  # Deciding
    step.scroll_into_view_if_needed()
    box = step.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    expect(page.get_by_test_id("list-filters")).to_contain_text("got at least as far as deciding")
    expect(page.get_by_test_id("listed-customer")).to_have_count(2)
    expect(page.get_by_test_id("customer-list")).to_contain_text("S3-CARLA")
    expect(page.get_by_test_id("customer-list")).to_contain_text("S6-FIN")

    page.go_back()
    flow = page.locator("section[data-chart='2']")
    flow.locator(".sankey-link").nth(1).click(force=True)  # the second move of the table

    expect(page.get_by_test_id("list-filters")).to_contain_text(
        "Who moved from aware, straight to evaluating"
    )
    expect(page.get_by_test_id("listed-customer")).to_have_count(2)
    expect(page.get_by_test_id("customer-list")).to_contain_text("S1-ANNA")
    expect(page.get_by_test_id("customer-list")).to_contain_text("S5-EVA")


@pytest.mark.parametrize("width", [1400, 390])
def test_neither_view_scrolls_sideways_and_every_stage_stays_in_sight(
    browser: Browser, morning: str, width: int
) -> None:
    page = opened(browser, width)
    page.goto(f"{morning}/?owner=kathrine")
    expect(page.get_by_test_id("group-today").get_by_test_id("action")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"worklist-{width}")

    page.goto(f"{morning}/?owner=kathrine&customer=S1-ANNA")
    expect(page.get_by_test_id("current-stage")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    last = page.get_by_test_id("stagebar").locator("[data-stage=advocate]").bounding_box()
    assert last is not None
    assert 0 <= last["x"] <= last["x"] + last["width"] <= width
    screenshot(page, f"customer-{width}")
    page.context.close()


def test_a_rep_opens_their_day_overdue_first_and_acting_on_the_top_item_takes_it_off(
    browser: Browser, morning: str
) -> None:
    page = opened(browser, 1400, zone="Europe/Berlin")
    page.goto(f"{morning}/?owner=kathrine")

    expect(page.get_by_test_id("count-overdue")).to_have_text("2")
    expect(page.get_by_test_id("count-today")).to_have_text("1")
    expect(page.get_by_test_id("count-later")).to_have_text("1")
    listed = page.get_by_test_id("action")
    expect(listed).to_have_count(4)
    groups = [
        card.evaluate("node => node.closest('section').dataset.testid") for card in listed.all()
    ]
    assert groups == ["group-overdue", "group-overdue", "group-today", "group-later"]
    today = page.get_by_test_id("group-today").get_by_test_id("action")
    expect(today.get_by_test_id("customer-link")).to_have_text("S7-GUS")
    expect(today).to_contain_text("Call back with context")
    expect(today).to_contain_text("due Sun 14 Jun, 14:10 CEST")  # 12:10 UTC, in Berlin
    expect(today.get_by_test_id("priority")).to_have_text("high")
    expect(today.get_by_test_id("priority")).to_have_attribute("title", "priority 0.80 of 1")
    expect(page.get_by_test_id("as-of")).to_contain_text("As of Sun 14 Jun, 11:00 CEST")
    expect(page.get_by_test_id("day")).to_have_text(
        ["Sat 7 Mar · 1", "Sun 15 Mar · 1", "Sun 14 Jun · 1", "Wed 17 Jun · 1"]
    )

    top = listed.first
    top_id = top.get_attribute("data-action-id")
    top.get_by_test_id("done").click()

    expect(page.get_by_test_id("count-overdue")).to_have_text("1")
    expect(page.locator(f"[data-action-id='{top_id}']")).to_have_count(0)
    expect(page.get_by_test_id("action")).to_have_count(3)
    expect(page.get_by_test_id("owner").locator("option:checked")).to_have_text(
        "kathrine (3 to do, 1 overdue)"
    )
    recorded = json.load(urllib.request.urlopen(f"{morning}/api/actions/{top_id}"))
    assert recorded["status"] == "done"
    page.context.close()


def test_the_rep_chosen_is_kept_in_the_address_and_their_customers_are_a_click_away(
    page: Page, morning: str
) -> None:
    page.goto(morning)
    expect(page.get_by_test_id("owner-link")).to_contain_text(["amira", "branch_manager"])

    page.get_by_test_id("owner").select_option("kathrine")

    expect(page).to_have_url(f"{morning}/?owner=kathrine")
    expect(page.locator("#worklist-title")).to_have_text("kathrine's day")
    page.get_by_test_id("group-later").get_by_test_id("customer-link").click()
    expect(page).to_have_url(f"{morning}/?owner=kathrine&customer=S8-HEDDA")
    expect(page.get_by_test_id("current-stage")).to_contain_text("Advocate")
    page.go_back()
    expect(page.locator("#worklist-title")).to_have_text("kathrine's day")
    page.get_by_test_id("group-today").get_by_test_id("customer-link").click()
    page.get_by_test_id("back-to-worklist").click()
    expect(page).to_have_url(f"{morning}/?owner=kathrine")


def test_the_stage_bar_tells_reached_skipped_current_and_ahead_apart_and_what_moves_on(
    page: Page, server: str
) -> None:
    page.goto(f"{server}/?customer=S1-ANNA")

    stages = page.get_by_test_id("stagebar").locator("[data-stage]")
    expect(stages).to_have_class(
        ["reached", "skipped", "skipped", "current", "ahead", "ahead", "ahead"]
    )
    expect(stages.nth(1)).to_contain_text("skipped")  # in words, not by colour alone
    expect(page.get_by_test_id("next-stage")).to_have_text(
        "To move on to Deciding: a proposal sent or negotiation."
    )
    introduction = page.locator("[data-testid=action][data-action-type=introduction]")
    expect(introduction.get_by_test_id("priority")).to_have_text("medium")
    expect(introduction.get_by_test_id("priority")).to_have_attribute("title", "priority 0.73 of 1")


def test_a_rep_nobody_knows_is_named_on_the_page(page: Page, server: str) -> None:
    page.goto(f"{server}/?owner=kathrin")

    expect(page.locator("#message")).to_have_text(
        "no actions were ever decided for owner 'kathrin'"
    )
    expect(page.get_by_test_id("worklist")).to_be_hidden()


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stories, Greta's anonymous touchpoints, and two customers whose touchpoints carried
    one email address: H-1's first, then H-2's in capitals (a conflict)."""
    folder = tmp_path_factory.mktemp("identities")
    data_dir = recorded_stories(folder)
    more = folder / "identities.jsonl"
    records = [
        *anonymous_reader_turns_caller(),
        tp("h-1", "H-1", "email", "email_inbound", T0, email="hugo@example.com"),
        tp("h-2", "H-2", "email", "email_inbound", T0 + HOUR, email="HUGO@example.com"),
    ]
    more.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "ingest", str(more)])
    assert result.exit_code == 0, result.output
    with serving(data_dir) as url:
        yield url


def test_a_rep_merges_a_conflict_from_the_page_and_undoes_the_merge(
    page: Page, identities: str
) -> None:
    page.goto(f"{identities}/?customer=H-2")
    who = page.get_by_test_id("identity")
    expect(who.get_by_test_id("identifier")).to_have_text(["customer_id H-2"])
    conflict = who.get_by_test_id("conflict")
    expect(conflict).to_have_count(1)
    expect(conflict).to_contain_text("carried email:hugo@example.com, which H-1 had first.")
    expect(page.get_by_test_id("timeline").get_by_test_id("touchpoint")).to_have_count(1)
    screenshot(page, "identity-conflict")

    page.get_by_label("Merges and undos decided by").fill("eve")
    conflict.get_by_label("Why are they and H-1 one person?").fill("one person, two CRM records")
    conflict.get_by_role("button", name="Merge with H-1").click()

    expect(page.locator("#name")).to_have_text("H-1")
    expect(page.get_by_test_id("timeline").get_by_test_id("touchpoint")).to_have_count(2)
    expect(who.get_by_test_id("found-by")).to_have_text("Opened by H-2, which names H-1.")
    expect(who.get_by_test_id("identifier")).to_have_text(
        ["customer_id H-1", "customer_id H-2", "email hugo@example.com"]
    )
    expect(who.get_by_test_id("conflict")).to_have_count(0)
    merged = who.locator("[data-testid=identity-link][data-merge-id]")
    expect(merged).to_contain_text("merged by eve: “one person, two CRM records”")
    expect(page.get_by_test_id("notice")).to_contain_text("one person now, H-1")
    screenshot(page, "identity-merged")
    merge_id = merged.get_attribute("data-merge-id")
    assert page.evaluate("localStorage.getItem('journey-decided-by')") == "eve"

    # The name is remembered; the reason is asked for again, and Enter undoes it.
    expect(page.get_by_label("Merges and undos decided by")).to_have_value("eve")
    merged.get_by_label("Why undo it?").fill("two people after all")
    merged.get_by_label("Why undo it?").press("Enter")

    expect(page.locator("#name")).to_have_text("H-2")
    expect(page.get_by_test_id("timeline").get_by_test_id("touchpoint")).to_have_count(1)
    expect(who.get_by_test_id("conflict")).to_have_count(1)
    expect(page.get_by_test_id("notice")).to_have_text(
        f"Merge {merge_id} undone: H-2 and H-1 again."
    )
    expect(page.locator("#identity-title")).to_be_focused()
    hugo = json.load(urllib.request.urlopen(f"{identities}/api/identity/H-1"))
    assert [link["merge_id"] for link in hugo["links"]] == [None]


def test_an_anonymous_readers_touchpoints_and_identifiers_are_on_the_customers_page(
    page: Page, identities: str
) -> None:
    page.goto(identities)
    page.get_by_test_id("search").fill("cookie_id:ck-7f3a")
    expect(page.get_by_test_id("results")).to_contain_text("Press Enter to open")
    page.get_by_test_id("search").press("Enter")

    expect(page.locator("#name")).to_contain_text("S7-GRETA")
    who = page.get_by_test_id("identity")
    expect(who.get_by_test_id("identifier")).to_have_text(
        [
            "customer_id S7-GRETA",
            "email greta.holm@example.com",
            "phone +4531415926",
            "cookie_id ck-7f3a",
        ]
    )
    expect(who.get_by_test_id("found-by")).to_have_text(
        "Opened by cookie_id:ck-7f3a, which names S7-GRETA."
    )
    expect(who.get_by_test_id("identity-link")).not_to_have_count(0)
    expect(who).to_contain_text("cookie_id:ck-7f3a")
    expect(who.get_by_test_id("conflict")).to_have_count(0)
    expect(who.get_by_test_id("decided-by")).to_have_count(0)
    expect(page.get_by_test_id("timeline").get_by_test_id("touchpoint")).to_have_count(5)
    screenshot(page, "identity-anonymous")
