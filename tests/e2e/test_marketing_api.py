"""Marketing's side of the loop in the HTTP API: which campaigns came before stage entries,
sales velocity, and the customers behind a figure of the analyst report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from journey.api import create_app
from tests.e2e.test_api import items, refused
from tests.stories import recorded_stories

APRIL = 1_775_030_400_000  # 2026-04-01T08:00:00Z, after every story began
HOUR = 3_600_000


def touchpoint(event_id: str, kind: str, at: int, **attributes: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": "M-1",
        "channel": "web" if kind == "page_view" else "email",
        "type": kind,
        "occurred_at": at,
        "source": "marketing-test",
        "attributes": attributes,
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The stories, and a customer first seen in April whom a spring campaign brought and a
    demo week moved on."""
    data_dir = recorded_stories(tmp_path_factory.mktemp("marketing"))
    with TestClient(create_app(Settings(data_dir=data_dir))) as made:
        posted = made.post(
            "/api/touchpoints",
            json=[
                touchpoint("m-1", "email_clicked", APRIL, campaign="spring"),
                touchpoint("m-2", "page_view", APRIL + HOUR, page="pricing"),
                touchpoint("m-3", "demo_requested", APRIL + 50 * HOUR, campaign="demo-week"),
            ],
        )
        assert posted.status_code == 202, posted.text
        made.get("/api/funnel", params={"after": posted.json()["position"]})
        yield made


APRIL_ONLY = {"from": "2026-04-01", "to": "2026-04-30"}


def credit(client: TestClient, model: str) -> dict[tuple[str, str], float]:
    answer = client.get(
        "/api/attribution",
        params={**APRIL_ONLY, "model": model, "converted": "stage", "attribute": "campaign"},
    )
    return {(row["name"], row["value"]): row["credit"] for row in items(answer)}


def test_first_touch_credits_the_campaign_that_brought_the_customer_for_every_stage(
    client: TestClient,
) -> None:
    first = credit(client, "first_touch")

    assert first
    assert {value for _, value in first} == {"spring"}


def test_last_touch_credits_the_campaign_that_moved_them_and_unknown_where_none_did(
    client: TestClient,
) -> None:
    last = credit(client, "last_touch")

    assert last[("evaluating", "demo-week")] == 1.0
    assert "unknown" in {value for _, value in last}  # the page view had no campaign


def test_position_based_credit_of_each_stage_entry_sums_to_one(client: TestClient) -> None:
    totals: dict[str, float] = {}
    for (stage, _), given in credit(client, "position_based").items():
        totals[stage] = totals.get(stage, 0) + given

    assert totals
    assert all(total == pytest.approx(1.0) for total in totals.values())


def test_attribution_says_whose_conversions_it_credits(client: TestClient) -> None:
    answer = client.get("/api/attribution", params={**APRIL_ONLY, "limit": 2}).json()

    assert answer["range"] == "customers first seen 2026-04-01 to 2026-04-30 (UTC)"
    assert answer["attributes"] == ["campaign", "page", "asset"]
    assert len(answer["items"]) == 2
    assert answer["next"] is not None


def test_velocity_is_the_median_days_to_each_stage_by_month_of_first_touch(
    client: TestClient,
) -> None:
    april = {row["stage"]: row for row in items(client.get("/api/velocity", params=APRIL_ONLY))}

    assert {row["month"] for row in april.values()} == {"2026-04"}
    assert april["evaluating"]["median_days"] == pytest.approx(50 / 24, abs=0.01)
    assert april["evaluating"]["customers"] == 1


@pytest.mark.parametrize(
    ("filters", "customers"),
    [
        ({"reached": "deciding"}, {"S3-CARLA", "S6-FIN"}),
        ({"moved_from": "aware", "moved_to": "evaluating"}, {"S1-ANNA", "S5-EVA"}),
        ({"friction_stage": "evaluating", "friction_channel": "visit"}, {"S1-ANNA", "S5-EVA"}),
        ({"friction_stage": "advocate", "friction_channel": ""}, {"S3-CARLA"}),
        ({"from": "2026-04-01"}, {"M-1"}),
        ({"reached": "evaluating", **APRIL_ONLY}, {"M-1"}),
    ],
)
def test_the_customers_behind_a_figure_of_the_report_are_listed(
    client: TestClient, filters: dict[str, str], customers: set[str]
) -> None:
    listed = items(client.get("/api/customers", params=filters))

    assert {row["customer_id"] for row in listed} == customers


@pytest.mark.parametrize(
    ("path", "filters", "detail"),
    [
        ("/api/customers", {"reached": "nowhere"}, "reached: 'nowhere' is no stage of the ladder"),
        (
            "/api/customers",
            {"moved_from": "aware"},
            "moved_from: given without moved_to, or the other way round",
        ),
        (
            "/api/velocity",
            {"from": "2026-04-02", "to": "2026-04-01"},
            "to: 2026-04-01 is before from, 2026-04-02",
        ),
        (
            "/api/attribution",
            {"model": "linear"},
            "model: one of first_touch, last_touch, position_based, not 'linear'",
        ),
    ],
)
def test_a_filter_that_fits_nothing_is_refused_naming_it(
    client: TestClient, path: str, filters: dict[str, str], detail: str
) -> None:
    assert refused(client.get(path, params=filters)) == (422, detail)
