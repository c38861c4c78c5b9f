"""The HTTP API on the embedded store, as a sales tool or a channel system calls it: the
stories' journeys, lists and aggregates, outcomes, ingest with its validation, and tokens."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from journey import api
from journey.api import create_app
from tests.stories import recorded_stories

TOKEN = "s3cret"
INGEST_TOKEN = "channel-systems-only"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded_stories(tmp_path_factory.mktemp("api"))


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=data_dir))) as made:
        yield made


def test_a_customers_journey_has_stages_timeline_frictions_moments_and_actions(
    client: TestClient,
) -> None:
    anna = client.get("/api/customers/S1-ANNA").json()

    assert anna["stage"] == "evaluating"
    assert [s["id"] for s in anna["stages"]][:4] == [
        "aware",
        "engaged",
        "considering",
        "evaluating",
    ]
    assert [t["event_id"] for t in anna["timeline"]] == [f"s1-{i}" for i in range(1, 7)]
    assert {f["kind"] for f in anna["frictions"] if f["open"]} >= {"no_follow_up", "hand_off"}
    assert {m["kind"] for m in anna["moments_of_truth"]} == {"first_human_contact", "first_visit"}
    follow_up = next(a for a in anna["next_actions"] if a["action_type"] == "follow_up")
    assert follow_up["owner"] == "kathrine"
    assert "s1-6" in follow_up["reason"]


def test_an_unknown_customer_is_a_404_naming_them(client: TestClient) -> None:
    response = client.get("/api/customers/NOBODY")

    assert response.status_code == 404
    assert response.json() == {"detail": "no touchpoints recorded for customer 'NOBODY'"}


def test_customers_are_listed_by_stage_rep_friction_and_id(client: TestClient) -> None:
    def ids(**query: Any) -> list[str]:
        found = client.get("/api/customers", params=query).json()
        assert found["total"] == len(found["customers"])
        return sorted(c["customer_id"] for c in found["customers"])

    assert ids(stage="considering") == ["S2-BEN", "S4-DAN"]
    assert ids(rep="kathrine") == ["S1-ANNA"]
    assert ids(friction="loop") == ["S4-DAN"]
    assert ids(q="S3") == ["S3-CARLA"]
    page = client.get("/api/customers", params={"limit": 2, "offset": 2}).json()
    assert (page["total"], len(page["customers"])) == (6, 2)


def test_funnel_and_friction_aggregates(client: TestClient) -> None:
    funnel = {row["stage"]: row for row in client.get("/api/funnel").json()}
    by_kind = client.get("/api/frictions/counts", params={"by": "kind"}).json()
    matrix = client.get("/api/frictions/counts", params={"by": "owner", "then": "kind"}).json()

    assert funnel["evaluating"]["current"] == 2
    assert {"kind": "loop", "frictions": 1} in by_kind
    assert {"owner": "kathrine", "kind": "hand_off", "frictions": 1} in matrix
    assert client.get("/api/frictions/counts", params={"by": "colour"}).status_code == 422


def test_an_outcome_closes_the_action_and_shows_in_the_journey(client: TestClient) -> None:
    (call_back,) = client.get("/api/actions", params={"customer": "S2-BEN"}).json()

    response = client.post(
        f"/api/actions/{call_back['action_id']}/outcome",
        json={"status": "dismissed", "reason": "he bought elsewhere", "rep_id": "kim"},
    )

    assert response.status_code == 201, response.text
    assert client.get("/api/actions", params={"customer": "S2-BEN"}).json() == []
    ben = client.get("/api/customers/S2-BEN").json()
    assert [(a["status"], a["status_reason"]) for a in ben["next_actions"]] == [
        ("dismissed", "he bought elsewhere")
    ]
    explained = client.get(f"/api/actions/{call_back['action_id']}").json()
    assert explained["explanation"]["events"] == ["s2-4", "s2-5"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"status": "finished"}, 422, "status: 'finished' is not one of"),
        ({"status": "snoozed"}, 422, "snoozed_until: a snoozed action needs"),
    ],
)
def test_a_bad_outcome_is_refused_naming_the_field(
    client: TestClient, body: dict[str, Any], status: int, detail: str
) -> None:
    (action,) = client.get("/api/actions", params={"customer": "S4-DAN"}).json()

    response = client.post(f"/api/actions/{action['action_id']}/outcome", json=body)

    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)


def test_an_outcome_for_an_unknown_action_is_a_404(client: TestClient) -> None:
    response = client.post("/api/actions/nope/outcome", json={"status": "done"})

    assert response.status_code == 404
    assert response.json()["detail"] == "no action 'nope' was decided"


def touchpoint(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "api-1",
        "customer_id": "API-1",
        "channel": "web",
        "type": "page_view",
        "occurred_at": "2026-03-10T09:00:00Z",
        "source": "web-analytics",
        "attributes": {"page": "pricing"},
        **overrides,
    }


def test_touchpoints_posted_are_recorded_once(client: TestClient) -> None:
    first = client.post("/api/touchpoints", json=touchpoint())
    again = client.post("/api/touchpoints", json=[touchpoint(), touchpoint(event_id="api-2")])

    assert first.status_code == 202
    assert (first.json()["recorded"], first.json()["duplicates"]) == (1, 0)
    assert (again.json()["recorded"], again.json()["duplicates"]) == (1, 1)
    read = client.get("/api/customers/API-1", params={"after": again.json()["position"]})
    assert read.json()["touchpoints"] == 2


def test_a_journey_read_again_is_the_same_until_something_is_recorded_and_then_new(
    client: TestClient,
) -> None:
    first = client.post("/api/touchpoints", json=touchpoint(event_id="e-1", customer_id="E-1"))
    read = client.get("/api/customers/E-1", params={"after": first.json()["position"]})
    unchanged = client.get("/api/customers/E-1", headers={"If-None-Match": read.headers["ETag"]})
    second = client.post("/api/touchpoints", json=touchpoint(event_id="e-2", customer_id="E-1"))
    changed = client.get(
        "/api/customers/E-1",
        params={"after": second.json()["position"]},
        headers={"If-None-Match": read.headers["ETag"]},
    )

    assert read.json()["touchpoints"] == 1
    assert unchanged.status_code == 304
    assert changed.status_code == 200
    assert changed.json()["touchpoints"] == 2
    assert changed.headers["ETag"] != read.headers["ETag"]


def test_a_read_whose_write_the_views_do_not_reach_in_time_is_a_503_to_try_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "READ_WAIT_S", 0.2)
    # Not started: no follower brings the views up to date.
    client = TestClient(create_app(Settings(data_dir=tmp_path / "data")))
    position = client.post("/api/touchpoints", json=touchpoint()).json()["position"]

    read = client.get("/api/customers/API-1", params={"after": position})

    assert read.status_code == 503
    assert read.headers["Retry-After"] == "1"
    assert read.json()["detail"].startswith(f"the views are at 0, not yet at {position}")


def test_a_read_given_the_position_of_a_write_includes_it_and_one_beyond_the_log_is_refused(
    client: TestClient,
) -> None:
    posted = client.post("/api/touchpoints", json=touchpoint(event_id="w-1", customer_id="W-1"))
    position = posted.json()["position"]

    read = client.get("/api/customers/W-1", params={"after": position})
    beyond = client.get("/api/customers/W-1", params={"after": position + 1_000_000})

    assert read.status_code == 200
    assert read.json()["touchpoints"] == 1
    assert beyond.status_code == 422
    assert beyond.json()["detail"].startswith(f"after: {position + 1_000_000} is beyond the log")


def test_a_touchpoint_whose_event_id_names_another_is_a_409_and_nothing_is_recorded(
    client: TestClient,
) -> None:
    first = touchpoint(event_id="api-9", customer_id="API-9")
    position = client.post("/api/touchpoints", json=first).json()["position"]

    response = client.post(
        "/api/touchpoints",
        json=[
            touchpoint(event_id="api-10", customer_id="API-9"),
            {**first, "attributes": {"page": "contact"}},
        ],
    )

    assert response.status_code == 409
    assert response.json()["detail"].startswith(
        "[1].event_id: conflicts with the touchpoint recorded on "
    )
    assert response.json()["detail"].endswith(": its attributes differ")
    later = client.post("/api/touchpoints", json=touchpoint(event_id="api-11", customer_id="L-1"))
    read = client.get("/api/customers/API-9", params={"after": later.json()["position"]})
    assert position < later.json()["position"]
    assert read.json()["touchpoints"] == 1


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (touchpoint(customer_id=""), "customer_id: is missing or empty"),
        (touchpoint(channel="fax"), "channel: 'fax' is not one of web, email, phone, visit"),
        (
            [touchpoint(event_id="ok-1", customer_id="OK-1"), touchpoint(occurred_at="yesterday")],
            "[1].occurred_at",
        ),
    ],
)
def test_a_bad_touchpoint_is_refused_naming_the_field_and_nothing_is_recorded(
    client: TestClient, body: Any, detail: str
) -> None:
    response = client.post("/api/touchpoints", json=body)
    later = client.post(
        "/api/touchpoints", json=touchpoint(event_id=str(uuid.uuid4()), customer_id="OK-2")
    )

    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)
    # Its good neighbour neither, though what was posted after it is read.
    read = client.get("/api/customers/OK-1", params={"after": later.json()["position"]})
    assert read.status_code == 404


def test_the_openapi_document_describes_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert {
        "/api/customers",
        "/api/customers/{customer_id}",
        "/api/funnel",
        "/api/frictions",
        "/api/frictions/counts",
        "/api/actions",
        "/api/actions/{action_id}",
        "/api/actions/{action_id}/outcome",
        "/api/touchpoints",
    } <= set(paths)


def test_the_api_documentation_is_served_whole_from_the_engine_without_the_internet(
    client: TestClient,
) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        scripts = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)

        assert scripts, page
        for script in scripts:
            assert script.startswith("/"), f"{page} loads {script} from elsewhere"
            assert client.get(script).status_code == 200, script


def test_with_a_token_every_endpoint_asks_for_it(data_dir: Path) -> None:
    app = create_app(Settings(data_dir=data_dir), token=TOKEN, ingest_token=INGEST_TOKEN)
    with TestClient(app) as client:
        reader = {"authorization": f"Bearer {TOKEN}"}
        channel = {"authorization": f"Bearer {INGEST_TOKEN}"}

        assert client.get("/api/funnel").status_code == 401
        assert (
            client.get("/api/funnel", headers={"authorization": "Bearer wrong"}).status_code == 401
        )
        assert client.get("/api/funnel", headers=reader).status_code == 200
        assert client.post("/api/touchpoints", json=touchpoint(), headers=reader).status_code == 401
        posted = client.post("/api/touchpoints", json=touchpoint(event_id="t-9"), headers=channel)
        assert posted.status_code == 202
        (action,) = client.get(
            "/api/actions", params={"customer": "S3-CARLA"}, headers=reader
        ).json()
        outcome = f"/api/actions/{action['action_id']}/outcome"
        assert client.post(outcome, json={"status": "accepted"}, headers=channel).status_code == 401
        assert client.post(outcome, json={"status": "accepted"}, headers=reader).status_code == 201
        odd = {"authorization": "Bearer s3cr\u00e9t".encode()}  # not ASCII
        assert client.get("/api/funnel", headers=odd).status_code == 401


def test_the_openapi_document_names_the_token_each_endpoint_takes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    schemes = document["components"]["securitySchemes"]
    taken = {
        (path, method): [name for need in operation["security"] for name in need]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }

    assert {schemes[name]["scheme"] for name in schemes} == {"bearer"}
    assert taken[("/api/touchpoints", "post")] == ["ingestToken"]
    assert taken[("/api/actions/{action_id}/outcome", "post")] == ["salesToken"]
    assert taken[("/api/customers/{customer_id}", "get")] == ["salesToken"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/customers/C\x00-1", "customer_id"),
        ("/api/customers?q=C\x00", "q"),
        ("/api/customers?rep=a\x00b", "rep"),
        ("/api/frictions?rep=a\x00b", "rep"),
        ("/api/frictions?type=\x00", "type"),
        ("/api/actions?owner=\x00", "owner"),
        ("/api/actions?customer=\x00", "customer"),
        ("/api/actions/a\x00", "action_id"),
    ],
)
def test_a_nul_character_in_a_parameter_is_a_422_naming_it(
    client: TestClient, path: str, name: str
) -> None:
    response = client.get(path.replace("\x00", "%00"))

    assert (response.status_code, response.json()) == (
        422,
        {"detail": f"{name}: contains a NUL character"},
    )


def test_a_nul_character_in_a_body_is_a_422_naming_the_field(client: TestClient) -> None:
    posted = client.post("/api/touchpoints", json=touchpoint(source="web\x00"))
    (action,) = client.get("/api/actions", params={"customer": "S5-EVA"}).json()
    reported = client.post(
        f"/api/actions/{action['action_id']}/outcome", json={"status": "done", "reason": "\x00"}
    )

    assert (posted.status_code, posted.json()["detail"]) == (
        422,
        "source: contains a NUL character",
    )
    assert (reported.status_code, reported.json()["detail"]) == (
        422,
        "reason: contains a NUL character",
    )


def test_a_body_larger_than_allowed_is_a_413_whether_its_length_is_declared_or_not(
    data_dir: Path,
) -> None:
    app = create_app(Settings(data_dir=data_dir))
    body = b"[" + b" " * (17 * 1024 * 1024) + b"]"
    with TestClient(app) as client:
        declared = client.post(
            "/api/touchpoints", content=body, headers={"content-type": "application/json"}
        )
        streamed = client.post(
            "/api/touchpoints",
            content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
            headers={"content-type": "application/json"},
        )

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {
            "detail": "the request body is larger than the 16,777,216 bytes allowed"
        }


def test_a_request_that_does_not_fit_its_endpoint_is_refused_in_the_one_error_shape(
    client: TestClient,
) -> None:
    paged = client.get("/api/actions", params={"limit": 0})
    listed = client.post("/api/touchpoints", json=[1, 2])

    assert (paged.status_code, paged.json()) == (
        422,
        {"detail": "limit: Input should be greater than or equal to 1"},
    )
    assert (listed.status_code, listed.json()) == (
        422,
        {"detail": "body: Input should be a valid dictionary"},
    )


def test_actions_come_a_page_at_a_time_with_the_total_and_the_next_page(
    client: TestClient,
) -> None:
    every = client.get("/api/actions", params={"include_closed": True, "limit": 1000}).json()

    first = client.get("/api/actions", params={"include_closed": True, "limit": 2})
    following = client.get(first.links["next"]["url"])

    assert int(first.headers["x-total-count"]) == len(every) > 3
    assert [a["action_id"] for a in first.json() + following.json()] == [
        a["action_id"] for a in every[:4]
    ]
