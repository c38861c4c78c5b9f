"""The HTTP API answers the same on every store: touchpoints posted, journeys, lists and
aggregates read a page at a time, and an outcome recorded, with the position to read it at."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from journey.api import create_app
from journey.bootstrap import build_engine
from tests.conftest import DAY, T0


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as made:
        yield made


@pytest.fixture
def decider(settings: Settings) -> Iterator[None]:
    """The decider at work beside the API, as `journey decide --follow` runs on servers (on
    the embedded store, every command decides by itself)."""
    if settings.store == "sqlite":
        yield
        return
    engine = build_engine(settings)
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            if not engine.decider.catch_up().pages:
                stop.wait(0.02)

    worker = threading.Thread(target=follow)
    worker.start()
    yield
    stop.set()
    worker.join(timeout=30)
    engine.close()


def posted(
    event_id: str, customer_id: str, kind: str, at: int, **extra: object
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "channel": "visit" if kind in ("visit", "tour") else "web",
        "type": kind,
        "occurred_at": at,
        "source": "crm",
        **extra,
    }


@pytest.mark.usefixtures("decider")
def test_the_api_serves_journeys_lists_and_outcomes(client: TestClient, settings: Settings) -> None:
    body = [
        posted("a1", "A_1", "page_view", T0, attributes={"page": "pricing"}),
        posted("a2", "A_1", "visit", T0 + DAY, rep_id="kim"),
        posted("b1", "AB1", "page_view", T0),
    ]
    recorded = client.post("/api/touchpoints", json=body).json()
    assert (recorded["recorded"], recorded["duplicates"]) == (3, 0)
    engine = build_engine(settings)
    try:
        engine.journeys.tick(T0 + 4 * DAY)  # the visit's follow-up window closes
        head = engine.log.head()
    finally:
        engine.close()

    def kims(after: int) -> list[dict[str, object]]:
        found: list[dict[str, object]] = client.get(
            "/api/actions", params={"owner": "kim", "after": after}
        ).json()["items"]
        return found

    anna = client.get("/api/customers/A_1", params={"after": head}).json()
    listed = client.get("/api/customers", params={"q": "A_", "after": head}).json()
    matrix = client.get(
        "/api/frictions/counts", params={"by": "owner", "then": "kind", "after": head}
    ).json()
    frictions = client.get("/api/frictions", params={"rep": "kim", "limit": 1, "after": head})
    (follow_up,) = kims(head)
    done = client.post(f"/api/actions/{follow_up['action_id']}/outcome", json={"status": "done"})

    assert anna["stage"] == "evaluating"
    assert anna["stage_since"] == "2026-03-03T09:00:00.000Z"
    assert [c["customer_id"] for c in listed["items"]] == ["A_1"]  # "_" is no wildcard
    assert {"owner": "kim", "kind": "no_follow_up", "frictions": 1} in matrix["items"]
    assert frictions.json()["total"] == len(frictions.json()["items"]) == 1
    assert follow_up["triggering_event_ids"] == ["a2"]
    assert done.json()["status"] == "done"
    assert done.json()["position"] > head
    assert kims(done.json()["position"]) == []


def test_the_customers_behind_a_report_figure_and_the_campaigns_before_them_are_found(
    client: TestClient,
) -> None:
    body = [
        posted("m1", "M_1", "page_view", T0, attributes={"campaign": "spring"}),
        posted("m2", "M_1", "demo_requested", T0 + DAY, attributes={"campaign": "demo"}),
        posted("n2", "N_1", "visit", T0 + 3 * DAY, rep_id="kim"),
        posted("n3", "N_1", "page_view", T0 + 9 * DAY),  # long after the visit's window
    ]
    position = client.post("/api/touchpoints", json=body).json()["position"]

    def behind(**filters: str) -> set[str]:
        answer = client.get("/api/customers", params={**filters, "after": position})
        return {row["customer_id"] for row in answer.json()["items"]}

    assert behind(moved_from="aware", moved_to="evaluating") == {"M_1"}
    assert behind(reached="evaluating") == {"M_1", "N_1"}
    assert behind(**{"from": "2026-03-04"}) == {"N_1"}
    assert behind(**{"to": "2026-03-03"}) == {"M_1"}
    assert behind(friction_channel="visit") == {"N_1"}
    credit = client.get(
        "/api/attribution",
        params={"model": "last_touch", "converted": "stage", "attribute": "campaign"},
    ).json()["items"]
    assert {(c["value"], c["credit"]) for c in credit if c["name"] == "evaluating"} == {
        ("demo", 1.0),  # M_1's demo request moved them
        ("unknown", 1.0),  # N_1's visit, of no campaign
    }
